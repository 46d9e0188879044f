"""Stripe failing under every kind of write (issue 16): it answers 429, 500 or 503, it does not
answer in time, it cuts the connection, or it makes the change and then cuts the connection.

Each fault, once, on a refund, a customer update, a subscription change and an invoice send, on
SQLite and PostgreSQL: the gateway asks again with the same idempotency key (the sandbox records
the key each faulted request carried), Stripe makes the change once, the person gets the change's
ordinary answer, the store equals Stripe, and the one audit row names what the attempts met.
Faults that outlast every retry: the person is told Billy cannot tell yet, and the reconciliation
finds out from Stripe's events (made: recorded; never made: released, and the same request goes
through once when sent again)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from services import clock, stripe_gateway, write_recovery
from services.config import get_settings
from services.db import session_scope
from services.errors import StripeRateLimited, StripeRequestFailed
from services.models import AuditEntry, IdempotencyRecord
from tests.write_kinds import KINDS, Arranged, arrange

# BILLY_STRIPE_TIMEOUT_SECONDS for the "timeout" fault only, where the sandbox holds the request 3 s.
# Every other fault keeps the ordinary timeout: a 1 s limit on all of them made a slow but healthy
# retry on a busy CI machine (a subscription change on PostgreSQL) time out as a second fault.
TIMEOUT = 2.0
# What the audit row says an attempt met, per fault.
MET = {
    "429": "Stripe answered 429 (too many requests)",
    "500": "Stripe answered 500",
    "503": "Stripe answered 503",
    "timeout": f"no answer within {TIMEOUT:g} s",
    "reset": "the connection was cut before Stripe's answer arrived",
    "after_write_reset": "the connection was cut before Stripe's answer arrived",
}


def key() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The back-off before each retry, recorded instead of slept (the sandbox needs no rest)."""
    recorded: list[float] = []
    monkeypatch.setattr(stripe_gateway, "pause", recorded.append)
    return recorded


@pytest.fixture
def write(request: pytest.FixtureRequest, any_store: Any, any_store_owner: Any, stripe_peer: Any) -> Arranged:
    return arrange(request.param, any_store_owner, stripe_peer)


def answer_within(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setenv("BILLY_STRIPE_TIMEOUT_SECONDS", str(seconds))
    get_settings.cache_clear()


def _rows(action: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


@pytest.mark.parametrize("fault", list(MET))
@pytest.mark.parametrize("write", list(KINDS), indirect=True)
def test_a_fault_is_retried_with_the_same_key_made_once_and_told_as_done(  # type: ignore[no-untyped-def]
    write: Arranged, fault: str, any_store_owner, sandbox, waits: list[float], monkeypatch
) -> None:
    k = key()
    if fault == "timeout":
        answer_within(monkeypatch, TIMEOUT)
    sandbox.set_faults([{"path": write.path, "kind": fault, "seconds": 3}])
    told = write.run(any_store_owner, k)

    assert write.told_done(told)  # the person reads that it is done, as without the fault
    fired = sandbox.faults()
    assert fired["faults"] == [] and [(f["kind"], f["idempotency_key"]) for f in fired["fired"]] == [
        (fault, write.event_key(k))
    ]
    assert write.made(k) == 1 and write.store_matches()
    assert len(waits) == 1 and waits[0] >= (0.25 if fault == "429" else 0.5)  # a back-off, then the retry
    [row] = _rows(write.action)
    assert (row.outcome, row.details["intent"], row.details["stripe_retries"]) == (
        "ok",
        k,
        [f"{write.call}: {MET[fault]}"],
    )
    assert ("recovered" in row.details) == (fault == "after_write_reset")  # Stripe's saved answer, replayed

    write.run(any_store_owner, k)  # the person sends it again: answered from Stripe's record
    assert write.made(k) == 1 and write.store_matches()


@pytest.mark.parametrize("write", ["refund", "customer"], indirect=True)
def test_an_answer_lost_every_time_is_told_as_unknown_and_the_reconciliation_finds_it_made(  # type: ignore[no-untyped-def]
    write: Arranged, any_store_owner, sandbox, waits: list[float]
) -> None:
    k = key()
    sandbox.set_faults([{"path": write.path, "kind": "after_write_reset", "count": 4}])
    with pytest.raises(StripeRequestFailed) as told:
        write.run(any_store_owner, k)
    assert told.value.outcome_unknown and "cannot tell yet whether it was made" in told.value.message
    assert told.value.message.startswith(
        "Stripe did not confirm this change: the connection was cut before Stripe's answer arrived (4 attempts, "
        "each with the same request key)."
    )
    assert "cannot be made twice" in told.value.message
    [failed] = _rows(write.action)
    assert (failed.outcome, failed.details["stripe_outcome"], len(failed.details["stripe_retries"])) == (
        "failed",
        "unknown",
        4,
    )
    assert write.made(k) == 1 and not write.store_matches()

    [settled] = write_recovery.reconcile_writes()
    assert (settled.key, settled.outcome) == (k, "made")
    assert write.store_matches()
    rows = _rows(write.action)
    assert [(r.outcome, r.details.get("reconciled")) for r in rows] == [("failed", None), ("ok", "made")]
    assert rows[1].actor_id == any_store_owner.user_id and rows[1].details["intent"] == k
    assert write_recovery.reconcile_writes() == []  # settled once

    write.run(any_store_owner, k)  # sending it again shows the outcome, and makes nothing more
    assert write.made(k) == 1 and write.store_matches()


@pytest.mark.parametrize("write", ["refund", "subscription"], indirect=True)
def test_a_request_that_never_arrived_is_released_and_goes_through_once_when_sent_again(  # type: ignore[no-untyped-def]
    write: Arranged, any_store_owner, sandbox, waits: list[float]
) -> None:
    k = key()
    sandbox.set_faults([{"path": write.path, "kind": "reset", "count": 4}])
    with pytest.raises(StripeRequestFailed) as told:
        write.run(any_store_owner, k)
    assert told.value.outcome_unknown and write.made(k) == 0
    assert write_recovery.reconcile_writes() == []  # too soon to say "never": it may still be executing

    with clock.travel(write_recovery.NOT_MADE_AFTER + timedelta(seconds=1)):
        [settled] = write_recovery.reconcile_writes()
    assert (settled.key, settled.outcome) == (k, "not_made")
    rows = _rows(write.action)
    assert [r.outcome for r in rows] == ["failed", "failed"]
    assert rows[1].error is not None and rows[1].error.startswith("Stripe never made")
    with session_scope() as s:
        assert s.get(IdempotencyRecord, k) is None  # released

    assert write.told_done(write.run(any_store_owner, k))
    assert write.made(k) == 1 and write.store_matches()
    assert write_recovery.reconcile_writes() == []


@pytest.mark.parametrize("write", ["customer"], indirect=True)
def test_too_many_requests_to_the_end_changes_nothing_and_says_so(  # type: ignore[no-untyped-def]
    write: Arranged, any_store_owner, sandbox, waits: list[float]
) -> None:
    sandbox.set_faults([{"path": write.path, "kind": "429", "count": 4}])
    k = key()
    with pytest.raises(StripeRateLimited, match="nothing was changed"):
        write.run(any_store_owner, k)
    assert write.made(k) == 0 and len(waits) == 3 and waits == sorted(waits)  # backing off further each time
    [row] = _rows(write.action)
    assert row.outcome == "failed" and "stripe_outcome" not in row.details
    assert write_recovery.reconcile_writes() == []  # the outcome is known: nothing to settle
