"""A flood of refusals does not drown the audit log, and no attempt goes uncounted (issue 10, F5).

Per member and UTC minute, the first 20 denied attempts get a row each; the rest are counted,
and once the minute has ended one `audit.denied_summary` row carries the count. Time is moved
with `services.clock`, never slept. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from services import audit, clock, db, team
from services.errors import PermissionDenied
from services.models import AuditDeniedWindow, AuditEntry
from services.permissions import Actor
from tests.conftest import member_actor

TABLE = AuditEntry.__table__
MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    yield
    clock.reset()


@pytest.fixture
def minute_start(any_store_owner: Actor) -> Iterator[datetime]:
    """The clock frozen 5 s into a minute after the signup, so a flood stays in one minute."""
    start = clock.now().replace(second=0, microsecond=0) + MINUTE
    with clock.freeze(start + timedelta(seconds=5)):
        yield start


def _rows(**where: object) -> list[sa.RowMapping]:
    stmt = sa.select(TABLE).where(*(TABLE.c[k] == v for k, v in where.items())).order_by(TABLE.c.id)
    with db.get_engine().connect() as conn:
        return list(conn.execute(stmt).mappings())


def _deny(actor: Actor, action: str = "charges.refund") -> None:
    audit.record(actor, action, "denied", audit.AuditDraft(targets=["ch_1"]), "refused for the test")


def _summaries(actor: Actor) -> list[sa.RowMapping]:
    return _rows(action=audit.SUMMARY_ACTION, actor_id=actor.user_id)


def test_a_flood_of_refusals_is_20_rows_and_one_summary(any_store_owner: Actor, minute_start: datetime) -> None:
    owner = any_store_owner
    reader = member_actor("read_only", "reader@example.com")
    clerk = member_actor("billing_clerk", "clerk@example.com")
    for i in range(300):
        with pytest.raises(PermissionDenied):
            team.list_team(reader)  # a real refusal, through `authorize_read`
        if i % 30 == 0:  # other people's work is logged as ever during the flood
            audit.record(owner, "charges.refund", "ok", audit.AuditDraft(targets=[f"ch_{i}"]))
            _deny(clerk)
    reader_denied = _rows(actor_id=reader.user_id, outcome="denied")
    assert [r["action"] for r in reader_denied] == ["team.view"] * 20
    assert len(_rows(actor_id=owner.user_id, outcome="ok", action="charges.refund")) == 10
    assert len(_rows(actor_id=clerk.user_id, outcome="denied")) == 10  # not throttled by the reader's flood
    assert _summaries(reader) == []  # the minute has not ended
    assert audit.flush_denied_summaries() == 0

    clock.advance(MINUTE)
    audit.record(owner, "auth.login", "ok")  # the next append, by anyone, writes the summary first
    (summary,) = _summaries(reader)
    newest = _rows()[-2:]
    assert [r["action"] for r in newest] == [audit.SUMMARY_ACTION, "auth.login"]
    assert (summary["outcome"], summary["actor_email"], summary["actor_role"]) == (
        "denied",
        "reader@example.com",
        "read_only",
    )
    assert summary["details"]["count"] == 280 and summary["details"]["attempts"] == 300
    assert summary["details"]["by_action"] == {"team.view": 280}
    assert summary["details"]["window_start"] == minute_start.isoformat()
    assert summary["error"].startswith("280 more denied attempts") and "team.view ×280" in summary["error"]
    assert audit.flush_denied_summaries() == 0  # exactly one summary, ever
    assert len(_summaries(reader)) == 1
    result = audit.verify()
    assert result.ok, result.problem


def test_a_new_minute_counts_afresh(any_store_owner: Actor, minute_start: datetime) -> None:
    reader = member_actor("read_only", "reader@example.com")
    for _ in range(25):
        _deny(reader)
    clock.advance(MINUTE)
    for _ in range(24):
        _deny(reader, "customers.update")
    # The first append of the second minute summarised the first: 5 counted.
    (first,) = _summaries(reader)
    assert first["details"]["count"] == 5 and first["details"]["window_start"] == minute_start.isoformat()
    per_attempt = [r for r in _rows(actor_id=reader.user_id) if r["action"] != audit.SUMMARY_ACTION]
    assert len(per_attempt) == 40  # 20 in each minute
    clock.advance(MINUTE)
    assert audit.flush_denied_summaries() == 1  # nothing else is logged: the periodic call does it
    second = _summaries(reader)[1]
    assert second["details"]["count"] == 4 and second["details"]["by_action"] == {"customers.update": 4}
    assert second["details"]["window_start"] == (minute_start + MINUTE).isoformat()
    assert audit.verify().ok


def test_a_minute_without_a_flood_leaves_no_summary_and_no_counter(
    any_store_owner: Actor, minute_start: datetime
) -> None:
    reader = member_actor("read_only", "reader@example.com")
    for _ in range(20):
        _deny(reader)
    clock.advance(MINUTE)
    assert audit.flush_denied_summaries() == 0
    assert _summaries(reader) == [] and len(_rows(actor_id=reader.user_id)) == 20
    with db.get_engine().connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(AuditDeniedWindow.__table__)).scalar() == 0


def test_ok_and_failed_are_never_throttled(any_store_owner: Actor, minute_start: datetime) -> None:
    clerk = member_actor("billing_clerk", "clerk@example.com")
    for outcome in ("ok", "failed"):
        for i in range(30):
            audit.record(clerk, "charges.refund", outcome, audit.AuditDraft(targets=[f"ch_{i}"]))
    assert len(_rows(actor_id=clerk.user_id, outcome="ok")) == 30
    assert len(_rows(actor_id=clerk.user_id, outcome="failed")) == 30


def test_a_summarised_minute_never_swallows_a_late_attempt(any_store_owner: Actor, minute_start: datetime) -> None:
    """A worker whose clock runs behind may still count into a minute already summarised: its
    attempt gets a row of its own rather than vanish."""
    reader = member_actor("read_only", "reader@example.com")
    for _ in range(22):
        _deny(reader)
    clock.advance(MINUTE)
    assert audit.flush_denied_summaries() == 1
    with clock.travel(-MINUTE):
        _deny(reader)
    assert len(_rows(actor_id=reader.user_id, outcome="denied")) == 20 + 1 + 1
    assert audit.flush_denied_summaries() == 0
    assert audit.verify().ok


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("process_lock", [True, False], ids=["process-lock", "database-lock-only"])
def test_concurrent_refusals_are_all_counted(
    any_store_owner: Actor, minute_start: datetime, monkeypatch: pytest.MonkeyPatch, process_lock: bool
) -> None:
    if not process_lock:  # the database's own lock alone must serialise, as across processes
        monkeypatch.setattr(audit, "_append_lock", _NoLock())
    reader = member_actor("read_only", "reader@example.com")
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def flood() -> None:
        try:
            start.wait()
            for _ in range(15):
                _deny(reader)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=flood) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    clock.advance(MINUTE)
    assert audit.flush_denied_summaries() == 1
    assert len(_rows(actor_id=reader.user_id, action="charges.refund")) == 20
    assert _summaries(reader)[0]["details"]["count"] == 90 - 20
    assert audit.verify().ok


def test_a_refusal_carrying_unstorable_text_is_still_recorded(any_store_owner: Actor) -> None:
    """A lone surrogate or a NUL from a forged event once failed the audit write (both databases
    refuse them), losing the row: they are stored as "?"."""
    clerk = member_actor("billing_clerk", "clerk@example.com")
    forged = Actor(clerk.user_id, clerk.email, clerk.role, clerk.source, "10.0.0.1", "agent\ud800\x00")
    draft = audit.AuditDraft(targets=["ch_\ud800", "cus_\x00"], details={"q\udfff": ["\x00"]})
    audit.record(forged, "charges.view", "denied", draft, "refused \ud800")
    (row,) = _rows(actor_id=clerk.user_id)
    assert (row["target_ids"], row["user_agent"], row["error"]) == (["ch_?", "cus_?"], "agent??", "refused ?")
    assert row["details"] == {"q?": ["?"]}
    assert audit.verify().ok
