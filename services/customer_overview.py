"""A customer as complete as Stripe's own page, beyond their charges: lifetime spend per
currency, payment methods with the default marked, subscriptions with their plan and next
invoice, invoices with days overdue, and Billy's own trail for this customer. Read from the
synced store; every role may see it (`customers.view`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from services import audit
from services.db import session_scope
from services.errors import NotFound
from services.models import (
    StripeCharge,
    StripeCustomer,
    StripeInvoice,
    StripePaymentMethod,
    StripeProduct,
    StripeSubscription,
    StripeSubscriptionItem,
    utcnow,
)
from services.money import format_money
from services.permissions import Actor
from services.trails import TrailEntry, trail

LIST_LIMIT = 50  # the newest subscriptions and invoices a customer page shows
TRAIL_CHARGES = 500  # the newest charges whose Billy actions the customer's trail includes
_RUNNING = frozenset({"active", "trialing", "past_due"})


@dataclass(frozen=True)
class SpendLine:
    currency: str
    paid: int  # succeeded charges
    refunded: int
    charges: int

    @property
    def net(self) -> int:
        return self.paid - self.refunded


@dataclass(frozen=True)
class PaymentMethodLine:
    id: str
    label: str  # "Visa •••• 4242"
    expires: str  # "08/2027", "" when unknown
    is_default: bool
    expired: bool


@dataclass(frozen=True)
class SubscriptionLine:
    id: str
    status: str
    plan: str  # "Pro plan · $49.00 / month × 2"
    next_invoice: int | None  # when the next invoice comes, if one will
    ends_at: int | None  # set when it is cancelled at the period end
    trial_end: int | None


@dataclass(frozen=True)
class InvoiceLine:
    id: str
    number: str
    status: str
    total: int
    amount_remaining: int
    currency: str
    due_date: int | None
    days_overdue: int | None  # whole days past due for an open invoice, else None
    collection_method: str = ""  # "send_invoice": Stripe emails it (Billy's Send control)


@dataclass(frozen=True)
class CustomerOverview:
    customer_id: str
    lifetime: list[SpendLine]
    payment_methods: list[PaymentMethodLine]
    subscriptions: list[SubscriptionLine]
    invoices: list[InvoiceLine]
    trail: list[TrailEntry]


def _lifetime(session: Session, customer_id: str) -> list[SpendLine]:
    c = StripeCharge
    rows = session.exec(
        select(c.currency, sa.func.sum(c.amount), sa.func.sum(c.amount_refunded), sa.func.count())
        .where(c.customer_id == customer_id, c.status == "succeeded", col(c.deleted).is_(False))
        .group_by(c.currency)
        .order_by(c.currency)
    ).all()
    return [SpendLine(cur, int(paid or 0), int(refunded or 0), int(n)) for cur, paid, refunded, n in rows]


def _default_method(customer: StripeCustomer) -> str:
    raw = customer.raw or {}
    settings = raw.get("invoice_settings") or {}
    chosen = settings.get("default_payment_method") or raw.get("default_source") or ""
    return chosen if isinstance(chosen, str) else str(chosen.get("id", ""))


def _payment_methods(session: Session, customer: StripeCustomer, now: datetime) -> list[PaymentMethodLine]:
    default = _default_method(customer)
    rows = session.exec(
        select(StripePaymentMethod)
        .where(StripePaymentMethod.customer_id == customer.id, col(StripePaymentMethod.deleted).is_(False))
        .order_by(col(StripePaymentMethod.created).desc())
        .limit(LIST_LIMIT)
    ).all()
    lines = []
    for pm in rows:
        brand = (pm.card_brand or pm.type or "card").replace("_", " ").title()
        last4 = pm.card_last4 or ""
        expires = f"{pm.exp_month:02d}/{pm.exp_year}" if pm.exp_month and pm.exp_year else ""
        expired = bool(pm.exp_year and pm.exp_month and (pm.exp_year, pm.exp_month) < (now.year, now.month))
        lines.append(
            PaymentMethodLine(pm.id, f"{brand} •••• {last4}" if last4 else brand, expires, pm.id == default, expired)
        )
    lines.sort(key=lambda line: not line.is_default)  # the default first, the rest newest first
    return lines


def _plan_label(items: list[StripeSubscriptionItem], names: dict[str, str]) -> str:
    parts = []
    for item in items:
        name = names.get(item.product_id or "", "") or item.price_id or "a price"
        price = ""
        if item.unit_amount is not None:
            every = item.recurring_interval or ""
            count = item.recurring_interval_count or 1
            period = f" / {count} {every}s" if count > 1 else (f" / {every}" if every else "")
            price = f" · {format_money(item.unit_amount, item.currency)}{period}"
        quantity = f" × {item.quantity}" if item.quantity != 1 else ""
        parts.append(f"{name}{price}{quantity}")
    return "; ".join(parts)


def _subscriptions(session: Session, customer_id: str) -> list[SubscriptionLine]:
    subs = session.exec(
        select(StripeSubscription)
        .where(StripeSubscription.customer_id == customer_id, col(StripeSubscription.deleted).is_(False))
        .order_by(col(StripeSubscription.created).desc())
        .limit(LIST_LIMIT)
    ).all()
    if not subs:
        return []
    items = session.exec(
        select(StripeSubscriptionItem).where(col(StripeSubscriptionItem.subscription_id).in_([s.id for s in subs]))
    ).all()
    product_ids = {i.product_id for i in items if i.product_id}
    names = {
        p.id: p.name for p in session.exec(select(StripeProduct).where(col(StripeProduct.id).in_(product_ids))).all()
    }
    lines = []
    for s in subs:
        mine = [i for i in items if i.subscription_id == s.id]
        running = s.status in _RUNNING
        trial_end = (s.raw or {}).get("trial_end")
        lines.append(
            SubscriptionLine(
                id=s.id,
                status=s.status,
                plan=_plan_label(mine, names),
                next_invoice=s.current_period_end if running and not s.cancel_at_period_end else None,
                ends_at=s.current_period_end if running and s.cancel_at_period_end else None,
                trial_end=int(trial_end) if s.status == "trialing" and isinstance(trial_end, int) else None,
            )
        )
    return lines


def _invoices(session: Session, customer_id: str, now: datetime) -> list[InvoiceLine]:
    rows = session.exec(
        select(StripeInvoice)
        .where(StripeInvoice.customer_id == customer_id, col(StripeInvoice.deleted).is_(False))
        .order_by(col(StripeInvoice.created).desc())
        .limit(LIST_LIMIT)
    ).all()
    lines = []
    for inv in rows:
        overdue = None
        if inv.status == "open" and inv.due_date is not None and inv.due_date < now.timestamp():
            overdue = (now - datetime.fromtimestamp(inv.due_date, UTC)).days
        lines.append(
            InvoiceLine(
                inv.id,
                inv.number or "",
                inv.status or "",
                inv.total,
                inv.amount_remaining,
                inv.currency,
                inv.due_date,
                overdue,
                inv.collection_method or "",
            )
        )
    return lines


def customer_overview(actor: Actor, customer_id: str) -> CustomerOverview:
    """Everything about one customer besides their charges (billing.get_customer has those)."""
    audit.authorize_read(actor, "customers.view", customer_id)
    now = utcnow()
    with session_scope() as session:
        customer = session.get(StripeCustomer, customer_id)
        if customer is None or customer.deleted:
            raise NotFound("No customer with that id has been synced from Stripe.")
        subscriptions = _subscriptions(session, customer_id)
        invoices = _invoices(session, customer_id, now)
        charge_ids = session.exec(
            select(StripeCharge.id)
            .where(StripeCharge.customer_id == customer_id)
            .order_by(col(StripeCharge.created).desc())
            .limit(TRAIL_CHARGES)
        ).all()
        targets = [customer_id, *charge_ids, *(s.id for s in subscriptions), *(i.id for i in invoices)]
        return CustomerOverview(
            customer_id=customer_id,
            lifetime=_lifetime(session, customer_id),
            payment_methods=_payment_methods(session, customer, now),
            subscriptions=subscriptions,
            invoices=invoices,
            trail=trail(session, targets),
        )
