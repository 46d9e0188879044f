"""Keeping the store current after the backfill: Stripe events, by webhook or by polling.

Four rules make any delivery order safe (DESIGN, Sync):
- **Once per event id.** `stripe_event` is keyed by Stripe's id; a duplicate finds its
  row and the transaction writes nothing.
- **Never older over newer.** Each mirror row keeps the Stripe time its copy reflects. An
  event older than the stored copy is recorded as `older` and not applied.
- **Ties are refetched.** Two events in the same second cannot be ordered by `created`,
  so an event from the same second as the stored copy makes Billy read the object from
  Stripe and store that (`refetched`). Refetches of one object take turns (a named lock), so
  the copy read last is the copy written last.
- **Racing deliveries are run again.** Two deliveries of one object in flight at once may both
  read the same stored version; the one whose write then finds a copy of its second or later
  (written meanwhile) runs its transaction again, and is then a tie or `older`.

Polling (`/v1/events`) is how an instance Stripe's webhooks cannot reach stays current. It
goes on from the newest event seen, by either road (`polling_position`: the log's newest, or
where a backfill began); a gap longer than Stripe's 30-day event retention cannot be replayed,
so it triggers a full re-backfill instead. Polled events are applied in Stripe's own order: by `created`, and
within one second in the order Stripe lists them (never by id, which is random).

Clock skew. Every comparison with an event is in Stripe's time: event `created` against the
stored copy's version, which Billy's own writes stamp with Stripe's `Date` header, not Billy's
clock. Billy's clock (`services.clock`) only judges a delivery's signature age (Stripe's
tolerance, 300 s) and the age of the event log. So a skew of minutes loses and reorders nothing;
one past 300 s makes deliveries look replayed (refused, and Stripe retries them; polling still
brings their events).

The event log (`stripe_event`) is pruned after `BILLY_EVENT_LOG_RETENTION_DAYS` (30 by default)
in batches of `PRUNE_BATCH` rows, each its own short transaction (`prune_event_log`, hourly). A
pruned id no longer de-duplicates, which is safe: Stripe retries a delivery for 3 days, a replay
of an old delivery fails its signature age, and an event resent fresh from Stripe's Dashboard is
older than the stored copy, so it is recorded as `older` and changes nothing.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from services import audit, clock, mirror, notices, sync
from services.config import get_settings
from services.db import Overtaken, delete_in_batches, insert_on_conflict, run_transaction, session_scope
from services.errors import BillyError, StripeRequestFailed, ValidationFailed, WebhookSignatureInvalid
from services.locks import named_lock
from services.models import StripeEvent, SyncState, table_of, utcnow
from services.permissions import Actor, authorize
from services.secrets import get_secret_store
from services.stripe_gateway import StripeGateway, verify_webhook

log = logging.getLogger(__name__)

WEBHOOK_SECRET = "stripe-webhook-secret"
SIGNATURE_TOLERANCE_SECONDS = 300  # Stripe's own default: a replayed old delivery is refused
EVENT_RETENTION_SECONDS = 30 * 24 * 3600
POLL_OVERLAP = 5  # seconds a poll looks back before the newest event seen
SKEW_OVERLAP = 15 * 60  # ... and before a position set by Billy's clock, which may run minutes ahead of Stripe's
# Object types whose `*.deleted` event means the object is gone (a cancelled subscription
# stays, with status `canceled`); `card` is a saved source's `customer.source.deleted`.
DELETABLE = frozenset({"customer", "product", "price", "plan", "invoice", "payment_method", "card"})


class WebhookRejected(BillyError):
    code = "webhook_rejected"


@dataclass(frozen=True)
class Applied:
    event_id: str
    outcome: str  # applied | older | refetched | ignored | duplicate


def _record_event(session: Session, event: dict[str, Any], via: str, outcome: str) -> bool:
    """Insert the event row; False when this id was already there (a duplicate delivery)."""
    obj = (event.get("data") or {}).get("object") or {}
    row = {
        "id": event["id"],
        "type": str(event.get("type") or "")[:100],
        "created": int(event.get("created") or 0),
        "object_type": obj.get("object"),
        "object_id": obj.get("id"),
        "received_via": via,
        "received_at": utcnow(),
        "outcome": outcome,
        "raw": event,
    }
    return session.execute(_record_event_stmt(session.get_bind().dialect.name), row).first() is not None


@functools.cache
def _record_event_stmt(dialect: str) -> Any:
    """The event log's insert, built once per store kind and given each row's values when run:
    building it per delivery was a fifth of a delivery's time in Python (cProfile)."""
    table = table_of(StripeEvent)
    insert = insert_on_conflict(dialect, table)
    return insert.on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)


def _already_recorded(session: Session, event_id: str) -> bool:
    table = table_of(StripeEvent)
    return session.execute(sa.select(table.c.id).where(table.c.id == event_id)).first() is not None


@dataclass(frozen=True)
class Refusal:
    """Why a delivery may be refused: `condition`, a SQL truth read in the delivery's own
    transaction (with its first statement, so it costs no round trip of its own), and the error
    raised when it holds."""

    condition: Callable[[], sa.ColumnElement[bool]]
    error: Callable[[], BillyError]


def _check(session: Session, refusal: Refusal | None) -> None:
    """A refusal read by a statement of its own (a transaction that reads no stored version)."""
    if refusal is not None and session.execute(sa.select(refusal.condition())).scalar():
        raise refusal.error()


def apply_event(
    event: dict[str, Any],
    via: str,
    gateway: StripeGateway | None = None,
    *,
    refusal: Refusal | None = None,
) -> Applied:
    """Apply one event to the store, whatever order and however often it arrives.

    The usual delivery (a version the store has not seen, or an older one) is one transaction:
    compare with the stored version, record the event, write the copy, one commit. Under a burst
    of webhooks the separate read, write and bookkeeping transactions each paid a round trip and
    a commit (bench/burst). Only a tie (the stored copy is from the event's very second) leaves
    the transaction to read Stripe's current copy, and records it in a second one. `refusal` is
    read by each transaction's first statement (with the stored version, where one is read):
    when its condition holds, its error is raised and nothing is written."""
    obj = (event.get("data") or {}).get("object") or {}
    kind, object_id, created = obj.get("object"), obj.get("id"), int(event.get("created") or 0)
    event_id = event["id"]
    if kind not in mirror.KINDS or not object_id:

        def record_ignored(session: Session) -> bool:
            _check(session, refusal)
            return _record_event(session, event, via, "ignored")

        return Applied(event_id, "ignored" if run_transaction(record_ignored) else "duplicate")

    def record_and_write(
        session: Session, copy: dict[str, Any], deleted: bool, outcome: str | None
    ) -> tuple[str, list[str]] | None:
        """(outcome, ids written); None when the store holds a copy of this very second, so
        Stripe's current copy must be read first (`outcome` "refetched" brings it)."""
        if outcome is None:
            refused = refusal.condition() if refusal is not None else sa.false()
            stored, refuse = mirror.stored_version_and(session, kind, object_id, refused)
            if refuse and refusal is not None:
                raise refusal.error()
            if stored is not None and created == stored:
                return ("duplicate", []) if _already_recorded(session, event_id) else None
            outcome = "older" if stored is not None and created < stored else "applied"
        else:
            _check(session, refusal)
        if not _record_event(session, event, via, outcome):
            return "duplicate", []  # recorded before, or by another delivery meanwhile: written then
        if outcome == "older":
            return outcome, []
        written = mirror.write_objects(
            session, kind, [copy], created, deleted=deleted, replace_equal=outcome == "refetched"
        )
        if outcome == "applied" and object_id not in written:
            # Another delivery stored a copy of this second or later after the version was read
            # (both read none, or an older one). Left as it is, this event's copy, perhaps the
            # newer of a same-second pair, would be lost: run again, to find a tie or `older`.
            stored = mirror.stored_version(session, kind, object_id)
            if stored is not None and stored >= created:
                raise Overtaken(f"{kind} {object_id} was stored meanwhile")
        return outcome, written

    copy, deleted = obj, str(event.get("type", "")).endswith(".deleted") and kind in DELETABLE
    done = run_transaction(lambda session: record_and_write(session, copy, deleted, None))
    if done is None:
        # One refetch of an object at a time, across workers: two of them write at the same
        # version, so without the lock the one that read Stripe first could commit last, over
        # the fresher copy.
        with named_lock(f"refetch:{kind}:{object_id}"):
            copy, deleted = _refetch(gateway or StripeGateway(), kind, object_id, obj, deleted)
            done = run_transaction(lambda session: record_and_write(session, copy, deleted, "refetched"))
    assert done is not None  # a fixed outcome always records or finds a duplicate
    outcome, written = done
    if outcome == "duplicate":
        return Applied(event_id, outcome)
    notices.publish(kind, written)
    if written:  # a customer's new default card the store lacks is fetched (issue 16)
        sync.fetch_named_cards(gateway or StripeGateway(), kind, copy)
    return Applied(event_id, outcome)


def _refetch(
    gateway: StripeGateway, kind: str, object_id: str, obj: dict[str, Any], deleted: bool
) -> tuple[dict[str, Any], bool]:
    """Stripe's current copy; an object Stripe no longer has is stored as deleted."""
    try:
        return gateway.retrieve(kind, object_id), False
    except StripeRequestFailed as exc:
        if exc.code == "resource_missing":
            return obj, True
        raise


# --- webhooks -------------------------------------------------------------------------------

# The endpoint's signing secret is kept in memory once read: each of Stripe's deliveries read it
# from the store before, a Key Vault call (with its request limits) per event on Azure. A delivery
# whose signature fails re-reads the store, at most once per this many seconds, so a secret the
# Owner saved on another worker, or an operator set in the vault, is taken up without a restart
# (Stripe retries a delivery refused meanwhile), and forged deliveries cannot flood the vault.
WEBHOOK_SECRET_RECHECK_SECONDS = 10.0
# Kept per store object, so a process that switches stores (the tests do) never mixes them.
_kept_webhook_secret: weakref.WeakKeyDictionary[Any, tuple[float, str]] = weakref.WeakKeyDictionary()


def _webhook_secret(recheck: bool = False) -> str | None:
    """The signing secret: the kept copy, else (or on `recheck`, if the copy is old enough) the
    store's. A store without one is asked again each time: nothing to verify against is not kept."""
    store = get_secret_store()
    kept = _kept_webhook_secret.get(store)
    if kept is not None and (not recheck or time.monotonic() - kept[0] < WEBHOOK_SECRET_RECHECK_SECONDS):
        return kept[1]
    secret = store.get(WEBHOOK_SECRET)
    if secret:
        _kept_webhook_secret[store] = (time.monotonic(), secret)
    else:
        _kept_webhook_secret.pop(store, None)
    return secret


def set_webhook_secret(actor: Actor, secret: str) -> None:
    """The Owner pastes the endpoint's signing secret from Stripe; it goes to the secret store only."""
    with audit.audited(actor, "stripe.webhook_secret") as draft:
        authorize(actor, "stripe.connect")
        secret = (secret or "").strip()
        if not secret.startswith("whsec_") or len(secret) < 20 or any(c.isspace() for c in secret):
            raise ValidationFailed(
                "That is not a webhook signing secret. In Stripe, open Developers → Webhooks → your Billy endpoint "
                "and copy the “Signing secret”; it starts with whsec_."
            )
        store = get_secret_store()
        store.set(WEBHOOK_SECRET, secret)
        _kept_webhook_secret[store] = (time.monotonic(), secret)
        draft.details["secret_hint"] = secret[:6] + "…" + secret[-4:]


def webhook_configured() -> bool:
    return bool(_webhook_secret())


def receive_webhook(payload: bytes, signature: str | None) -> Applied:
    """Verify a delivery (signature and age) and apply it; a refusal writes nothing."""
    secret = _webhook_secret()
    if not secret:
        raise WebhookRejected("Webhooks are not set up on this instance yet.")
    try:
        event = verify_webhook(payload, signature, secret, SIGNATURE_TOLERANCE_SECONDS)
    except WebhookSignatureInvalid as exc:
        newer = _webhook_secret(recheck=True)
        if not newer or newer == secret:
            raise WebhookRejected(exc.message) from None
        try:  # the secret was replaced since it was read
            event = verify_webhook(payload, signature, newer, SIGNATURE_TOLERANCE_SECONDS)
        except WebhookSignatureInvalid as again:
            raise WebhookRejected(again.message) from None
    if event.get("object") != "event" or not event.get("id"):
        raise WebhookRejected("That is not a Stripe event.")
    # Polling goes on from the newest event in the log (`polling_position`), so a delivery
    # needs no bookkeeping of its own: recording its event is enough.
    return apply_event(event, "webhook", refusal=_WHILE_DISCONNECTED)


# Disconnected (Settings → Stripe connection): nothing is synced. Refused, not dropped, so Stripe
# keeps retrying (for three days) and a reconnection within them still receives the changes.
# Read with the delivery's first statement: a statement of its own was one more round trip per
# delivery, 9 % of the server's samples in a burst (py-spy on bench.burst).
_WHILE_DISCONNECTED = Refusal(
    sync.disconnected_condition,
    lambda: WebhookRejected("Stripe is disconnected on this instance; the delivery was not applied."),
)


# --- polling --------------------------------------------------------------------------------


def _advance_event_cursor(state: SyncState, event: dict[str, Any]) -> None:
    """Polling continues from the newest event seen, by webhook or by polling; never backwards."""
    created = int(event.get("created") or 0)
    if state.last_event_created is None or created >= state.last_event_created:
        state.last_event_created, state.cursor = created, event["id"]


def polling_position(session: Session) -> tuple[int | None, str | None]:
    """Where polling goes on from: the newest event seen, whether polled or delivered by webhook
    (the log's newest, one step down its (`created`, `id`) index), or the position a backfill or a
    poll set in `sync_state`, whichever is later; with the event's id (None: a position set by
    Billy's clock). Taken from the log so that a webhook delivery writes nothing but its event:
    one shared row moved by every delivery serialised them all on its lock."""
    state = session.get(SyncState, sync.EVENTS)
    kept = (state.last_event_created, state.cursor) if state is not None else (None, None)
    table = table_of(StripeEvent)
    newest = session.execute(
        sa.select(table.c.created, table.c.id).order_by(table.c.created.desc(), table.c.id.desc()).limit(1)
    ).first()
    if newest is not None and (kept[0] is None or newest.created >= kept[0]):
        return int(newest.created), str(newest.id)
    return kept


def poll_events(gateway: StripeGateway | None = None) -> dict[str, int]:
    """Read events since the newest one seen and apply them oldest first. Returns counts by outcome."""
    gateway = gateway or StripeGateway()
    now = time.time()  # Stripe's time (its events' `created`, its retention), so the wall clock, not `clock`
    with session_scope() as session:
        since, cursor = polling_position(session)
        state = sync.sync_state(session, sync.EVENTS)
        state.status, state.started_at = "running", utcnow()
    if since is None or since < now - EVENT_RETENTION_SECONDS + 3600:
        # Nothing to continue from, or older than Stripe keeps: only a full copy is sure.
        log.info("No replayable event history; starting a full backfill")
        with session_scope() as session:
            state = sync.sync_state(session, sync.EVENTS)
            # Billy's clock, not an event's time: the first poll from it looks back further (SKEW_OVERLAP).
            state.last_event_created, state.cursor, state.status = int(now) - 60, None, "done"
        sync.background_sync.start(gateway)
        return {"backfill": 1}
    counts: dict[str, int] = {}
    events: list[dict[str, Any]] = []
    try:
        # A few seconds of overlap: events of the same second may have arrived after the last poll. A
        # position not taken from an event (no event id: a backfill's start, by Billy's clock) may be
        # minutes ahead of Stripe's clock, so the first poll from it looks back SKEW_OVERLAP.
        overlap = POLL_OVERLAP if cursor else SKEW_OVERLAP
        for page in gateway.iterate("events", params={"created": {"gte": since - overlap}}):
            events.extend(page)
    except StripeRequestFailed as exc:
        with session_scope() as session:
            state = sync.sync_state(session, sync.EVENTS)
            denied = exc.code == "permission_denied"
            state.status, state.finished_at = ("skipped" if denied else "failed"), utcnow()
            state.last_error = sync.EVENTS_PERMISSION_NOTE if denied else str(exc)
        raise
    for event in in_stripe_order(events):
        outcome = apply_event(event, "poll", gateway).outcome
        counts[outcome] = counts.get(outcome, 0) + 1
    with session_scope() as session:
        state = sync.sync_state(session, sync.EVENTS)
        if events:
            _advance_event_cursor(state, max(events, key=lambda e: int(e.get("created") or 0)))
        state.status, state.finished_at, state.last_error = "done", utcnow(), None
        state.synced_count += sum(v for k, v in counts.items() if k != "duplicate")
    return counts


def in_stripe_order(newest_first: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as Stripe lists them (newest first), oldest first: by `created`, and within one
    second in Stripe's listed order reversed (the sort is stable), so two changes of the same
    second are applied in the order they were made."""
    return sorted(reversed(newest_first), key=lambda e: int(e.get("created") or 0))


# --- the event log's retention --------------------------------------------------------------

PRUNE_BATCH = 1_000
PRUNE_MAX_BATCHES = 500  # per run: at most half a million rows an hour, and the next run goes on


def prune_event_log(batch: int = PRUNE_BATCH, max_batches: int = PRUNE_MAX_BATCHES) -> int:
    """Delete `stripe_event` rows whose Stripe `created` is older than the retention, in short
    batches along the (`created`, `id`) index (`db.delete_in_batches`). Returns how many went."""
    days = get_settings().event_log_retention_days
    cutoff = int((clock.now() - timedelta(days=days)).timestamp())
    table = table_of(StripeEvent)
    pruned = delete_in_batches(
        table, table.c.created < cutoff, [table.c.created, table.c.id], batch=batch, max_batches=max_batches
    )
    if pruned:
        log.info("Pruned %d Stripe events older than %s days from the event log", pruned, days)
    return pruned


class EventPoller:
    """A daemon thread polling events every `interval` seconds (slower once webhooks are set up)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="billy-events", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        from services.stripe_keys import connection

        while not self._stop.wait(self.interval):
            connected = connection()
            # No key (never connected, or disconnected) or a key Stripe rejects: nothing to do until
            # the Owner connects or rotates one, rather than an error every minute.
            if sync.background_sync.running or connected is None or connected.rejected:
                continue
            try:
                interval_factor = 12 if webhook_configured() else 1
                poll_events()
                if interval_factor > 1:
                    self._stop.wait(self.interval * (interval_factor - 1))
            except BillyError as exc:
                log.info("Event polling paused: %s", exc)
                self._stop.wait(60)
            except Exception:
                log.exception("Event polling failed")
                self._stop.wait(60)


# --- what Settings → Stripe sync shows ------------------------------------------------------


@dataclass(frozen=True)
class SyncOverview:
    resources: list[sync.ResourceProgress]
    last_event_created: int | None  # Stripe's Unix time of the newest event seen (`polling_position`)
    lag_seconds: int | None  # how far behind Stripe's newest known event the store may be
    events_status: str
    events_note: str | None
    webhook_configured: bool
    poll_seconds: float
    endpoint_url: str


def overview(actor: Actor) -> SyncOverview:
    """Per-resource backfill state, the event stream's position, and how Billy stays current."""
    from services.config import get_settings

    resources = sync.progress(actor)  # authorizes sync.view
    now = time.time()  # the lag is measured against Stripe's event times: the wall clock, not `clock`
    with session_scope() as session:
        state = session.get(SyncState, sync.EVENTS)
        last = polling_position(session)[0]
        polled_at = state.finished_at.timestamp() if state and state.finished_at else None
        status, note = (state.status, state.last_error) if state else ("pending", None)
    settings = get_settings()
    # Lag: time since the store last heard from Stripe's event stream (a poll or a delivery).
    heard = max(t for t in (polled_at, last) if t is not None) if (polled_at or last) else None
    return SyncOverview(
        resources=resources,
        last_event_created=last,
        lag_seconds=int(now - heard) if heard else None,
        events_status=status,
        events_note=note,
        webhook_configured=webhook_configured(),
        poll_seconds=settings.event_poll_seconds,
        endpoint_url=settings.public_url.rstrip("/") + "/api/stripe/webhook",
    )
