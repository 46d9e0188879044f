"""Backfill: copying every Stripe object Billy shows into the store, resumably.

Each resource is walked as `created` ranges, newest first, several at once under one rate
gate (`stripe_gateway.RateGate`) with retries on 429/5xx (see "the backfill" below for how
ranges are found). Every page is stored in one transaction together with its range's
cursor, so a killed run resumes each range after its last stored page. Saved cards come with
the customers' pages; the few a customer never made their default are read per customer in
the background afterwards ("payment methods a customer list does not carry"). The outcome is
reported honestly per resource: `done`, `done` with the number of times Stripe slowed it
down, `skipped` (the key may not read it: a note says which permission would unlock what) or
`failed` with Stripe's reason. Never "done" for a run that did not finish.

Rows are written through `mirror.write_objects` with Stripe's clock when the page was asked
for as their version (`StripeGateway.read_stamp`, never the machine's clock, which may run
minutes off Stripe's), so a backfill never overwrites a fresher copy written by an event or a refund.
"""

from __future__ import annotations

import functools
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from services import audit, locks, mirror, notices, resources, stripe_rows
from services.config import get_settings
from services.db import get_engine, run_transaction, session_scope
from services.errors import BillyError, StripeNotConnected, StripeRequestFailed
from services.models import StripeConnection, StripeCustomer, SyncRange, SyncState, table_of, utcnow
from services.permissions import Actor, authorize
from services.resources import StripeResource
from services.stripe_gateway import DEFAULT_RATE, StripeGateway

log = logging.getLogger(__name__)

# Re-exported for callers that map single objects (billing upserts a refund's charge).
customer_row, charge_row, refund_row = stripe_rows.customer_row, stripe_rows.charge_row, stripe_rows.refund_row


# The resources the backfill lists, by collection (one descriptor each: services.resources).
RESOURCES: dict[str, StripeResource] = resources.LISTED
EVENTS = "events"  # the sync_state row of event polling (cursor: the newest event seen)
EVENTS_PERMISSION_NOTE = "Events (read) lets Billy stay current without webhooks."


def permission_note(resource: StripeResource) -> str:
    """What to add to the key, and what it shows, in the words of Stripe's key editor."""
    label = (resource.permission or "").removeprefix("rak_").removesuffix("_read").replace("_", " ")
    label = {"plan": "prices", "payment method": "payment methods"}.get(label, label + "s")
    return (
        f"Skipped: the Stripe key may not read {label}. Give the restricted key “{label.capitalize()}: Read” "
        f"in Stripe to see {resource.unlocks} in Billy."
    )


def sync_state(session: Session, resource: str) -> SyncState:
    """The progress row of a resource (or of event polling, `EVENTS`), created on first use."""
    state = session.get(SyncState, resource)
    if state is None:
        state = SyncState(resource=resource)
        session.add(state)
        session.flush()
    return state


# --- the backfill: list resources walked as `created` ranges, in parallel ---------------------
#
# Why ranges: a Stripe list is one cursor walk, newest first, one page at a time, so one walk
# makes at most one request per round trip (0.3 s or more): about 3 requests a second, far below
# the 25 (test) or 100 (live) Stripe allows. Lists can be cut only by `created`, so a resource is
# split into `created` ranges walked side by side under the one rate gate. Pages go to writer
# threads (`_Writers`): one on SQLite, storing what waits in one transaction; several on
# PostgreSQL, a page a transaction; each range's pages in order through one writer.
#
# How ranges are found: by halving, as walkers fall idle, not by planning. A resource starts as
# one range open on both sides. An idle walker takes the range with the most left to read and
# splits off its older half: a range bounded below at `lo` whose walk has reached `c` keeps
# `[(lo + c) / 2, c]` and hands over `[lo, (lo + c) / 2)`; a range still open below (nobody
# knows how old the account is: Stripe cannot list oldest first) keeps `OPEN_SPLIT_GROWTH` times
# the time it has walked from the resource's newest object, so the pieces grow geometrically
# until a walk reaches the oldest object. Why not N equal spans between the newest and oldest
# object: finding the oldest costs a search of probe requests per resource, and accounts are
# not even in time (a growing business makes most of its objects recently), so equal spans give
# one range most of the work and leave walkers idle at the end. Halving follows the real density
# at no request cost (a split costs at most one partial page more); a range is judged only once
# this run has read a page of it, and is not halved with under `MIN_SPLIT_PAGES` pages or
# `MIN_SPLIT_SECONDS` left. The walkers (`BILLY_SYNC_WALKERS`) are shared by every resource, so
# a small resource's walkers move on to the large ones.
#
# Resuming: every range is a `sync_range` row with its bounds, its status and its own cursor,
# stored in the transaction of each page; a split moves one bound and adds one row in one
# transaction. A killed run leaves its rows as they were, and the next run walks every range
# that was not done from its own cursor: nothing finished is read again.

# Stripe answers a list page in about this long; with the request ceiling it sizes how many walks
# keep the ceiling busy (ceiling × seconds per page requests in flight), when the setting is 0.
# Each walker holds at most the page it is reading, so the walkers (and `WRITER_QUEUE_PAGES`), not
# the account's size, bound a backfill's memory: about 3-4 MB a walker measured (bench/backfill).
SECONDS_PER_PAGE = 0.5
MIN_WALKERS, MAX_WALKERS = 4, 32
# A range is halved only while it has about this many pages left (each range ends in a partial
# page, so halving a short one costs more requests than the time it saves) ...
MIN_SPLIT_PAGES = 8.0
# ... and this many seconds of `created` (Stripe's times are whole seconds: a second cannot be cut).
MIN_SPLIT_SECONDS = 2
# A range open below keeps this many times the time it has walked from the resource's newest
# object: four reaches a year back from an hour's page in six splits, where doubling took twelve
# (each waits for a page of the new range), and a piece too large is halved later anyway.
OPEN_SPLIT_GROWTH = 4
# How long an idle walker waits before looking again for work (it is woken on every stored page).
IDLE_WAIT_SECONDS = 1.0


def walker_count() -> int:
    """`BILLY_SYNC_WALKERS`, or enough to keep the request ceiling busy at `SECONDS_PER_PAGE`."""
    settings = get_settings()
    if settings.sync_walkers:
        return settings.sync_walkers
    ceiling = settings.stripe_requests_per_second or DEFAULT_RATE["live"]
    return max(MIN_WALKERS, min(MAX_WALKERS, math.ceil(ceiling * SECONDS_PER_PAGE * 1.25)))


BUSY = ("walking", "closing")  # a range a walker holds


def _created(obj: dict[str, Any]) -> int:
    return int(obj.get("created") or 0)


@dataclass
class _Range:
    """One `created` range of a resource as the walkers share it (its `SyncRange` row in memory):
    `created_from <= created < created_before`, None where open."""

    position: int
    created_from: int | None
    created_before: int | None
    cursor: str | None = None
    cursor_created: int | None = None
    state: str = "pending"  # pending | walking | closing (its last page on the way to the store) | done
    pages: int = 0  # pages this run stored from it
    top: int | None = None  # `created` of the newest object this run read from it
    made_by: _Split | None = field(default=None, repr=False, compare=False)  # the split that made it this run

    def pages_left(self) -> float:
        """About how many pages are left at the density walked so far (infinite while open below)."""
        if self.cursor_created is None or not self.pages:
            return 0.0  # nothing read by this run yet: nothing to judge by
        if self.created_from is None:
            return math.inf
        walked = max(1, (self.top or self.cursor_created) - self.cursor_created)
        return self.pages * (self.cursor_created - self.created_from) / walked


class _ResourceRun:
    """One resource in a backfill: its ranges, its 429s, and how it ended."""

    def __init__(self, spec: StripeResource, ranges: list[_Range]) -> None:
        self.spec = spec
        self.name = spec.collection
        self.ranges = ranges
        self.next_position = max((r.position for r in ranges), default=-1) + 1
        known = [t for r in ranges for t in (r.created_before, r.cursor_created) if t is not None]
        self.newest: int | None = max(known) if known else None
        self.failure: BaseException | None = None  # what stopped it (an Exception)
        self.concluded = False
        self.without_expansions = False  # the key may not expand what the list carries in full
        self.carrying: list[str] = []  # resources of this run listed inside this one's pages
        self.throttled = 0
        self._lock = threading.Lock()

    def throttled_once(self) -> None:
        with self._lock:
            self.throttled += 1

    def take_throttled(self) -> int:
        with self._lock:
            n, self.throttled = self.throttled, 0
            return n

    def params(self, walk: _Range) -> dict[str, Any]:
        params = dict(self.spec.list_params)
        if self.without_expansions:
            params.pop("expand", None)
        created = {}
        if walk.created_from is not None:
            created["gte"] = walk.created_from
        if walk.created_before is not None:
            created["lt"] = walk.created_before
        if created:
            params["created"] = created
        return params

    def page(
        self,
        walk: _Range,
        objects: list[dict[str, Any]],
        requested_at: float,
        cursor: tuple[str, int] | None,
        done: bool,
    ) -> _Page:
        """A page read from `walk`, made into rows here (in the walker's thread, while the writer's
        runs statements) and ready for the writer, with its 429s so far."""
        # The page shows Stripe as it was when asked; a second back keeps ties on the safe side.
        prepared = mirror.prepare(self.spec, objects, int(requested_at) - 1)
        cards = sum(carried.count for carried in prepared.carried)
        return _Page(self, walk.position, prepared, len(objects), cursor, done, self.take_throttled(), cards)

    def split(self, walk: _Range) -> _Split | None:
        """Hand the older part of what `walk` has left to a new range; None when it is too short
        to be worth it. The caller holds the walkers' lock and hands the split to the writer
        before the new range's first page (its rows change in the writer's order)."""
        reached = walk.cursor_created
        if reached is None or walk.state != "walking" or not walk.pages:  # judged by what this run read
            return None
        if walk.made_by is not None and not walk.made_by.stored.is_set():
            return None  # its row may not be stored yet: a split of it, on another writer, must wait
        if walk.created_from is None:
            walked = max((self.newest or reached) - reached, MIN_SPLIT_SECONDS)
            middle = reached - OPEN_SPLIT_GROWTH * walked
            if middle <= 0:
                return None
        else:
            if reached - walk.created_from < MIN_SPLIT_SECONDS or walk.pages_left() < MIN_SPLIT_PAGES:
                return None
            middle = (walk.created_from + reached) // 2
        older = _Range(self.next_position, walk.created_from, middle)
        self.next_position += 1
        walk.created_from = middle
        self.ranges.append(older)
        older.made_by = _Split(self, walk.position, older)
        return older.made_by

    @property
    def open_ranges(self) -> int:
        return sum(1 for r in self.ranges if r.state != "done")


@dataclass
class _Page:
    """One page on its way to the store, with everything its transaction records."""

    run: _ResourceRun
    position: int  # of its range
    prepared: mirror.Prepared
    read: int  # objects read (the count; one per id in `prepared`)
    cursor: tuple[str, int] | None  # the last object's id and `created`; None for an empty page
    done: bool  # the range's last page
    throttled: int
    cards: int  # objects of the resources its objects carry (a customer's cards)
    stored: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def store(self, session: Session) -> list[str]:
        """The page's objects, in the caller's transaction (`progress` says what it moves)."""
        return mirror.write_prepared(session, self.prepared)

    def progress(self) -> list[_Progress]:
        """Its range's cursor and count, and the counts of its resource and what it carries."""
        run = self.run
        moved: dict[str, Any] = {
            "range_resource": run.name,
            "range_position": self.position,
            "page_read": self.read,
            "range_status": "done" if self.done else "running",
        }
        if self.cursor is not None:
            moved.update(page_cursor=self.cursor[0], page_cursor_created=self.cursor[1])
        steps = [_Progress(_range_key(run.name, self.position, _MOVE), _range_moved(self.cursor is not None), moved)]
        # Counts are added in SQL, never read and written back: that would lose a concurrent page's.
        steps.append(_counts_step(run.name, self.read, self.throttled, self.cursor[0] if self.cursor else None))
        steps += [_counts_step(carried, self.cards, 0, None) for carried in run.carrying]
        return steps


@dataclass
class _Split:
    """A range that handed its older part to a new one, on its way to the store: the old range's
    lower bound moves up and the new range's row appears, in one transaction. Stored before any
    page of the new range (the writer's order), so a run killed in between never finds a page
    without its range; the old range only shrinks, so nothing is lost if the split is not stored."""

    run: _ResourceRun
    position: int  # of the range that keeps the newer part
    older: _Range
    stored: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def store(self, session: Session) -> list[str]:
        return []  # no objects: all it changes is progress

    def progress(self) -> list[_Progress]:
        ranges = table_of(SyncRange)
        name, older = self.run.name, self.older
        shrunk = (
            sa.update(ranges)
            .where(ranges.c.resource == name, ranges.c.position == self.position)
            .values(created_from=older.created_before)
        )
        added = sa.insert(ranges).values(
            resource=name,
            position=older.position,
            created_from=older.created_from,  # read now: a later split may have moved it up since
            created_before=older.created_before,
            status="pending",
            synced_count=0,
        )
        return [
            _Progress(_range_key(name, self.position, _SHRINK), shrunk, {}),
            _Progress(_range_key(name, older.position, _ADD), added, {}),
        ]


@dataclass
class _Progress:
    """One statement of a page's or a split's bookkeeping, with the row it takes (`key`)."""

    key: tuple[Any, ...]
    statement: sa.Executable
    params: dict[str, Any]


# Within a range's row: added before it is shrunk or moved (a split's new range and its first
# page may share a transaction).
_ADD, _SHRINK, _MOVE = 0, 1, 2


def _range_key(resource: str, position: int, step: int) -> tuple[Any, ...]:
    return (0, resource, position, step)


def _counts_step(resource: str, synced: int, throttled: int, cursor: str | None) -> _Progress:
    params: dict[str, Any] = {"state_resource": resource, "added_synced": synced, "added_throttled": throttled}
    if cursor is not None:
        params["state_cursor"] = cursor
    return _Progress((1, resource), _counts_added(cursor is not None), params)


def _record_progress(session: Session, jobs: list[_Page | _Split]) -> None:
    """The jobs' bookkeeping after their objects, every statement in one order that all writers
    share (ranges by resource and position, then resources' counts by name; equal keys in the
    jobs' order, so a range's cursor only moves forward). Two writers' transactions then take
    the same rows in the same order: one may wait for the other, neither for both."""
    steps = [step for job in jobs for step in job.progress()]
    for step in sorted(steps, key=lambda step: step.key):
        session.execute(step.statement, step.params)


SQLITE_WRITER_CACHE_KIB = 32 * 1024
# Pages read and waiting for the writers, at most: with the pages walkers hold, what bounds the
# backfill's memory (a parsed page of 100 charges is about 1 MB), whatever the account's size.
WRITER_QUEUE_PAGES = 16
# Pages one SQLite transaction stores at most (all that wait, up to this).
SQLITE_BATCH_PAGES = 16


def writer_count(dialect: str) -> int:
    """`BILLY_SYNC_WRITERS`, or by the store: one on SQLite, which lets one transaction write at
    a time; `POSTGRES_WRITERS` on PostgreSQL."""
    if dialect == "sqlite":
        return 1
    return get_settings().sync_writers or POSTGRES_WRITERS


# On PostgreSQL one writer waited on the server for two thirds of each page (a page's upsert
# with its indexes and triggers); four keep the server busy (bench/backfill).
POSTGRES_WRITERS = 4


class _Writer:
    """Stores pages from one thread, in the order they were put (so each range's cursor only
    moves forward): on SQLite every page waiting at that moment in one transaction, on
    PostgreSQL one page a transaction, beside other writers (`_Writers`).

    Why one writer on SQLite: it lets one transaction write at a time, and a writer that finds
    the store busy sleeps in SQLite's busy handler (up to 100 ms a try) instead of being woken;
    many walkers storing their own pages spent more time waiting there than storing. One commit
    for several pages also saves a commit per page. Why one page a transaction beside others on
    PostgreSQL: a page's statement takes its rollup rows in key order (migration 0026) and its
    bookkeeping comes last in one shared order (`_record_progress`), so writers never deadlock;
    two pages in one transaction would take rollup rows in two runs of that order. The queue is
    bounded, so walkers wait for the writer rather than read ahead of it: memory stays flat
    however large the account."""

    def __init__(self, capacity: int, batch_pages: int, name: str) -> None:
        self._queue: queue.Queue[_Page | _Split | None] = queue.Queue(maxsize=capacity)
        self._batch_pages = batch_pages
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, job: _Page | _Split) -> None:
        self._queue.put(job)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            closing = False
            while len(batch) < self._batch_pages:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                batch.append(more)
            self._store(batch)
            if closing:
                return

    @staticmethod
    def _store(batch: list[_Page | _Split]) -> None:
        def store(session: Session) -> list[list[str]]:
            if session.get_bind().dialect.name == "sqlite":
                # The mirror tables' many indexes: with SQLite's default 2 MB page cache a large
                # backfill rereads their pages from the file; 32 MB took a fifth off each page's
                # write (bench/backfill). For this connection only, at most that much memory.
                session.execute(sa.text(f"PRAGMA cache_size = -{SQLITE_WRITER_CACHE_KIB}"))
            written = [job.store(session) for job in batch]
            _record_progress(session, batch)
            return written

        try:
            written = run_transaction(store)
        except BaseException as exc:  # noqa: BLE001 - each page's walker raises it
            for page in batch:
                page.error = exc
                page.run.failure = page.run.failure or (exc if isinstance(exc, Exception) else None)
                page.stored.set()
            return
        for page, ids in zip(batch, written, strict=True):
            notices.publish(page.run.spec.object, ids)
            page.stored.set()


# The statements every stored page runs, built once with parameters: built afresh per page (new
# expressions, then SQLAlchemy's cache key for them) they took 0.25 ms a page, against 0.03 now
# (a throwaway loop over 3,000 pages on SQLite), about a twentieth of the writer's CPU.
@functools.cache
def _range_moved(with_cursor: bool) -> sa.Update:
    """A range's row after a page: its count up by the page's objects, its status, and its cursor
    when the page had objects."""
    ranges = table_of(SyncRange)
    values: dict[str, Any] = {
        "synced_count": ranges.c.synced_count + sa.bindparam("page_read", type_=sa.Integer()),
        "status": sa.bindparam("range_status", type_=sa.String()),
    }
    if with_cursor:
        values["cursor"] = sa.bindparam("page_cursor", type_=sa.String())
        values["cursor_created"] = sa.bindparam("page_cursor_created", type_=sa.BigInteger())
    at = (
        ranges.c.resource == sa.bindparam("range_resource", type_=sa.String()),
        ranges.c.position == sa.bindparam("range_position", type_=sa.Integer()),
    )
    return sa.update(ranges).where(*at).values(**values)


@functools.cache
def _counts_added(with_cursor: bool) -> sa.Update:
    states = table_of(SyncState)
    values: dict[str, Any] = {
        "synced_count": states.c.synced_count + sa.bindparam("added_synced", type_=sa.Integer()),
        "throttled_count": states.c.throttled_count + sa.bindparam("added_throttled", type_=sa.Integer()),
    }
    if with_cursor:
        values["cursor"] = sa.bindparam("state_cursor", type_=sa.String())
    named = states.c.resource == sa.bindparam("state_resource", type_=sa.String())
    return sa.update(states).where(named).values(**values)


def _begin(resource: str) -> tuple[list[_Range], bool]:
    """Mark the resource running; returns its ranges (resumed, or one range open on both sides)
    and whether it resumes a run that was killed or failed midway."""
    with session_scope() as session:
        state = sync_state(session, resource)
        rows = list(session.exec(select(SyncRange).where(SyncRange.resource == resource)))
        # A run that was killed (still "running") or failed midway continues each range from its cursor.
        unfinished = any(row.status != "done" for row in rows) or bool(state.cursor and not rows)
        resume = state.status in ("running", "failed") and unfinished
        if not resume:
            state.synced_count, state.cursor, state.throttled_count = 0, None, 0
            state.started_at = utcnow()
            for row in rows:
                session.delete(row)
            rows = [SyncRange(resource=resource, position=0, status="pending")]
            session.add(rows[0])
        elif not rows:  # killed before ranges existed (migration 0018): its one cursor goes on
            rows = [SyncRange(resource=resource, position=0, cursor=state.cursor, status="running")]
            session.add(rows[0])
        # `finished_at` stays: while running it says an earlier run ended, so the store holds its
        # picture (`progress` reports no finish time for a running resource).
        state.status, state.last_error = "running", None
        ranges = [
            _Range(r.position, r.created_from, r.created_before, r.cursor, r.cursor_created, _state_of(r.status))
            for r in rows
        ]
        return ranges, resume


def _state_of(status: str) -> str:
    return "done" if status == "done" else "pending"


def _finish(resource: str, status: str, error: str | None, throttled: int = 0) -> None:
    with session_scope() as session:
        state = sync_state(session, resource)
        state.status, state.last_error, state.finished_at = status, error, utcnow()
        state.throttled_count += throttled
        if status != "failed":
            state.cursor = None
            session.execute(sa.delete(table_of(SyncRange)).where(table_of(SyncRange).c.resource == resource))
    notices.publish("sync", [resource])


def _outcome_of(run: _ResourceRun) -> tuple[str, str | None]:
    """How a resource ended, in the words `sync_state` keeps: status and the note or reason."""
    exc = run.failure
    if exc is None:
        return "done", None
    if isinstance(exc, StripeRequestFailed):
        if exc.code == "permission_denied":
            return "skipped", permission_note(run.spec)
        if exc.code == "rate_limited":
            return (
                "failed",
                "Stripe kept answering “too many requests”; the sync will continue from here on the next run.",
            )
        return "failed", str(exc)
    if isinstance(exc, BillyError):
        return "failed", str(exc)
    return "failed", f"internal error ({type(exc).__name__})"


class _Writers:
    """The backfill's writers, each range's jobs going to one of them, given in turn when its
    first job comes, so the ranges walked at once spread over them. A range's jobs are its pages
    and the splits that take its older part: in one writer's order, a split is stored before the
    range's later pages (its last one marks it done, which must not be stored while the part it
    handed over has no row yet) and before its next split (each moves the range's lower bound;
    stored the other way round, the first would widen it again). The new range's own pages wait
    for its split (`_Walks._walk`), then go wherever it was given."""

    def __init__(self, count: int, capacity: int) -> None:
        batch = SQLITE_BATCH_PAGES if count == 1 else 1
        each = max(2, capacity // count)
        self._writers = [_Writer(each, batch, f"backfill-writer-{n}") for n in range(count)]
        self._given: dict[tuple[str, int], _Writer] = {}
        self._lock = threading.Lock()

    def put(self, job: _Page | _Split) -> None:
        key = (job.run.name, job.position)  # a split's is the range it splits
        with self._lock:
            writer = self._given.get(key)
            if writer is None:
                writer = self._given[key] = self._writers[len(self._given) % len(self._writers)]
        writer.put(job)

    def close(self) -> None:
        for writer in self._writers:
            writer.close()


class _Walks:
    """The walkers of one backfill: they take pending ranges, halve busy ones when idle, and
    conclude each resource when its last range is done.

    Walkers join as there is work for them, up to `walkers`: one per range to begin with, and one
    more whenever a page shows its range goes on (so it could be halved) while no walker is idle.
    A small account's sync (every range read in a page or two) starts a walker per resource, not
    the ceiling's 32: starting and waking idle threads cost a tenth of a second a sync there."""

    def __init__(self, gateway: StripeGateway, runs: list[_ResourceRun], carried: dict[str, list[str]]) -> None:
        self.gateway = gateway
        self.runs = runs
        self.carried = carried  # walked resource → resources concluded with it
        self.outcome: dict[str, str] = {}
        self.fatal: BaseException | None = None  # not an Exception (the process is going away)
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []  # every walker started, in order
        self._limit = 0  # walkers at most
        self._idle = 0  # walkers waiting for a range to take

    def run(self, walkers: int) -> dict[str, str]:
        self.writer = _Writers(writer_count(get_engine().dialect.name), min(walkers, WRITER_QUEUE_PAGES))
        self._limit = max(1, walkers)
        pending = sum(1 for run in self.runs for walk in run.ranges if walk.state == "pending")
        with self._cond:
            for _ in range(min(self._limit, max(1, pending))):
                self._start_walker()
        joined = 0
        while True:  # walkers may add others until the last one ends
            with self._cond:
                if joined == len(self._threads):
                    break
                thread = self._threads[joined]
            thread.join()
            joined += 1
        self.writer.close()
        if self.fatal is not None:
            raise self.fatal
        return self.outcome

    def _start_walker(self) -> None:
        """(Under the lock, so `run` never sees a walker it cannot join yet: a new thread waits for
        the lock only once it runs, and `start` returns before that.)"""
        thread = threading.Thread(target=self._work, name=f"backfill-walk-{len(self._threads)}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _call_walker_to_halve(self) -> None:
        """(Under the lock.) Another walker when a range goes on (it could be halved) and no walker
        is idle to do it, below the limit."""
        if not self._idle and len(self._threads) < self._limit and self.fatal is None:
            self._start_walker()

    def _work(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            run, walk = taken
            try:
                self._walk(run, walk)
            except Exception as exc:  # noqa: BLE001 - the resource ends failed, the others go on
                with self._cond:
                    run.failure = run.failure or exc
                    walk.state = "pending" if walk.state in ("walking", "closing") else walk.state
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which raises it
                with self._cond:
                    self.fatal = self.fatal or exc
                    self._cond.notify_all()
                return
            self._conclude_if_over(run)

    def _take(self) -> tuple[_ResourceRun, _Range] | None:
        """A range to walk: a pending one, else the older half of the busiest (its split on the
        way to the store); None when all is done."""
        with self._cond:
            taken, split = self._choose()
        if split is not None:
            self.writer.put(split)
        return taken

    def _choose(self) -> tuple[tuple[_ResourceRun, _Range] | None, _Split | None]:
        """(Under the lock.) A pending range, else one split off the busiest and its split; waits
        while neither exists and walks are still going."""
        while self.fatal is None:
            live = [run for run in self.runs if run.failure is None]
            for run in live:
                for walk in run.ranges:
                    if walk.state == "pending":
                        walk.state = "walking"
                        return (run, walk), None
            busy = [(walk.pages_left(), run, walk) for run in live for walk in run.ranges if walk.state == "walking"]
            for left, run, walk in sorted(busy, key=lambda b: b[0], reverse=True):
                if left < MIN_SPLIT_PAGES and walk.created_from is not None:
                    break
                split = run.split(walk)
                if split is not None:
                    split.older.state = "walking"
                    return (run, split.older), split
            if not any(walk.state in BUSY for run in self.runs for walk in run.ranges):
                return None, None
            self._idle += 1
            try:
                self._cond.wait(IDLE_WAIT_SECONDS)
            finally:
                self._idle -= 1
        return None, None

    def _walk(self, run: _ResourceRun, walk: _Range) -> None:
        """Page through one range, newest first, storing each page with the range's cursor. A
        range made by a split in this run puts its first page once the split (which adds the
        range's row) is stored: its pages may go to another writer than the split."""
        split = walk.made_by
        after = walk.cursor
        while True:
            with self._cond:
                if self.fatal is not None or run.failure is not None:
                    walk.state = "pending"
                    return
                params = run.params(walk)
            items, has_more = self._list(run, after, params)
            requested_at = self.gateway.read_stamp()  # Stripe's clock when asked: against its event times
            with self._cond:
                low = walk.created_from  # moved up if an idle walker took the older part meanwhile
                kept = items if low is None else [o for o in items if _created(o) >= low]
                done = not has_more or not items or len(kept) < len(items)
                cursor = (kept[-1]["id"], _created(kept[-1])) if kept else None
                if cursor is not None:
                    walk.cursor, walk.cursor_created = cursor
                    walk.top = _created(kept[0]) if walk.top is None else walk.top
                    run.newest = max(run.newest or 0, _created(kept[0]))
                    walk.pages += 1
                if done:
                    walk.state = "closing"  # read to the end; done once its last page is stored
                else:
                    self._call_walker_to_halve()
            page = run.page(walk, kept, requested_at, cursor, done)
            after = items[-1]["id"] if items else after
            del items, kept  # only the page's rows wait for the writer: memory stays a page a walker
            if split is not None:
                split.stored.wait()
                if split.error is not None:
                    raise split.error
                split = None
            self.writer.put(page)
            if done:  # the resource may be concluded once this range's pages are all stored
                page.stored.wait()
                if page.error is not None:
                    raise page.error
            with self._cond:
                if done:
                    walk.state = "done"
                self._cond.notify_all()
            if done:
                return

    def _list(self, run: _ResourceRun, after: str | None, params: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        spec = run.spec
        try:
            return self.gateway.list_page(spec.collection, after, params=params, on_throttled=run.throttled_once)
        except StripeRequestFailed as exc:
            if exc.code != "permission_denied" or "expand" not in params:
                raise
            # The key may read the list but not what it carries expanded (a restricted key without
            # Payment Methods: Read): list without, and say so on the carried resource.
            run.without_expansions = True
            params = {k: v for k, v in params.items() if k != "expand"}
            return self.gateway.list_page(spec.collection, after, params=params, on_throttled=run.throttled_once)

    def _conclude_if_over(self, run: _ResourceRun) -> None:
        with self._cond:
            walking = any(walk.state in BUSY for walk in run.ranges)
            over = not walking and (run.failure is not None or run.open_ranges == 0)
            if not over or run.concluded or self.fatal is not None:
                return
            run.concluded = True
            self._cond.notify_all()
        status, note = _outcome_of(run)
        if run.failure is not None:
            log.warning("Backfill of %s %s: %s", run.name, status, run.failure)
        _finish(run.name, status, note, run.take_throttled())
        self.outcome[run.name] = status
        for name in self.carried.get(run.name, []):
            spec = RESOURCES[name]
            if status == "done" and run.without_expansions:
                self.outcome[name] = "skipped"
                _finish(name, "skipped", permission_note(spec))
            elif status == "done":
                self.outcome[name] = "done"
                _finish(name, "done", None)
            else:
                self.outcome[name] = status
                _finish(name, status, f"Listed with {run.name}, which did not finish: {note}")

    def errors(self) -> dict[str, BaseException]:
        return {run.name: run.failure for run in self.runs if run.failure is not None}


# One backfill at a time per store, in this process and across workers: two at once would walk
# the same ranges and move the same cursors (the second waits, then syncs again).
BACKFILL_LOCK = "stripe-backfill"
SWEEP_LOCK = "stripe-card-sweep"


def _walk_resources(gateway: StripeGateway, names: list[str]) -> tuple[dict[str, str], dict[str, BaseException]]:
    """Walk `names` (and the resources that carry any of them) to the end; outcome and failures."""
    with locks.named_lock(BACKFILL_LOCK):
        return _walk_resources_alone(gateway, names)


def _walk_resources_alone(gateway: StripeGateway, names: list[str]) -> tuple[dict[str, str], dict[str, BaseException]]:
    walked = [n for n in RESOURCES if n in names or any(RESOURCES[m].embedded_in == n for m in names)]
    walked = [n for n in walked if RESOURCES[n].embedded_in is None]
    carried = {n: [m for m in names if RESOURCES[m].embedded_in == n] for n in walked}
    runs = []
    for name in walked:
        ranges, resume = _begin(name)
        runs.append(_ResourceRun(RESOURCES[name], ranges))
        runs[-1].carrying = carried[name]
        for carried_name in carried[name]:
            _begin_carried(carried_name, resume)
    walks = _Walks(gateway, runs, carried)
    outcome = walks.run(walker_count())
    return outcome, walks.errors()


def _begin_carried(resource: str, resume: bool) -> None:
    """A resource listed inside another's pages runs, and resumes, with it."""
    with session_scope() as session:
        state = sync_state(session, resource)
        if not (resume and state.status in ("running", "failed")):
            state.synced_count, state.cursor, state.throttled_count = 0, None, 0
            state.started_at = utcnow()
        state.status, state.last_error = "running", None


def backfill_resource(gateway: StripeGateway, resource: str) -> str:
    """Copy one resource (with what its pages carry), resuming each range after its saved cursor
    if a previous run stopped midway. Raises what stopped it, after recording it."""
    outcome, errors = _walk_resources(gateway, [resource])
    host = RESOURCES[resource].embedded_in or resource
    if host in errors and outcome.get(resource) != "skipped":
        raise errors[host]
    return outcome[resource]


def backfill(
    gateway: StripeGateway | None = None, resources: Iterable[str] = tuple(RESOURCES), sweep: bool = True
) -> dict[str, str]:
    """Backfill resources in parallel; returns each resource's final status (`done`, `skipped` or
    `failed`). Event polling starts from when this run began. Then, with `sweep`, each customer's
    own list of payment methods, once (`sweep_cards`): the cards a customer saved but never made
    their default are in no other list."""
    gateway = gateway or StripeGateway()
    names = list(resources)
    with locks.named_lock(BACKFILL_LOCK):
        # An event cursor in Stripe's time; the machine's clock may be minutes off, and the first
        # poll from a position no event gave looks back SKEW_OVERLAP, so that is enough here.
        _mark_events_start(int(time.time()) - 60)
        outcome, _errors = _walk_resources_alone(gateway, names)
    if sweep and outcome.get("payment_methods") == "done" and sweep_due():
        try:
            sweep_cards(gateway)
        except Exception as exc:  # noqa: BLE001 - recorded in its sync_state row; the backfill itself is done
            log.warning("The per-customer payment methods sweep stopped: %s", exc)
    return {name: outcome.get(name, "failed") for name in names}


# --- payment methods a customer list does not carry ------------------------------------------
#
# The customer list carries each customer's default card and sources (expanded), and every
# charge carries its card's brand and last four digits, so cards are searchable from the first
# sync without a request per customer. A PaymentMethod a customer saved but never made their
# default is in no list but the customer's own (`/v1/customers/{id}/payment_methods`): those are
# read in the background after everything else (`sweep_cards`, about half the rate, once,
# resumable by customer id), and at once for a customer whose page is opened before the sweep
# reached them (`refresh_customer_cards`). From then on events keep cards current:
# payment_method.attached / .detached / .updated carry the card itself, and a customer.updated
# naming a default the store does not hold makes Billy fetch it (`fetch_named_cards`).

CARD_SWEEP = "payment_methods:per_customer"  # its sync_state row (cursor: the last customer done)
SWEEP_BATCH = 40  # customers per stored batch: a killed sweep reads at most this many again
# Requests in flight at once: a quarter of the backfill's walkers (at least 2), about half the
# request ceiling, so pages, refunds and events still find room under the gate meanwhile.
MIN_SWEEP_PARALLEL = 2
# Events cover every change after a sweep for as long as Stripe keeps them; past that only a new
# sweep is sure (stripe_events' full re-backfill after a longer gap comes here too).
SWEEP_VALID_SECONDS = 30 * 24 * 3600
# A customer page opened again within this long does not ask Stripe again.
ON_DEMAND_TTL_SECONDS = 600
_listed_on_demand: dict[tuple[str, str], datetime] = {}  # (store, customer) → when
_listed_lock = threading.Lock()


def list_customer_cards(gateway: StripeGateway, customer_id: str) -> tuple[list[dict[str, Any]], int]:
    """Every payment method one customer has saved (cards saved as sources included), and the
    version to store them with: Stripe's clock when the first page was asked for."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    stamp: int | None = None
    while True:
        items, has_more = gateway.list_page(
            "payment_methods", after, path=f"/v1/customers/{customer_id}/payment_methods"
        )
        stamp = gateway.read_stamp() if stamp is None else stamp
        found += items
        if not has_more or not items:
            return found, stamp
        after = items[-1]["id"]


def sweep_due() -> bool:
    """Whether the per-customer sweep has not completed within the event retention."""
    with session_scope() as session:
        state = session.get(SyncState, CARD_SWEEP)
        if state is None or state.status != "done" or state.finished_at is None:
            return True
        return (utcnow() - state.finished_at).total_seconds() > SWEEP_VALID_SECONDS


def sweep_cards(gateway: StripeGateway) -> str:
    """Read every stored customer's own payment methods, a batch at a time in customer id order
    (the cursor: the last customer done), so a killed sweep continues where it stopped. Returns
    "busy" at once when another sweep is under way (in this process or another worker)."""
    with locks.try_named_lock(SWEEP_LOCK) as mine:
        return _sweep_cards(gateway) if mine else "busy"


def _sweep_cards(gateway: StripeGateway) -> str:
    with session_scope() as session:
        state = sync_state(session, CARD_SWEEP)
        if not (state.status in ("running", "failed") and state.cursor):
            state.synced_count, state.cursor, state.throttled_count = 0, None, 0
            state.started_at = utcnow()
        state.status, state.last_error = "running", None
        cursor = state.cursor
    spec = RESOURCES["payment_methods"]
    try:
        parallel = max(MIN_SWEEP_PARALLEL, walker_count() // 4)
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="card-sweep") as pool:
            while True:
                with session_scope() as session:
                    query = select(StripeCustomer.id).where(col(StripeCustomer.deleted).is_(False))
                    if cursor:
                        query = query.where(StripeCustomer.id > cursor)
                    batch = list(session.exec(query.order_by(col(StripeCustomer.id)).limit(SWEEP_BATCH)))
                if not batch:
                    break
                listed = list(pool.map(lambda c: list_customer_cards(gateway, c), batch))
                cards = [card for found, _ in listed for card in found]
                _store_cards(cards, min(stamp for _, stamp in listed), CARD_SWEEP, batch[-1])
                cursor = batch[-1]
    except StripeRequestFailed as exc:
        denied = exc.code == "permission_denied"
        _finish(CARD_SWEEP, "skipped" if denied else "failed", permission_note(spec) if denied else str(exc))
        raise
    except Exception as exc:
        _finish(CARD_SWEEP, "failed", f"internal error ({type(exc).__name__})")
        raise
    _finish(CARD_SWEEP, "done", None)
    return "done"


def _store_cards(
    cards: list[dict[str, Any]], requested_at: float, progress: str | None, cursor: str | None
) -> list[str]:
    version = int(requested_at) - 1

    def store(session: Session) -> list[str]:
        written: list[str] = []
        for kind in {card.get("object") or "payment_method" for card in cards}:
            same = [card for card in cards if (card.get("object") or "payment_method") == kind]
            if kind in mirror.KINDS:
                written += mirror.write_objects(session, kind, same, version)
        if progress is not None:
            state = sync_state(session, progress)
            state.cursor = cursor
            state.synced_count += len(cards)
        return written

    written = run_transaction(store)
    notices.publish("payment_method", written)
    return written


def _swept(customer_id: str) -> bool:
    """Whether a sweep within the event retention has read this customer's own list already."""
    with session_scope() as session:
        state = session.get(SyncState, CARD_SWEEP)
        if state is None:
            return False
        if state.status == "done":
            return not sweep_due()
        if not state.cursor:
            return False
        # Compared by the store, in the order the sweep walks (a PostgreSQL collation is not Python's).
        return bool(session.execute(sa.select(sa.literal(customer_id) <= sa.literal(state.cursor))).scalar())


def refresh_customer_cards(actor: Actor, customer_id: str, gateway: StripeGateway | None = None) -> bool:
    """A customer page opened before the sweep reached them: read their payment methods now.
    Returns whether anything was stored (the page then shows it: a `payment_method` notice)."""
    audit.authorize_read(actor, "customers.view", customer_id)
    now = utcnow()
    listed = (get_settings().resolved_database_url, customer_id)
    with _listed_lock:
        last = _listed_on_demand.get(listed)
        if last is not None and (now - last).total_seconds() < ON_DEMAND_TTL_SECONDS:
            return False
    if stripe_disconnected() or _swept(customer_id):
        return False
    with session_scope() as session:
        customer = session.get(StripeCustomer, customer_id)
        if customer is None or customer.deleted:
            return False
    gateway = gateway or StripeGateway()
    try:
        found, requested_at = list_customer_cards(gateway, customer_id)
    except BillyError as exc:  # the page shows what the store holds; the sweep tries again later
        log.info("Could not read a customer's payment methods on demand: %s", exc)
        return False
    written = _store_cards(found, requested_at, None, None)
    with _listed_lock:
        if len(_listed_on_demand) > 10_000:
            _listed_on_demand.clear()
        _listed_on_demand[listed] = now
    return bool(written)


def fetch_named_cards(gateway: StripeGateway, kind: str, obj: dict[str, Any]) -> list[str]:
    """After an event: the payment methods `obj` names (a customer's new default) that the store
    lacks, read from Stripe and stored. Never fails the event: a card Stripe no longer has, or a
    refusal, is only logged."""
    spec = mirror.KINDS.get(kind)
    if spec is None or spec.names_cards is None or obj.get("deleted"):
        return []
    named = spec.names_cards(obj)
    if not named:
        return []
    with session_scope() as session:
        missing = [card_id for card_id in named if mirror.stored_version(session, "payment_method", card_id) is None]
    found = []
    stamps: list[int] = []
    for card_id in missing:
        try:
            found.append(gateway.retrieve("payment_method", card_id))
            stamps.append(gateway.read_stamp())
        except BillyError as exc:
            log.info("A payment method a customer names could not be read: %s", exc)
    return _store_cards(found, min(stamps), None, None) if found else []


def _mark_events_start(since: int) -> None:
    """Polling begins at the first backfill's start (overlap is harmless: events are deduplicated)."""
    with session_scope() as session:
        state = sync_state(session, EVENTS)
        if state.last_event_created is None:
            state.last_event_created = since


# Below this much time into a run, a rate is noise: no time-left estimate yet.
ETA_AFTER_SECONDS = 2.0


@dataclass(frozen=True)
class ResourceProgress:
    """One resource's sync as a page shows it. While a re-sync runs, `synced_count` restarts
    from 0 but `stored` keeps the store's rows (the last complete picture plus this run's
    news), so a total read from `stored` never drops; `expected`, `percent` and `eta_seconds`
    say how far the run is against that picture."""

    resource: str
    status: str
    synced_count: int
    last_error: str | None
    finished_at: datetime | None  # None while running
    throttled_count: int = 0
    required: bool = True
    # While running: rows of this resource in the store now, deleted ones left out. Otherwise the
    # rows its last run synced: counting a million charges costs about 90 ms, too dear for every
    # dashboard load, and only a running resource's count can differ from what the page needs.
    stored: int = 0
    # About how many this run will list: the store's rows from an earlier run; None when no
    # earlier run left a picture (a first sync) or this run has already re-read all of it.
    expected: int | None = None
    started_at: datetime | None = None
    percent: int | None = None  # while running against a known `expected`: 0-99
    eta_seconds: int | None = None  # while running: about how long is left, None when unknown


def estimate(
    synced: int, expected: int | None, started_at: datetime | None, now: datetime
) -> tuple[int | None, int | None]:
    """Percent done (capped at 99: a run is done when it says so, not when it reaches the old
    count) and seconds left at the rate so far; None where there is nothing to go on."""
    if not expected or expected <= 0:
        return None, None
    percent = min(99, synced * 100 // expected)
    elapsed = (now - started_at).total_seconds() if started_at else 0.0
    if synced <= 0 or elapsed < ETA_AFTER_SECONDS:
        return percent, None
    remaining = max(expected - synced, 0)
    return percent, math.ceil(remaining * elapsed / synced)


def _stored_counts(session: Session, names: set[str]) -> dict[str, int]:
    """The named resources' rows in the store (not deleted), in one statement: one COUNT each."""
    if not names:
        return {}

    def count(spec: StripeResource) -> sa.ScalarSelect[int]:
        table = table_of(spec.model)
        return sa.select(sa.func.count()).select_from(table).where(table.c.deleted.is_(False)).scalar_subquery()

    row = session.execute(sa.select(*(count(RESOURCES[name]).label(name) for name in sorted(names)))).one()
    return {name: int(row._mapping[name] or 0) for name in names}


def _resource_progress(
    spec: StripeResource, state: SyncState | None, counted: dict[str, int], now: datetime
) -> ResourceProgress:
    if state is None:
        return ResourceProgress(spec.collection, "pending", 0, None, None, 0, spec.required, 0)
    running = state.status == "running"
    stored = counted.get(spec.collection, state.synced_count)
    # An earlier run ended (its finish time survives a new start) and the store holds rows this run
    # has not re-read: that picture is about what this run will list. A first sync has none, even
    # when an event has stored a row or two before the backfill reached them.
    had_picture = state.finished_at is not None and stored > state.synced_count
    expected = stored if had_picture else None
    percent, eta = estimate(state.synced_count, expected, state.started_at, now) if running else (None, None)
    return ResourceProgress(
        resource=spec.collection,
        status=state.status,
        synced_count=state.synced_count,
        last_error=state.last_error,
        finished_at=None if running else state.finished_at,
        throttled_count=state.throttled_count,
        required=spec.required,
        stored=stored,
        expected=expected,
        started_at=state.started_at,
        percent=percent,
        eta_seconds=eta,
    )


def progress(actor: Actor) -> list[ResourceProgress]:
    """Every listed resource's sync: state, counts, and while running how far it is."""
    audit.authorize_read(actor, "sync.view")
    with session_scope() as session:
        states = {s.resource: s for s in session.exec(select(SyncState))}
        running = {name for name, s in states.items() if name in RESOURCES and s.status == "running"}
        counted = _stored_counts(session, running)
    now = utcnow()
    return [_resource_progress(spec, states.get(name), counted, now) for name, spec in RESOURCES.items()]


class BackgroundSync:
    """At most one backfill at a time per process, run off the web server's event loop."""

    def __init__(self, target: Callable[[StripeGateway | None], Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._target = target or backfill

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, gateway: StripeGateway | None = None) -> bool:
        with self._lock:
            if self.running:
                return False
            self._thread = threading.Thread(target=self._run, args=(gateway,), name="billy-sync", daemon=True)
            self._thread.start()
            return True

    def _run(self, gateway: StripeGateway | None) -> None:
        try:
            self._target(gateway)
        except Exception:  # reported per resource in sync_state
            log.exception("Background sync stopped")

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


background_sync = BackgroundSync()


@functools.cache
def disconnected_condition() -> sa.ColumnElement[bool]:
    """SQL for "the Owner disconnected Stripe": the connection row keeps no key and says when it
    was disconnected. A statement reading something else can read this with it. Built once:
    every webhook delivery reads it."""
    table = table_of(StripeConnection)
    return sa.exists().where(
        sa.or_(table.c.secret_name.is_(None), table.c.secret_name == ""), table.c.disconnected_at.is_not(None)
    )


def stripe_disconnected(session: Session | None = None) -> bool:
    """Whether the Owner disconnected Stripe (Settings → Stripe connection): then syncing has
    nothing to do until a key is connected again. Read in `session` if given (a caller's own
    transaction), else in one of its own."""
    if session is None:
        with session_scope() as own:
            return stripe_disconnected(own)
    return bool(session.execute(sa.select(disconnected_condition())).scalar())


def start_sync(actor: Actor) -> bool:
    """Start a backfill in the background (Owner action: it spends the Stripe rate limit)."""
    with audit.audited(actor, "sync.run") as draft:
        authorize(actor, "sync.run")
        if stripe_disconnected():
            raise StripeNotConnected()  # a run would only fail every resource: say why instead
        started = background_sync.start()
        draft.details["started"] = started
    return started
