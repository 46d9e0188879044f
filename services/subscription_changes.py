"""Changing a customer's subscription (issue 12): its price or quantity after a preview of
what Stripe will charge, pausing and resuming collection, cancelling at the period end or now,
and withdrawing a pending cancellation.

Billing Managers, the Owner and custom roles holding `MANAGE_SUBSCRIPTIONS` may do these
(`subscriptions.*`); every other role is refused here whatever its client sends. Each write
follows the one shape of `services/stripe_writes.py` (idempotency key stored before Stripe is
called, the key's permission asked first, Stripe's refusals in plain words, the subscription
Stripe answers stored at once, so open pages show the change).

A price change is previewed first (`preview_subscription_change`): Stripe's preview invoice
with the change's prorations (the unused time of the old price credited, the rest of the period
on the new price charged, to the second from the proration date). The preview returns the
proration date it used, and `change_subscription` sends that same date, so Stripe makes exactly
the prorations the member saw. Billy changes with `create_prorations` (Stripe's default):
nothing is charged at the moment of the change; the difference goes on the next invoice
(docs: billing/subscriptions/prorations).

Before Stripe is asked, what Stripe would refuse is refused in plain words: an ended
subscription, a cancellation that is not pending, a price in another currency or billing
interval, an unknown or archived price, a quantity below 1 or beyond `MAX_QUANTITY`. Billy
changes subscriptions with one price; one with several is changed in the Stripe Dashboard.

Audit rows name the subscription by id and the inputs (price id, quantity, pause behaviour,
when it ends), never anything about the customer.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from services import audit, stripe_writes
from services.db import session_scope
from services.errors import NotFound, StripeRequestFailed, ValidationFailed
from services.models import (
    IdempotencyRecord,
    StripePrice,
    StripeProduct,
    StripeSubscription,
    StripeSubscriptionItem,
)
from services.money import format_money
from services.permissions import Actor, Control, authorize
from services.stripe_gateway import StripeGateway
from services.stripe_writes import INVOICE_WRITE, SUBSCRIPTION_WRITE

log = logging.getLogger(__name__)

MAX_QUANTITY = 10_000  # beyond this a typo is likelier than a customer; Stripe would take it
MAX_PAUSE_DAYS = 730  # the furthest `resumes_at` Billy sets
PREVIEW_MAX_AGE = 3600  # seconds: an older preview is previewed again before the change
MAX_PRICE_CHOICES = 200
ENDED = frozenset({"canceled", "incomplete_expired"})

# What each pause behaviour does to the invoices renewals make while paused (Stripe's words for
# the setting, docs: billing/subscriptions/pause-payment), for the dialog and the confirmations.
PAUSE_BEHAVIORS: dict[str, str] = {
    "keep_as_draft": (
        "Keep invoices as drafts: renewals still make invoices but leave them as drafts, so nothing is sent "
        "or charged; you can finalize them later."
    ),
    "mark_uncollectible": (
        "Mark invoices uncollectible: renewals make invoices and mark them uncollectible at once, so nothing "
        "is charged, but the customer could still pay them later."
    ),
    "void": (
        "Void invoices: renewals make invoices and void them at once, so the customer owes nothing for the paused time."
    ),
}

SUBSCRIPTION_GONE = (
    "This subscription no longer exists in Stripe, so nothing was changed. The next sync removes it from Billy."
)
NOT_SYNCED = "No subscription with that id has been synced from Stripe."


@dataclass(frozen=True)
class PriceChoice:
    """A price the subscription can move to: same currency and billing interval, active."""

    id: str
    label: str  # "Team · $99.00 / month"
    unit_amount: int
    current: bool


@dataclass(frozen=True)
class SubscriptionOptions:
    """What the manage dialog shows, from the store: the subscription, the prices it can move to,
    and, for each action, why it is not possible now ("" when it is)."""

    id: str
    status: str
    plan: str
    currency: str
    item_id: str
    price_id: str
    quantity: int
    current_period_end: int | None
    ends_at: int | None  # a pending cancellation: when it ends
    pause_behavior: str  # "" when collection is not paused
    resumes_at: int | None
    prices: tuple[PriceChoice, ...]
    change_blocked: str
    pause_blocked: str
    resume_blocked: str
    cancel_blocked: str
    end_of_period_blocked: str
    reactivate_blocked: str


@dataclass(frozen=True)
class PreviewLine:
    description: str
    amount: int
    proration: bool


@dataclass(frozen=True)
class ProrationPreview:
    """What a price or quantity change would cost, as Stripe previews it."""

    subscription_id: str
    price_id: str
    quantity: int
    proration_date: int  # send it back with the change, so Stripe prorates exactly this
    currency: str
    lines: tuple[PreviewLine, ...]  # every line of the next invoice
    proration_total: int  # this change's prorations: positive is owed, negative a credit
    due_now: int  # charged at the moment of the change (create_prorations: nothing)
    next_invoice_total: int
    next_invoice_amount_due: int
    next_invoice_at: int | None
    summary: str  # all of it in words


@dataclass(frozen=True)
class SubscriptionWrite:
    """The outcome of one write: the subscription as Stripe now has it, in words."""

    subscription_id: str
    status: str
    done: str
    replayed: bool = False
    stored: bool = True  # False: Stripe changed it but the store write failed (sync repairs it)


# --- reading -----------------------------------------------------------------------------


def manage_control(actor: Actor) -> Control:
    """The dialog's control: hidden for roles that can never manage subscriptions; disabled with
    the reason when the plan or the key's missing "Subscriptions: Write" blocks it."""
    return stripe_writes.write_control(actor, "subscriptions.change", SUBSCRIPTION_WRITE)


def _day(moment: int | None) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%d %B %Y") if moment else "the end of the period"


def _interval_words(interval: str | None, count: int | None) -> str:
    if not interval:
        return ""
    return f"{count} {interval}s" if (count or 1) > 1 else interval


def _stored(session: Session, subscription_id: object) -> StripeSubscription:
    if not isinstance(subscription_id, str) or not subscription_id.startswith("sub_") or len(subscription_id) > 255:
        raise ValidationFailed("That is not a Stripe subscription id (they start with sub_).")
    row = session.get(StripeSubscription, subscription_id)
    if row is None or row.deleted:
        raise NotFound(NOT_SYNCED)
    return row


def _items(session: Session, subscription_id: str) -> list[StripeSubscriptionItem]:
    return list(
        session.exec(
            select(StripeSubscriptionItem)
            .where(StripeSubscriptionItem.subscription_id == subscription_id)
            .order_by(col(StripeSubscriptionItem.id))
        ).all()
    )


def _ends_at(row: StripeSubscription) -> int | None:
    """When a pending cancellation ends it (at the period end, or at a date set in Stripe)."""
    if row.status in ENDED:
        return None
    if row.cancel_at_period_end:
        return row.current_period_end
    cancel_at = (row.raw or {}).get("cancel_at")
    return int(cancel_at) if isinstance(cancel_at, int) else None


def _pause(row: StripeSubscription) -> dict[str, Any] | None:
    pause = (row.raw or {}).get("pause_collection")
    return pause if isinstance(pause, dict) and pause.get("behavior") else None


def _behavior_words(behavior: str) -> str:
    return PAUSE_BEHAVIORS.get(behavior, behavior).split(":")[0].lower()


def _change_blocked(row: StripeSubscription, items: list[StripeSubscriptionItem]) -> str:
    if row.status in ENDED:
        return "This subscription has ended, so its price cannot change. Start a new one in Stripe instead."
    if row.status == "incomplete":
        return "Its first payment has not gone through yet; Stripe allows no price change until it has."
    if _ends_at(row) is not None:
        return f"It is set to end on {_day(_ends_at(row))}: reactivate it first to change its price or quantity."
    if len(items) != 1:
        return (
            f"It has {len(items)} prices; Billy changes subscriptions with one price. "
            "Change this one in the Stripe Dashboard."
        )
    return ""


def _pause_blocked(row: StripeSubscription) -> str:
    if row.status in ENDED:
        return "This subscription has ended: there is no collection to pause."
    if row.status == "incomplete":
        return "Its first payment has not gone through yet: there is no collection to pause."
    pause = _pause(row)
    if pause is not None:
        return (
            f"Collection is already paused ({_behavior_words(str(pause['behavior']))}); "
            "resume it first to pause it another way."
        )
    return ""


def _resume_blocked(row: StripeSubscription) -> str:
    if row.status in ENDED:
        return "This subscription has ended: there is no collection to resume."
    return "" if _pause(row) is not None else "Collection is not paused, so there is nothing to resume."


def _cancel_blocked(row: StripeSubscription, at_period_end: bool) -> str:
    if row.status in ENDED:
        return "This subscription has already ended."
    if at_period_end and _ends_at(row) is not None:
        return f"It is already set to end on {_day(_ends_at(row))}."
    return ""


def _reactivate_blocked(row: StripeSubscription) -> str:
    if row.status in ENDED:
        return "This subscription has already ended, so it cannot be reactivated. Start a new one in Stripe instead."
    if _ends_at(row) is None:
        return "It is not set to end, so there is no cancellation to withdraw."
    return ""


def _claim(actor: Actor, key: str, action: str, subscription_id: str, draft: audit.AuditDraft, *, blocked: str) -> bool:
    """What pause, resume, cancel and reactivate do before Stripe: refuse what the stored state
    blocks (unless this is a retry of the same intent, which the store may already show done),
    check the key, ask the key's permission, store the intent. True when it repeats a request."""
    if not _retrying(actor, key, action, subscription_id):
        _refuse(blocked)
    return stripe_writes.claim_write(actor, key, action, subscription_id, SUBSCRIPTION_WRITE, draft)


def _refuse(reason: str) -> None:
    if reason:
        raise ValidationFailed(reason)


def _price_label(price: StripePrice, names: dict[str, str]) -> str:
    name = names.get(price.product_id or "", "") or price.nickname or price.id
    if price.nickname and price.nickname != name:
        name = f"{name} ({price.nickname})"
    every = _interval_words(price.recurring_interval, price.recurring_interval_count)
    return f"{name} · {format_money(price.unit_amount or 0, price.currency)} / {every}"


def _price_choices(session: Session, item: StripeSubscriptionItem) -> tuple[PriceChoice, ...]:
    """Active prices in the item's currency and billing interval, cheapest first."""
    prices = session.exec(
        select(StripePrice)
        .where(
            col(StripePrice.deleted).is_(False),
            col(StripePrice.active).is_(True),
            StripePrice.currency == item.currency,
            StripePrice.recurring_interval == item.recurring_interval,
            col(StripePrice.unit_amount).is_not(None),
        )
        .order_by(col(StripePrice.unit_amount), col(StripePrice.id))
        .limit(MAX_PRICE_CHOICES)
    ).all()
    same = [p for p in prices if (p.recurring_interval_count or 1) == (item.recurring_interval_count or 1)]
    names = _product_names(session, {p.product_id for p in same if p.product_id})
    return tuple(PriceChoice(p.id, _price_label(p, names), p.unit_amount or 0, p.id == item.price_id) for p in same)


def _product_names(session: Session, product_ids: set[str]) -> dict[str, str]:
    if not product_ids:
        return {}
    rows = session.exec(select(StripeProduct).where(col(StripeProduct.id).in_(product_ids))).all()
    return {p.id: p.name for p in rows}


def subscription_options(actor: Actor, subscription_id: str) -> SubscriptionOptions:
    """The manage dialog's contents: the subscription, the prices it can move to, and what stands
    in the way of each action. For those who may manage subscriptions (refusals are audited)."""
    audit.authorize_read(actor, "subscriptions.preview_change", str(subscription_id)[:255])
    with session_scope() as session:
        row = _stored(session, subscription_id)
        items = _items(session, row.id)
        item = items[0] if len(items) == 1 else None
        names = _product_names(session, {i.product_id for i in items if i.product_id})
        plan = "; ".join(
            f"{names.get(i.product_id or '', '') or i.price_id or 'a price'} × {i.quantity}"
            + (f" · {format_money(i.unit_amount, i.currency)}" if i.unit_amount is not None else "")
            for i in items
        )
        pause = _pause(row)
        resumes_at = pause.get("resumes_at") if pause else None
        return SubscriptionOptions(
            id=row.id,
            status=row.status,
            plan=plan,
            currency=row.currency,
            item_id=item.id if item else "",
            price_id=(item.price_id or "") if item else "",
            quantity=item.quantity if item else 0,
            current_period_end=row.current_period_end,
            ends_at=_ends_at(row),
            pause_behavior=str(pause["behavior"]) if pause else "",
            resumes_at=int(resumes_at) if isinstance(resumes_at, int) else None,
            prices=_price_choices(session, item) if item else (),
            change_blocked=_change_blocked(row, items),
            pause_blocked=_pause_blocked(row),
            resume_blocked=_resume_blocked(row),
            cancel_blocked=_cancel_blocked(row, at_period_end=False),
            end_of_period_blocked=_cancel_blocked(row, at_period_end=True),
            reactivate_blocked=_reactivate_blocked(row),
        )


# --- checking a change --------------------------------------------------------------------


@dataclass(frozen=True)
class _Change:
    customer_id: str
    item: StripeSubscriptionItem
    price: StripePrice
    quantity: int
    current_period_end: int | None
    label: str


def _checked_change(subscription_id: object, price_id: object, quantity: object, *, retry: bool = False) -> _Change:
    """Refuse, in words, a change Stripe would refuse (or that changes nothing). A `retry` of a
    change already sent skips what the first attempt may have changed (Stripe answers it from
    its record of the first)."""
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise ValidationFailed("Enter the quantity as a whole number, e.g. 3.")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ValidationFailed(
            f"The quantity must be between 1 and {MAX_QUANTITY:,}. To end the subscription, cancel it instead."
        )
    if not isinstance(price_id, str) or not price_id or len(price_id) > 255:
        raise ValidationFailed("Choose the price to move this subscription to.")
    with session_scope() as session:
        row = _stored(session, subscription_id)
        items = _items(session, row.id)
        _refuse("" if retry and len(items) == 1 else _change_blocked(row, items))
        item = items[0]
        price = session.get(StripePrice, price_id)
        if price is None or price.deleted:
            raise ValidationFailed("Billy does not know that price: choose one from the list (or sync, if it is new).")
        if not price.active:
            raise ValidationFailed("That price is archived in Stripe, so nothing new can use it: choose an active one.")
        if price.recurring_interval is None:
            raise ValidationFailed("That is a one-time price; a subscription needs a recurring one.")
        if price.currency != item.currency:
            raise ValidationFailed(
                f"That price is in {price.currency.upper()} and this subscription bills in {item.currency.upper()}; "
                f"Stripe cannot change a subscription's currency. Choose a {item.currency.upper()} price."
            )
        theirs = (price.recurring_interval, price.recurring_interval_count or 1)
        ours = (item.recurring_interval, item.recurring_interval_count or 1)
        if theirs != ours:
            raise ValidationFailed(
                f"That price bills every {_interval_words(*theirs)} and this subscription every "
                f"{_interval_words(*ours)}; choose a price with the same billing interval."
            )
        if price.id == item.price_id and quantity == item.quantity and not retry:
            raise ValidationFailed("That is already its price and quantity: nothing to change.")
        names = _product_names(session, {price.product_id} if price.product_id else set())
        label = _price_label(price, names) + (f" × {quantity}" if quantity != 1 else "")
        return _Change(row.customer_id or "", item, price, quantity, row.current_period_end, label)


def _item_params(change: _Change) -> list[dict[str, Any]]:
    return [{"id": change.item.id, "price": change.price.id, "quantity": change.quantity}]


def _refusal(exc: StripeRequestFailed, *, replayed: bool) -> Exception:
    """Stripe's refusal in plain words (the permission named, a subscription gone or ended)."""
    permission = INVOICE_WRITE if "rak_invoice" in exc.message else SUBSCRIPTION_WRITE
    if exc.code != "resource_missing" and "canceled" in exc.message.lower():
        return ValidationFailed("This subscription has already ended in Stripe; Billy shows it after the next sync.")
    return stripe_writes.plain_refusal(exc, permission, missing=SUBSCRIPTION_GONE, replayed=replayed)


# --- the preview -------------------------------------------------------------------------


def _is_proration(line: dict[str, Any]) -> bool:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
    return bool(details.get("proration") or line.get("proration"))


def _preview_summary(preview_total: int, amount_due: int, proration_total: int, currency: str) -> str:
    def money(amount: int) -> str:
        return format_money(amount, currency)

    if proration_total > 0:
        difference = (
            f"For the rest of this period Stripe charges {money(proration_total)} (the new price's remaining time, "
            "less the unused time on the old one), on the next invoice."
        )
    elif proration_total < 0:
        difference = (
            f"For the rest of this period Stripe credits {money(-proration_total)} (the unused time on the old "
            "price, less the new one's remaining time) against the next invoice."
        )
    else:
        difference = "There is no difference to settle for the rest of this period."
    due = "" if amount_due == preview_total else f" ({money(amount_due)} to pay after credits)"
    return f"Nothing is charged now. {difference} The next invoice totals {money(preview_total)}{due}."


def preview_subscription_change(
    actor: Actor,
    subscription_id: str,
    price_id: str,
    quantity: int,
    gateway: StripeGateway | None = None,
) -> ProrationPreview:
    """What moving the subscription to `price_id` × `quantity` would cost, as Stripe previews it
    now. Nothing changes; a refused preview is audited, an allowed one is not (it is a read)."""
    gateway = gateway or StripeGateway()
    audit.authorize_read(actor, "subscriptions.preview_change", str(subscription_id)[:255])
    change = _checked_change(subscription_id, price_id, quantity)
    stripe_writes.require_key_permission(SUBSCRIPTION_WRITE)  # the change itself will need it
    proration_date = int(time.time())
    params = {
        "customer": change.customer_id,
        "subscription": subscription_id,
        "subscription_details": {
            "items": _item_params(change),
            "proration_date": proration_date,
            "proration_behavior": "create_prorations",
        },
    }
    try:  # a preview changes nothing: a fresh key each time, never a stale replayed answer
        answer = gateway.write("invoices", "create_preview", params, "preview-" + secrets.token_urlsafe(18))
    except StripeRequestFailed as exc:
        raise _refusal(exc, replayed=False) from exc
    currency = str(answer.get("currency") or change.item.currency)
    lines = tuple(
        PreviewLine(str(line.get("description") or ""), int(line.get("amount") or 0), _is_proration(line))
        for line in (answer.get("lines") or {}).get("data") or []
    )
    this_change = sum(
        int(line.get("amount") or 0)
        for line in (answer.get("lines") or {}).get("data") or []
        if _is_proration(line) and (line.get("period") or {}).get("start") == proration_date
    )
    total = int(answer.get("total") or 0)
    due = answer.get("amount_due")
    amount_due = int(due) if isinstance(due, int) else max(total, 0)
    next_at = answer.get("next_payment_attempt") or change.current_period_end
    return ProrationPreview(
        subscription_id=subscription_id,
        price_id=change.price.id,
        quantity=change.quantity,
        proration_date=proration_date,
        currency=currency,
        lines=lines,
        proration_total=this_change,
        due_now=0,
        next_invoice_total=total,
        next_invoice_amount_due=amount_due,
        next_invoice_at=int(next_at) if isinstance(next_at, int) else None,
        summary=_preview_summary(total, amount_due, this_change, currency),
    )


# --- the writes ----------------------------------------------------------------------------


def _send(
    gateway: StripeGateway,
    method: str,
    subscription_id: str,
    params: dict[str, Any],
    key: str,
    replayed: bool,
    draft: audit.AuditDraft,
) -> tuple[dict[str, Any], bool]:
    """The Stripe call and the store write every subscription write ends with."""
    try:
        answer = gateway.write("subscriptions", method, params, key, object_id=subscription_id)
    except StripeRequestFailed as exc:
        raise _refusal(exc, replayed=replayed) from exc
    stored = stripe_writes.mirror_answers(gateway, [("subscription", answer)], draft, refetch=replayed)
    return answer, stored


def _retrying(actor: Actor, key: object, action: str, subscription_id: object) -> bool:
    """Has this member already sent this very intent (same key, action and subscription)? Then the
    store may already show its outcome, and refusing on that would refuse the retry of a change
    that went through; Stripe answers the retry from its record instead."""
    if not isinstance(key, str) or not isinstance(subscription_id, str):
        return False
    with session_scope() as session:
        seen = session.get(IdempotencyRecord, key)
        return seen is not None and (seen.action, seen.actor_id, seen.result_id) == (
            action,
            actor.user_id,
            subscription_id,
        )


def _status_of(subscription_id: str) -> tuple[StripeSubscription, list[StripeSubscriptionItem]]:
    with session_scope() as session:
        row = _stored(session, subscription_id)
        return row, _items(session, row.id)


def _proration_date(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed("Preview the change first: its proration date comes from the preview.")
    now = int(time.time())
    if not now - PREVIEW_MAX_AGE <= value <= now + 300:
        raise ValidationFailed("That preview is over an hour old: preview the change again to see current amounts.")
    return value


def change_subscription(
    actor: Actor,
    subscription_id: str,
    price_id: str,
    quantity: int,
    proration_date: int,
    idempotency_key: str,
    gateway: StripeGateway | None = None,
) -> SubscriptionWrite:
    """Move the subscription's one price to `price_id` × `quantity`, prorated from
    `proration_date` (the preview's), the difference going on the next invoice."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "subscriptions.change", str(subscription_id)[:255]) as draft:
        draft.details.update(
            {"price": str(price_id)[:255], "quantity": quantity if isinstance(quantity, int) else None}
        )
        authorize(actor, "subscriptions.change")
        retry = _retrying(actor, idempotency_key, "subscriptions.change", subscription_id)
        change = _checked_change(subscription_id, price_id, quantity, retry=retry)
        moment = _proration_date(proration_date)
        stripe_writes.require_idempotency_key(idempotency_key)
        draft.details.update({"previous_price": change.item.price_id, "previous_quantity": change.item.quantity})
        stripe_writes.require_key_permission(SUBSCRIPTION_WRITE)
        replayed = stripe_writes.claim_intent(
            actor, idempotency_key, "subscriptions.change", subscription_id, draft=draft
        )
        if replayed:
            draft.details["replay"] = True
        params = {"items": _item_params(change), "proration_behavior": "create_prorations", "proration_date": moment}
        answer, stored = _send(gateway, "update", subscription_id, params, idempotency_key, replayed, draft)
    done = f"Changed to {change.label}. Nothing is charged now; the difference is on the next invoice."
    return SubscriptionWrite(subscription_id, str(answer.get("status") or ""), done, replayed, stored)


def pause_collection(
    actor: Actor,
    subscription_id: str,
    behavior: str,
    resumes_at: int | None,
    idempotency_key: str,
    gateway: StripeGateway | None = None,
) -> SubscriptionWrite:
    """Pause collection: the subscription stays active, and what renewals bill meanwhile is kept
    as a draft, marked uncollectible or voided (`behavior`), until resumed or `resumes_at`."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "subscriptions.pause", str(subscription_id)[:255]) as draft:
        draft.details["behavior"] = str(behavior)[:40]
        authorize(actor, "subscriptions.pause")
        if behavior not in PAUSE_BEHAVIORS:
            raise ValidationFailed(
                "Choose what happens to invoices while paused: keep them as drafts, mark them uncollectible "
                "or void them."
            )
        if resumes_at is not None:
            now = int(time.time())
            if isinstance(resumes_at, bool) or not isinstance(resumes_at, int) or resumes_at <= now + 60:
                raise ValidationFailed("Choose a resume date in the future, or none to resume by hand.")
            if resumes_at > now + MAX_PAUSE_DAYS * 86_400:
                raise ValidationFailed(f"Billy pauses collection for at most {MAX_PAUSE_DAYS // 365} years at a time.")
            draft.details["resumes_at"] = resumes_at
        row, _ = _status_of(subscription_id)
        replayed = _claim(
            actor, idempotency_key, "subscriptions.pause", subscription_id, draft, blocked=_pause_blocked(row)
        )
        pause: dict[str, Any] = {"behavior": behavior}
        if resumes_at is not None:
            pause["resumes_at"] = resumes_at
        answer, stored = _send(
            gateway, "update", subscription_id, {"pause_collection": pause}, idempotency_key, replayed, draft
        )
    until = f" It resumes by itself on {_day(resumes_at)}." if resumes_at else " It stays paused until you resume it."
    done = f"Collection paused. {PAUSE_BEHAVIORS[behavior]}{until}"
    return SubscriptionWrite(subscription_id, str(answer.get("status") or ""), done, replayed, stored)


def resume_collection(
    actor: Actor, subscription_id: str, idempotency_key: str, gateway: StripeGateway | None = None
) -> SubscriptionWrite:
    """End a pause: the next renewal is charged as usual (invoices made while paused stay as they are)."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "subscriptions.resume", str(subscription_id)[:255]) as draft:
        authorize(actor, "subscriptions.resume")
        row, _ = _status_of(subscription_id)
        replayed = _claim(
            actor, idempotency_key, "subscriptions.resume", subscription_id, draft, blocked=_resume_blocked(row)
        )
        answer, stored = _send(
            gateway, "update", subscription_id, {"pause_collection": ""}, idempotency_key, replayed, draft
        )
    done = "Collection resumed: the next renewal is charged as usual. Invoices made while paused stay as they are."
    return SubscriptionWrite(subscription_id, str(answer.get("status") or ""), done, replayed, stored)


def cancel_subscription(
    actor: Actor,
    subscription_id: str,
    at_period_end: bool,
    idempotency_key: str,
    gateway: StripeGateway | None = None,
) -> SubscriptionWrite:
    """End the subscription at the end of the period already paid for (it can be reactivated
    until then), or now (final: Stripe refunds nothing and makes no final invoice)."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "subscriptions.cancel", str(subscription_id)[:255]) as draft:
        draft.details["at_period_end"] = at_period_end if isinstance(at_period_end, bool) else None
        authorize(actor, "subscriptions.cancel")
        if not isinstance(at_period_end, bool):
            raise ValidationFailed("Choose when it ends: at the end of the period, or now.")
        row, _ = _status_of(subscription_id)
        replayed = _claim(
            actor,
            idempotency_key,
            "subscriptions.cancel",
            subscription_id,
            draft,
            blocked=_cancel_blocked(row, at_period_end),
        )
        if at_period_end:
            params: dict[str, Any] = {"cancel_at_period_end": True}
            answer, stored = _send(gateway, "update", subscription_id, params, idempotency_key, replayed, draft)
        else:
            answer, stored = _cancel_now(gateway, subscription_id, idempotency_key, replayed, draft)
    if at_period_end:
        ends = answer.get("cancel_at") or row.current_period_end
        done = (
            f"It ends on {_day(ends if isinstance(ends, int) else None)}, when the period already paid for is over; "
            "nothing changes for the customer until then, and you can reactivate it before that day."
        )
    else:
        done = "Cancelled now. Stripe makes no refund for the rest of the period and sends no final invoice."
    return SubscriptionWrite(subscription_id, str(answer.get("status") or ""), done, replayed, stored)


def _cancel_now(
    gateway: StripeGateway, subscription_id: str, key: str, replayed: bool, draft: audit.AuditDraft
) -> tuple[dict[str, Any], bool]:
    """DELETE has no idempotent replay at Stripe: a retry of a cancel that went through finds
    the subscription already canceled, and that is the answer it was waiting for."""
    try:
        answer = gateway.write("subscriptions", "cancel", {}, key, object_id=subscription_id)
    except StripeRequestFailed as exc:
        if not replayed or exc.code == "resource_missing":
            raise _refusal(exc, replayed=replayed) from exc
        answer = gateway.retrieve("subscription", subscription_id)
        if answer.get("status") != "canceled":
            raise _refusal(exc, replayed=replayed) from exc
    stored = stripe_writes.mirror_answers(gateway, [("subscription", answer)], draft, refetch=replayed)
    return answer, stored


def reactivate_subscription(
    actor: Actor, subscription_id: str, idempotency_key: str, gateway: StripeGateway | None = None
) -> SubscriptionWrite:
    """Withdraw a pending cancellation: the subscription renews as usual."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "subscriptions.reactivate", str(subscription_id)[:255]) as draft:
        authorize(actor, "subscriptions.reactivate")
        row, _ = _status_of(subscription_id)
        replayed = _claim(
            actor, idempotency_key, "subscriptions.reactivate", subscription_id, draft, blocked=_reactivate_blocked(row)
        )
        params: dict[str, Any] = {"cancel_at_period_end": False} if row.cancel_at_period_end else {"cancel_at": ""}
        answer, stored = _send(gateway, "update", subscription_id, params, idempotency_key, replayed, draft)
    done = f"The cancellation is withdrawn: it renews as usual on {_day(row.current_period_end)}."
    return SubscriptionWrite(subscription_id, str(answer.get("status") or ""), done, replayed, stored)
