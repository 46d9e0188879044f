"""The database going away in the middle of an action (issue 16): a plain answer, nothing
half-written, and the same process carries on once it is back, without a restart.

PostgreSQL is reached through a TCP proxy the test owns (devtools/tcp_proxy.py): cutting it drops
every connection and refuses new ones, which is what a restart or a failover looks like from Billy's
side. The PostgreSQL server itself, shared with other tests, is never touched.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col, select
from starlette.testclient import TestClient

from billy_app.api.routes import build_api
from billy_app.api.v1 import rate
from billy_app.error_handlers import explained
from devtools.tcp_proxy import TcpProxy
from services import billing, db, identity, stripe_keys
from services.db import session_scope
from services.errors import StoreUnavailable
from services.models import IdempotencyRecord, RefundSpend, StripeCharge, StripeRefund
from services.permissions import Actor
from services.stripe_gateway import StripeGateway
from tests.conftest import PG_HOST, PG_USER, Templates, _clear_caches, _pg_admin, _signup_owner
from tests.stripe_helpers import make_charge, sync_lists

PLAIN = "Billy's database is not answering right now, so this was not finished."


@pytest.fixture
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, templates: Templates) -> Iterator[TcpProxy]:
    """A fresh migrated PostgreSQL database, reached only through a proxy the test can cut."""
    if not templates.postgres_ok:
        pytest.skip("PostgreSQL is not running")
    dbname = templates.postgres_copy()
    proxy = TcpProxy(PG_HOST, 5432).start()
    monkeypatch.setenv("BILLY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BILLY_DATABASE_URL", f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{proxy.port}/{dbname}")
    monkeypatch.setenv("BILLY_FIRST_RUN_SIGNUP", "true")
    _clear_caches()
    try:
        yield proxy
    finally:
        proxy.restore_if_cut()
        db.get_engine().dispose()
        _clear_caches()
        proxy.close()
        templates.postgres_release(dbname)


@pytest.fixture
def charge(proxy: TcpProxy, stripe_peer: Any) -> tuple[Actor, str]:
    owner = _signup_owner()
    stripe_keys.connect_stripe_key(owner, stripe_peer.demo_key)
    made = make_charge(stripe_peer, 4599, description="Order #5678")
    sync_lists()
    return owner, made["id"]


def _refunds_in_stripe(stripe_peer: Any, charge_id: str) -> list[tuple[str, int]]:
    found = stripe_peer.secret_client().v1.refunds.list(params={"charge": charge_id}).data
    return [(r.id, r.amount) for r in found]


def _written_for(charge_id: str) -> dict[str, list[Any]]:
    """What the store holds about refunds of `charge_id`: budget ledger, intents, mirrored refunds."""
    with session_scope() as s:
        return {
            "ledger": list(s.exec(select(RefundSpend).where(RefundSpend.charge_id == charge_id))),
            "intents": list(s.exec(select(IdempotencyRecord).where(col(IdempotencyRecord.result_id) == charge_id))),
            "refunds": list(s.exec(select(StripeRefund).where(StripeRefund.charge_id == charge_id))),
        }


def test_the_database_going_away_before_stripe_is_asked_refuses_plainly_and_writes_nothing(
    charge: tuple[Actor, str], proxy: TcpProxy, stripe_peer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the REST API: the database goes away while Billy reads the charge from Stripe, before
    the refund is counted or asked for. The answer says so in words (503, never "internal error");
    Stripe never hears of the refund; the store holds no half of it; once the database is back, the
    same process makes the refund, once."""
    owner, charge_id = charge
    access = identity.start_session(owner.user_id or 0, "127.0.0.1", "pytest").access
    real = StripeGateway.retrieve_charge
    cut_once = [True]

    def stripe_answers_as_the_database_goes(self: StripeGateway, charge_id: str) -> dict[str, Any]:
        answer = real(self, charge_id)
        if cut_once.pop() if cut_once else False:
            proxy.cut()
        return answer

    monkeypatch.setattr(StripeGateway, "retrieve_charge", stripe_answers_as_the_database_goes)
    rate.use_limit(rate.CallerLimit())
    try:
        with TestClient(build_api(), base_url="http://localhost:3000") as api:
            body = {"charge_id": charge_id, "amount": 1000}
            answer = api.post("/api/v1/refunds", headers={"Authorization": f"Bearer {access}"}, json=body)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "store_unavailable"
            assert answer.json()["error"]["message"].startswith(PLAIN)
            assert answer.headers["Retry-After"]
            assert _refunds_in_stripe(stripe_peer, charge_id) == []

            proxy.restore()
            assert _written_for(charge_id) == {"ledger": [], "intents": [], "refunds": []}
            again = api.post("/api/v1/refunds", headers={"Authorization": f"Bearer {access}"}, json=body)
            assert again.status_code == 201, again.text
    finally:
        rate.use_limit(None)
    [(refund_id, amount)] = _refunds_in_stripe(stripe_peer, charge_id)
    assert (again.json()["refund_id"], amount) == (refund_id, 1000)
    written = _written_for(charge_id)
    assert [row.amount for row in written["ledger"]] == [1000]
    assert [row.id for row in written["refunds"]] == [refund_id]


def test_the_database_going_away_after_stripe_refunded_is_said_plainly_and_a_retry_makes_no_second_refund(
    charge: tuple[Actor, str], proxy: TcpProxy, stripe_peer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the dashboard's refund dialog does it (one request key per dialog): the database goes
    away just after Stripe made the refund. The person is told plainly; trying again from the same
    dialog once the database is back returns the refund Stripe made, never a second one, and the
    store then shows it."""
    owner, charge_id = charge
    key = secrets.token_urlsafe(24)
    real = StripeGateway.create_refund

    def stripe_refunds_then_the_database_goes(self: StripeGateway, *args: Any, **kwargs: Any) -> dict[str, Any]:
        made = real(self, *args, **kwargs)
        proxy.cut()
        return made

    monkeypatch.setattr(StripeGateway, "create_refund", stripe_refunds_then_the_database_goes)
    with pytest.raises(Exception) as failed:
        billing.issue_refund(owner, charge_id, 1000, None, key)
    shown = explained(failed.value, "the refund dialog")  # what the dashboard shows for it
    assert isinstance(shown, StoreUnavailable) and shown.message.startswith(PLAIN)
    [(refund_id, _amount)] = _refunds_in_stripe(stripe_peer, charge_id)

    proxy.restore()
    monkeypatch.setattr(StripeGateway, "create_refund", real)
    retried = billing.issue_refund(owner, charge_id, 1000, None, key)  # the same dialog, confirmed again
    assert retried.refund_id == refund_id
    assert _refunds_in_stripe(stripe_peer, charge_id) == [(refund_id, 1000)]
    with session_scope() as s:
        stored = s.get(StripeCharge, charge_id)
    assert stored is not None and stored.amount_refunded == 1000
    assert [row.amount for row in _written_for(charge_id)["ledger"]] == [1000]  # counted once against the budget


def _backend_pid() -> int:
    with db.get_engine().connect() as connection:
        return int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _end_backend(pid: int) -> None:
    """Close one server connection from PostgreSQL's side, as a restart or an idle cut would."""
    admin = _pg_admin()
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        admin.close()


def test_a_pooled_connection_that_died_while_idle_is_replaced_before_an_action_meets_it(
    proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool pings a connection that sat idle (`db.IDLE_PING_SECONDS`) before handing it out:
    the action after a restart works, on a new connection, and never sees the dead one."""
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.05)
    dead = _backend_pid()
    _end_backend(dead)
    time.sleep(0.1)  # idle past the threshold
    assert _backend_pid() != dead  # answered, on a fresh connection


def test_a_connection_that_dies_between_two_quick_actions_costs_one_plain_refusal_then_the_pool_is_fresh(
    proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection given back a moment ago is trusted, not pinged (a round trip per checkout under
    load). If it died in that moment the action meeting it is refused in plain words, and every
    connection from before is retired with it, so the next action works."""
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 60)
    dead = _backend_pid()
    _end_backend(dead)
    with pytest.raises(sa.exc.OperationalError) as met:
        _backend_pid()
    shown = explained(met.value, "a page")
    assert isinstance(shown, StoreUnavailable) and shown.message.startswith(PLAIN)
    assert _backend_pid() != dead


def test_a_restart_found_by_a_ping_retires_the_connections_used_just_before_it_too(
    proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database restart kills every pooled connection at once, but only those idle long enough
    are pinged. When a ping finds one dead, the pool retires all the connections opened before it,
    so an action right after the database is back never meets one that was used a moment before
    the restart. Without that, the first refund after an outage was refused a second time (CI,
    `test_the_database_going_away_before_stripe_is_asked_refuses_plainly_and_writes_nothing`)."""
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 1.0)
    engine = db.get_engine()
    with engine.connect() as idle, engine.connect() as recent:  # two pooled connections
        idle.execute(sa.text("SELECT 1"))
        recent.execute(sa.text("SELECT 1"))
        idle.close()  # given back first: idle past the threshold by the time of the restart
        time.sleep(1.1)
        recent.close()  # given back just now: trusted without a ping for the next second
    proxy.cut()  # the restart: both connections are dead
    with pytest.raises(sa.exc.OperationalError):
        _backend_pid()  # the idle one is pinged and found dead; a new one is refused
    proxy.restore()
    assert _backend_pid() > 0  # the next action, straight away, gets a live connection
