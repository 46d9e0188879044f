"""Backfill: copying every Stripe object Billy shows into the store, resumably.

Each resource pages newest first and stores every page in one transaction together with
its cursor, so a killed run resumes after the last stored page. Resources run in
parallel under one rate gate (`stripe_gateway.RateGate`) with retries on 429/5xx. The
outcome is reported honestly per resource: `done`, `done` with the number of times Stripe
slowed it down, `skipped` (the key may not read it: a note says which permission would
unlock what) or `failed` with Stripe's reason. Never "done" for a run that did not finish.

Rows are written through `mirror.write_objects` with the page's request time as their
version, so a backfill never overwrites a fresher copy written by an event or a refund.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from services import audit, mirror, notices, resources, stripe_rows
from services.db import run_transaction, session_scope
from services.errors import BillyError, StripeNotConnected, StripeRequestFailed
from services.models import StripeConnection, StripeCustomer, SyncState, table_of, utcnow
from services.permissions import Actor, authorize
from services.resources import StripeResource
from services.stripe_gateway import StripeGateway

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


class _Run:
    """One resource's run: counts 429s as they happen and stores each page with its cursor."""

    def __init__(self, resource: StripeResource) -> None:
        self.resource = resource
        self.throttled = 0
        self._lock = threading.Lock()

    def throttled_once(self) -> None:
        with self._lock:
            self.throttled += 1

    def take_throttled(self) -> int:
        with self._lock:
            n, self.throttled = self.throttled, 0
            return n

    def store_page(self, objects: list[dict[str, Any]], requested_at: float, cursor: str | None) -> None:
        # The page shows Stripe as it was when asked; a second back keeps ties on the safe side.
        version, throttled = int(requested_at) - 1, self.take_throttled()

        def store(session: Session) -> list[str]:
            written = mirror.write_objects(session, self.resource.object, objects, version)
            state = sync_state(session, self.resource.collection)
            state.cursor = cursor
            state.synced_count += len(objects)
            state.throttled_count += throttled
            return written

        notices.publish(self.resource.object, run_transaction(store))


def _begin(resource: str) -> str | None:
    """Mark the resource running; returns the cursor to resume after (None: from the start)."""
    with session_scope() as session:
        state = sync_state(session, resource)
        # A run that was killed (still "running") or failed midway continues after its last page.
        resuming = state.status in ("running", "failed") and state.cursor is not None
        if not resuming:
            state.synced_count, state.cursor, state.throttled_count = 0, None, 0
            state.started_at = utcnow()
        # `finished_at` stays: while running it says an earlier run ended, so the store holds its
        # picture (`progress` reports no finish time for a running resource).
        state.status, state.last_error = "running", None
        return state.cursor


def _finish(resource: str, status: str, error: str | None, throttled: int = 0) -> None:
    with session_scope() as session:
        state = sync_state(session, resource)
        state.status, state.last_error, state.finished_at = status, error, utcnow()
        state.throttled_count += throttled
        if status != "failed":
            state.cursor = None
    notices.publish("sync", [resource])


def _page_through(gateway: StripeGateway, run: _Run, cursor: str | None) -> None:
    """Page through a list, fetching the next page while the last one is being stored (the
    request, not the write, is what the rate limit allows a fixed number of)."""
    spec = run.resource
    pages: queue.Queue[tuple[list[dict[str, Any]], float, bool] | BaseException] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def fetch(after: str | None) -> None:
        try:
            while not stop.is_set():
                # Versions rows against Stripe's event `created` times: the wall clock, not `clock`.
                requested_at = time.time()
                items, has_more = gateway.list_page(
                    spec.collection, after, params=spec.list_params, on_throttled=run.throttled_once
                )
                pages.put((items, requested_at, has_more and bool(items)))
                if not has_more or not items:
                    return
                after = items[-1]["id"]
        except BaseException as exc:  # noqa: BLE001 - handed to the storing thread, which raises it
            pages.put(exc)

    fetcher = threading.Thread(target=fetch, args=(cursor,), name=f"backfill-{spec.collection}-fetch", daemon=True)
    fetcher.start()
    try:
        while True:
            got = pages.get()
            if isinstance(got, BaseException):
                raise got
            items, requested_at, more = got
            if items:
                run.store_page(items, requested_at, items[-1]["id"])
            if not more:
                return
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                pages.get_nowait()  # unblock a fetcher waiting to hand over a page


def _per_customer(gateway: StripeGateway, run: _Run, cursor: str | None) -> None:
    """Stripe lists payment methods per customer: walk the stored customers in id order,
    the cursor being the last customer done."""
    while True:
        with session_scope() as session:
            query = select(StripeCustomer.id).where(col(StripeCustomer.deleted).is_(False))
            if cursor:
                query = query.where(StripeCustomer.id > cursor)
            batch = list(session.exec(query.order_by(col(StripeCustomer.id)).limit(50)))
        if not batch:
            return
        for customer_id in batch:
            requested_at = time.time()  # a version stamp in Stripe's time: the wall clock, not `clock`
            found: list[dict[str, Any]] = []
            after: str | None = None
            while True:
                items, has_more = gateway.list_page(
                    "payment_methods",
                    after,
                    on_throttled=run.throttled_once,
                    path=f"/v1/customers/{customer_id}/payment_methods",
                )
                found += items
                if not has_more or not items:
                    break
                after = items[-1]["id"]
            run.store_page(found, requested_at, customer_id)
            cursor = customer_id


def backfill_resource(gateway: StripeGateway, resource: str) -> str:
    """Copy one resource, resuming after the saved cursor if a previous run stopped midway."""
    spec = RESOURCES[resource]
    cursor = _begin(resource)
    run = _Run(spec)
    try:
        (_per_customer if spec.after == "customers" else _page_through)(gateway, run, cursor)
    except StripeRequestFailed as exc:
        if exc.code == "permission_denied":
            _finish(resource, "skipped", permission_note(spec), run.take_throttled())
            return "skipped"
        reason = (
            "Stripe kept answering “too many requests”; the sync will continue from here on the next run."
            if exc.code == "rate_limited"
            else str(exc)
        )
        _finish(resource, "failed", reason, run.take_throttled())
        raise
    except BillyError as exc:
        _finish(resource, "failed", str(exc), run.take_throttled())
        raise
    except Exception as exc:
        _finish(resource, "failed", f"internal error ({type(exc).__name__})", run.take_throttled())
        raise
    _finish(resource, "done", None, run.take_throttled())
    return "done"


def backfill(gateway: StripeGateway | None = None, resources: Iterable[str] = tuple(RESOURCES)) -> dict[str, str]:
    """Backfill resources in parallel; returns each resource's final status
    (`done`, `skipped` or `failed`). Event polling starts from when this run began."""
    gateway = gateway or StripeGateway()
    names = list(resources)
    _mark_events_start(int(time.time()) - 60)  # an event cursor in Stripe's time: the wall clock, not `clock`
    futures: dict[str, Future[str]] = {}

    def run(name: str) -> str:
        first = RESOURCES[name].after
        if first in futures:
            futures[first].exception()  # wait for it; its own outcome is reported on its own
        return backfill_resource(gateway, name)

    with ThreadPoolExecutor(max_workers=len(names) or 1, thread_name_prefix="backfill") as pool:
        for name in sorted(names, key=lambda n: RESOURCES[n].after is not None):
            futures[name] = pool.submit(run, name)
    outcome = {}
    for name in names:
        exc = futures[name].exception()
        if exc is not None:
            log.warning("Backfill of %s failed: %s", name, exc)
        outcome[name] = "failed" if exc else futures[name].result()
    return outcome


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


def stripe_disconnected() -> bool:
    """Whether the Owner disconnected Stripe (Settings → Stripe connection): then syncing has
    nothing to do until a key is connected again."""
    with session_scope() as session:
        row = session.exec(select(StripeConnection)).first()
        return row is not None and not row.secret_name and row.disconnected_at is not None


def start_sync(actor: Actor) -> bool:
    """Start a backfill in the background (Owner action: it spends the Stripe rate limit)."""
    with audit.audited(actor, "sync.run") as draft:
        authorize(actor, "sync.run")
        if stripe_disconnected():
            raise StripeNotConnected()  # a run would only fail every resource: say why instead
        started = background_sync.start()
        draft.details["started"] = started
    return started
