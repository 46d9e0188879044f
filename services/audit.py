"""The audit log: one row per action attempt, written in its own transaction (DESIGN, Audit log).

Append-only twice over. The database refuses UPDATE and DELETE on `audit_log` (triggers,
migration 0003), and every row is chained to the one before it,
`hash = sha256(prev_hash || canonical(row))`, so a change made around the triggers still
shows in `verify()`. Appends are serialised, one writer at a time across threads and
processes (SQLite's write lock taken up front; a PostgreSQL advisory lock), and the newest
row's id and hash are also kept in the secret store, outside the table, so rows cut off the
end are found too.

One exception to "one row per attempt" (DESIGN, Audit log; issue 10, F5): a member's denied
attempts past the first DENIED_LIMIT in a fixed UTC minute are counted in the mutable
`audit_denied_window` table instead of getting a row each, and once that minute has ended one
`audit.denied_summary` row carries the count. Every denied row goes through `record`, so the
throttle lives in `_append`, under the same lock as the chain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from services import clock
from services.db import after_transaction, get_engine
from services.errors import BillyError, PermissionDenied
from services.models import AuditDeniedWindow, AuditEntry, AuditTarget, table_of, utcnow
from services.permissions import Actor, Source, authorize
from services.secrets import get_secret_store

log = logging.getLogger(__name__)

# Why an action that succeeded inside a larger one is recorded as failed: the larger one failed.
ROLLED_BACK = "rolled back: the action it was part of did not complete"
GENESIS = "0" * 64  # the prev_hash of the first row
HEAD_SECRET = "audit-chain-head"  # "<id>:<hash>" of the newest row, kept outside the table
# The fields a row's hash covers, in the order a person reads them (the JSON sorts its keys).
CONTENT_FIELDS = (
    "id",
    "at",
    "actor_id",
    "actor_email",
    "actor_role",
    "source",
    "client_address",
    "user_agent",
    "action",
    "target_ids",
    "amount",
    "currency",
    "outcome",
    "error",
    "details",
)
_PG_LOCK_KEY = int.from_bytes(b"billyaud", "big")  # the advisory lock every append takes

_table = table_of(AuditEntry)
_targets = table_of(AuditTarget)
_newest_stmt = sa.select(_table.c.id, _table.c.hash).order_by(_table.c.id.desc()).limit(1)
_walk_columns = [_table.c[name] for name in (*CONTENT_FIELDS, "prev_hash", "hash")]
# One writer per process at a time; the database lock makes it one writer across processes.
_append_lock = threading.Lock()
# Per database: the head this process last wrote to the secret store, so an append whose
# table tail is that very row needs no secret-store read to know nothing was cut off.
_heads_written: dict[str, tuple[int, str]] = {}


# --- the chain ------------------------------------------------------------------------------


def canonical(row: Mapping[str, Any] | sa.RowMapping) -> bytes:
    """The row's content as stable JSON: sorted keys, no whitespace, time as ISO UTC."""
    content = {name: row[name] for name in CONTENT_FIELDS}
    at: datetime = content["at"]
    if at.tzinfo is None:
        raise ValueError("an audit row's time must be timezone-aware")
    content["at"] = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def chain_hash(prev_hash: str, row: Mapping[str, Any] | sa.RowMapping) -> str:
    """sha256(prev_hash || canonical(row)), hex: the value of the row's `hash` column."""
    return hashlib.sha256(prev_hash.encode("utf-8", "surrogateescape") + canonical(row)).hexdigest()


def _plain(value: Any) -> Any:
    """The value as the JSON column gives it back (tuples become lists, keys strings), so the
    hash computed now is the hash `verify` recomputes from the stored row."""
    return json.loads(json.dumps(value))


def _lock(conn: sa.Connection) -> None:
    """Start the connection's transaction holding the append lock (released at its end)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        # Take SQLite's write lock first, so the newest row read next cannot change under us.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    else:
        raise RuntimeError(f"the audit log does not know how to serialise appends on {dialect}")


def _newest(conn: sa.Connection) -> tuple[int, str] | None:
    row = conn.execute(_newest_stmt).first()
    return (row.id, row.hash) if row else None


def _read_head() -> tuple[int, str] | None:
    """The head kept outside the table; ValueError if it is not "<id>:<hash>"."""
    value = get_secret_store().get(HEAD_SECRET)
    if value is None:
        return None
    id_text, sep, hash_text = value.partition(":")
    if not sep or not id_text.isdigit() or len(hash_text) != 64:
        raise ValueError("the audit chain head kept in the secret store is not '<id>:<hash>'")
    return int(id_text), hash_text


def _db_key(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


# --- appending --------------------------------------------------------------------------------


@dataclass
class AuditDraft:
    """What the action fills in as it learns it (the amount of a full refund, the new id).

    `before_record` hooks see the outcome (and the exception, if any) just before the row is
    written, to add what only the end knows; `after_record` hooks run once it is written (or its
    writing failed): a Stripe write's intent lock is held until then, so a restart's reconciliation
    never takes an intent whose row is still coming (`services.stripe_writes`)."""

    targets: list[str] = field(default_factory=list)
    amount: int | None = None
    currency: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    before_record: list[Callable[[str, BaseException | None], None]] = field(default_factory=list, repr=False)
    after_record: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def settled(self) -> None:
        """Run the `after_record` hooks once, newest first; one failing does not stop the rest."""
        hooks, self.after_record = self.after_record, []
        for hook in reversed(hooks):
            try:
                hook()
            except Exception:
                log.exception("An audit hook failed after the row was recorded")


# Called with (action, outcome) after each row is recorded: the spend alerts (registered by the
# app at start, `services.spend_alerts.after_record`) look at refunds and refusals at once.
_after_record: list[Callable[[str, str], None]] = []


def on_record(hook: Callable[[str, str], None]) -> Callable[[], None]:
    """Call `hook(action, outcome)` after every recorded row; returns the way to stop."""
    _after_record.append(hook)
    return lambda: _after_record.remove(hook) if hook in _after_record else None


def record(actor: Actor, action: str, outcome: str, draft: AuditDraft | None = None, error: str | None = None) -> None:
    """Record one action attempt: the one way a row about a person's attempt gets into the log.
    A member's denied attempts past DENIED_LIMIT in a minute are counted instead (see `_append`)."""
    draft = draft or AuditDraft()
    content = {
        "actor_id": actor.user_id,
        "actor_email": actor.email,
        "actor_role": actor.role,
        "source": str(actor.source),
        "client_address": actor.client_address[:64],
        "user_agent": actor.user_agent[:400],
        "action": action,
        "target_ids": _plain([t for t in draft.targets if t]),
        "amount": draft.amount,
        "currency": draft.currency,
        "outcome": outcome,
        "error": error[:1000] if error else None,
        "details": _plain(_with_token(actor, draft.details)),
    }
    _append(_storable(content), throttled=outcome == "denied" and actor.user_id is not None)
    for hook in list(_after_record):
        hook(action, outcome)


def _with_token(actor: Actor, details: dict[str, Any]) -> dict[str, Any]:
    """A programmatic door's row also names the agent token and its client (DESIGN, Audit log)."""
    if not actor.token_id:
        return details
    return {**details, "agent_token": actor.token_id, "client": actor.token_client}


def _storable(value: Any) -> Any:
    """Text as both databases store it: a lone surrogate or a NUL (which a forged event can put
    in a target id or a user agent) becomes "?", instead of failing the write and losing the row."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "?")
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def _append(content: dict[str, Any] | None, engine: sa.Engine | None = None, *, throttled: bool = False) -> int:
    """Write one chained row in its own transaction, then move the head kept outside the table.

    First, in the same transaction, the summary rows of ended minutes whose denied attempts were
    counted (so summaries appear by the next append, whoever makes it). A `throttled` row (a
    member's denied attempt) past the minute's limit is counted instead of written. With
    `content=None` only the summaries are written. Returns how many rows were written."""
    engine = engine or get_engine()
    key = _db_key(engine)
    with _append_lock, engine.connect() as conn:
        _lock(conn)
        now = clock.now()
        contents = _due_summaries(conn, now)
        if content is not None and (not throttled or _admit_denied(conn, content, now)):
            contents.append(content)
        if not contents:
            conn.commit()  # a counted attempt, or nothing due
            return 0
        tail = _newest(conn)
        head_holds = _head_matches(conn, key, tail)
        at, newest = utcnow(), tail
        for item in contents:
            row = {**item, "id": newest[0] + 1 if newest else 1, "at": at}
            row["prev_hash"] = newest[1] if newest else GENESIS
            row["hash"] = chain_hash(row["prev_hash"], row)
            conn.execute(sa.insert(_table), row)
            _index_targets(conn, row)
            newest = (row["id"], row["hash"])
        conn.commit()
        if head_holds and newest is not None:
            _advance_head(conn, key, *newest)
        return len(contents)


def _index_targets(conn: sa.Connection, row: Mapping[str, Any]) -> None:
    """One `audit_target` row per object the audit row names, in the same transaction."""
    targets = sorted({str(t)[:255] for t in row["target_ids"] if t})
    if targets:
        conn.execute(sa.insert(_targets), [{"target_id": t, "audit_id": row["id"]} for t in targets])


# --- the denied-attempt throttle ------------------------------------------------------------
#
# A flood of refusals (a Read Only member's script: 300 denied rows in 2.4 s) must not drown the
# log, and no attempt may go uncounted. Per member and fixed UTC minute, the first DENIED_LIMIT
# denied attempts get a row each; the rest only bump a counter row per (member, minute, action)
# in `audit_denied_window`. The first append (by anyone) after the minute ends, or
# `flush_denied_summaries`, appends one `audit.denied_summary` row (outcome `denied`) with the
# count and marks the minute flushed. Counting and flushing both run under the append lock, so
# a summary can never miss an attempt counted after it: a minute already flushed (a worker
# whose clock runs behind) gives the attempt a row of its own instead.

DENIED_LIMIT = 20  # denied attempts per member per minute that get a row each
DENIED_WINDOW = timedelta(minutes=1)
SUMMARY_ACTION = "audit.denied_summary"
_KEEP_FLUSHED = timedelta(days=1)  # flushed counters are kept this long, then deleted
_windows = table_of(AuditDeniedWindow)


def _window_of(at: datetime) -> datetime:
    """The fixed UTC minute `at` falls in, by its start."""
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def _admit_denied(conn: sa.Connection, content: Mapping[str, Any], now: datetime) -> bool:
    """Count a member's denied attempt in its minute; True if it still gets a row of its own.
    Runs under the append lock, so the sum read here cannot move before the upsert."""
    w = _windows.c
    start = _window_of(now)
    here = (w.member_id == content["actor_id"], w.window_start == start)
    seen, flushed = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(w.attempts), 0), sa.func.count(w.flushed_at)).where(*here)
    ).one()
    if flushed:
        return True  # summarised already (a clock behind the flusher's): write it, never lose it
    own_row = int(seen) < DENIED_LIMIT
    insert_of = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert_of(_windows).values(
        member_id=content["actor_id"],
        window_start=start,
        action=content["action"],
        attempts=1,
        counted=0 if own_row else 1,
        actor_email=content["actor_email"],
        actor_role=content["actor_role"],
        source=content["source"],
        client_address=content["client_address"],
        user_agent=content["user_agent"],
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[w.member_id, w.window_start, w.action],
            set_={"attempts": w.attempts + 1, "counted": w.counted + stmt.excluded.counted},
        )
    )
    return own_row


def _due_summaries(conn: sa.Connection, now: datetime) -> list[dict[str, Any]]:
    """The summary rows of every ended minute with counted attempts, oldest first; in the same
    transaction those minutes are marked flushed, and minutes with nothing counted are deleted."""
    w = _windows.c
    current = _window_of(now)
    stmt = (
        sa.select(_windows)
        .where(w.flushed_at.is_(None), w.window_start < current)
        .order_by(w.window_start, w.member_id, w.action)
    )
    due = conn.execute(stmt).mappings().all()
    if not due:
        return []
    minutes: dict[tuple[int, datetime], list[sa.RowMapping]] = {}
    for counter in due:
        minutes.setdefault((counter["member_id"], counter["window_start"]), []).append(counter)
    summaries = []
    for (member_id, start), counters in minutes.items():
        here = (w.member_id == member_id, w.window_start == start)
        if any(c["counted"] for c in counters):
            summaries.append(_summary(member_id, start, counters))
            conn.execute(sa.update(_windows).where(*here).values(flushed_at=now))
        else:
            conn.execute(sa.delete(_windows).where(*here))
    conn.execute(sa.delete(_windows).where(w.flushed_at < now - _KEEP_FLUSHED))
    return summaries


def _summary(member_id: int, start: datetime, counters: list[sa.RowMapping]) -> dict[str, Any]:
    """One row standing for a member's counted denied attempts of one minute. Who and from where
    are as the most-counted action's first attempt said; every address seen is in the details."""
    counted = sum(c["counted"] for c in counters)
    attempts = sum(c["attempts"] for c in counters)
    by_action = {c["action"]: c["counted"] for c in sorted(counters, key=lambda c: (-c["counted"], c["action"]))}
    by_action = {a: n for a, n in by_action.items() if n}
    lead = max(counters, key=lambda c: c["counted"])
    start = start.astimezone(UTC)
    end = start + DENIED_WINDOW
    listing = ", ".join(f"{action} ×{n}" for action, n in by_action.items())
    error = (
        f"{counted} more denied attempt{'' if counted == 1 else 's'} from {start:%Y-%m-%d %H:%M} to "
        f"{end:%H:%M} UTC, counted here instead of a row each (past {DENIED_LIMIT} in a minute): {listing}."
    )
    details = {
        "count": counted,  # attempts this row stands for
        "attempts": attempts,  # every denied attempt of the minute, those with a row of their own included
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "by_action": by_action,
        "addresses": sorted({c["client_address"] for c in counters if c["client_address"]})[:20],
    }
    return {
        "actor_id": member_id,
        "actor_email": lead["actor_email"],
        "actor_role": lead["actor_role"],
        "source": lead["source"],
        "client_address": lead["client_address"],
        "user_agent": lead["user_agent"],
        "action": SUMMARY_ACTION,
        "target_ids": [],
        "amount": None,
        "currency": None,
        "outcome": "denied",
        "error": error[:1000],
        "details": _plain(details),
    }


def flush_denied_summaries(engine: sa.Engine | None = None) -> int:
    """Append the summary row of every minute that has ended with denied attempts counted;
    returns how many. Every append does this too; call it periodically (about once a minute)
    so a flood's summary appears even when nothing else is logged after it."""
    return _append(None, engine)


def _head_matches(conn: sa.Connection, key: str, tail: tuple[int, str] | None) -> bool:
    """Does the table still hold the row the head kept outside names? If not, rows were cut
    off or rewritten: new rows are still written, but the head stays put as the evidence."""
    if tail is not None and _heads_written.get(key) == tail:
        return True  # the newest row is the one this process last vouched for
    try:
        head = _read_head()
    except Exception:
        log.exception("The audit chain head cannot be read from the secret store; it is left as it is.")
        return False
    if head is None:
        return True  # a new store, or rows from before the chain: the next head starts here
    head_id, head_hash = head
    if tail is not None and head_id == tail[0]:
        stored = tail[1]
    elif tail is None or head_id > tail[0]:
        stored = None
    else:
        stored = conn.execute(sa.select(_table.c.hash).where(_table.c.id == head_id)).scalar()
    if stored == head_hash:
        return True
    log.error(
        "The audit log no longer holds row %s as the chain head kept outside the table names it: "
        "rows were cut off or rewritten. New rows are still written and the head is kept as evidence; "
        "run `billy audit verify`.",
        head_id,
    )
    return False


def _advance_head(conn: sa.Connection, key: str, row_id: int, row_hash: str) -> None:
    """Record the new newest row outside the table, under the append lock so heads written by
    several processes never go backwards. A failure here is logged, never raised: the row is
    written, and the head catches up with the next append."""
    try:
        _lock(conn)
        if _newest(conn) == (row_id, row_hash):  # a later append writes its own head
            get_secret_store().set(HEAD_SECRET, f"{row_id}:{row_hash}")
            _heads_written[key] = (row_id, row_hash)
        conn.rollback()
    except Exception:
        log.exception("The audit chain head could not be written to the secret store after row %s.", row_id)


@contextmanager
def audited(actor: Actor, action: str, *targets: str, session: Session | None = None) -> Iterator[AuditDraft]:
    """Run an action and record how it ended: ok, denied (a permission refusal) or failed.

    Inside a caller's transaction (`session`, see `db.transaction`) the row waits until that
    transaction ends, so it tells what really happened: an action that went through but was
    rolled back with the rest is recorded as failed, with the reason."""

    def settle(outcome: str, error: str | None = None, exc: BaseException | None = None) -> None:
        for hook in draft.before_record:
            hook(outcome, exc)
        if session is None:
            try:
                record(actor, action, outcome, draft, error)
            finally:
                draft.settled()
            return

        def when_ended(committed: bool) -> None:
            try:
                if committed or outcome != "ok":
                    record(actor, action, outcome, draft, error)
                else:
                    record(actor, action, "failed", draft, ROLLED_BACK)
            finally:
                draft.settled()

        after_transaction(session, when_ended)

    draft = AuditDraft(targets=list(targets))
    try:
        yield draft
    except PermissionDenied as exc:
        settle("denied", exc.message, exc)
        raise
    except BillyError as exc:
        settle("failed", exc.message, exc)
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception):  # interrupted (KeyboardInterrupt, SystemExit): no row, locks let go
            draft.settled()
            raise
        settle("failed", f"internal error ({type(exc).__name__})", exc)
        raise
    else:
        settle("ok")


# --- verifying --------------------------------------------------------------------------------

_HEAD = "the chain head kept outside the table"
_HEAD_WAIT_ATTEMPTS = 20  # × 50 ms: how long verify lets a head catch up with a row just written


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int
    first_bad_id: int | None = None
    problem: str = ""  # what broke, as a sentence a person understands; empty when ok
    note: str = ""  # something worth knowing even when the chain holds

    def describe(self) -> str:
        if self.ok:
            text = f"Audit log intact: {self.rows_checked} rows checked, one unbroken chain."
            return f"{text} {self.note}" if self.note else text
        if self.first_bad_id is None:
            return f"Audit log cannot be checked: {self.problem}."
        return (
            f"Audit log BROKEN at row {self.first_bad_id}: {self.problem}. "
            f"({self.rows_checked} rows checked up to there.)"
        )


def verify(engine: sa.Engine | None = None) -> VerifyResult:
    """Walk the chain in id order and name the first row where it breaks: a row altered, a row
    missing, a row inserted out of band, or rows cut off the end (found through the head kept
    in the secret store)."""
    engine = engine or get_engine()
    try:
        head, tail = _ends(engine)
    except (ValueError, BillyError) as exc:
        return VerifyResult(False, 0, None, f"{_HEAD} cannot be read ({exc})")
    head_id = head[0] if head else None
    last_id = tail[0] if tail else 0

    checked = 0
    before_prev: sa.RowMapping | None = None
    prev: sa.RowMapping | None = None
    hash_at_head: str | None = None
    stmt = sa.select(*_walk_columns).where(_table.c.id <= last_id).order_by(_table.c.id)
    with engine.connect() as conn:
        rows = iter(conn.execution_options(yield_per=1000).execute(stmt).mappings())
        while True:
            try:
                row = next(rows, None)
                if row is None:
                    break
                checked += 1
                broken = _judge(before_prev, prev, row, lambda: next(rows, None), head_id)
            except (ValueError, TypeError, sa.exc.StatementError):
                after = prev["id"] if prev else 0
                return VerifyResult(
                    False, checked, after + 1, f"the row after {after} cannot be read: it was altered outside Billy"
                )
            if broken:
                return VerifyResult(False, checked, *broken)
            if row["id"] == head_id:
                hash_at_head = row["hash"]
            before_prev, prev = prev, row

    return _judge_end(checked, prev, head, hash_at_head)


def _ends(engine: sa.Engine) -> tuple[tuple[int, str] | None, tuple[int, str] | None]:
    """The head kept outside and the table's newest row, read together under the append lock.
    A head behind the table may be an append between its row and its head: wait it out."""
    for _ in range(_HEAD_WAIT_ATTEMPTS):
        with engine.connect() as conn:
            _lock(conn)
            tail = _newest(conn)
            head = _read_head()
            conn.rollback()
        if head is None or tail is None or head[0] >= tail[0]:
            break
        time.sleep(0.05)
    return head, tail


def _judge(
    before_prev: sa.RowMapping | None,
    prev: sa.RowMapping | None,
    row: sa.RowMapping,
    following: Callable[[], sa.RowMapping | None],
    head_id: int | None,
) -> tuple[int, str] | None:
    """(first bad id, what happened) if the chain breaks at `row`, else None. `prev` and
    `before_prev` are the rows before it (both held); `following()` reads the next one."""
    row_id = row["id"]
    prev_id = prev["id"] if prev else 0  # ids start at 1
    expected = prev["hash"] if prev else GENESIS
    linked = row["prev_hash"] == expected
    sealed = chain_hash(row["prev_hash"] or "", row) == row["hash"]
    if linked and sealed:
        return None
    beyond_head = head_id is not None and row_id > head_id
    if linked:
        if beyond_head:
            return (
                row_id,
                f"row {row_id} was inserted out of band (its hash does not fit it, and {_HEAD} ends at row {head_id})",
            )
        return row_id, f"row {row_id} was altered"
    nxt = following()
    if nxt is not None and nxt["prev_hash"] == expected:
        before = f"row {prev_id}" if prev else "the start of the chain"
        return row_id, f"row {row_id} was inserted out of band (row {nxt['id']} follows {before} directly)"
    if prev is not None and row["prev_hash"] == (before_prev["hash"] if before_prev else GENESIS):
        before = f"row {before_prev['id']}" if before_prev else "the start of the chain"
        return prev_id, f"row {prev_id} was inserted out of band (row {row_id} follows {before} directly)"
    if row_id > prev_id + 1:
        if not prev:
            return 1, f"the rows before row {row_id} were removed (the chain does not start there)"
        if row_id == prev_id + 2:
            return prev_id + 1, f"a row is missing between {prev_id} and {row_id}"
        return prev_id + 1, f"rows {prev_id + 1} to {row_id - 1} are missing (between {prev_id} and {row_id})"
    if beyond_head:
        return row_id, f"row {row_id} was inserted out of band (it does not follow row {prev_id})"
    if not sealed or not prev:
        return row_id, f"row {row_id} was altered"
    return prev_id, f"row {prev_id} was altered and its hash recomputed, so row {row_id} no longer follows it"


def _judge_end(
    checked: int, last: sa.RowMapping | None, head: tuple[int, str] | None, hash_at_head: str | None
) -> VerifyResult:
    """The walk held; does the table end where the head kept outside it says?"""
    last_id = last["id"] if last else 0
    if head is None:
        note = (
            "No chain head is kept outside the table yet (it is written with the next audit row), "
            "so rows cut off the end cannot be checked."
        )
        return VerifyResult(True, checked, None, "", "" if last is None else note)
    head_id, head_hash = head
    if head_id > last_id:
        if last is None:
            return VerifyResult(False, checked, 1, f"every row was removed ({_HEAD} says {head_id})")
        return VerifyResult(False, checked, last_id + 1, f"rows after {last_id} were removed ({_HEAD} says {head_id})")
    if hash_at_head != head_hash:
        return VerifyResult(
            False,
            checked,
            head_id,
            f"row {head_id} is not the row {_HEAD} names: rows were cut off the end and others took their place, "
            f"or the chain was rewritten up to row {head_id}",
        )
    if head_id < last_id:
        return VerifyResult(
            False,
            checked,
            head_id + 1,
            f"row {head_id + 1} is newer than {_HEAD} (row {head_id}): it was inserted out of band, "
            "or Billy stopped between writing it and recording the new head",
        )
    return VerifyResult(True, checked, None, "", f"It ends at row {head_id}, as {_HEAD} says.")


READ_THROUGH_A_DOOR = "agents.read"
_DOORS = frozenset({Source.API, Source.AGENT})


def record_read(actor: Actor, call: str, *targets: str) -> None:
    """A read through a programmatic door (an agent's tool call, an API GET): one `ok` row naming
    the call and what it named, so what an agent or a script looked up is on record with its token.
    The dashboard's own reads are not logged; a refused read is, at every door (`authorize_read`)."""
    if actor.source not in _DOORS:
        return
    draft = AuditDraft(targets=[t[:255] for t in targets if t][:10], details={"call": call[:120]})
    record(actor, READ_THROUGH_A_DOOR, "ok", draft)


def authorize_read(actor: Actor, action: str, *targets: str) -> None:
    """`authorize` for reads: reading is not logged, but a refused read is (as `denied`), so
    every refusal, whatever door it came through, leaves a row (DESIGN, Audit log)."""
    with refusal_recorded(actor, action, *targets):
        authorize(actor, action)


@contextmanager
def refusal_recorded(actor: Actor, action: str, *targets: str) -> Iterator[None]:
    """Reading is not logged, but a refused attempt to read is (as `denied`)."""
    try:
        yield
    except PermissionDenied as exc:
        record(actor, action, "denied", AuditDraft(targets=list(targets)), exc.message)
        raise
