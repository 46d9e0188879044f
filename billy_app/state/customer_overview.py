"""The customer page's sections beyond charges, as the rows Reflex sends to the page."""

from __future__ import annotations

from dataclasses import dataclass

from billy_app.state.view import iso
from services.customer_overview import CustomerOverview
from services.money import format_money

SUBSCRIPTION_WORDS = {
    "active": "Active",
    "trialing": "Trial",
    "past_due": "Past due",
    "canceled": "Cancelled",
    "unpaid": "Unpaid",
    "incomplete": "Incomplete",
    "incomplete_expired": "Expired",
    "paused": "Paused",
}


@dataclass(frozen=True, kw_only=True)
class SpendRow:
    currency: str
    net: str
    detail: str  # "$75.00 paid in 2 charges, $10.00 refunded"


@dataclass(frozen=True, kw_only=True)
class PaymentMethodRow:
    id: str
    label: str
    expires: str
    is_default: bool
    expired: bool


@dataclass(frozen=True, kw_only=True)
class SubscriptionRow:
    id: str
    status: str  # in words
    status_key: str
    plan: str
    when_label: str  # "Next invoice", "Trial ends", "Ends", or ""
    when: str  # ISO UTC, "" when nothing is coming


@dataclass(frozen=True, kw_only=True)
class InvoiceRow:
    id: str
    number: str
    status: str
    total: str
    remaining: str
    due: str  # ISO UTC, "" without a due date
    overdue: str  # "5 days overdue", ""
    status_key: str = ""  # Stripe's status: which invoice controls apply
    sendable: bool = False  # emailed by Stripe and not paid or void: "Send" applies


@dataclass(frozen=True, kw_only=True)
class TrailRow:
    at: str
    sentence: str
    source: str
    outcome: str


@dataclass(frozen=True)
class OverviewRows:
    lifetime: list[SpendRow]
    payment_methods: list[PaymentMethodRow]
    subscriptions: list[SubscriptionRow]
    invoices: list[InvoiceRow]
    trail: list[TrailRow]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def overview_rows(view: CustomerOverview) -> OverviewRows:
    lifetime = [
        SpendRow(
            currency=s.currency.upper(),
            net=format_money(s.net, s.currency),
            detail=f"{format_money(s.paid, s.currency)} paid in {_plural(s.charges, 'charge')}"
            + (f", {format_money(s.refunded, s.currency)} refunded" if s.refunded else ""),
        )
        for s in view.lifetime
    ]
    methods = [
        PaymentMethodRow(id=p.id, label=p.label, expires=p.expires, is_default=p.is_default, expired=p.expired)
        for p in view.payment_methods
    ]
    subscriptions = []
    for s in view.subscriptions:
        if s.trial_end is not None:
            when_label, when = "Trial ends", s.trial_end
        elif s.ends_at is not None:
            when_label, when = "Ends", s.ends_at
        elif s.next_invoice is not None:
            when_label, when = "Next invoice", s.next_invoice
        else:
            when_label, when = "", None
        subscriptions.append(
            SubscriptionRow(
                id=s.id,
                status=SUBSCRIPTION_WORDS.get(s.status, s.status.replace("_", " ").capitalize()),
                status_key=s.status,
                plan=s.plan,
                when_label=when_label,
                when=iso(when) if when is not None else "",
            )
        )
    invoices = [
        InvoiceRow(
            id=i.id,
            number=i.number or i.id,
            status=i.status.capitalize(),
            total=format_money(i.total, i.currency),
            remaining=format_money(i.amount_remaining, i.currency) if i.status == "open" else "",
            due=iso(i.due_date) if i.due_date is not None else "",
            overdue=_plural(i.days_overdue, "day") + " overdue" if i.days_overdue is not None else "",
            status_key=i.status,
            sendable=i.collection_method == "send_invoice" and i.status in ("draft", "open", "uncollectible"),
        )
        for i in view.invoices
    ]
    trail = [TrailRow(at=e.at.isoformat(), sentence=e.sentence, source=e.source, outcome=e.outcome) for e in view.trail]
    return OverviewRows(lifetime, methods, subscriptions, invoices, trail)
