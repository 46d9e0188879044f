"""One charge, as complete as Stripe's own page: amount and status, why it failed and what Radar
said, the card, refunds and disputes, the order number, and one timeline that puts Stripe's
events and Billy's own actions (from the audit log) in order. Read from the synced store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlmodel import col, select

from services import audit
from services.db import session_scope
from services.errors import NotFound
from services.models import StripeCharge, StripeCustomer, StripeDispute, StripeRefund
from services.money import format_money
from services.permissions import Actor
from services.trails import TrailEntry, trail


@dataclass(frozen=True)
class MoneyMovement:
    """A refund or a dispute of the charge."""

    id: str
    amount: int
    currency: str
    status: str
    reason: str
    created: int


class Tone(StrEnum):
    """How a timeline entry reads: a payment that went through, one that went wrong, or neither."""

    GOOD = "good"
    BAD = "bad"
    NEUTRAL = "neutral"


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    what: str
    by: str  # "Stripe", or the member (with the door they used) for Billy's own actions
    tone: Tone


@dataclass(frozen=True)
class ChargeDetail:
    id: str
    customer_id: str
    customer_name: str
    customer_email: str
    amount: int
    amount_refunded: int
    currency: str
    status: str
    description: str
    order_number: str
    created: int
    payment_intent_id: str
    failure_code: str
    failure_message: str
    decline_reason: str
    risk_level: str  # Radar: normal | elevated | highest | not_assessed | unknown ("" when absent)
    risk_score: int | None
    outcome_type: str  # authorized | issuer_declined | blocked | manual_review | invalid
    seller_message: str
    card: str  # "Visa •••• 4242"
    card_expiry: str  # "08/2027"
    card_funding: str
    card_country: str
    refunds: list[MoneyMovement] = field(default_factory=list)
    disputes: list[MoneyMovement] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)

    @property
    def refundable(self) -> int:
        return self.amount - self.amount_refunded if self.status == "succeeded" else 0


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _stripe_timeline(
    charge: StripeCharge, refunds: list[StripeRefund], disputes: list[StripeDispute]
) -> list[TimelineEntry]:
    money = format_money(charge.amount, charge.currency)
    if charge.status == "failed":
        why = charge.failure_message or charge.decline_reason or charge.failure_code or "declined"
        entries = [TimelineEntry(_at(charge.created), f"Payment of {money} failed: {why}", "Stripe", Tone.BAD)]
    elif charge.status == "pending":
        entries = [TimelineEntry(_at(charge.created), f"Payment of {money} started (pending)", "Stripe", Tone.NEUTRAL)]
    else:
        entries = [TimelineEntry(_at(charge.created), f"Payment of {money} succeeded", "Stripe", Tone.GOOD)]
    for r in refunds:
        status = "" if r.status in (None, "succeeded") else f" ({r.status})"
        entries.append(
            TimelineEntry(
                _at(r.created), f"Refund of {format_money(r.amount, r.currency)}{status}", "Stripe", Tone.NEUTRAL
            )
        )
    for d in disputes:
        reason = (d.reason or "").replace("_", " ")
        entries.append(
            TimelineEntry(
                _at(d.created),
                f"Disputed: {format_money(d.amount, d.currency)}"
                + (f", {reason}" if reason else "")
                + f" ({d.status})",
                "Stripe",
                Tone.BAD,
            )
        )
    return entries


def _billy_timeline(entries: list[TrailEntry]) -> list[TimelineEntry]:
    tone = {"ok": Tone.NEUTRAL, "denied": Tone.BAD, "failed": Tone.BAD}
    return [TimelineEntry(e.at, e.sentence, f"Billy ({e.source})", tone.get(e.outcome, Tone.NEUTRAL)) for e in entries]


def _card(raw: dict[str, Any], charge: StripeCharge) -> tuple[str, str, str, str]:
    details = (raw.get("payment_method_details") or {}).get("card") or {}
    brand = (charge.card_brand or details.get("brand") or "card").title()
    last4 = charge.card_last4 or details.get("last4") or ""
    month, year = details.get("exp_month"), details.get("exp_year")
    expiry = f"{int(month):02d}/{year}" if month and year else ""
    return (
        f"{brand} •••• {last4}" if last4 else "",
        expiry,
        details.get("funding") or "",
        details.get("country") or "",
    )


def charge_detail(actor: Actor, charge_id: str) -> ChargeDetail:
    """Everything known about one charge, with its timeline newest first."""
    audit.authorize_read(actor, "charges.view", charge_id)
    with session_scope() as session:
        charge = session.get(StripeCharge, charge_id)
        if charge is None or charge.deleted:
            raise NotFound("No charge with that id has been synced from Stripe.")
        customer = session.get(StripeCustomer, charge.customer_id) if charge.customer_id else None
        refunds = list(
            session.exec(
                select(StripeRefund).where(StripeRefund.charge_id == charge_id).order_by(col(StripeRefund.created))
            )
        )
        disputes = list(
            session.exec(
                select(StripeDispute).where(StripeDispute.charge_id == charge_id).order_by(col(StripeDispute.created))
            )
        )
        billy = trail(session, [charge_id, *(r.id for r in refunds)])
    raw = charge.raw or {}
    outcome = raw.get("outcome") or {}
    card, expiry, funding, country = _card(raw, charge)
    timeline = sorted(
        [*_stripe_timeline(charge, refunds, disputes), *_billy_timeline(billy)], key=lambda e: e.at, reverse=True
    )
    return ChargeDetail(
        id=charge.id,
        customer_id=charge.customer_id or "",
        customer_name=(customer.name or "") if customer else "",
        customer_email=(customer.email or "") if customer else "",
        amount=charge.amount,
        amount_refunded=charge.amount_refunded,
        currency=charge.currency,
        status=charge.status,
        description=charge.description or "",
        order_number=charge.order_number or "",
        created=charge.created,
        payment_intent_id=charge.payment_intent_id or "",
        failure_code=charge.failure_code or "",
        failure_message=charge.failure_message or "",
        decline_reason=charge.decline_reason or "",
        risk_level=str(outcome.get("risk_level") or ""),
        risk_score=outcome.get("risk_score") if isinstance(outcome.get("risk_score"), int) else None,
        outcome_type=charge.outcome_type or str(outcome.get("type") or ""),
        seller_message=str(outcome.get("seller_message") or ""),
        card=card,
        card_expiry=expiry,
        card_funding=funding,
        card_country=country,
        refunds=[MoneyMovement(r.id, r.amount, r.currency, r.status or "", r.reason or "", r.created) for r in refunds],
        disputes=[
            MoneyMovement(d.id, d.amount, d.currency, d.status or "", d.reason or "", d.created) for d in disputes
        ],
        timeline=timeline,
    )
