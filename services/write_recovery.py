"""Settling Stripe writes that nobody was told about (issue 16): the restart's reconciliation.

Every Stripe write claims its intent (idempotency key, member, action, target) before Stripe is
called, holds the intent's lock until its audit row is written, and names its key on that row
(`details.intent`, `services.stripe_writes`). So an intent with no row naming its key, whose lock
nobody holds, belongs to a process that stopped between the claim and the row: killed after
Stripe answered and before the store write, say. And a row marked `stripe_outcome: unknown`
means every attempt went unanswered and the person was told Billy could not tell yet.

`reconcile_writes` settles each such intent once, from its key and Stripe's events (each event
names the idempotency key of the request that caused it, `request.idempotency_key`):

- **made**: Stripe has events carrying the key. They are applied like any delivery (versioned,
  de-duplicated), the objects are read again into the store, the intent is marked done (a
  refund's key now returns its refund; its budget row names it), and one audit row records the
  action for its member: outcome ok, `reconciled`, the events named.
- **not made**: no event carries the key, `NOT_MADE_AFTER` after the claim (a request sent just
  before the process died may still be executing). One audit row, failed, says so; the intent is
  released (and a refund uncounted), so the same request can be sent again.
- Stripe's events cannot be read (no Events read permission, Stripe unreachable): left for the
  next run, and logged.

It runs when the app starts and every `RECONCILE_SECONDS` after (`billy_app`), over intents
claimed in the last `WINDOW`. Only the writes below are understood; others (catalog, invoice
creation, reminder mails) are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from services import audit, clock, stripe_events, stripe_keys, stripe_writes
from services.db import session_scope
from services.errors import BillyError
from services.invoice_changes import derived_key
from services.locks import try_named_lock
from services.models import AuditEntry, AuditTarget, IdempotencyRecord, Member, RefundSpend, table_of
from services.permissions import Actor, Source
from services.stripe_gateway import StripeGateway

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)  # Stripe keeps an idempotency key at least this long
NOT_MADE_AFTER = timedelta(minutes=5)  # past any request's timeout and retries: no event now means never
SKEW_MARGIN = timedelta(minutes=15)  # events are listed from this long before the claim (clock skew)
RECONCILE_SECONDS = 120
MAX_PER_RUN = 50
USER_AGENT = "Billy reconciliation"


@dataclass(frozen=True)
class Handling:
    """How one write shows in Stripe: the kind of its target, the types of the events it makes,
    and the keys its Stripe calls carry (`suffixes` of `derived_key`; "" is the key itself). It
    is made when an event carries the key of its last call."""

    kind: str
    event_types: frozenset[str]
    suffixes: tuple[str, ...] = ("",)
    words: str = "this change"

    def keys(self, key: str) -> dict[str, str]:
        """Each call's key → its suffix."""
        return {(derived_key(key, suffix) if suffix else key): suffix for suffix in self.suffixes}


_SUBSCRIPTION = frozenset({"customer.subscription.updated", "customer.subscription.deleted"})
_CUSTOMER = Handling("customer", frozenset({"customer.updated"}), words="the change to the customer")
HANDLED: dict[str, Handling] = {
    "charges.refund": Handling("charge", frozenset({"refund.created", "charge.refunded"}), words="the refund"),
    "customers.update": _CUSTOMER,
    "customers.update_contact": _CUSTOMER,
    **{
        f"subscriptions.{name}": Handling("subscription", _SUBSCRIPTION, words="the change to the subscription")
        for name in ("change", "pause", "resume", "cancel", "reactivate")
    },
    "invoices.send": Handling(
        "invoice",
        frozenset({"invoice.finalized", "invoice.updated", "invoice.sent"}),
        ("finalize", "send"),
        "sending the invoice",
    ),
    "invoices.void": Handling("invoice", frozenset({"invoice.voided", "invoice.updated"}), words="voiding the invoice"),
    "invoices.mark_uncollectible": Handling(
        "invoice", frozenset({"invoice.marked_uncollectible", "invoice.updated"}), words="the write-off"
    ),
}


@dataclass(frozen=True)
class Intent:
    key: str
    action: str
    actor_id: int | None
    target_id: str
    claimed_at: datetime


@dataclass
class Settled:
    """What the reconciliation found for one intent."""

    key: str
    action: str
    outcome: str  # made | not_made | partly_made
    events: list[str] = field(default_factory=list)
    created: dict[str, Any] = field(default_factory=dict)  # the object the write made (a refund), if any

    @property
    def created_id(self) -> str:
        return str(self.created.get("id") or "")


# --- which intents are open --------------------------------------------------------------------


def _settled_by_a_row() -> Any:
    """An audit row that ends the intent: it names the intent's key and knows the outcome; or,
    from before rows named keys, an ok row of the same member, action and target after the claim."""
    rec, entry, target = table_of(IdempotencyRecord), table_of(AuditEntry), table_of(AuditTarget)
    intent, known = entry.c.details["intent"].as_string(), entry.c.details["stripe_outcome"].as_string()
    rows_on_target = (
        sa.select(sa.literal(1))
        .select_from(target.join(entry, entry.c.id == target.c.audit_id))
        .where(target.c.target_id == rec.c.result_id, entry.c.action == rec.c.action)
    )
    named = rows_on_target.where(  # after the claim: a released key may be claimed again
        intent == rec.c.key, entry.c.at >= rec.c.created_at, sa.or_(known.is_(None), known != "unknown")
    )
    legacy = rows_on_target.where(
        intent.is_(None), entry.c.outcome == "ok", entry.c.actor_id == rec.c.actor_id, entry.c.at >= rec.c.created_at
    )
    return sa.or_(named.exists(), legacy.exists())


def open_intents(now: datetime | None = None, limit: int = MAX_PER_RUN) -> list[Intent]:
    """Intents of understood writes, claimed in the last `WINDOW`, that no audit row settles yet
    (oldest first). Some may still be running: `reconcile_writes` asks their locks."""
    now = now or clock.now()
    rec = table_of(IdempotencyRecord)
    query = (
        sa.select(rec.c.key, rec.c.action, rec.c.actor_id, rec.c.result_id, rec.c.created_at)
        .where(rec.c.action.in_(sorted(HANDLED)), rec.c.created_at >= now - WINDOW, ~_settled_by_a_row())
        .order_by(rec.c.created_at, rec.c.key)
        .limit(limit)
    )
    with session_scope() as session:
        rows = session.execute(query).all()
    return [Intent(r.key, r.action, r.actor_id, r.result_id, r.created_at) for r in rows]  # aware: UTCDateTime


def _still_open(intent: Intent) -> bool:
    with session_scope() as session:
        settled = session.execute(
            sa.select(sa.literal(1))
            .select_from(table_of(IdempotencyRecord))
            .where(table_of(IdempotencyRecord).c.key == intent.key, _settled_by_a_row())
        ).first()
        return settled is None and session.get(IdempotencyRecord, intent.key) is not None


# --- what Stripe says ----------------------------------------------------------------------------


def _events_since(gateway: StripeGateway, since: datetime, types: Iterable[str]) -> list[dict[str, Any]]:
    """Stripe's events of `types` created since `since` (less the skew margin), oldest first."""
    params: dict[str, Any] = {"created": {"gte": int((since - SKEW_MARGIN).timestamp())}, "types": sorted(types)}
    found: list[dict[str, Any]] = []
    for page in gateway.iterate("events", params=params):
        found.extend(page)
    return stripe_events.in_stripe_order(found)


def _request_key(event: dict[str, Any]) -> str:
    request = event.get("request")
    return str(request.get("idempotency_key") or "") if isinstance(request, dict) else ""


def _judge(intent: Intent, events: list[dict[str, Any]], now: datetime) -> Settled | None:
    """Made, partly made or not made, from the events carrying the intent's keys; None while it
    is too early to say "not made"."""
    handling = HANDLED[intent.action]
    keys = handling.keys(intent.key)
    own = [e for e in events if _request_key(e) in keys and str(e.get("type")) in handling.event_types]
    done = {keys[_request_key(e)] for e in own}
    if not own and intent.action == "subscriptions.cancel":
        # Cancelling now is a DELETE, whose events name no idempotency key on Stripe: the
        # subscription's own deletion after the claim is the evidence.
        since = int((intent.claimed_at - SKEW_MARGIN).timestamp())
        own = [
            e
            for e in events
            if e.get("type") == "customer.subscription.deleted"
            and (e.get("data") or {}).get("object", {}).get("id") == intent.target_id
            and int(e.get("created") or 0) >= since
        ]
        done = {""} if own else done
    created = next((dict(e["data"]["object"]) for e in own if e.get("type") == "refund.created"), {})
    if handling.suffixes[-1] in done:
        return Settled(intent.key, intent.action, "made", [e["id"] for e in own], created)
    if now - intent.claimed_at < NOT_MADE_AFTER:
        return None
    return Settled(intent.key, intent.action, "partly_made" if done else "not_made", [e["id"] for e in own])


# --- settling --------------------------------------------------------------------------------


def _member(actor_id: int | None) -> Actor:
    """The member who made the write, as the audit row names them (source: system)."""
    with session_scope() as session:
        member = session.get(Member, actor_id) if actor_id is not None else None
    if member is None:
        return Actor(actor_id, "", "", Source.SYSTEM, "", USER_AGENT)
    return Actor(member.id, member.email, member.role, Source.SYSTEM, "", USER_AGENT)


def _store(gateway: StripeGateway, intent: Intent, settled: Settled, events: list[dict[str, Any]], draft: Any) -> None:
    """Apply the write's events, then read its objects again, into the store."""
    for event in events:
        if event["id"] in settled.events:
            stripe_events.apply_event(event, "reconcile", gateway)
    kind = HANDLED[intent.action].kind
    answers: list[tuple[str, dict[str, Any]]] = [(kind, {"id": intent.target_id})]
    if settled.created_id:
        answers.insert(0, ("refund", {"id": settled.created_id}))
    stripe_writes.mirror_answers(gateway, answers, draft, refetch=True)


def _mark_done(session: Session, intent: Intent, settled: Settled) -> None:
    """A made refund's key returns its refund from now on, and its budget row names it."""
    if not settled.created_id:
        return
    record = session.get(IdempotencyRecord, intent.key)
    if record is not None:
        record.result_id = settled.created_id
        session.add(record)
    spend = session.get(RefundSpend, intent.key)
    if spend is not None and spend.refund_id is None:
        spend.refund_id = settled.created_id
        session.add(spend)


def _release(session: Session, intent: Intent) -> None:
    """A write Stripe never made: forget the claim (and a refund's budget count), so the same
    request can be sent again."""
    record = session.get(IdempotencyRecord, intent.key)
    if record is not None:
        session.delete(record)
    spend = session.get(RefundSpend, intent.key)
    if spend is not None and spend.refund_id is None:
        session.delete(spend)


def _settle(gateway: StripeGateway, intent: Intent, settled: Settled, events: list[dict[str, Any]]) -> None:
    """Store, mark and record one intent's outcome: exactly one audit row."""
    handling = HANDLED[intent.action]
    draft = audit.AuditDraft(targets=[intent.target_id])
    draft.details.update({"intent": intent.key, "reconciled": settled.outcome, "stripe_events": settled.events})
    error: str | None = None
    if settled.outcome == "made":
        _store(gateway, intent, settled, events, draft)
        if settled.created_id:
            draft.targets.append(settled.created_id)
            draft.amount = int(settled.created.get("amount") or 0)
            draft.currency = str(settled.created.get("currency") or "")[:3] or None
        draft.details["note"] = (
            f"Stripe made {handling.words}, but Billy never recorded its answer (the process that asked stopped, or "
            "the answer was lost); found from Stripe's events by its request key and recorded now."
        )
        with session_scope() as session:
            _mark_done(session, intent, settled)
    else:
        if settled.events:
            _store(gateway, intent, settled, events, draft)
        error = (
            f"Stripe never made {handling.words}: no event of Stripe's carries its request key, so the request never "
            "reached Stripe (the Billy process that sent it stopped, or the connection failed first). Nothing was "
            "changed; the same request can be sent again."
            if settled.outcome == "not_made"
            else f"Stripe made only the first step of {handling.words} before the Billy process that asked stopped or "
            "lost the connection (the store shows where it is now); send the request again to finish it."
        )
        with session_scope() as session:
            _release(session, intent)
    audit.record(_member(intent.actor_id), intent.action, "ok" if error is None else "failed", draft, error)
    log.info("Reconciled %s %s: %s", intent.action, intent.target_id, settled.outcome)


def reconcile_writes(gateway: StripeGateway | None = None, now: datetime | None = None) -> list[Settled]:
    """Settle every open intent whose write is no longer running (its lock is free): at start and
    periodically. Returns what was settled; an intent still running or too young to judge waits."""
    if stripe_keys.connection() is None:
        return []  # no key: nothing can be asked (and nothing was written without one)
    now = now or clock.now()
    intents = open_intents(now)
    if not intents:
        return []
    gateway = gateway or StripeGateway()
    types = {t for intent in intents for t in HANDLED[intent.action].event_types}
    try:
        events = _events_since(gateway, min(i.claimed_at for i in intents), types)
    except BillyError as exc:
        log.warning("Could not read Stripe's events to settle %d interrupted writes: %s", len(intents), exc)
        return []
    done: list[Settled] = []
    for intent in intents:
        with try_named_lock(stripe_writes.intent_lock_name(intent.key)) as free:
            if not free or not _still_open(intent):
                continue  # still running somewhere, or it just finished
            try:
                seen, settled = events, _judge(intent, events, now)
                if settled is not None and settled.outcome != "made":  # "never" is said on the newest events only
                    seen = _events_since(gateway, intent.claimed_at, HANDLED[intent.action].event_types)
                    settled = _judge(intent, seen, now)
                if settled is None:
                    continue
                _settle(gateway, intent, settled, seen)
            except Exception:
                log.exception("Could not settle the interrupted %s of %s", intent.action, intent.target_id)
                continue
            done.append(settled)
    return done
