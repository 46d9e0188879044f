"""The Stripe event log keeps `BILLY_EVENT_LOG_RETENTION_DAYS` (30) and no more (issue 16).

Old rows go in batches of 1,000, each its own statement and transaction, from the periodic job
runner; recent rows stay. A pruned event id no longer de-duplicates, and that is safe: a replay
of its original delivery is long past the signature's 300 s tolerance, and a fresh resend (as
Stripe's Dashboard sends one) is older than the stored copy, so it changes nothing."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select
from starlette.testclient import TestClient

from billy_app.api.routes import build_api
from sandbox.events import signature_header
from services import clock, stripe_events
from services.db import get_engine, session_scope
from services.models import StripeCustomer, StripeEvent

DAY = 86_400
SECRET = "whsec_" + "r" * 32


def _events(count: int, created: int, prefix: str) -> None:
    """`count` event rows created at `created` (Stripe time), of a type Billy does not mirror."""
    with session_scope() as session:
        for n in range(count):
            event = {"id": f"evt_{prefix}{n:05d}", "object": "event", "type": "balance.available", "created": created}
            stripe_events._record_event(session, event, "poll", "ignored")


def _ids() -> set[str]:
    with session_scope() as session:
        return set(session.exec(select(StripeEvent.id)))


def test_old_events_go_in_batches_and_recent_ones_stay(any_store: Any) -> None:  # type: ignore[no-untyped-def]
    now = int(clock.now().timestamp())
    _events(2_500, now - 31 * DAY, "old")
    _events(10, now - 29 * DAY, "aging")
    _events(5, now - 60, "new")
    deletes: list[str] = []

    def count_deletes(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM STRIPE_EVENT"):
            deletes.append(statement)

    sa.event.listen(get_engine(), "before_cursor_execute", count_deletes)
    try:
        assert stripe_events.prune_event_log() == 2_500
    finally:
        sa.event.remove(get_engine(), "before_cursor_execute", count_deletes)
    assert len(deletes) == 3  # 1,000 + 1,000 + 500: one short statement (and transaction) each
    assert _ids() == {f"evt_aging{n:05d}" for n in range(10)} | {f"evt_new{n:05d}" for n in range(5)}

    assert stripe_events.prune_event_log() == 0  # nothing more today
    with clock.travel(timedelta(days=2)):  # two days on, the 29-day-old rows pass 30 days
        assert stripe_events.prune_event_log() == 10
    assert _ids() == {f"evt_new{n:05d}" for n in range(5)}


def test_the_retention_is_a_setting(any_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from services.config import get_settings

    now = int(clock.now().timestamp())
    _events(3, now - 8 * DAY, "week")
    monkeypatch.setenv("BILLY_EVENT_LOG_RETENTION_DAYS", "7")
    get_settings.cache_clear()
    assert stripe_events.prune_event_log() == 3 and _ids() == set()


def test_pruning_skips_a_row_another_transaction_holds_instead_of_waiting(any_store: Any) -> None:  # type: ignore[no-untyped-def]
    if any_store.kind != "postgresql":
        pytest.skip("SQLite has one writer at a time: each batch holds the write lock only for its statement")
    now = int(clock.now().timestamp())
    _events(3, now - 40 * DAY, "held")
    holder = get_engine().connect()
    try:
        holder.execute(sa.text("SELECT id FROM stripe_event WHERE id = 'evt_held00000' FOR UPDATE"))
        finished = threading.Event()
        pruned: list[int] = []
        worker = threading.Thread(target=lambda: (pruned.append(stripe_events.prune_event_log()), finished.set()))
        worker.start()
        assert finished.wait(10), "the pruning waited on a row a delivery holds"
        assert pruned == [2] and _ids() == {"evt_held00000"}
    finally:
        holder.rollback()
        holder.close()
    assert stripe_events.prune_event_log() == 1  # the next run takes it


def test_a_pruned_event_replayed_or_resent_changes_nothing(any_store: Any, any_store_owner: Any) -> None:  # type: ignore[no-untyped-def]
    stripe_events.set_webhook_secret(any_store_owner, SECRET)
    client = TestClient(build_api(), base_url="http://localhost:3000")
    now = int(time.time())

    def event(event_id: str, email: str, created: int) -> bytes:
        customer = {"id": "cus_pruned1", "object": "customer", "email": email, "name": "P", "created": now - 40 * DAY}
        body = {"id": event_id, "object": "event", "type": "customer.updated", "created": created}
        return json.dumps({**body, "data": {"object": customer}}).encode()

    def deliver(body: bytes, signed_at: int) -> Any:
        header = signature_header(SECRET, body, signed_at)
        return client.post("/api/stripe/webhook", content=body, headers={"stripe-signature": header})

    old = event("evt_monthago", "old@example.com", now - 31 * DAY)
    with clock.travel(timedelta(days=-31)):  # delivered when it happened, a month ago
        assert deliver(old, now - 31 * DAY).text == "applied"
    assert deliver(event("evt_today", "new@example.com", now - 60), now).text == "applied"
    assert stripe_events.prune_event_log() == 1 and _ids() == {"evt_today"}

    replayed = deliver(old, now - 31 * DAY)  # the month-old delivery, byte for byte
    assert replayed.status_code == 400 and "old" in replayed.text
    resent = deliver(old, now)  # signed afresh: Stripe's Dashboard "resend"
    assert (resent.status_code, resent.text) == (200, "older")
    with session_scope() as session:
        stored = session.get(StripeCustomer, "cus_pruned1")
    assert stored is not None and stored.email == "new@example.com"


def test_the_app_prunes_and_reconciles_from_its_periodic_jobs() -> None:
    from billy_app import billy_app
    from services import retention, write_recovery

    jobs = {job.name: job for job in (billy_app.store_pruning, billy_app.write_reconciliation)}
    assert jobs["store-pruning"].job is retention.prune_expired and jobs["store-pruning"].seconds == 3600
    assert jobs["write-reconciliation"].job is write_recovery.reconcile_writes
    assert jobs["write-reconciliation"].immediately  # at start: the restart's reconciliation


def test_write_keys_older_than_a_month_go_and_a_repeat_within_it_still_returns_the_first_result(
    any_store: Any,
) -> None:  # type: ignore[no-untyped-def]
    """A write key is kept 30 days: within them a repeat of the same key is still recognised as
    a repeat (nothing done twice); past them the key goes with the hourly pruning."""
    from services import retention, stripe_writes
    from services.models import IdempotencyRecord
    from tests.conftest import member_actor

    actor = member_actor("billing_manager", "keys@example.com")
    now = clock.now()
    with session_scope() as session:
        for n, age in enumerate([timedelta(days=45), timedelta(days=31), timedelta(days=29), timedelta(minutes=5)]):
            session.add(
                IdempotencyRecord(
                    key=f"key-{n}-" + "k" * 20,
                    action="customer.update",
                    actor_id=actor.user_id,
                    result_id="cus_kept",
                    created_at=now - age,
                )
            )
    assert retention.prune_expired() == {"stripe_event": 0, "idempotency_record": 2}
    with session_scope() as session:
        left = sorted(session.exec(select(IdempotencyRecord.key)))
    assert [k.split("-")[1] for k in left] == ["2", "3"]
    # The 29-day-old key is still a repeat of its first use: the claim says so, so nothing is done twice.
    assert stripe_writes.claim_intent(actor, "key-2-" + "k" * 20, "customer.update", "cus_kept") is True
    assert stripe_writes.prune_idempotency_records() == 0
