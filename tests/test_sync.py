"""The store is a copy of Stripe: backfill (resumable, honest about what it could not do)
and events (deduplicated, order-safe), on SQLite and PostgreSQL, against the sandbox."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from billy_app.state.sync_progress import progress_text
from services import clock, mirror, stripe_keys, sync
from services.config import PROJECT_ROOT
from services.db import session_scope
from services.errors import StripeRequestFailed
from services.models import StripeCharge, StripeCustomer, StripeEvent, SyncState, table_of
from services.permissions import Actor
from services.stripe_events import apply_event, poll_events
from services.stripe_gateway import StripeGateway, as_dict
from tests.conftest import StripePeer

# What a row's typed columns must equal; raw JSON and bookkeeping are compared apart.
SKIP_COLUMNS = {"raw", "synced_at", "version_at"}
LISTED_WITH = {"subscriptions": {"status": "all"}}


def sandbox_objects(peer: StripePeer, resource: str) -> list[dict[str, Any]]:
    """Everything the sandbox holds of a resource, read with a full secret key."""
    client = peer.secret_client()
    if resource == "payment_methods":
        found = []
        for customer in client.v1.customers.list(params={"limit": 100}).auto_paging_iter():
            found += [as_dict(pm) for pm in client.v1.customers.payment_methods.list(customer.id).auto_paging_iter()]
        return found
    params = {"limit": 100, **LISTED_WITH.get(resource, {})}
    return [as_dict(o) for o in getattr(client.v1, resource).list(params=params).auto_paging_iter()]


def assert_store_equals_sandbox(peer: StripePeer, resources: list[str] | None = None) -> dict[str, int]:
    """Every object of every resource: the same ids, and every typed column equal to what
    the sandbox's copy maps to (so a stale or half-written row fails)."""
    counts = {}
    for name in resources or list(sync.RESOURCES):
        kind = mirror.KINDS[sync.RESOURCES[name].object]
        expected = {o["id"]: kind.to_row(o) for o in sandbox_objects(peer, name)}
        with session_scope() as s:
            stored = {r.id: r.model_dump() for r in s.exec(select(kind.model)) if not r.deleted}
        assert set(stored) == set(expected), (name, set(stored) ^ set(expected))
        for object_id, want in expected.items():
            got = stored[object_id]
            differing = {k: (got[k], v) for k, v in want.items() if k not in SKIP_COLUMNS and got[k] != v}
            assert not differing, (name, object_id, differing)
        counts[name] = len(expected)
    return counts


@pytest.fixture
def seeded(any_store, any_store_owner, stripe_peer):  # type: ignore[no-untyped-def]
    from sandbox.seed import reset_to_demo

    reset_to_demo(stripe_peer.url, customers=12)
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    return stripe_peer


def _states() -> dict[str, SyncState]:
    with session_scope() as s:
        return {st.resource: st for st in s.exec(select(SyncState))}


# --- backfill -------------------------------------------------------------------------------


def test_backfill_copies_every_resource_object_for_object(seeded) -> None:  # type: ignore[no-untyped-def]
    outcome = sync.backfill()
    assert outcome == dict.fromkeys(sync.RESOURCES, "done")
    counts = assert_store_equals_sandbox(seeded)
    assert counts["customers"] == 12 and counts["charges"] > 12 and counts["refunds"] > 0
    assert counts["subscriptions"] > 0 and counts["invoices"] > 0 and counts["prices"] > 0
    states = _states()
    for name, count in counts.items():
        assert (states[name].status, states[name].synced_count, states[name].cursor) == ("done", count, None), name


def test_subscription_items_and_invoice_lines_come_with_their_parents(seeded) -> None:  # type: ignore[no-untyped-def]
    from services.models import StripeInvoiceLine, StripeSubscription, StripeSubscriptionItem

    sync.backfill()
    subs = sandbox_objects(seeded, "subscriptions")
    with session_scope() as s:
        items = {(i.subscription_id, i.id, i.price_id, i.quantity) for i in s.exec(select(StripeSubscriptionItem))}
        mrr = {x.id: x.mrr for x in s.exec(select(StripeSubscription))}
        lines = {(line.invoice_id, line.id) for line in s.exec(select(StripeInvoiceLine))}
    want = {
        (sub["id"], item["id"], (item.get("price") or item.get("plan") or {}).get("id"), item.get("quantity") or 1)
        for sub in subs
        for item in sub["items"]["data"]
    }
    assert items == want
    for sub in subs:  # MRR: monthly amount of every item, yearly prices divided by twelve
        expected = 0.0
        for item in sub["items"]["data"]:
            price = item.get("price") or item.get("plan")
            interval = (price.get("recurring") or {}).get("interval") or price.get("interval")
            per = {"month": 1, "year": 1 / 12}.get(interval, 0)
            expected += (price.get("unit_amount") or price.get("amount") or 0) * (item.get("quantity") or 1) * per
        assert mrr[sub["id"]] == round(expected), sub["id"]
    invoice_lines = {
        (inv["id"], line["id"]) for inv in sandbox_objects(seeded, "invoices") for line in inv["lines"]["data"]
    }
    assert lines == invoice_lines


def test_a_resource_the_key_cannot_read_is_skipped_with_a_note_and_the_rest_syncs(seeded) -> None:  # type: ignore[no-untyped-def]
    key = seeded.restricted_key(profile="billy", without=["rak_dispute_read", "rak_charge_read"])
    outcome = sync.backfill(StripeGateway(lambda: key))
    assert outcome["disputes"] == "skipped" and outcome["charges"] == "skipped"
    assert {k for k, v in outcome.items() if v == "done"} == set(sync.RESOURCES) - {"disputes", "charges"}
    states = _states()
    assert "“Disputes: Read”" in (states["disputes"].last_error or "")
    assert "disputes and chargebacks" in (states["disputes"].last_error or "")
    assert "“Charges: Read”" in (states["charges"].last_error or "")
    assert_store_equals_sandbox(seeded, ["customers", "refunds", "subscriptions", "invoices"])


def test_a_killed_backfill_resumes_after_its_last_stored_page(seeded, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The first run dies after two pages of customers (as a killed process would, leaving
    the state `running`); the next run starts after the saved cursor and ends identical.
    One walker: one walk, one cursor (ranges in parallel: tests/test_sync_ranges.py)."""
    _one_walker(monkeypatch)
    gateway = StripeGateway()
    calls: list[tuple[str, str | None]] = []
    original = gateway.list_page

    def dying(resource, starting_after=None, limit=100, params=None, on_throttled=None):  # type: ignore[no-untyped-def]
        calls.append((resource, starting_after))
        if resource == "customers" and sum(1 for r, _ in calls if r == "customers") > 2:
            raise KeyboardInterrupt  # not an error the sync handles: the process is going away
        return original(resource, starting_after, 5, params, on_throttled)

    gateway.list_page = dying  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        sync.backfill_resource(gateway, "customers")
    with session_scope() as s:
        state = s.get(SyncState, "customers")
        assert state is not None and state.synced_count == 10 and state.cursor is not None
        state.status = "running"  # a killed process never gets to write anything else
        saved = state.cursor
    calls.clear()
    gateway.list_page = lambda r, a=None, limit=100, params=None, on_throttled=None: (  # type: ignore[method-assign]
        calls.append((r, a)) or original(r, a, limit, params, on_throttled)
    )
    assert sync.backfill_resource(gateway, "customers") == "done"
    assert calls[0] == ("customers", saved)
    assert_store_equals_sandbox(seeded, ["customers"])
    assert _states()["customers"].synced_count == 12


def _one_walker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfill walks each resource as one range (no idle walker splits it)."""
    from services.config import get_settings

    monkeypatch.setenv("BILLY_SYNC_WALKERS", "1")
    get_settings.cache_clear()


def _customers_dying_after(pages: int) -> StripeGateway:
    """A gateway that lists customers five at a time and, after `pages` pages, dies as a killed
    process would: the run stays `running` with what it stored so far."""
    gateway = StripeGateway()
    original, served = gateway.list_page, []

    def dying(resource, starting_after=None, limit=100, params=None, on_throttled=None):  # type: ignore[no-untyped-def]
        if len(served) == pages:
            raise KeyboardInterrupt
        served.append(starting_after)
        return original(resource, starting_after, 5, params, on_throttled)

    gateway.list_page = dying  # type: ignore[method-assign]
    return gateway


def _progress_of(actor: Actor, resource: str) -> sync.ResourceProgress:
    return {r.resource: r for r in sync.progress(actor)}[resource]


def test_a_resync_counts_against_the_last_complete_picture_with_a_time_left(seeded, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    """Issue 14: during "Sync now" the counts restarted at 0 and the total fell. The store's
    count stays, the run says how far it is against it, and the time left follows the clock."""
    sync.backfill(resources=["customers"])
    done = _progress_of(any_store_owner, "customers")
    assert (done.status, done.synced_count, done.stored) == ("done", 12, 12)
    assert (done.percent, done.eta_seconds) == (None, None) and done.finished_at is not None
    with clock.freeze():
        started = clock.now()
        with pytest.raises(KeyboardInterrupt):
            sync.backfill_resource(_customers_dying_after(1), "customers")  # five customers re-read, then stopped
        early = _progress_of(any_store_owner, "customers")
        assert (early.status, early.synced_count, early.stored, early.expected) == ("running", 5, 12, 12)
        assert early.started_at == started and early.finished_at is None  # a running sync has not finished
        assert (early.percent, early.eta_seconds) == (41, None)  # 5 of 12; too soon for a rate
        clock.advance(timedelta(seconds=1))
        assert _progress_of(any_store_owner, "customers").eta_seconds is None  # still under two seconds
        clock.advance(timedelta(seconds=9))
        later = _progress_of(any_store_owner, "customers")
        assert (later.percent, later.eta_seconds) == (41, 14)  # 5 in 10 s: the other 7 take about 14 s
        assert progress_text(later) == "5 of about 12 · 41% · about 14 s left"  # what the pages show
        clock.advance(timedelta(seconds=20))
        assert _progress_of(any_store_owner, "customers").eta_seconds == 42  # slower than it looked: 7 at 1 per 6 s
    assert sync.backfill_resource(StripeGateway(), "customers") == "done"  # resumes and finishes
    after = _progress_of(any_store_owner, "customers")
    assert (after.status, after.synced_count, after.stored, after.percent, after.eta_seconds) == (
        "done",
        12,
        12,
        None,
        None,
    )


def test_a_first_sync_has_no_total_to_count_against(seeded, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    """No earlier run, no picture: "n so far", even when an event stored a customer ahead of the backfill."""
    with clock.freeze():
        with pytest.raises(KeyboardInterrupt):
            sync.backfill_resource(_customers_dying_after(1), "customers")
        news = {**sandbox_objects(seeded, "customers")[-1], "id": "cus_from_an_event"}
        with session_scope() as s:
            mirror.write_objects(s, "customer", [news], int(time.time()))
        clock.advance(timedelta(seconds=30))
        first = _progress_of(any_store_owner, "customers")
    assert (first.status, first.synced_count, first.stored) == ("running", 5, 6)
    assert (first.expected, first.percent, first.eta_seconds) == (None, None, None)
    assert progress_text(first) == "5 so far"
    charges = _progress_of(any_store_owner, "charges")  # never synced: nothing stored, nothing expected
    assert (charges.status, charges.stored, charges.expected, charges.percent) == ("pending", 0, None, None)


def test_time_left_is_the_rest_at_the_rate_so_far() -> None:
    start = clock.now()
    assert sync.estimate(0, 100, start, start + timedelta(seconds=30)) == (0, None)  # nothing synced: no rate
    assert sync.estimate(50, 100, start, start + timedelta(seconds=1)) == (50, None)  # too early
    assert sync.estimate(50, 100, start, start + timedelta(seconds=10)) == (50, 10)
    assert sync.estimate(1, 3, start, start + timedelta(seconds=10)) == (33, 20)
    assert sync.estimate(150, 100, start, start + timedelta(seconds=10)) == (99, 0)  # past the old count: not done
    assert sync.estimate(10, None, start, start + timedelta(seconds=10)) == (None, None)
    assert sync.estimate(10, 0, start, start + timedelta(seconds=10)) == (None, None)


def test_a_backfill_never_overwrites_a_fresher_row(seeded) -> None:  # type: ignore[no-untyped-def]
    sync.backfill(resources=["customers"])
    customer = sandbox_objects(seeded, "customers")[0]
    with session_scope() as s:  # an event from the future has already put a newer copy in place
        mirror.write_objects(s, "customer", [{**customer, "email": "newer@example.com"}], int(time.time()) + 3600)
    sync.backfill(resources=["customers"])
    with session_scope() as s:
        assert s.get(StripeCustomer, customer["id"]).email == "newer@example.com"  # type: ignore[union-attr]


def test_throttling_is_counted_and_an_exhausted_retry_is_reported_as_failed(seeded, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import stripe

    from services import stripe_gateway

    monkeypatch.setattr(stripe_gateway, "READ_ATTEMPTS", 3)
    monkeypatch.setattr(stripe_gateway, "wait_exponential_jitter", lambda **_: lambda _state: 0)
    gateway = StripeGateway()
    answers = iter([429, 429, 200] + [200] * 50)  # two 429s, then fine

    def flaky(resource, starting_after=None, limit=100, params=None, on_throttled=None):  # type: ignore[no-untyped-def]
        def fn(client):  # type: ignore[no-untyped-def]
            if next(answers) == 429:
                raise stripe.RateLimitError("Too many requests", http_status=429)
            return getattr(client.v1, resource).list(params={"limit": limit, **(params or {})})

        page = gateway.read(fn, on_throttled)
        return [as_dict(o) for o in page.data], bool(page.has_more)

    gateway.list_page = flaky  # type: ignore[method-assign]
    assert sync.backfill_resource(gateway, "products") == "done"
    assert _states()["products"].throttled_count == 2  # done, and the page says it was slowed twice
    answers = iter([429] * 10)
    with pytest.raises(StripeRequestFailed):
        sync.backfill_resource(gateway, "products")
    state = _states()["products"]
    assert state.status == "failed" and "too many requests" in (state.last_error or "")


# --- events ---------------------------------------------------------------------------------


def _events_since(peer: StripePeer, since: int) -> list[dict[str, Any]]:
    client = peer.secret_client()
    return [
        as_dict(e) for e in client.v1.events.list(params={"limit": 100, "created": {"gte": since}}).auto_paging_iter()
    ]


def _burst_of_changes(peer: StripePeer) -> None:
    """Changes that land in the same second, several to one object (ties on `created`)."""
    from tests.stripe_helpers import make_charge

    client = peer.secret_client()
    customers = [c for c in client.v1.customers.list(params={"limit": 3}).data]
    for i, customer in enumerate(customers):
        for n in range(3):
            client.v1.customers.update(customer.id, params={"email": f"burst{i}-{n}@example.com", "name": f"B{n}"})
    charge = make_charge(peer, 7000, customers[0].id)
    client.v1.refunds.create(params={"charge": charge["id"], "amount": 1000})
    client.v1.refunds.create(params={"charge": charge["id"], "amount": 2000})
    sub = client.v1.subscriptions.list(params={"limit": 1}).data[0]
    client.v1.subscriptions.update(sub.id, params={"metadata": {"note": "changed"}, "cancel_at_period_end": True})


def test_events_shuffled_duplicated_and_tied_leave_the_store_equal_to_stripe(seeded) -> None:  # type: ignore[no-untyped-def]
    sync.backfill()
    since = int(time.time()) - 1
    _burst_of_changes(seeded)
    events = _events_since(seeded, since)
    assert len(events) >= 10
    created = [e["created"] for e in events]
    assert len(set(created)) < len(created)  # some share a second: the case that breaks naive syncs
    deliveries = events * 2 + events[:3]
    random.Random(7).shuffle(deliveries)
    outcomes = [apply_event(e, "webhook").outcome for e in deliveries]
    assert outcomes.count("duplicate") == len(deliveries) - len(events)
    assert "refetched" in outcomes or "older" in outcomes
    assert_store_equals_sandbox(seeded)
    with session_scope() as s:
        assert len(s.exec(select(StripeEvent)).all()) == len(events)


def test_an_older_event_never_overwrites_a_newer_copy(seeded) -> None:  # type: ignore[no-untyped-def]
    client = seeded.secret_client()
    customer = client.v1.customers.list(params={"limit": 1}).data[0]
    client.v1.customers.update(customer.id, params={"email": "final@example.com"})
    base = as_dict(client.v1.customers.retrieve(customer.id))
    newer = {"id": "evt_newer", "object": "event", "type": "customer.updated", "created": 2_000_000_000}
    older = {"id": "evt_older", "object": "event", "type": "customer.updated", "created": 1_999_999_000}
    apply_event({**newer, "data": {"object": base}}, "webhook")
    assert apply_event({**older, "data": {"object": {**base, "email": "stale@example.com"}}}, "webhook").outcome == (
        "older"
    )
    # Same second as the stored copy: Billy cannot tell which is newer, so it asks Stripe.
    tie = {**newer, "id": "evt_tie", "data": {"object": {**base, "email": "maybe@example.com"}}}
    assert apply_event(tie, "webhook").outcome == "refetched"
    with session_scope() as s:
        assert s.get(StripeCustomer, customer.id).email == "final@example.com"  # type: ignore[union-attr]


def _customer_updated(event_id: str, created: int, customer: dict[str, Any]) -> dict[str, Any]:
    """A `customer.updated` event of Stripe's second `created` carrying `customer`."""
    return {
        "id": event_id,
        "object": "event",
        "type": "customer.updated",
        "created": created,
        "data": {"object": customer},
    }


@pytest.mark.parametrize(
    ("stored_at", "outcome", "email"), [(0, "refetched", "final@example.com"), (1, "older", "meanwhile@example.com")]
)
def test_a_delivery_overtaken_between_its_read_and_its_write_is_not_lost(  # type: ignore[no-untyped-def]
    seeded, monkeypatch, stored_at: int, outcome: str, email: str
) -> None:
    """Two deliveries of one customer race (16 senders at once in bench/burst): this one reads
    no stored copy, then another delivery commits a copy of the same second (a tie: Stripe is
    asked) or a later one (this event is older) before this one writes. Its write is skipped,
    and it must not be recorded as applied with the store left on the other copy."""
    client = seeded.secret_client()
    customer = client.v1.customers.create(params={"email": "final@example.com"})
    base = as_dict(customer)
    created = 2_000_000_000
    read = threading.Event()
    real_read = mirror.stored_version_and

    def read_then_tell(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = real_read(*args, **kwargs)
        read.set()
        return found

    monkeypatch.setattr(mirror, "stored_version_and", read_then_tell)
    event = _customer_updated("evt_racer", created, {**base, "email": "stale@example.com"})
    answers: list[str] = []
    with session_scope() as s:  # the other delivery's transaction, committed after the racer read
        meanwhile = {**base, "email": "meanwhile@example.com"}
        assert mirror.write_objects(s, "customer", [meanwhile], created + stored_at) == [customer.id]
        s.flush()
        racer = threading.Thread(target=lambda: answers.append(apply_event(event, "webhook").outcome))
        racer.start()
        assert read.wait(10)
        time.sleep(0.2)  # let it reach its write, which waits for this transaction
    racer.join(20)
    assert answers == [outcome]
    with session_scope() as s:
        assert s.get(StripeCustomer, customer.id).email == email  # type: ignore[union-attr]
        logged = s.exec(select(StripeEvent).where(StripeEvent.id == "evt_racer")).all()
        assert [e.outcome for e in logged] == [outcome]


def test_two_refetches_of_one_object_store_the_fresher_copy(seeded, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two same-second deliveries both ask Stripe: the first answer, read before a later change,
    must not be written over the second one's fresher copy."""
    client = seeded.secret_client()
    customer = client.v1.customers.create(params={"email": "first@example.com"})
    base = as_dict(customer)
    created = 2_000_000_000
    with session_scope() as s:
        mirror.write_objects(s, "customer", [base], created)
    first_read, let_go = threading.Event(), threading.Event()
    real_retrieve = StripeGateway.retrieve

    def retrieve(self, kind, object_id):  # type: ignore[no-untyped-def]
        copy = real_retrieve(self, kind, object_id)
        if not first_read.is_set():
            first_read.set()
            let_go.wait(10)  # the first refetch is slow to write what it read
        return copy

    monkeypatch.setattr(StripeGateway, "retrieve", retrieve)

    def deliver(event_id: str) -> threading.Thread:
        thread = threading.Thread(target=apply_event, args=(_customer_updated(event_id, created, base), "webhook"))
        thread.start()
        return thread

    slow = deliver("evt_slow")
    assert first_read.wait(10)
    client.v1.customers.update(customer.id, params={"email": "second@example.com"})
    fast = deliver("evt_fast")
    fast.join(1.0)  # without a lock it refetches and writes the fresher copy now
    let_go.set()
    slow.join(20)
    fast.join(20)
    with session_scope() as s:
        assert s.get(StripeCustomer, customer.id).email == "second@example.com"  # type: ignore[union-attr]
        outcomes = {e.id: e.outcome for e in s.exec(select(StripeEvent))}
    assert outcomes == {"evt_slow": "refetched", "evt_fast": "refetched"}


def test_a_deleted_object_is_marked_deleted_and_stays_so(seeded) -> None:  # type: ignore[no-untyped-def]
    sync.backfill(resources=["customers"])
    client = seeded.secret_client()
    customer = client.v1.customers.list(params={"limit": 1}).data[0]
    since = int(time.time()) - 1
    client.v1.customers.delete(customer.id)
    for event in _events_since(seeded, since):
        apply_event(event, "poll")
    with session_scope() as s:
        assert s.get(StripeCustomer, customer.id).deleted  # type: ignore[union-attr]
    assert_store_equals_sandbox(seeded, ["customers"])


def test_polling_applies_new_events_and_a_long_gap_means_a_full_backfill(seeded, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sync.backfill()
    _burst_of_changes(seeded)
    counts = poll_events()
    assert counts.get("applied", 0) + counts.get("refetched", 0) > 0
    assert_store_equals_sandbox(seeded)
    state = _states()[sync.EVENTS]
    assert state.status == "done" and state.last_event_created and state.cursor
    assert poll_events().get("applied", 0) == 0  # nothing new: the overlap only finds duplicates
    started: list[bool] = []
    monkeypatch.setattr(sync.background_sync, "start", lambda gateway=None: started.append(True) or True)
    month_ago = 31 * 24 * 3600  # the instance was off for a month: all it saw is that old
    with session_scope() as s:
        s.get(SyncState, sync.EVENTS).last_event_created -= month_ago  # type: ignore[union-attr, operator]
        events = table_of(StripeEvent)
        s.connection().execute(events.update().values(created=events.c.created - month_ago))
    assert poll_events() == {"backfill": 1} and started == [True]


def test_billys_own_refund_is_stored_at_once_and_its_event_changes_nothing(seeded) -> None:  # type: ignore[no-untyped-def]
    import secrets

    from services import billing
    from services.identity import login, verify_access
    from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD
    from tests.stripe_helpers import make_charge

    sync.backfill()
    since = int(time.time()) - 1
    charge = make_charge(seeded, 5000)
    for event in _events_since(seeded, since):
        apply_event(event, "webhook")
    owner = verify_access(login(OWNER_EMAIL, OWNER_PASSWORD).access)
    billing.issue_refund(owner, charge["id"], 1500, None, secrets.token_urlsafe(20))
    with session_scope() as s:
        before = s.get(StripeCharge, charge["id"]).model_dump(exclude={"synced_at"})  # type: ignore[union-attr]
    assert before["amount_refunded"] == 1500
    later = [e for e in _events_since(seeded, since) if e["type"].startswith(("charge.refunded", "refund."))]
    assert later, "the sandbox sends refund events"
    outcomes = {apply_event(e, "webhook").outcome for e in later}
    assert outcomes <= {"older", "refetched", "applied"}
    with session_scope() as s:
        after = s.get(StripeCharge, charge["id"]).model_dump(exclude={"synced_at", "version_at"})  # type: ignore[union-attr]
    assert after == {k: v for k, v in before.items() if k != "version_at"}


KILLABLE_SYNC = """
import services.stripe_gateway as gateway
gateway.PAGE_SIZE = 2  # many small pages, so there is a "midway" to be killed in
from services import sync
sync.backfill(resources=["customers"])
"""


def kill_sync_midway(code: str, walkers: int, midway: Callable[[], bool]) -> None:
    """Run `code` (a backfill) in a process of its own with `walkers` walkers, and `kill -9` it
    as soon as `midway()` says the store shows it part done."""
    env = dict(os.environ, BILLY_SYNC_WALKERS=str(walkers))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env)
    deadline = time.monotonic() + 60
    while not midway():
        assert proc.poll() is None, "the sync ended before it could be killed"
        assert time.monotonic() < deadline, "the sync never got going"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_a_backfill_killed_with_sigkill_resumes_and_ends_identical(seeded, sandbox) -> None:  # type: ignore[no-untyped-def]
    """A real `kill -9` of a process in the middle of a backfill: nothing runs after it, the
    store keeps the pages it committed, and the next run continues after the saved cursor."""

    def midway() -> bool:
        state = _states().get("customers")
        return state is not None and bool(state.cursor) and 4 <= state.synced_count < 12

    sandbox.set_latency(0.15)  # slow enough to catch it midway
    try:
        # One walker: one range, one cursor (a kill -9 amid parallel ranges: tests/test_sync_ranges.py).
        kill_sync_midway(KILLABLE_SYNC, 1, midway)
    finally:
        sandbox.set_latency(0)
    killed = _states()["customers"]
    assert killed.status == "running" and killed.cursor  # exactly what a dead process leaves
    with session_scope() as s:
        stored_before = len(s.exec(select(StripeCustomer)).all())
    assert stored_before == killed.synced_count  # committed pages only, with their cursor
    gateway = StripeGateway()
    calls: list[str | None] = []
    original = gateway.list_page
    gateway.list_page = lambda r, a=None, limit=None, params=None, on_throttled=None, path=None: (  # type: ignore[method-assign]
        calls.append(a) or original(r, a, limit, params, on_throttled, path)
    )
    assert sync.backfill(gateway, resources=["customers"]) == {"customers": "done"}
    assert calls[0] == killed.cursor
    assert_store_equals_sandbox(seeded, ["customers"])
    assert _states()["customers"].synced_count == 12
