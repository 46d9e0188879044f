"""Reads the agent door needs that the pages do not ask in the same shape (issue 13).

An agent asks in a person's words: "refund order #5678", "failed payments this week", "customers
with overdue invoices". These functions answer from the synced store, each authorizing one of
the existing read actions (`charges.search`, `invoices.search`, `subscriptions.search`,
`reports.failed_payments`), so a refusal is the dashboard's own and audited the same way. They
return plain values; the MCP edge only formats them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import defer
from sqlmodel import col, select

from services import audit, billing, clock, failed_payments, timezones
from services.db import session_scope
from services.errors import NotFound, ValidationFailed
from services.invoice_changes import days_overdue
from services.models import (
    StripeCharge,
    StripeInvoice,
    StripeInvoiceLine,
    StripeProduct,
    StripeSubscription,
    StripeSubscriptionItem,
    orm_attribute,
)
from services.permissions import Actor
from services.reports import (
    CHARGE_STATUSES,
    FAILURE_REASONS,
    INVOICE_STATUSES,
    SUBSCRIPTION_STATUSES,
    ChargeFilters,
    CustomerRef,
    ListTotal,
    Money,
    count_charges,
    customer_refs,
    failure_reason,
    search_charges,
)

MAX_MATCHES = 50  # charges one order number or id lookup returns
OVERDUE_SCAN = 5_000  # overdue invoices one report reads (far beyond any real backlog)
MAX_OVERDUE_PAGE = 50
PERIODS: dict[str, str] = {"this_week": "This week", **failed_payments.PRESETS}
_ORDER = re.compile(r"^(?:order\s*(?:number|no\.?)?\s*)?#?\s*([A-Za-z0-9][A-Za-z0-9-]{0,63})$", re.IGNORECASE)
_CHARGE_ID = re.compile(r"^(ch|py)_[A-Za-z0-9_]{1,250}$")
_OFFSET = re.compile(r"^o:(\d{1,6})$")


# --- charges --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentCharge:
    """One charge as an agent describes it: whose, how much, on which card, what is left to refund."""

    id: str
    customer: CustomerRef
    amount: Money
    refunded: Money
    refundable: Money  # what a refund could still give back (0 unless it succeeded)
    status: str
    status_label: str
    description: str
    order_number: str
    card: str
    failure_reason: str  # the dashboard's group for a failed charge ("Expired card"), else ""
    failure_message: str
    created: int


@dataclass(frozen=True)
class ChargeMatches:
    items: list[AgentCharge]
    next_cursor: str | None  # None: nothing more
    total: ListTotal | None
    matched_by: str  # "charge id", "order number 5678", "customer cus_…"


def order_number_of(text: object) -> str:
    """The order number in what a person typed: "order #5678", "Order 5678", "#5678" or "5678"."""
    found = _ORDER.match(" ".join(str(text or "").split())) if isinstance(text, str) else None
    if found is None:
        raise ValidationFailed('Give the order number as it appears on the charge, e.g. "order #5678" or "5678".')
    return found.group(1)


def _from_row(row: billing.ChargeRow, customer: CustomerRef, failed_as: str) -> AgentCharge:
    label = CHARGE_STATUSES.get(row.status, row.status.replace("_", " ").capitalize())
    if row.status == "succeeded" and row.amount_refunded:
        label = "Refunded" if row.amount_refunded >= row.amount else "Partly refunded"
    return AgentCharge(
        id=row.id,
        customer=customer,
        amount=Money.of(row.amount, row.currency),
        refunded=Money.of(row.amount_refunded, row.currency),
        refundable=Money.of(row.refundable, row.currency),
        status=row.status,
        status_label=label,
        description=row.description,
        order_number=row.order_number,
        card=row.card,
        failure_reason=failed_as,
        failure_message=row.failure_message,
        created=row.created,
    )


def _charges_by_ids(actor: Actor, ids: list[str]) -> list[AgentCharge]:
    """Each charge through `billing.get_charge` (which authorizes it), with its customer."""
    rows = [billing.get_charge(actor, charge_id) for charge_id in ids]
    with session_scope() as session:
        refs = customer_refs(session, {r.customer_id for r in rows if r.customer_id})
        reasons = {
            c.id: FAILURE_REASONS[failure_reason(c.decline_reason, c.outcome_type)]
            for c in session.exec(
                select(StripeCharge).where(col(StripeCharge.id).in_(ids), col(StripeCharge.status) == "failed")
            )
        }
    return [
        _from_row(r, refs.get(r.customer_id or "") or CustomerRef(r.customer_id or "", "", ""), reasons.get(r.id, ""))
        for r in rows
    ]


def find_charges(
    actor: Actor,
    *,
    charge_id: str = "",
    order: str = "",
    customer: str = "",
    status: str = "",
    cursor: str | None = None,
    limit: int = 10,
) -> ChargeMatches:
    """Charges by exactly one of: their id, an order number ("order #5678"), or a customer (`cus_…`
    or the start of a name or email, a page at a time, newest first, optionally of one status)."""
    asked = [name for name, value in (("charge_id", charge_id), ("order", order), ("customer", customer)) if value]
    if len(asked) != 1:
        raise ValidationFailed("Look a charge up by exactly one of: its id (ch_…), an order number, or a customer.")
    if charge_id:
        if not _CHARGE_ID.match(charge_id):
            raise ValidationFailed("That is not a Stripe charge id (they start with ch_ or py_).")
        return ChargeMatches(_charges_by_ids(actor, [charge_id]), None, ListTotal(1), "charge id")
    if order:
        audit.authorize_read(actor, "charges.search")
        number = order_number_of(order)
        with session_scope() as session:
            ids = list(
                session.exec(
                    select(StripeCharge.id)
                    .where(col(StripeCharge.order_number) == number, col(StripeCharge.deleted).is_(False))
                    .order_by(col(StripeCharge.created).desc(), col(StripeCharge.id).desc())
                    .limit(MAX_MATCHES)
                )
            )
        found = _charges_by_ids(actor, ids)
        return ChargeMatches(found, None, ListTotal(len(found)), f"order number {number}")
    filters = ChargeFilters(status=status, customer=customer)
    page = search_charges(actor, filters, "newest", cursor, limit)
    total = page.total or count_charges(actor, filters)  # an agent waits for the total the page came without
    with session_scope() as session:
        numbers = dict(
            session.exec(
                select(StripeCharge.id, StripeCharge.order_number).where(
                    col(StripeCharge.id).in_([r.id for r in page.items])
                )
            ).all()
        )
    items = [
        AgentCharge(
            id=r.id,
            customer=r.customer,
            amount=r.amount,
            refunded=r.refunded,
            refundable=Money.of(
                r.amount.amount - r.refunded.amount if r.status == "succeeded" else 0, r.amount.currency
            ),
            status=r.status,
            status_label=r.status_label,
            description=r.description,
            order_number=numbers.get(r.id) or "",
            card=r.card,
            failure_reason=r.reason_label,
            failure_message=r.failure_message,
            created=r.created,
        )
        for r in page.items
    ]
    return ChargeMatches(items, page.next_cursor, total, f"customer {' '.join(customer.split())[:80]}")


# --- failed payments ------------------------------------------------------------------------------


def report_period(period: str, first_day: str = "", last_day: str = "", zone: str = "UTC") -> failed_payments.Period:
    """A report's period as an agent names it: a preset (`PERIODS`; "this week" runs from Monday
    00:00 in the zone to now) or "custom" whole days, in the person's time zone."""
    if period == "custom":
        return failed_payments.custom_period(first_day, last_day, zone)
    if period != "this_week":
        return failed_payments.preset_period(period, zone)
    name = timezones.viewer_zone(zone)
    local = clock.now().astimezone(ZoneInfo(name))
    monday = datetime(local.year, local.month, local.day, tzinfo=local.tzinfo) - timedelta(days=local.weekday())
    start = monday.astimezone(UTC)
    end = clock.now().replace(microsecond=0) + timedelta(seconds=1)  # a charge made this second counts
    return failed_payments.Period(
        start, end, name, f"{PERIODS['this_week']}: {failed_payments.period_label(start, end, name)}"
    )


# --- overdue invoices -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueInvoice:
    id: str
    number: str
    remaining: Money
    due_date: int
    days_overdue: int


@dataclass(frozen=True)
class OverdueCustomer:
    customer: CustomerRef
    invoices: list[OverdueInvoice]  # most overdue first
    totals: list[Money]  # still due, per currency
    days_overdue: int  # of the most overdue invoice


@dataclass(frozen=True)
class OverdueReport:
    customers: list[OverdueCustomer]  # this page: most days overdue first, then most owed
    first: int  # the page's first customer's place in the whole list, from 1
    next_cursor: str | None
    customer_count: int  # every customer with an overdue invoice
    invoice_count: int
    totals: list[Money]  # everything overdue, per currency


def _per_currency(totals: dict[str, int]) -> list[Money]:
    return [Money.of(v, c) for c, v in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]


def overdue_customers(actor: Actor, cursor: str | None = None, limit: int = 20) -> OverdueReport:
    """Customers with open invoices past their due date, each with those invoices and how many
    days overdue they are, and the totals still due; a page of customers at a time."""
    audit.authorize_read(actor, "invoices.search")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_OVERDUE_PAGE:
        raise ValidationFailed(f"A page holds 1 to {MAX_OVERDUE_PAGE} customers.")
    offset = 0
    if cursor:
        found = _OFFSET.match(cursor) if isinstance(cursor, str) else None
        if found is None:
            raise ValidationFailed("That page link is no longer valid; start from the first page.")
        offset = int(found.group(1))
    now = clock.now()
    i = StripeInvoice
    with session_scope() as session:
        rows = session.exec(
            select(i)
            .options(defer(orm_attribute(i.raw)))
            .where(
                col(i.status) == "open",
                col(i.deleted).is_(False),
                col(i.due_date).is_not(None),
                col(i.due_date) < int(now.timestamp()),
            )
            .order_by(col(i.due_date), col(i.id))
            .limit(OVERDUE_SCAN)
        ).all()
        refs = customer_refs(session, {r.customer_id for r in rows if r.customer_id})
        by_customer: dict[str, list[StripeInvoice]] = defaultdict(list)
        for row in rows:
            by_customer[row.customer_id or f"email:{row.customer_email or row.id}"].append(row)
        everything: dict[str, int] = defaultdict(int)
        groups = []
        for invoices in by_customer.values():
            owed: dict[str, int] = defaultdict(int)
            lines = []
            for inv in invoices:
                late = days_overdue(inv.due_date, now) or 0
                owed[inv.currency] += inv.amount_remaining
                everything[inv.currency] += inv.amount_remaining
                lines.append(
                    OverdueInvoice(
                        inv.id,
                        inv.number or inv.id,
                        Money.of(inv.amount_remaining, inv.currency),
                        inv.due_date or 0,
                        late,
                    )
                )
            first = invoices[0]
            ref = refs.get(first.customer_id or "") or CustomerRef(
                first.customer_id or "", "", first.customer_email or ""
            )
            groups.append(OverdueCustomer(ref, lines, _per_currency(owed), max(line.days_overdue for line in lines)))
    groups.sort(key=lambda g: (-g.days_overdue, -sum(m.amount for m in g.totals), g.customer.id))
    page = groups[offset : offset + limit]
    more = f"o:{offset + limit}" if offset + limit < len(groups) else None
    return OverdueReport(page, offset + 1, more, len(groups), len(rows), _per_currency(everything))


# --- one subscription, one invoice --------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionItemLine:
    price_id: str
    product: str
    quantity: int
    unit_amount: Money | None
    interval: str  # "month", "3 months", "" for a one-off


@dataclass(frozen=True)
class SubscriptionDetail:
    id: str
    customer: CustomerRef
    status: str
    status_label: str
    items: list[SubscriptionItemLine]
    mrr: Money
    current_period_end: int | None
    cancel_at_period_end: bool
    canceled_at: int | None
    paused: str  # the pause behaviour while collection is paused, else ""
    resumes_at: int | None
    trial_end: int | None
    created: int


def subscription_detail(actor: Actor, subscription_id: str) -> SubscriptionDetail:
    """A subscription with its items (product, price, quantity), state and next renewal."""
    audit.authorize_read(actor, "subscriptions.search", str(subscription_id)[:255])
    with session_scope() as session:
        row = session.get(StripeSubscription, subscription_id) if isinstance(subscription_id, str) else None
        if row is None or row.deleted:
            raise NotFound("No subscription with that id has been synced from Stripe.")
        items = session.exec(
            select(StripeSubscriptionItem)
            .where(col(StripeSubscriptionItem.subscription_id) == row.id)
            .order_by(col(StripeSubscriptionItem.id))
        ).all()
        product_ids = {i.product_id for i in items if i.product_id}
        names = (
            {p.id: p.name for p in session.exec(select(StripeProduct).where(col(StripeProduct.id).in_(product_ids)))}
            if product_ids
            else {}
        )
        customer = customer_refs(session, {row.customer_id} if row.customer_id else set())
        raw = row.raw or {}
        pause = raw.get("pause_collection") if isinstance(raw.get("pause_collection"), dict) else None
        trial_end = raw.get("trial_end")
        lines = []
        for item in items:
            count = item.recurring_interval_count or 1
            every = item.recurring_interval or ""
            lines.append(
                SubscriptionItemLine(
                    price_id=item.price_id or "",
                    product=names.get(item.product_id or "", "") or item.price_id or "",
                    quantity=item.quantity,
                    unit_amount=Money.of(item.unit_amount, item.currency) if item.unit_amount is not None else None,
                    interval=f"{count} {every}s" if count > 1 and every else every,
                )
            )
        return SubscriptionDetail(
            id=row.id,
            customer=customer.get(row.customer_id or "") or CustomerRef(row.customer_id or "", "", ""),
            status=row.status,
            status_label=SUBSCRIPTION_STATUSES.get(row.status, row.status.replace("_", " ").capitalize()),
            items=lines,
            mrr=Money.of(row.mrr, row.currency),
            current_period_end=row.current_period_end,
            cancel_at_period_end=row.cancel_at_period_end,
            canceled_at=row.canceled_at,
            paused=str(pause.get("behavior") or "") if pause else "",
            resumes_at=pause.get("resumes_at") if pause and isinstance(pause.get("resumes_at"), int) else None,
            trial_end=int(trial_end) if row.status == "trialing" and isinstance(trial_end, int) else None,
            created=row.created,
        )


@dataclass(frozen=True)
class InvoiceLineView:
    description: str
    amount: Money
    quantity: int | None


@dataclass(frozen=True)
class InvoiceDetail:
    id: str
    number: str
    customer: CustomerRef
    status: str  # Stripe's, or "overdue" (open and past due)
    status_label: str
    collection_method: str
    total: Money
    paid: Money
    remaining: Money
    due_date: int | None
    days_overdue: int | None
    subscription_id: str
    hosted_invoice_url: str
    lines: list[InvoiceLineView]
    created: int


def invoice_detail(actor: Actor, invoice_id: str) -> InvoiceDetail:
    """An invoice with its lines, what is paid and still due, and how late it is."""
    audit.authorize_read(actor, "invoices.search", str(invoice_id)[:255])
    now = clock.now()
    with session_scope() as session:
        row = session.get(StripeInvoice, invoice_id) if isinstance(invoice_id, str) else None
        if row is None or row.deleted:
            raise NotFound("No invoice with that id has been synced from Stripe.")
        lines = session.exec(
            select(StripeInvoiceLine)
            .where(col(StripeInvoiceLine.invoice_id) == row.id)
            .order_by(col(StripeInvoiceLine.id))
        ).all()
        customer = customer_refs(session, {row.customer_id} if row.customer_id else set())
        late = days_overdue(row.due_date, now) if row.status == "open" else None
        status = "overdue" if late is not None else (row.status or "")
        url = (row.raw or {}).get("hosted_invoice_url")
        return InvoiceDetail(
            id=row.id,
            number=row.number or "",
            customer=customer.get(row.customer_id or "")
            or CustomerRef(row.customer_id or "", "", row.customer_email or ""),
            status=status,
            status_label=INVOICE_STATUSES.get(status, status.replace("_", " ").capitalize()),
            collection_method=row.collection_method or "",
            total=Money.of(row.total, row.currency),
            paid=Money.of(row.amount_paid, row.currency),
            remaining=Money.of(row.amount_remaining, row.currency),
            due_date=row.due_date,
            days_overdue=late,
            subscription_id=row.subscription_id or "",
            hosted_invoice_url=url if isinstance(url, str) and url.startswith("https://") else "",
            lines=[
                InvoiceLineView(line.description or "", Money.of(line.amount, line.currency), line.quantity)
                for line in lines
            ],
            created=row.created,
        )
