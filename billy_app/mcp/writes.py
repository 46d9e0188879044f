"""Writes through the agent door, in two steps, built once for all of them.

Each write is one `Write` in `WRITES`: its input model, a `preview` that says what will happen
(from the service's own preview or read) and a `perform` that calls the service function. From
each, `register` makes two tools:

- `preview_<name>` checks the member may do the action at all (role, plan, the token's scope:
  refused as a tool error, audited), describes the change (amount, customer, card, within the
  caps or not) and, when it is allowed, returns a confirmation token from
  `services.confirmations.issue`, bound to exactly the parameters to confirm, this member and
  this agent token, for 5 minutes, once. Over the refund cap it says so and offers the approval
  request instead.
- `confirm_<name>` takes the same parameters and that token: `confirmations.redeem` refuses a
  replayed, edited, expired or someone else's token (audited as `agents.confirm`), then the
  service function runs with a Stripe idempotency key derived from the confirmation token, so no
  confirmation can act twice.

The service still authorizes and validates everything on confirm: the preview only informs.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from billy_app.mcp.calls import CustomerOut, MoneyOut, answer, day, who
from services import (
    agent_reads,
    audit,
    billing,
    confirmations,
    customers,
    failed_payments,
    invoice_changes,
    refund_requests,
    subscription_changes,
)
from services.errors import ValidationFailed
from services.money import format_money
from services.payment_update_mail import DEFAULT_BODY, DEFAULT_SUBJECT, MAX_BODY, MAX_SUBJECT
from services.permissions import Actor, refund_caps
from services.reports import Money

# --- the mechanism -----------------------------------------------------------------------------------


class Params(BaseModel):
    """A write's inputs: unknown fields are refused, so nothing unseen slips past a confirmation."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Preview:
    """What a write would do, in words and as data."""

    summary: str
    allowed: bool
    refusal: str = ""  # why not, when not allowed
    details: dict[str, Any] = field(default_factory=dict)
    confirm: Params | None = None  # the exact parameters to confirm (default: those previewed)
    instead: str = ""  # another tool that can get it done (over the cap: the approval request)


@dataclass(frozen=True)
class Done:
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Write:
    """One write an agent may make: tools `preview_<name>` and `confirm_<name>`."""

    name: str
    action: str  # the service action; confirmations are bound to it
    title: str
    description: str  # what it does and when to use it
    params: type[Params]
    preview: Callable[[Actor, Any], Preview]
    perform: Callable[[Actor, Any, str], Done]  # (actor, confirmed params, idempotency key)
    confirm_params: type[Params] | None = None  # when confirming takes more than previewing did
    gate: str = ""  # the action a member needs to preview at all (default: `action`)

    @property
    def confirm_model(self) -> type[Params]:
        return self.confirm_params or self.params


class PreviewOut(BaseModel):
    write: str
    summary: str
    allowed: bool
    refusal: str
    details: dict[str, Any]
    confirm_tool: str | None = Field(description="Call it with confirm_arguments to go ahead; null when not allowed.")
    confirm_arguments: dict[str, Any] | None
    expires_at: str | None
    instead: str = Field(description="Another tool that can get this done when this one cannot (or '').")


class DoneOut(BaseModel):
    write: str
    summary: str
    details: dict[str, Any]


TOKEN = "confirmation_token"


def idempotency_key_for(confirmation_token: str) -> str:
    """The Stripe idempotency key of a confirmed write: one per confirmation, so a confirm that is
    somehow retried reaches Stripe (and Billy's intent records) as the same request."""
    return "mcp-" + hashlib.sha256(confirmation_token.encode()).hexdigest()[:48]


def _run_preview(write: Write, ctx: Context, arguments: dict[str, Any]) -> CallToolResult:
    def work(actor: Actor) -> tuple[str, PreviewOut]:
        audit.authorize_read(actor, write.gate or write.action)  # a role or token that never may: refused here
        params = write.params(**arguments)
        preview = write.preview(actor, params)
        bound = preview.confirm or write.confirm_model(**params.model_dump())
        token, expires = (None, None)
        if preview.allowed:
            token, expires = confirmations.issue(actor, write.action, bound.model_dump(mode="json"))
        confirm_tool = f"confirm_{write.name}" if token else None
        arguments_out = {**bound.model_dump(mode="json"), TOKEN: token} if token else None
        if token:
            text = (
                f"{preview.summary}\nAllowed. To go ahead, call {confirm_tool} with exactly these arguments "
                f"(valid 5 minutes, once): {json.dumps(arguments_out)}"
            )
        else:
            text = f"{preview.summary}\nNot allowed: {preview.refusal}" + (
                f"\n{preview.instead}" if preview.instead else ""
            )
        return text, PreviewOut(
            write=write.name,
            summary=preview.summary,
            allowed=preview.allowed,
            refusal=preview.refusal,
            details=preview.details,
            confirm_tool=confirm_tool,
            confirm_arguments=arguments_out,
            expires_at=expires.isoformat() if expires else None,
            instead=preview.instead,
        )

    return answer(ctx, work, read=f"preview_{write.name}")


def _run_confirm(write: Write, ctx: Context, arguments: dict[str, Any]) -> CallToolResult:
    def work(actor: Actor) -> tuple[str, DoneOut]:
        audit.authorize_read(actor, write.gate or write.action)
        token = arguments.pop(TOKEN)
        params = write.confirm_model(**arguments)
        confirmations.redeem(actor, write.action, params.model_dump(mode="json"), token)
        done = write.perform(actor, params, idempotency_key_for(token))
        return done.summary, DoneOut(write=write.name, summary=done.summary, details=done.details)

    return answer(ctx, work)


def _parameters(model: type[Params]) -> list[inspect.Parameter]:
    """A model's fields as keyword parameters, so the tool's input schema lists them one by one."""
    found = []
    for name, info in model.model_fields.items():
        annotation = Annotated[(info.annotation, *info.metadata, Field(description=info.description))]  # type: ignore[valid-type]
        default = inspect.Parameter.empty if info.is_required() else info.default
        found.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    return found


def _tool(
    run: Callable[[Write, Context, dict[str, Any]], CallToolResult],
    write: Write,
    parameters: list[inspect.Parameter],
    output: type[BaseModel],
) -> Callable[..., CallToolResult]:
    """A tool function for `write` whose signature is `parameters` and a Context."""

    def tool(ctx: Context, **arguments: Any) -> CallToolResult:
        return run(write, ctx, arguments)

    returns = Annotated[CallToolResult, output]
    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
    tool.__signature__ = inspect.Signature([*parameters, context], return_annotation=returns)  # type: ignore[attr-defined]
    tool.__annotations__ = {**{p.name: p.annotation for p in parameters}, "ctx": Context, "return": returns}
    return tool


def register(server: MCPServer, writes: tuple[Write, ...] | None = None) -> None:
    """Offer each write as its preview and confirm tools."""
    for write in writes or WRITES:
        token = inspect.Parameter(
            TOKEN,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                str,
                Field(max_length=80, description=f"The token preview_{write.name} returned (single use, 5 minutes)."),
            ],
        )
        server.add_tool(
            _tool(_run_preview, write, _parameters(write.params), PreviewOut),
            name=f"preview_{write.name}",
            title=f"Preview: {write.title}",
            description=(
                f"Step 1 of 2 — {write.description} Nothing changes yet: this says what would happen and whether it is "
                f"within your role, limits and token scope, and gives a confirmation token for confirm_{write.name}."
            ),
            annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
        )
        server.add_tool(
            _tool(_run_confirm, write, [*_parameters(write.confirm_model), token], DoneOut),
            name=f"confirm_{write.name}",
            title=f"Confirm: {write.title}",
            description=(
                f"Step 2 of 2 — {write.description} Does it: pass exactly the confirm_arguments that "
                f"preview_{write.name} returned (the same parameters and its confirmation token). Ask the person first."
            ),
            annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True),
        )


# --- shared inputs ---------------------------------------------------------------------------------------

ChargeId = Annotated[str, Field(pattern=r"^(ch|py)_[A-Za-z0-9_]{1,250}$", description="The charge's id (ch_…).")]
CustomerId = Annotated[str, Field(pattern=r"^cus_[A-Za-z0-9]{1,250}$", description="The customer's id (cus_…).")]
InvoiceId = Annotated[str, Field(pattern=r"^in_[A-Za-z0-9]{1,250}$", description="The invoice's id (in_…).")]
SubscriptionId = Annotated[
    str, Field(pattern=r"^sub_[A-Za-z0-9]{1,250}$", description="The subscription's id (sub_…).")
]
Cents = Annotated[int, Field(ge=1, le=99_999_999, description="In minor units (cents): 4599 is $45.99.")]
Reason = Literal["requested_by_customer", "duplicate", "fraudulent"]
Day = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="A day, YYYY-MM-DD.")]


def _day_end(text: str) -> datetime:
    """The last second of a day, UTC: a due date or resume date given as a day."""
    try:
        picked = date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(f"{text!r} is not a day: use the form 2026-05-31.") from None
    return datetime.combine(picked, time(23, 59, 59), UTC)


def _cap_words(actor: Actor, currency: str) -> str:
    caps = refund_caps(actor)
    if caps is None:
        return "you have no refund limit"
    cap = caps.get(currency.lower())
    return (
        f"your limit is {format_money(cap, currency)} per charge"
        if cap is not None
        else "you have no limit set in this currency"
    )


# --- refunds -------------------------------------------------------------------------------------------


class RefundParams(Params):
    charge_id: ChargeId
    amount: Cents | None = Field(default=None, description="Omit to refund everything not yet refunded.")
    reason: Reason | None = None
    note: str = Field(
        default="", max_length=1000, description="Why: kept in the audit log and on the refund in Stripe."
    )
    email_customer: bool = Field(default=False, description="Email the customer a refund confirmation once it is done.")


def _charge(actor: Actor, charge_id: str) -> agent_reads.AgentCharge:
    return agent_reads.find_charges(actor, charge_id=charge_id).items[0]


def _refund_facts(charge: agent_reads.AgentCharge, preview: billing.RefundPreview) -> dict[str, Any]:
    return {
        "charge_id": charge.id,
        "amount": MoneyOut.of(Money.of(preview.amount, preview.currency)).model_dump(),
        "charge_amount": MoneyOut.of(charge.amount).model_dump(),
        "customer": CustomerOut.of(charge.customer).model_dump(),
        "card": charge.card,
        "order_number": charge.order_number,
        "remaining_after": MoneyOut.of(Money.of(preview.remaining_after, preview.currency)).model_dump(),
        "within_limits": preview.allowed,
        "budget_left": preview.budget_left,
        "customer_email": preview.customer_email,
    }


def preview_refund(actor: Actor, p: RefundParams) -> Preview:
    preview = billing.preview_refund(actor, p.charge_id, p.amount)
    charge = _charge(actor, p.charge_id)
    amount = format_money(preview.amount, preview.currency)
    order = f" (order {charge.order_number})" if charge.order_number else ""
    summary = f"That's a {charge.amount.text} charge{order} to {who(charge.customer)}. {preview.summary}"
    if preview.allowed:
        summary += f" {amount} is within what you may refund ({_cap_words(actor, preview.currency)})."
        if preview.budget_left:
            summary += f" Daily budget: {preview.budget_left} before this refund."
    if p.email_customer:
        summary += (
            f" A confirmation email will go to {preview.customer_email}."
            if preview.customer_email
            else f" No confirmation email can be sent: {preview.no_email_reason}"
        )
    instead = (
        "Ask for approval instead with preview_refund_request (the same charge and amount, and a note for "
        "the approver)."
        if not preview.allowed
        else ""
    )
    return Preview(
        summary,
        preview.allowed,
        preview.refusal,
        _refund_facts(charge, preview),
        confirm=RefundParams(**{**p.model_dump(), "amount": preview.amount}),
        instead=instead,
    )


def issue_refund(actor: Actor, p: RefundParams, key: str) -> Done:
    result = billing.issue_refund(
        actor, p.charge_id, p.amount, p.reason, key, note=p.note, email_customer=p.email_customer
    )
    amount = format_money(result.amount, result.currency)
    summary = f"Done: refund {result.refund_id} of {amount} issued. The customer usually sees it in 5–10 business days."
    if result.email_outcome:
        summary += f" {result.email_outcome}"
    return Done(
        summary,
        {
            "refund_id": result.refund_id,
            "amount": MoneyOut.of(Money.of(result.amount, result.currency)).model_dump(),
            "charge_id": result.charge.id,
            "charge_refunded": MoneyOut.of(Money.of(result.charge.amount_refunded, result.currency)).model_dump(),
            "emailed_to": result.emailed_to,
            "email_outcome": result.email_outcome,
        },
    )


class RefundRequestParams(Params):
    charge_id: ChargeId
    amount: Cents | None = Field(default=None, description="Omit for everything not yet refunded.")
    reason: Reason | None = None
    note: str = Field(min_length=1, max_length=1000, description="For the approver: why this refund should be made.")


def preview_refund_request(actor: Actor, p: RefundRequestParams) -> Preview:
    preview = billing.preview_refund(actor, p.charge_id, p.amount)
    charge = _charge(actor, p.charge_id)
    amount = format_money(preview.amount, preview.currency)
    summary = (
        f"Ask an approver to refund {amount} of the {charge.amount.text} charge to {who(charge.customer)}. "
        "Approvers are emailed; the refund is made when one of them approves it."
    )
    if preview.allowed:
        return Preview(
            summary,
            False,
            f"{amount} is within your refund limit, so no approval is needed.",
            _refund_facts(charge, preview),
            instead="Refund it with preview_refund.",
        )
    summary += f" ({preview.refusal})"
    bound = RefundRequestParams(**{**p.model_dump(), "amount": preview.amount})
    return Preview(summary, True, "", _refund_facts(charge, preview), confirm=bound)


def submit_refund_request(actor: Actor, p: RefundRequestParams, _key: str) -> Done:
    view = refund_requests.submit_request(actor, p.charge_id, p.amount, p.reason, p.note)
    return Done(
        f"Request #{view.id} to refund {view.amount_label} on {view.charge_id} is waiting for an approver.",
        {
            "request_id": view.id,
            "status": view.status,
            "amount": MoneyOut.of(Money.of(view.amount, view.currency)).model_dump(),
        },
    )


# --- reminders and payment-update emails --------------------------------------------------------------------


class RefundEmailParams(Params):
    refund_id: Annotated[
        str,
        Field(pattern=r"^(re|pyr)_[A-Za-z0-9_]{1,250}$", description="The refund (re_…), e.g. from confirm_refund."),
    ]


def preview_refund_email(actor: Actor, p: RefundEmailParams) -> Preview:
    facts = billing.preview_refund_confirmation(actor, p.refund_id)
    details = {"refund_id": facts.refund_id, "amount": facts.amount_label, "to": facts.to}
    if facts.problem:
        return Preview(f"The refund of {facts.amount_label}: {facts.problem}", False, facts.problem, details)
    summary = (
        f"Billy emails {facts.to} that the refund of {facts.amount_label} is on its way "
        "(banks usually take 5–10 business days)."
    )
    return Preview(summary, True, details=details)


def send_refund_email(actor: Actor, p: RefundEmailParams, _key: str) -> Done:
    result = billing.send_refund_confirmation(actor, p.refund_id)
    return Done(result.email_outcome, {"refund_id": result.refund_id, "emailed_to": result.emailed_to})


class ReminderParams(Params):
    invoice_ids: list[Annotated[str, Field(pattern=r"^in_[A-Za-z0-9]{1,250}$")]] = Field(
        min_length=1,
        max_length=200,
        description="The invoices to remind their customers about (in_…), e.g. from overdue_invoices.",
    )


def preview_reminders(actor: Actor, p: ReminderParams) -> Preview:
    ids = invoice_changes.plan_reminders(actor, p.invoice_ids)
    lines, rows, sendable = [], [], 0
    for invoice_id in ids:
        detail = agent_reads.invoice_detail(actor, invoice_id)
        goes = detail.status in ("open", "overdue")
        sendable += goes
        late = f", {detail.days_overdue} days overdue" if detail.days_overdue is not None else ""
        lines.append(
            f"- {who(detail.customer)}: {detail.number or detail.id} {detail.remaining.text} due{late}"
            + ("" if goes else f" — skipped: it is {detail.status_label.lower()}")
        )
        rows.append(
            {
                "invoice_id": detail.id,
                "number": detail.number,
                "customer": CustomerOut.of(detail.customer).model_dump(),
                "remaining": MoneyOut.of(detail.remaining).model_dump(),
                "days_overdue": detail.days_overdue,
                "will_send": goes,
            }
        )
    summary = (
        f"Email a payment reminder (amount due, how late, the pay link) for {sendable} of {len(ids)} invoice(s):\n"
        + "\n".join(lines)
    )
    return Preview(
        summary,
        sendable > 0,
        "" if sendable else "None of these invoices is open, so there is nothing to remind anyone of.",
        {"invoices": rows},
        confirm=ReminderParams(invoice_ids=ids),
    )


def send_reminders(actor: Actor, p: ReminderParams, key: str) -> Done:
    results = invoice_changes.send_reminders(actor, p.invoice_ids, key)
    sent = sum(1 for r in results if r.sent)
    lines = [f"- {r.number}: {r.message or r.outcome}" for r in results]
    return Done(
        f"Reminders sent for {sent} of {len(results)} invoice(s):\n" + "\n".join(lines),
        {
            "results": [
                {"invoice_id": r.invoice_id, "outcome": r.outcome, "to": r.to, "message": r.message} for r in results
            ]
        },
    )


class PaymentUpdateParams(Params):
    customer_ids: list[Annotated[str, Field(pattern=r"^cus_[A-Za-z0-9]{1,250}$")]] = Field(
        min_length=1,
        max_length=200,
        description="Customers with a failed payment in the period (from failed_payments).",
    )
    period: Literal["this_week", "last_7_days", "last_30_days", "this_month", "last_month", "custom"] = "last_30_days"
    first_day: str = Field(default="", max_length=10, description="With period=custom: YYYY-MM-DD.")
    last_day: str = Field(default="", max_length=10, description="With period=custom: YYYY-MM-DD (included).")
    time_zone: str = Field(default="UTC", max_length=64)
    subject: str = Field(
        default=DEFAULT_SUBJECT,
        max_length=MAX_SUBJECT,
        description="Placeholders: {name} {brand} {last4} {amount} {link} {org}.",
    )
    body: str = Field(default=DEFAULT_BODY, max_length=MAX_BODY, description="Same placeholders as the subject.")


def _period(p: PaymentUpdateParams) -> failed_payments.Period:
    return agent_reads.report_period(p.period, p.first_day, p.last_day, p.time_zone)


def preview_payment_update_emails(actor: Actor, p: PaymentUpdateParams) -> Preview:
    period = _period(p)
    drafts = failed_payments.draft_payment_update_emails(actor, p.customer_ids, period.start, period.end, period.zone)
    lines = [
        f"- {d.name}: " + (f"to {d.email} about {d.card}, {d.amount}" if d.sendable else f"not sent: {d.problem}")
        for d in drafts
    ]
    sendable = sum(1 for d in drafts if d.sendable)
    first = next((d for d in drafts if d.sendable), None)
    summary = f"Ask {sendable} of {len(drafts)} customer(s) to update their card ({period.label}):\n" + "\n".join(lines)
    if first is not None and (p.subject, p.body) == (DEFAULT_SUBJECT, DEFAULT_BODY):
        summary += f"\nThe first reads: “{first.subject}” — {first.body[:300]}"
    details = {
        "period": period.label,
        "drafts": [
            {
                "customer_id": d.customer_id,
                "name": d.name,
                "email": d.email,
                "card": d.card,
                "amount": d.amount,
                "problem": d.problem,
            }
            for d in drafts
        ],
    }
    return Preview(summary, sendable > 0, "" if sendable else "None of these customers can be emailed.", details)


def send_payment_update_emails(actor: Actor, p: PaymentUpdateParams, key: str) -> Done:
    period = _period(p)
    results = failed_payments.send_payment_update_emails(
        actor, p.customer_ids, p.subject, p.body, period.start, period.end, period.zone, key
    )
    sent = sum(1 for r in results if r.sent)
    return Done(
        f"Card-update emails sent to {sent} of {len(results)} customer(s):\n"
        + "\n".join(f"- {r.customer_id}: {r.message}" for r in results),
        {"results": [{"customer_id": r.customer_id, "sent": r.sent, "message": r.message} for r in results]},
    )


# --- customers ------------------------------------------------------------------------------------------------


class AddressIn(Params):
    line1: str = Field(default="", max_length=200)
    line2: str = Field(default="", max_length=200)
    city: str = Field(default="", max_length=100)
    state: str = Field(default="", max_length=100)
    postal_code: str = Field(default="", max_length=20)
    country: str = Field(default="", max_length=2, description="Two-letter code, e.g. US.")


class CustomerUpdateParams(Params):
    customer_id: CustomerId
    name: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=512)
    phone: str | None = Field(default=None, max_length=20)
    description: str | None = Field(default=None, max_length=350)
    address: AddressIn | None = Field(
        default=None, description="Replaces the whole address (parts left out are cleared)."
    )
    metadata: dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=500)]] | None = Field(
        default=None, max_length=50, description="Keys to set; an empty value removes a key."
    )

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(exclude={"customer_id"}).items() if v is not None}


def preview_customer_update(actor: Actor, p: CustomerUpdateParams) -> Preview:
    changes = p.changes()
    if not changes:
        raise ValidationFailed(
            "Nothing to change: give at least one of name, email, phone, description, address, metadata."
        )
    current = customers.get_customer_view(actor, p.customer_id)
    editable = customers.editable_customer_fields(actor)
    lines = [f"- {name}: {getattr(current, name)!r} → {value!r}" for name, value in changes.items()]
    summary = f"Change customer {current.name or current.email or current.id} ({current.id}):\n" + "\n".join(lines)
    beyond = sorted(set(changes) - editable)
    refusal = (
        f"Your role may change a customer's {', '.join(sorted(editable)) or 'nothing'}, not their {', '.join(beyond)}."
        if beyond
        else ""
    )
    return Preview(summary, not beyond, refusal, {"customer_id": current.id, "fields": sorted(changes)})


def update_customer(actor: Actor, p: CustomerUpdateParams, key: str) -> Done:
    result = customers.update_customer(actor, p.customer_id, p.changes(), key)
    view = result.customer
    return Done(
        f"Updated {', '.join(result.fields)} of {view.name or view.email or view.id} ({view.id}).",
        {"customer_id": view.id, "fields": list(result.fields), "name": view.name, "email": view.email},
    )


# --- subscriptions ----------------------------------------------------------------------------------------------


class SubscriptionChangeParams(Params):
    subscription_id: SubscriptionId
    price_id: str = Field(
        min_length=1, max_length=255, description="The price to move to (same currency and interval)."
    )
    quantity: int = Field(default=1, ge=1, le=10_000)


class SubscriptionChangeConfirm(SubscriptionChangeParams):
    proration_date: int = Field(ge=0, description="From the preview: Stripe prorates exactly what was previewed.")


def preview_subscription_change(actor: Actor, p: SubscriptionChangeParams) -> Preview:
    preview = subscription_changes.preview_subscription_change(actor, p.subscription_id, p.price_id, p.quantity)
    lines = [f"- {line.description}: {format_money(line.amount, preview.currency)}" for line in preview.lines]
    summary = f"Move {p.subscription_id} to {p.price_id} × {p.quantity}. {preview.summary}\n" + "\n".join(lines)
    details = {
        "proration_total": MoneyOut.of(Money.of(preview.proration_total, preview.currency)).model_dump(),
        "next_invoice_total": MoneyOut.of(Money.of(preview.next_invoice_total, preview.currency)).model_dump(),
        "next_invoice_at": day(preview.next_invoice_at),
    }
    bound = SubscriptionChangeConfirm(**p.model_dump(), proration_date=preview.proration_date)
    return Preview(summary, True, "", details, confirm=bound)


def change_subscription(actor: Actor, p: SubscriptionChangeConfirm, key: str) -> Done:
    done = subscription_changes.change_subscription(
        actor, p.subscription_id, p.price_id, p.quantity, p.proration_date, key
    )
    return Done(done.done, {"subscription_id": done.subscription_id, "status": done.status})


class SubscriptionParams(Params):
    subscription_id: SubscriptionId


class PauseParams(SubscriptionParams):
    behavior: Literal["keep_as_draft", "mark_uncollectible", "void"] = Field(
        description="What renewal invoices do while paused: stay drafts, are marked uncollectible, or are voided."
    )
    resumes_on: Day | None = Field(
        default=None, description="Resume by itself at the end of this day (UTC); omit to resume by hand."
    )


class CancelParams(SubscriptionParams):
    at_period_end: bool = Field(
        default=True,
        description="True: at the end of the period already paid for (can be undone); False: now, for good.",
    )


def _subscription_preview(actor: Actor, subscription_id: str, doing: str, blocked_by: str) -> Preview:
    options = subscription_changes.subscription_options(actor, subscription_id)
    blocked = getattr(options, blocked_by)
    summary = f"{doing} {options.id} ({options.plan or 'no items'}, {options.status})."
    return Preview(
        summary, not blocked, blocked, {"subscription_id": options.id, "status": options.status, "plan": options.plan}
    )


def preview_pause(actor: Actor, p: PauseParams) -> Preview:
    until = f" until the end of {p.resumes_on} (UTC)" if p.resumes_on else " until resumed by hand"
    words = subscription_changes.PAUSE_BEHAVIORS[p.behavior]
    return _subscription_preview(
        actor, p.subscription_id, f"Pause collection{until} — {words} Subscription:", "pause_blocked"
    )


def pause(actor: Actor, p: PauseParams, key: str) -> Done:
    resumes = int(_day_end(p.resumes_on).timestamp()) if p.resumes_on else None
    done = subscription_changes.pause_collection(actor, p.subscription_id, p.behavior, resumes, key)
    return Done(done.done, {"subscription_id": done.subscription_id, "status": done.status})


def preview_resume(actor: Actor, p: SubscriptionParams) -> Preview:
    return _subscription_preview(
        actor, p.subscription_id, "Resume collection (the next renewal is charged as usual) on", "resume_blocked"
    )


def resume(actor: Actor, p: SubscriptionParams, key: str) -> Done:
    done = subscription_changes.resume_collection(actor, p.subscription_id, key)
    return Done(done.done, {"subscription_id": done.subscription_id, "status": done.status})


def preview_cancel(actor: Actor, p: CancelParams) -> Preview:
    if p.at_period_end:
        return _subscription_preview(
            actor,
            p.subscription_id,
            "Cancel at the end of the paid period (undoable until then):",
            "end_of_period_blocked",
        )
    return _subscription_preview(
        actor, p.subscription_id, "Cancel NOW, for good (no refund, no final invoice):", "cancel_blocked"
    )


def cancel(actor: Actor, p: CancelParams, key: str) -> Done:
    done = subscription_changes.cancel_subscription(actor, p.subscription_id, p.at_period_end, key)
    return Done(done.done, {"subscription_id": done.subscription_id, "status": done.status})


def preview_reactivate(actor: Actor, p: SubscriptionParams) -> Preview:
    return _subscription_preview(actor, p.subscription_id, "Withdraw the pending cancellation of", "reactivate_blocked")


def reactivate(actor: Actor, p: SubscriptionParams, key: str) -> Done:
    done = subscription_changes.reactivate_subscription(actor, p.subscription_id, key)
    return Done(done.done, {"subscription_id": done.subscription_id, "status": done.status})


# --- invoices ------------------------------------------------------------------------------------------------------


class InvoiceLineIn(Params):
    price_id: str | None = Field(
        default=None, max_length=255, description="A one-time price (price_…), or give a description and amount."
    )
    quantity: int | None = Field(default=None, ge=1, le=10_000)
    description: str | None = Field(default=None, max_length=500)
    amount: int | None = Field(default=None, ge=1, le=99_999_999, description="In minor units (cents).")
    currency: str | None = Field(default=None, min_length=3, max_length=3)


class InvoiceCreateParams(Params):
    customer_id: CustomerId
    lines: list[InvoiceLineIn] = Field(min_length=1, max_length=10)
    due_on: Day = Field(description="The day it is due (the invoice is emailed for payment when sent).")
    memo: str = Field(default="", max_length=500)

    def line_dicts(self) -> list[dict[str, Any]]:
        return [line.model_dump(exclude_none=True) for line in self.lines]


def preview_invoice_create(actor: Actor, p: InvoiceCreateParams) -> Preview:
    preview = invoice_changes.preview_invoice(actor, p.customer_id, p.line_dicts())
    due = _day_end(p.due_on)
    lines = [f"- {line.label}: {format_money(line.amount, line.currency)}" for line in preview.lines]
    summary = (
        f"Create a draft invoice for {p.customer_id}, due {due.day} {due:%B %Y}, total {preview.total_label}:\n"
        + "\n".join(lines)
        + "\nIt is not sent until you send it (preview_invoice_send)."
    )
    return Preview(summary, True, "", {"customer_id": p.customer_id, "total": preview.total_label})


def create_invoice(actor: Actor, p: InvoiceCreateParams, key: str) -> Done:
    made = invoice_changes.create_invoice(actor, p.customer_id, p.line_dicts(), _day_end(p.due_on), key, p.memo)
    return Done(
        f"Draft invoice {made.invoice_id} for {format_money(made.total, made.currency)} created; "
        "send it with preview_invoice_send.",
        {"invoice_id": made.invoice_id, "total": MoneyOut.of(Money.of(made.total, made.currency)).model_dump()},
    )


class InvoiceParams(Params):
    invoice_id: InvoiceId


def _invoice_preview(action: str, doing: str) -> Callable[[Actor, InvoiceParams], Preview]:
    def preview(actor: Actor, p: InvoiceParams) -> Preview:
        facts = invoice_changes.invoice_facts(actor, p.invoice_id, action)
        late = f", {facts.days_overdue} days overdue" if facts.days_overdue is not None else ""
        summary = f"{doing} invoice {facts.number} ({facts.id}): {facts.status}, {facts.total_label} due{late}."
        return Preview(summary, True, "", {"invoice_id": facts.id, "number": facts.number, "status": facts.status})

    return preview


def _invoice_perform(
    change: Callable[[Actor, str, str], invoice_changes.InvoiceChange],
) -> Callable[[Actor, InvoiceParams, str], Done]:
    def perform(actor: Actor, p: InvoiceParams, key: str) -> Done:
        done = change(actor, p.invoice_id, key)
        return Done(
            f"Invoice {done.number} ({done.invoice_id}) is now {done.status}.",
            {"invoice_id": done.invoice_id, "number": done.number, "status": done.status},
        )

    return perform


# --- the registry ---------------------------------------------------------------------------------------------------

WRITES: tuple[Write, ...] = (
    Write(
        "refund",
        "charges.refund",
        "Refund a charge",
        "Refund a charge (all of what remains, or part), optionally emailing the customer a confirmation. "
        "Find the charge first with find_charges (e.g. by order number).",
        RefundParams,
        preview_refund,
        issue_refund,
    ),
    Write(
        "refund_confirmation_email",
        "refunds.confirmation_email",
        "Email a refund confirmation",
        "Email the customer that a refund already made is on its way (when it was not sent with the refund).",
        RefundEmailParams,
        preview_refund_email,
        send_refund_email,
    ),
    Write(
        "refund_request",
        "refunds.request",
        "Ask for an over-limit refund to be approved",
        "Ask an approver to make a refund that is over your own refund limit.",
        RefundRequestParams,
        preview_refund_request,
        submit_refund_request,
    ),
    Write(
        "invoice_reminders",
        "invoices.remind",
        "Email payment reminders",
        "Email the customers of open (e.g. overdue) invoices a payment reminder with the amount, how late it "
        "is and the pay link.",
        ReminderParams,
        preview_reminders,
        send_reminders,
    ),
    Write(
        "payment_update_emails",
        "payments.update_email",
        "Ask customers to update their card",
        "Email customers whose payment failed in a period asking them to update their card.",
        PaymentUpdateParams,
        preview_payment_update_emails,
        send_payment_update_emails,
    ),
    Write(
        "customer_update",
        "customers.update",
        "Update a customer",
        "Change a customer's name, email, phone, description, address or metadata (a Billing Clerk: email "
        "and address only).",
        CustomerUpdateParams,
        preview_customer_update,
        update_customer,
        gate="customers.update_contact",
    ),
    Write(
        "subscription_change",
        "subscriptions.change",
        "Change a subscription's price or quantity",
        "Move a subscription to another price or quantity, prorated (Stripe's preview of the cost comes first).",
        SubscriptionChangeParams,
        preview_subscription_change,
        change_subscription,
        confirm_params=SubscriptionChangeConfirm,
    ),
    Write(
        "subscription_pause",
        "subscriptions.pause",
        "Pause a subscription's collection",
        "Pause collecting payment on a subscription (it stays active).",
        PauseParams,
        preview_pause,
        pause,
    ),
    Write(
        "subscription_resume",
        "subscriptions.resume",
        "Resume a subscription's collection",
        "End a pause of collection.",
        SubscriptionParams,
        preview_resume,
        resume,
    ),
    Write(
        "subscription_cancel",
        "subscriptions.cancel",
        "Cancel a subscription",
        "Cancel a subscription at the end of its paid period (undoable until then) or now.",
        CancelParams,
        preview_cancel,
        cancel,
    ),
    Write(
        "subscription_reactivate",
        "subscriptions.reactivate",
        "Withdraw a pending cancellation",
        "Keep a subscription that was set to cancel at its period end.",
        SubscriptionParams,
        preview_reactivate,
        reactivate,
    ),
    Write(
        "invoice_create",
        "invoices.create",
        "Create a draft invoice",
        "Create a draft invoice for a customer from one-time prices or custom amounts, due on a day.",
        InvoiceCreateParams,
        preview_invoice_create,
        create_invoice,
    ),
    Write(
        "invoice_send",
        "invoices.send",
        "Send an invoice",
        "Finalize a draft invoice and have Stripe email it (an open one is sent again).",
        InvoiceParams,
        _invoice_preview("invoices.send", "Send"),
        _invoice_perform(invoice_changes.send_invoice),
    ),
    Write(
        "invoice_void",
        "invoices.void",
        "Void an invoice",
        "Void an open or uncollectible invoice: it can no longer be paid.",
        InvoiceParams,
        _invoice_preview("invoices.void", "Void"),
        _invoice_perform(invoice_changes.void_invoice),
    ),
    Write(
        "invoice_mark_uncollectible",
        "invoices.mark_uncollectible",
        "Write an invoice off",
        "Mark an open invoice uncollectible (bad debt; it can still be paid).",
        InvoiceParams,
        _invoice_preview("invoices.mark_uncollectible", "Mark uncollectible"),
        _invoice_perform(invoice_changes.mark_uncollectible),
    ),
)
