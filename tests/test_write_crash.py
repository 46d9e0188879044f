"""A Billy process killed (`kill -9`) between Stripe's answer and the store write (issue 16).

The write runs in a real child process (`tests/crash_helper.py`) that stops right after the
gateway has Stripe's answer, before the store or the audit log hear of it, and is killed there.
Stripe has made the change; the store has not; no audit row exists. The restart's reconciliation
(`services.write_recovery.reconcile_writes`, which the app runs at start) settles it from the
stored idempotency key and Stripe's events: the store then equals Stripe, the audit log records
the action and its outcome exactly once, and the same request sent again changes nothing more.
On SQLite and PostgreSQL (where the dead process's advisory locks go with its connection)."""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from sqlmodel import select

from services import audit, write_recovery
from services.config import PROJECT_ROOT
from services.db import session_scope
from services.models import AuditEntry, IdempotencyRecord
from tests.write_kinds import KINDS, Arranged, arrange

ANSWER_WAIT = 60.0  # seconds for the child to import Billy and reach Stripe (a busy machine)
LOCKS_FREED_WAIT = 10.0  # for PostgreSQL to notice the dead connection and drop its locks


@pytest.fixture
def write(request: pytest.FixtureRequest, any_store: Any, any_store_owner: Any, stripe_peer: Any) -> Arranged:
    return arrange(request.param, any_store_owner, stripe_peer)


def _rows(action: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
    try:
        return lines.get(timeout=timeout).strip()
    except queue.Empty:
        return ""


def _killed_after_stripe_answered(write: Arranged, owner: Any, key: str, tmp_path: Any) -> None:
    spec = {
        "kind": write.kind,
        "key": key,
        "target": write.target,
        "args": write.args,
        "member": [owner.user_id, owner.email, owner.role],
        "pause_after": write.call,
    }
    errors = tmp_path / "child-stderr.txt"
    with errors.open("w") as stderr:
        child = subprocess.Popen(  # our own interpreter and helper module
            [sys.executable, "-m", "tests.crash_helper", json.dumps(spec)],
            cwd=PROJECT_ROOT,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            said = _first_line(child, ANSWER_WAIT)
            assert said == "ANSWERED", f"the child said {said!r}; its stderr: {errors.read_text()[-3000:]}"
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(10) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)
            if child.stdout:
                child.stdout.close()


def _restart() -> list[write_recovery.Settled]:
    """What the app does at start; a dead PostgreSQL connection's locks may take a moment to go."""
    deadline = time.monotonic() + LOCKS_FREED_WAIT
    while True:
        settled = write_recovery.reconcile_writes()
        if settled or time.monotonic() > deadline:
            return settled
        time.sleep(0.05)


@pytest.mark.parametrize("write", list(KINDS), indirect=True)
def test_a_write_killed_after_stripe_answered_is_settled_once_on_restart(  # type: ignore[no-untyped-def]
    write: Arranged, any_store_owner, tmp_path
) -> None:
    key = secrets.token_urlsafe(24)
    _killed_after_stripe_answered(write, any_store_owner, key, tmp_path)

    assert write.made(key) == 1  # Stripe made it ...
    assert not write.store_matches() and _rows(write.action) == []  # ... and nobody here knows
    with session_scope() as s:
        claimed = s.get(IdempotencyRecord, key)
        assert claimed is not None and claimed.result_id == write.target  # the intent, stored before Stripe

    [settled] = _restart()
    assert (settled.key, settled.action, settled.outcome) == (key, write.action, "made")
    assert write.store_matches()
    [row] = _rows(write.action)
    assert (row.outcome, row.actor_id, row.actor_email, row.details["intent"], row.details["reconciled"]) == (
        "ok",
        any_store_owner.user_id,
        any_store_owner.email,
        key,
        "made",
    )
    assert write.target in row.target_ids and row.details["stripe_events"]
    if write.kind == "refund":
        assert (row.amount, row.currency, len(row.target_ids)) == (1000, "usd", 2)  # the charge and its refund

    assert write_recovery.reconcile_writes() == []  # a second restart finds nothing more
    assert write.told_done(write.run(any_store_owner, key))  # the person sends it again: told it is done ...
    assert write.made(key) == 1 and write.store_matches()  # ... and nothing is made twice
    assert [r.outcome for r in _rows(write.action)] == ["ok", "ok"]
    assert audit.verify().ok
