"""The read tools: each one service call, its result as readable text and as structured content.

Lists page with a cursor: a result with `has_more` says so and gives the `next_cursor` to pass
back. Nothing here reads Stripe or the store directly; the service functions authorize every call.
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from billy_app.mcp.calls import CustomerOut, MoneyOut, answer, day, moneys, more, when, who
from services import agent_reads, billing, customer_overview, failed_payments, reports
from services.agent_tokens import scope_words
from services.money import format_money
from services.permissions import Actor, refund_caps, role_label

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)

Cursor = Annotated[
    str | None,
    Field(default=None, max_length=300, description="From a previous page's next_cursor; omit for the first page."),
]
Limit = Annotated[int, Field(ge=1, le=50, description="Rows per page (1–50).")]
CustomerText = Annotated[
    str,
    Field(
        max_length=200,
        description="A customer id (cus_…) or the start of their name or email, e.g. 'jane' or 'acme.com'.",
    ),
]


# --- who am I ------------------------------------------------------------------------------------


class WhoAmI(BaseModel):
    email: str
    role: str
    refund_limits: list[MoneyOut] | None = Field(description="Per charge, per currency; null means no limit.")
    agent_client: str
    token_scope: str


def whoami(ctx: Context) -> Annotated[CallToolResult, WhoAmI]:
    """Who this connection acts as: the Billy member, their role, refund limit per charge and the
    agent token's scope. Every tool acts as this member, within these limits."""

    def work(actor: Actor) -> tuple[str, WhoAmI]:
        caps = refund_caps(actor)
        limits = (
            None if caps is None else [MoneyOut(amount=v, currency=c, text=format_money(v, c)) for c, v in caps.items()]
        )
        scope = scope_words(actor.scope) if actor.scope else "as your role"
        words = (
            "no refund limit"
            if limits is None
            else ("refunds up to " + ", ".join(m.text for m in limits) + " per charge" if limits else "no refunds")
        )
        client = actor.token_client or "an access token"
        text = f"Acting as {actor.email}, {role_label(actor)}: {words}. Connected with {client} ({scope})."
        return text, WhoAmI(
            email=actor.email,
            role=role_label(actor),
            refund_limits=limits,
            agent_client=actor.token_client,
            token_scope=scope,
        )

    return answer(ctx, work, read="whoami")


# --- customers -----------------------------------------------------------------------------------


class CustomerRowOut(CustomerOut):
    created: str | None


class CustomerList(BaseModel):
    customers: list[CustomerRowOut]
    total: str | None = Field(description="How many match ('4,221', or '10,000+'); null when not counted.")
    has_more: bool
    next_cursor: str | None


def search_customers(
    ctx: Context,
    query: Annotated[str, Field(max_length=200, description="Start of a name or email; empty lists everyone.")] = "",
    cursor: Cursor = None,
    limit: Limit = 20,
) -> Annotated[CallToolResult, CustomerList]:
    """Find customers by the start of their name (any word) or email, newest first, a page at a time."""

    def work(actor: Actor) -> tuple[str, CustomerList]:
        page = billing.search_customers(actor, query, cursor, limit)
        rows = [CustomerRowOut(id=c.id, name=c.name, email=c.email, created=when(c.created)) for c in page.items]
        total = page.total.label if page.total else None
        head = (
            f"{len(rows)} customer(s)" + (f" of {total}" if total else "") + (f" matching {query!r}" if query else "")
        )
        lines = [f"- {c.name or '(no name)'} <{c.email or 'no email'}> ({c.id})" for c in rows]
        text = head + (":\n" + "\n".join(lines) if lines else ".") + more(page.next_cursor)
        return text, CustomerList(
            customers=rows, total=total, has_more=page.next_cursor is not None, next_cursor=page.next_cursor
        )

    return answer(ctx, work, read="search_customers")


class SubscriptionLineOut(BaseModel):
    id: str
    status: str
    plan: str
    next_invoice: str | None
    ends_at: str | None


class InvoiceLineOut(BaseModel):
    id: str
    number: str
    status: str
    total: MoneyOut
    remaining: MoneyOut
    due_date: str | None
    days_overdue: int | None


class CustomerDetailOut(BaseModel):
    customer: CustomerOut
    phone: str
    lifetime_paid: list[MoneyOut]
    lifetime_refunded: list[MoneyOut]
    cards: list[str]
    subscriptions: list[SubscriptionLineOut]
    invoices: list[InvoiceLineOut]
    recent_charges: list[str]


def customer_details(
    ctx: Context,
    customer_id: Annotated[str, Field(pattern=r"^cus_[A-Za-z0-9]{1,250}$", description="The customer's id, cus_….")],
) -> Annotated[CallToolResult, CustomerDetailOut]:
    """One customer: contact details, lifetime spend, cards, subscriptions, invoices (with days overdue)
    and their ten newest charges."""

    def work(actor: Actor) -> tuple[str, CustomerDetailOut]:
        detail = billing.get_customer(actor, customer_id, charge_limit=10)
        overview = customer_overview.customer_overview(actor, customer_id)
        ref = reports.CustomerRef(detail.customer.id, detail.customer.name, detail.customer.email)
        paid = [reports.Money.of(s.paid, s.currency) for s in overview.lifetime]
        refunded = [reports.Money.of(s.refunded, s.currency) for s in overview.lifetime]
        charges = [
            f"{c.id}: {format_money(c.amount, c.currency)} {c.status}, {day(c.created)}"
            + (f", order {c.order_number}" if c.order_number else "")
            for c in detail.charges
        ]
        invoices = [
            InvoiceLineOut(
                id=i.id,
                number=i.number,
                status=i.status,
                total=MoneyOut.of(reports.Money.of(i.total, i.currency)),
                remaining=MoneyOut.of(reports.Money.of(i.amount_remaining, i.currency)),
                due_date=when(i.due_date),
                days_overdue=i.days_overdue,
            )
            for i in overview.invoices[:10]
        ]
        subs = [
            SubscriptionLineOut(
                id=s.id, status=s.status, plan=s.plan, next_invoice=when(s.next_invoice), ends_at=when(s.ends_at)
            )
            for s in overview.subscriptions[:10]
        ]
        text = "\n".join(
            [
                f"{who(ref)} ({ref.id}), phone {detail.phone or 'none'}.",
                f"Paid {moneys(paid)}, refunded {moneys(refunded)} in all.",
                "Cards: "
                + (
                    ", ".join(p.label + (" (default)" if p.is_default else "") for p in overview.payment_methods)
                    or "none"
                ),
                "Subscriptions: " + ("; ".join(f"{s.id} {s.status}: {s.plan}" for s in subs) or "none"),
                "Invoices: "
                + (
                    "; ".join(
                        f"{i.number or i.id} {i.status} {i.remaining.text} due"
                        + (f" ({i.days_overdue} days overdue)" if i.days_overdue is not None else "")
                        for i in invoices
                    )
                    or "none"
                ),
                "Newest charges: " + ("; ".join(charges) or "none"),
            ]
        )
        return text, CustomerDetailOut(
            customer=CustomerOut.of(ref),
            phone=detail.phone,
            lifetime_paid=[MoneyOut.of(m) for m in paid],
            lifetime_refunded=[MoneyOut.of(m) for m in refunded],
            cards=[p.label for p in overview.payment_methods],
            subscriptions=subs,
            invoices=invoices,
            recent_charges=charges,
        )

    return answer(ctx, work, read="customer_details")


# --- charges ---------------------------------------------------------------------------------------


class ChargeOut(BaseModel):
    id: str
    customer: CustomerOut
    amount: MoneyOut
    refunded: MoneyOut
    refundable: MoneyOut = Field(description="What a refund could still give back.")
    status: str
    status_label: str
    description: str
    order_number: str
    card: str
    failure_reason: str
    failure_message: str
    created: str | None


class ChargeList(BaseModel):
    matched_by: str
    charges: list[ChargeOut]
    total: str | None
    has_more: bool
    next_cursor: str | None


def _charge_out(c: agent_reads.AgentCharge) -> ChargeOut:
    return ChargeOut(
        id=c.id,
        customer=CustomerOut.of(c.customer),
        amount=MoneyOut.of(c.amount),
        refunded=MoneyOut.of(c.refunded),
        refundable=MoneyOut.of(c.refundable),
        status=c.status,
        status_label=c.status_label,
        description=c.description,
        order_number=c.order_number,
        card=c.card,
        failure_reason=c.failure_reason,
        failure_message=c.failure_message,
        created=when(c.created),
    )


def charge_sentence(c: agent_reads.AgentCharge) -> str:
    """ "ch_…: $45.99 to Jane Smith (jane@…) on Visa •••• 4242, 3 May 2026, order 5678 — Succeeded;
    $45.99 refundable." """
    parts = [f"{c.id}: {c.amount.text} to {who(c.customer)}"]
    if c.card:
        parts.append(f"on {c.card}")
    text = " ".join(parts) + f", {day(c.created)}"
    if c.order_number:
        text += f", order {c.order_number}"
    text += f" — {c.status_label}"
    if c.failure_reason:
        text += f" ({c.failure_reason}: {c.failure_message})" if c.failure_message else f" ({c.failure_reason})"
    if c.refunded.amount:
        text += f"; {c.refunded.text} refunded"
    if c.refundable.amount:
        text += f"; {c.refundable.text} refundable"
    return text + "."


def find_charges(
    ctx: Context,
    charge_id: Annotated[str, Field(max_length=255, description="A charge id (ch_… or py_…).")] = "",
    order_number: Annotated[
        str, Field(max_length=80, description="An order number as a person says it: 'order #5678', '#5678' or '5678'.")
    ] = "",
    customer: CustomerText = "",
    status: Annotated[
        Literal["", "succeeded", "failed", "pending", "refunded"],
        Field(description="With `customer` only: just charges in this state ('refunded': anything refunded)."),
    ] = "",
    cursor: Cursor = None,
    limit: Limit = 10,
) -> Annotated[CallToolResult, ChargeList]:
    """Find charges by exactly one of: charge id, order number ("refund order #5678" → order_number
    "5678") or customer (newest first, a page at a time). Each charge says whose it is, the card,
    its state and how much can still be refunded: use its id with preview_refund."""

    def work(actor: Actor) -> tuple[str, ChargeList]:
        found = agent_reads.find_charges(
            actor, charge_id=charge_id, order=order_number, customer=customer, status=status, cursor=cursor, limit=limit
        )
        total = found.total.label if found.total else None
        if not found.items:
            text = f"No charge found by {found.matched_by}."
        else:
            text = f"{len(found.items)} charge(s) by {found.matched_by}" + (f" (of {total})" if total else "") + ":\n"
            text += "\n".join(f"- {charge_sentence(c)}" for c in found.items)
        return text + more(found.next_cursor), ChargeList(
            matched_by=found.matched_by,
            charges=[_charge_out(c) for c in found.items],
            total=total,
            has_more=found.next_cursor is not None,
            next_cursor=found.next_cursor,
        )

    return answer(ctx, work, read="find_charges")


# --- failed payments ------------------------------------------------------------------------------------


class FailedChargeOut(BaseModel):
    charge_id: str
    amount: MoneyOut
    created: str | None
    card: str
    message: str


class FailedCustomerOut(BaseModel):
    customer: CustomerOut
    count: int
    totals: list[MoneyOut]
    repeat: bool = Field(description="Two or more failed payments in the period, whatever the reason.")
    period_failures: int
    has_email: bool
    failures: list[FailedChargeOut]


class FailedGroupOut(BaseModel):
    reason: str
    label: str
    count: int
    totals: list[MoneyOut]
    repeat_customers: int
    customers: list[FailedCustomerOut]
    more_customers: int = Field(description="Customers beyond those listed (the list holds 200 per reason).")
    without_customer: int


class FailedPaymentsOut(BaseModel):
    period: str
    start: str
    end: str
    count: int
    totals: list[MoneyOut]
    customers: int
    repeat_customers: int
    customers_without_email: int
    groups: list[FailedGroupOut]


Period = Literal["this_week", "last_7_days", "last_30_days", "this_month", "last_month", "custom"]


def failed_payments_report(
    ctx: Context,
    period: Annotated[
        Period,
        Field(
            description="this_week (from Monday), last_7_days, last_30_days, this_month, last_month, or custom days."
        ),
    ] = "this_week",
    first_day: Annotated[str, Field(max_length=10, description="With period=custom: first day, YYYY-MM-DD.")] = "",
    last_day: Annotated[
        str, Field(max_length=10, description="With period=custom: last day (included), YYYY-MM-DD.")
    ] = "",
    time_zone: Annotated[
        str, Field(max_length=64, description="IANA zone the days are in, e.g. Europe/Paris.")
    ] = "UTC",
) -> Annotated[CallToolResult, FailedPaymentsOut]:
    """Failed payments over a period, grouped by reason (expired card, insufficient funds, fraud block,
    other), with totals per currency and the customers behind them; repeat customers (two or more
    failures in the period) are marked. Customers with an email can be sent a card-update request
    with preview_payment_update_emails."""

    def work(actor: Actor) -> tuple[str, FailedPaymentsOut]:
        chosen = agent_reads.report_period(period, first_day, last_day, time_zone)
        report = failed_payments.failed_payments_report(actor, chosen.start, chosen.end, chosen.zone)
        groups = []
        lines = []
        for g in report.groups:
            repeaters = sum(1 for c in g.customers if c.repeat)
            groups.append(
                FailedGroupOut(
                    reason=str(g.reason),
                    label=g.label,
                    count=g.count,
                    totals=[MoneyOut.of(m) for m in g.totals],
                    repeat_customers=repeaters,
                    customers=[
                        FailedCustomerOut(
                            customer=CustomerOut.of(c.customer),
                            count=c.count,
                            totals=[MoneyOut.of(m) for m in c.totals],
                            repeat=c.repeat,
                            period_failures=c.period_failures,
                            has_email=c.has_email,
                            failures=[
                                FailedChargeOut(
                                    charge_id=f.id,
                                    amount=MoneyOut.of(f.amount),
                                    created=when(f.created),
                                    card=f.card,
                                    message=f.message,
                                )
                                for f in c.failures
                            ],
                        )
                        for c in g.customers
                    ],
                    more_customers=g.more_customers,
                    without_customer=g.without_customer,
                )
            )
            if g.count:
                names = ", ".join(c.customer.name or c.customer.email or c.customer.id for c in g.customers[:8])
                lines.append(
                    f"- {g.count} {g.label.lower()} ({moneys(g.totals)})"
                    + (f", {repeaters} of them repeat customers" if repeaters else "")
                    + (f": {names}" if names else "")
                )
        label = chosen.label
        text = (
            f"{report.count} failed payment(s) totalling {moneys(report.totals)} — {label}"
            + (":\n" + "\n".join(lines) if lines else ".")
            + f"\n{report.customers} customer(s), {report.repeat_customers} repeat, "
            + f"{report.customers_without_email} without an email."
        )
        return text, FailedPaymentsOut(
            period=label,
            start=report.start.isoformat(),
            end=report.end.isoformat(),
            count=report.count,
            totals=[MoneyOut.of(m) for m in report.totals],
            customers=report.customers,
            repeat_customers=report.repeat_customers,
            customers_without_email=report.customers_without_email,
            groups=groups,
        )

    return answer(ctx, work, read="failed_payments")


# --- overdue invoices -----------------------------------------------------------------------------------


class OverdueInvoiceOut(BaseModel):
    id: str
    number: str
    remaining: MoneyOut
    due_date: str | None
    days_overdue: int


class OverdueCustomerOut(BaseModel):
    customer: CustomerOut
    totals: list[MoneyOut]
    days_overdue: int = Field(description="Of this customer's most overdue invoice.")
    invoices: list[OverdueInvoiceOut]


class OverdueOut(BaseModel):
    customer_count: int
    invoice_count: int
    totals: list[MoneyOut]
    customers: list[OverdueCustomerOut]
    has_more: bool
    next_cursor: str | None


def overdue_invoices(ctx: Context, cursor: Cursor = None, limit: Limit = 20) -> Annotated[CallToolResult, OverdueOut]:
    """Customers with overdue invoices (open and past their due date): what each owes, how many days
    overdue, and the invoice ids — pass those to preview_invoice_reminders to email reminders.
    Most overdue first, a page of customers at a time."""

    def work(actor: Actor) -> tuple[str, OverdueOut]:
        report = agent_reads.overdue_customers(actor, cursor, limit)
        rows = [
            OverdueCustomerOut(
                customer=CustomerOut.of(g.customer),
                totals=[MoneyOut.of(m) for m in g.totals],
                days_overdue=g.days_overdue,
                invoices=[
                    OverdueInvoiceOut(
                        id=i.id,
                        number=i.number,
                        remaining=MoneyOut.of(i.remaining),
                        due_date=when(i.due_date),
                        days_overdue=i.days_overdue,
                    )
                    for i in g.invoices
                ],
            )
            for g in report.customers
        ]
        lines = [
            f"{n}. {g.customer.name or g.customer.email or g.customer.id} — {moneys(g.totals)} "
            + f"({g.days_overdue} days overdue; "
            + ", ".join(f"{i.number} {i.id}" for i in g.invoices)
            + ")"
            for n, g in enumerate(report.customers, start=report.first)
        ]
        text = (
            f"Found {report.customer_count} customer(s) with {report.invoice_count} overdue invoice(s) totalling "
            f"{moneys(report.totals)}" + (":\n" + "\n".join(lines) if lines else ".") + more(report.next_cursor)
        )
        return text, OverdueOut(
            customer_count=report.customer_count,
            invoice_count=report.invoice_count,
            totals=[MoneyOut.of(m) for m in report.totals],
            customers=rows,
            has_more=report.next_cursor is not None,
            next_cursor=report.next_cursor,
        )

    return answer(ctx, work, read="overdue_invoices")


# --- subscriptions ----------------------------------------------------------------------------------------


class SubscriptionRowOut(BaseModel):
    id: str
    customer: CustomerOut
    status: str
    plan: str
    mrr: MoneyOut
    current_period_end: str | None
    cancel_at_period_end: bool


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionRowOut]
    total: str | None
    has_more: bool
    next_cursor: str | None


def list_subscriptions(
    ctx: Context,
    customer: CustomerText = "",
    status: Annotated[
        Literal[
            "", "active", "past_due", "trialing", "unpaid", "paused", "incomplete", "incomplete_expired", "canceled"
        ],
        Field(description="Only subscriptions in this state."),
    ] = "",
    cursor: Cursor = None,
    limit: Limit = 20,
) -> Annotated[CallToolResult, SubscriptionList]:
    """List subscriptions, newest first, optionally of one customer or state, a page at a time."""

    def work(actor: Actor) -> tuple[str, SubscriptionList]:
        page = reports.search_subscriptions(
            actor, reports.SubscriptionFilters(status=status, customer=customer), "newest", cursor, limit
        )
        rows = [
            SubscriptionRowOut(
                id=s.id,
                customer=CustomerOut.of(s.customer),
                status=s.status,
                plan=s.plan,
                mrr=MoneyOut.of(s.mrr),
                current_period_end=when(s.current_period_end),
                cancel_at_period_end=s.cancel_at_period_end,
            )
            for s in page.items
        ]
        total = page.total.label if page.total else None
        lines = [
            f"- {s.id}: {who(s.customer)}, {s.status_label}, {s.plan or 'no items'}, {s.mrr.text}/month"
            for s in page.items
        ]
        text = (
            f"{len(rows)} subscription(s)"
            + (f" of {total}" if total else "")
            + (":\n" + "\n".join(lines) if lines else ".")
        )
        return text + more(page.next_cursor), SubscriptionList(
            subscriptions=rows, total=total, has_more=page.next_cursor is not None, next_cursor=page.next_cursor
        )

    return answer(ctx, work, read="list_subscriptions")


class SubscriptionItemOut(BaseModel):
    price_id: str
    product: str
    quantity: int
    unit_amount: MoneyOut | None
    interval: str


class SubscriptionDetailOut(BaseModel):
    id: str
    customer: CustomerOut
    status: str
    status_label: str
    items: list[SubscriptionItemOut]
    mrr: MoneyOut
    current_period_end: str | None
    cancel_at_period_end: bool
    canceled_at: str | None
    paused: str = Field(description="What renewals do while collection is paused; empty when not paused.")
    resumes_at: str | None
    trial_end: str | None
    created: str | None


def subscription_details(
    ctx: Context,
    subscription_id: Annotated[
        str, Field(pattern=r"^sub_[A-Za-z0-9]{1,250}$", description="The subscription's id, sub_….")
    ],
) -> Annotated[CallToolResult, SubscriptionDetailOut]:
    """One subscription: its customer, items (product, price, quantity), state, monthly value, renewal
    date, and any pause or pending cancellation."""

    def work(actor: Actor) -> tuple[str, SubscriptionDetailOut]:
        s = agent_reads.subscription_detail(actor, subscription_id)
        items = [
            SubscriptionItemOut(
                price_id=i.price_id,
                product=i.product,
                quantity=i.quantity,
                unit_amount=MoneyOut.of(i.unit_amount) if i.unit_amount else None,
                interval=i.interval,
            )
            for i in s.items
        ]
        plan = "; ".join(
            f"{i.product} × {i.quantity}"
            + (f" at {i.unit_amount.text}/{i.interval or 'once'}" if i.unit_amount else "")
            + f" ({i.price_id})"
            for i in items
        )
        state = s.status_label
        if s.cancel_at_period_end:
            state += f", ends {day(s.current_period_end)}"
        elif s.current_period_end and s.status in ("active", "trialing", "past_due"):
            state += f", renews {day(s.current_period_end)}"
        if s.paused:
            state += f", collection paused ({s.paused})"
        text = f"{s.id} for {who(s.customer)}: {state}. {plan or 'No items'}. Worth {s.mrr.text} a month."
        return text, SubscriptionDetailOut(
            id=s.id,
            customer=CustomerOut.of(s.customer),
            status=s.status,
            status_label=s.status_label,
            items=items,
            mrr=MoneyOut.of(s.mrr),
            current_period_end=when(s.current_period_end),
            cancel_at_period_end=s.cancel_at_period_end,
            canceled_at=when(s.canceled_at),
            paused=s.paused,
            resumes_at=when(s.resumes_at),
            trial_end=when(s.trial_end),
            created=when(s.created),
        )

    return answer(ctx, work, read="subscription_details")


# --- invoices ----------------------------------------------------------------------------------------------


class InvoiceRowOut(BaseModel):
    id: str
    number: str
    customer: CustomerOut
    status: str
    total: MoneyOut
    remaining: MoneyOut
    due_date: str | None
    overdue: bool


class InvoiceList(BaseModel):
    invoices: list[InvoiceRowOut]
    total: str | None
    has_more: bool
    next_cursor: str | None


def list_invoices(
    ctx: Context,
    customer: CustomerText = "",
    status: Annotated[
        Literal["", "draft", "open", "overdue", "paid", "uncollectible", "void"],
        Field(description="Only invoices in this state ('overdue': open and past due)."),
    ] = "",
    cursor: Cursor = None,
    limit: Limit = 20,
) -> Annotated[CallToolResult, InvoiceList]:
    """List invoices, newest first, optionally of one customer or state, a page at a time."""

    def work(actor: Actor) -> tuple[str, InvoiceList]:
        page = reports.search_invoices(
            actor, reports.InvoiceFilters(status=status, customer=customer), "newest", cursor, limit
        )
        rows = [
            InvoiceRowOut(
                id=i.id,
                number=i.number,
                customer=CustomerOut.of(i.customer),
                status=i.status,
                total=MoneyOut.of(i.total),
                remaining=MoneyOut.of(i.remaining),
                due_date=when(i.due_date),
                overdue=i.overdue,
            )
            for i in page.items
        ]
        total = page.total.label if page.total else None
        lines = [
            f"- {i.number or i.id} ({i.id}): {who(i.customer)}, {i.status_label}, {i.total.text}"
            + (f", {i.remaining.text} due {day(i.due_date)}" if i.remaining.amount else "")
            for i in page.items
        ]
        text = (
            f"{len(rows)} invoice(s)" + (f" of {total}" if total else "") + (":\n" + "\n".join(lines) if lines else ".")
        )
        return text + more(page.next_cursor), InvoiceList(
            invoices=rows, total=total, has_more=page.next_cursor is not None, next_cursor=page.next_cursor
        )

    return answer(ctx, work, read="list_invoices")


class InvoiceLineItemOut(BaseModel):
    description: str
    amount: MoneyOut
    quantity: int | None


class InvoiceDetailOut(BaseModel):
    id: str
    number: str
    customer: CustomerOut
    status: str
    status_label: str
    collection_method: str
    total: MoneyOut
    paid: MoneyOut
    remaining: MoneyOut
    due_date: str | None
    days_overdue: int | None
    subscription_id: str
    hosted_invoice_url: str
    lines: list[InvoiceLineItemOut]
    created: str | None


def invoice_details(
    ctx: Context,
    invoice_id: Annotated[str, Field(pattern=r"^in_[A-Za-z0-9]{1,250}$", description="The invoice's id, in_….")],
) -> Annotated[CallToolResult, InvoiceDetailOut]:
    """One invoice: customer, lines, total, paid and still due, due date and days overdue, its
    payment page, and the subscription it bills (if any)."""

    def work(actor: Actor) -> tuple[str, InvoiceDetailOut]:
        i = agent_reads.invoice_detail(actor, invoice_id)
        lines = [
            InvoiceLineItemOut(description=line.description, amount=MoneyOut.of(line.amount), quantity=line.quantity)
            for line in i.lines
        ]
        late = f", {i.days_overdue} days overdue" if i.days_overdue is not None else ""
        text = (
            f"Invoice {i.number or '(draft)'} ({i.id}) for {who(i.customer)}: {i.status_label}{late}. "
            f"Total {i.total.text}, paid {i.paid.text}, {i.remaining.text} still due"
            + (f" by {day(i.due_date)}" if i.due_date else "")
            + ". Lines: "
            + ("; ".join(f"{line.description or 'item'} {line.amount.text}" for line in lines) or "none")
            + "."
        )
        return text, InvoiceDetailOut(
            id=i.id,
            number=i.number,
            customer=CustomerOut.of(i.customer),
            status=i.status,
            status_label=i.status_label,
            collection_method=i.collection_method,
            total=MoneyOut.of(i.total),
            paid=MoneyOut.of(i.paid),
            remaining=MoneyOut.of(i.remaining),
            due_date=when(i.due_date),
            days_overdue=i.days_overdue,
            subscription_id=i.subscription_id,
            hosted_invoice_url=i.hosted_invoice_url,
            lines=lines,
            created=when(i.created),
        )

    return answer(ctx, work, read="invoice_details")


READ_TOOLS = (
    whoami,
    search_customers,
    customer_details,
    find_charges,
    failed_payments_report,
    overdue_invoices,
    list_subscriptions,
    subscription_details,
    list_invoices,
    invoice_details,
)


def register(server: MCPServer) -> None:
    """Offer every read tool (each its own function above, described by its docstring)."""
    for tool in READ_TOOLS:
        name = "failed_payments" if tool is failed_payments_report else tool.__name__
        server.add_tool(tool, name=name, annotations=READ)
