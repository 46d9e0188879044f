"""The store's engine and sessions: one engine per process, one transaction per action."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random

from services.config import get_settings

log = logging.getLogger(__name__)

T = TypeVar("T")
CONNECT_TIMEOUT_SECONDS = 10
# Connections kept open for budgeted reads (`read_within`): one per thread pages count their
# totals on (reports.PAGE_COUNT_THREADS), so a count never waits for a connection to be opened.
BUDGETED_POOL_SIZE = 4


def make_engine(url: str, *, statement_timeout_ms: int | None = None) -> sa.Engine:
    """An engine tuned per backend: SQLite gets WAL, foreign keys and a busy timeout.
    `statement_timeout_ms` (PostgreSQL): an engine for budgeted reads (`read_within`), whose
    every statement is cancelled past that, each in its own transaction."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # A database that stops answering (a failover, the network) must not hold a request for the
    # operating system's two-minute connect timeout: fail in seconds and say so (`services.outages`).
    # No JIT and no parallel workers: Billy's queries are short page reads. For a costly one (a
    # list's total over a million rows) PostgreSQL would compile for up to 50 ms or start two
    # workers, and neither can be cancelled promptly: a count given a page's 3 ms budget was
    # stopped after 19 ms with workers, after 3.2 ms without (bench/pages; the same count run
    # to its end took 155 ms alone, 130 ms with two workers on this 2-core machine).
    options = "-c jit=off -c max_parallel_workers_per_gather=0"
    budgeted: dict[str, Any] = {}
    if statement_timeout_ms is not None:
        options += f" -c statement_timeout={int(statement_timeout_ms)}"
        budgeted = {"isolation_level": "AUTOCOMMIT", "pool_size": BUDGETED_POOL_SIZE}
    engine = sa.create_engine(
        url,
        **({"pool_size": 10, "max_overflow": 10} | budgeted),
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS, "options": options},
    )
    _ping_when_idle(engine)
    return engine


# A pooled connection left unused this long is pinged before it is handed out again.
IDLE_PING_SECONDS = 1.0
_CHECKED_IN_AT = "billy_checked_in_at"  # the pool entry's info key: when it was last given back


def _ping_when_idle(engine: sa.Engine) -> None:
    """Test a pooled connection before use only if it has been idle (`IDLE_PING_SECONDS`).

    A connection that sat in the pool through a database restart, a failover or a firewall's
    idle cut is dead, and a ping finds that out and replaces it before an action meets it. One
    given back a moment ago was alive a moment ago: pinging it too (SQLAlchemy's `pool_pre_ping`)
    costs a round trip on every checkout, and under a burst of webhooks with every open page
    re-reading, that was 16 % of the store threads' time (py-spy on bench/burst). If such a
    connection did die in that moment, the statement fails as a disconnect, SQLAlchemy then
    retires every connection opened before it, and the action says the store is not answering
    (`services.outages`), as it would for any outage caught mid-action. A ping that finds a
    connection dead retires them all the same way (`InvalidatePoolError`)."""

    @sa.event.listens_for(engine, "checkin")
    def _given_back(_dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry, _proxy: object) -> None:
        given_back = record.info.get(_CHECKED_IN_AT)
        if given_back is None or time.monotonic() - given_back < IDLE_PING_SECONDS:
            return  # just opened, or just used
        try:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception as exc:
            # An idle connection found dead means the database restarted or failed over, which
            # killed every connection, including those given back too recently to be pinged. So the
            # pool retires all the connections opened before now, and hands out a fresh one.
            raise sa.exc.InvalidatePoolError("an idle pooled connection no longer answers") from exc


def insert_on_conflict(dialect: str, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT with ON CONFLICT, which both backends have, each through its own construct."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise KeyError(dialect)  # the store is SQLite or PostgreSQL


@lru_cache(maxsize=1)
def get_engine() -> sa.Engine:
    return make_engine(get_settings().resolved_database_url)


_AFTER_END = "billy_after_end"  # session.info key: callbacks run once the transaction has ended


@contextmanager
def session_scope(engine: sa.Engine | None = None) -> Iterator[Session]:
    """One transaction: committed if the block succeeds, rolled back if it raises. What the
    actions inside asked to run afterwards (`after_transaction`) runs once it has ended."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            _run_after_end(session, committed=False)
            raise
        _run_after_end(session, committed=True)


@contextmanager
def transaction(session: Session | None = None) -> Iterator[Session]:
    """The transaction an action runs in: its caller's, when the caller passes a session so that
    several actions commit or roll back as one, or else one of its own (`session_scope`).

    Every write action takes `session: Session | None = None` and works inside this, so it can
    be composed; inside a caller's session it neither commits nor rolls back."""
    if session is not None:
        yield session
        return
    with session_scope() as own:
        yield own


def after_transaction(session: Session, callback: Callable[[bool], None]) -> None:
    """Run `callback(committed)` once `session`'s transaction has ended, outside it: for work
    that must not run inside the transaction (the audit log appends in its own one, which on
    SQLite would wait on the write lock this transaction holds) yet must know how it ended."""
    session.info.setdefault(_AFTER_END, []).append(callback)


def _run_after_end(session: Session, *, committed: bool) -> None:
    callbacks: list[Callable[[bool], None]] = session.info.pop(_AFTER_END, [])
    errors: list[BaseException] = []
    for callback in callbacks:
        try:
            callback(committed)
        except Exception as exc:  # noqa: BLE001 - every callback runs; the first failure is raised below
            errors.append(exc)
    if errors:
        raise errors[0]


# PostgreSQL's "deadlock detected" and "could not serialize": the transaction was rolled back
# whole and may simply be run again. Mirror writes can meet this way: the rollup triggers
# (migration 0010) lock the total rows a page touches, and two pages (charges and refunds of
# the same days and currencies) may reach them in a different order.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
TRANSACTION_ATTEMPTS = 5


class Overtaken(Exception):
    """Raised by a transaction's work when a concurrent transaction committed, between its read
    and its write, a change that makes what it read out of date (a conflict the database cannot
    see: READ COMMITTED lets both through). `run_transaction` rolls it back and runs it again."""


def _retryable_conflict(exc: BaseException) -> bool:
    if isinstance(exc, Overtaken):
        return True
    orig = getattr(exc, "orig", None)
    return isinstance(exc, sa.exc.DBAPIError) and getattr(orig, "pgcode", None) in RETRYABLE_SQLSTATES


def _say_run_again(state: RetryCallState) -> None:
    """A line for the operator: a conflict now and then is normal, many point at a hot row."""
    failed = state.outcome.exception() if state.outcome else None
    reason = type(getattr(failed, "orig", None) or failed).__name__
    log.warning("Transaction rolled back (%s), running it again (attempt %d)", reason, state.attempt_number + 1)


def run_transaction(work: Callable[[Session], T], engine: sa.Engine | None = None) -> T:
    """`work` in one transaction (`session_scope`), run again from the start if the database
    rolled it back for a deadlock or a serialization conflict, or `work` raised `Overtaken`.
    `work` must touch nothing but the session (it may run more than once)."""
    for attempt in Retrying(
        retry=retry_if_exception(_retryable_conflict),
        wait=wait_random(0.005, 0.05),
        stop=stop_after_attempt(TRANSACTION_ATTEMPTS),
        before_sleep=_say_run_again,
        reraise=True,
    ):
        with attempt, session_scope(engine) as session:
            return work(session)
    raise AssertionError("unreachable")  # pragma: no cover


class QueryOverBudget(Exception):
    """A read given a time budget (`read_within`) ran past it and was cancelled."""


def read_within(stmt: sa.Executable, milliseconds: int) -> list[sa.Row[Any]]:
    """`stmt`'s rows, read on a connection of its own and cancelled once it has run `milliseconds`
    (`QueryOverBudget`): for reads whose answer is a nicety (a list's total), never for writes.

    SQLite: a progress handler interrupts the statement. PostgreSQL: a pool whose connections
    carry the timeout (`statement_timeout`) and read in autocommit, so a budgeted read is one
    round trip. Setting the timeout for one statement inside the caller's transaction took
    five more (a savepoint, setting the timeout, restoring it, releasing the savepoint): a
    list's first page spent longer on those than on counting its total (bench/pages)."""
    engine = get_engine()
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            raw = connection.connection.driver_connection
            deadline = time.monotonic() + milliseconds / 1000
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 5_000)  # type: ignore[union-attr]
            try:
                return list(connection.execute(stmt))
            except sa.exc.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise QueryOverBudget from None
                raise
            finally:
                raw.set_progress_handler(None, 0)  # type: ignore[union-attr]
    try:
        with _budgeted_engine(engine, int(milliseconds)).connect() as connection:
            return list(connection.execute(stmt))
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "pgcode", None) == QUERY_CANCELED:
            raise QueryOverBudget from None
        raise


QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout


@lru_cache(maxsize=8)
def _budgeted_engine(engine: sa.Engine, milliseconds: int) -> sa.Engine:
    """The budgeted-read pool beside `engine` (the store's), one per budget; a new store engine
    (tests, benches) gets its own. Disposing `engine` (a store swapped, a process forked)
    closes this pool's connections too."""
    budgeted = make_engine(engine.url.render_as_string(hide_password=False), statement_timeout_ms=milliseconds)

    @sa.event.listens_for(engine, "engine_disposed")
    def _dispose_with_the_store(_engine: sa.Engine) -> None:
        budgeted.dispose()

    return budgeted


def delete_in_batches(
    table: sa.Table,
    expired: sa.ColumnElement[bool],
    oldest_first: list[sa.ColumnElement[object]],
    *,
    batch: int,
    max_batches: int,
) -> int:
    """Delete the rows `expired` selects, `batch` rows per statement, each in its own short
    transaction, oldest first along an index (`oldest_first` names its columns). On PostgreSQL
    rows another transaction holds are skipped (`SKIP LOCKED`), so a write in progress never
    waits for a pruning; on SQLite each batch holds the write lock only for its own statement.
    Stops after `max_batches` (the next run goes on). Returns how many rows went."""
    engine = get_engine()
    key = list(table.primary_key.columns)
    oldest = sa.select(*key).where(expired).order_by(*oldest_first).limit(batch)
    if engine.dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    statement = sa.delete(table).where(key[0].in_(oldest.scalar_subquery()))
    removed = 0
    for _ in range(max_batches):
        with engine.begin() as conn:
            gone = conn.execute(statement).rowcount or 0
        removed += gone
        if gone < batch:
            break
    return removed
