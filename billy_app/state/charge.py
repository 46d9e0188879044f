"""`/charges/[charge_id]`: one charge, everything about it, kept live, refundable from the page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import reflex as rx

from billy_app.state.live import LiveState
from billy_app.state.session import SessionState, guarded
from billy_app.state.view import STATUS_LABELS, iso
from services.charge_detail import ChargeDetail, MoneyMovement, charge_detail
from services.errors import BillyError
from services.money import format_money
from services.permissions import control

RISK_WORDS = {
    "normal": "Normal risk",
    "elevated": "Elevated risk",
    "highest": "Highest risk",
    "not_assessed": "Not assessed",
    "unknown": "Unknown risk",
}


@dataclass(frozen=True, kw_only=True)
class ChargeFacts:
    """The charge's fixed facts as the page shows them."""

    id: str = ""
    amount: str = ""
    status: str = ""  # Stripe's key, for the badge colour
    status_label: str = ""
    refunded: str = ""  # "$10.00 of $45.99 refunded", or ""
    description: str = ""
    order_number: str = ""
    created: str = ""  # ISO UTC
    customer_id: str = ""
    customer: str = ""  # "Ada Lovelace · ada@example.com"
    payment_intent_id: str = ""
    card: str = ""
    card_more: str = ""  # "expires 08/2027 · credit · US"
    failure: str = ""  # why it failed, in words
    radar: str = ""  # "Normal risk (score 12) · Payment complete."
    refundable: bool = False


@dataclass(frozen=True, kw_only=True)
class MovementRow:
    id: str
    amount: str
    status: str
    reason: str
    created: str


@dataclass(frozen=True, kw_only=True)
class TimelineRow:
    at: str
    what: str
    by: str
    tone: str  # good | bad | neutral


def _movement(m: MoneyMovement) -> MovementRow:
    return MovementRow(
        id=m.id,
        amount=format_money(m.amount, m.currency),
        status=m.status.replace("_", " "),
        reason=m.reason.replace("_", " "),
        created=iso(m.created),
    )


def _facts(d: ChargeDetail) -> ChargeFacts:
    refunded = (
        f"{format_money(d.amount_refunded, d.currency)} of {format_money(d.amount, d.currency)} refunded"
        if d.amount_refunded
        else ""
    )
    failure = d.failure_message or d.decline_reason.replace("_", " ") or d.failure_code.replace("_", " ")
    radar_parts = [RISK_WORDS.get(d.risk_level, d.risk_level.replace("_", " ").capitalize())] if d.risk_level else []
    if radar_parts and d.risk_score is not None:
        radar_parts[0] += f" (score {d.risk_score})"
    if d.seller_message:
        radar_parts.append(d.seller_message)
    more = [f"expires {d.card_expiry}" if d.card_expiry else "", d.card_funding, d.card_country]
    return ChargeFacts(
        id=d.id,
        amount=format_money(d.amount, d.currency),
        status=d.status,
        status_label="Refunded" if d.amount_refunded >= d.amount > 0 else STATUS_LABELS.get(d.status, d.status),
        refunded=refunded,
        description=d.description,
        order_number=d.order_number,
        created=iso(d.created),
        customer_id=d.customer_id,
        customer=" · ".join(p for p in (d.customer_name, d.customer_email) if p) or d.customer_id,
        payment_intent_id=d.payment_intent_id,
        card=d.card,
        card_more=" · ".join(p for p in more if p),
        failure=failure,
        radar=" · ".join(radar_parts),
        refundable=d.refundable > 0,
    )


class ChargeState(LiveState, SessionState):
    problem_var: ClassVar[str] = "error"

    facts: ChargeFacts = ChargeFacts()
    refunds: list[MovementRow] = []
    disputes: list[MovementRow] = []
    timeline: list[TimelineRow] = []
    error: str = ""
    refund_shown: bool = False  # the role may refund at all: the page offers "Refund"
    refund_blocked_by: str = ""  # why "Refund" is disabled now (an ended trial), else ""
    _charge_id: str = ""

    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"charge", "refund", "dispute", "customer"})

    async def _live_refresh(self) -> None:
        await self._reload()

    async def _reload(self) -> None:
        """Re-read the charge; a refusal or an unknown id empties the page and says why."""
        try:
            detail = await self._call(charge_detail, self._charge_id)
        except BillyError as exc:
            self.error, self.facts, self.refunds, self.disputes, self.timeline = exc.message, ChargeFacts(), [], [], []
            return
        self.error = ""
        self.facts = _facts(detail)
        self.refunds = [_movement(r) for r in reversed(detail.refunds)]
        self.disputes = [_movement(d) for d in reversed(detail.disputes)]
        self.timeline = [TimelineRow(at=e.at.isoformat(), what=e.what, by=e.by, tone=e.tone) for e in detail.timeline]

    @rx.event
    @guarded
    async def load(self):
        path = self.router.url.path or ""
        self._charge_id = path.rstrip("/").rsplit("/", 1)[-1][:255]
        refund = control(await self.actor(), "charges.refund")
        self.refund_shown, self.refund_blocked_by = refund.shown, refund.blocked_by
        await self._reload()
