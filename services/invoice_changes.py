"""Invoice work for Billing Managers (issue 12): create, send, void, mark uncollectible, remind.

A Billing Manager, the Owner and custom roles holding `MANAGE_INVOICES` may do each; a Clerk
and Read Only see invoices only. The Stripe writes follow the one write shape
(`services.stripe_writes`): the caller's idempotency key is stored with the intent before
Stripe is called, and what Stripe answers is in the store at once. A write that needs more
than one Stripe call (an invoice and its lines; finalize then send) gives each call its own
key derived from the caller's, so a retry repeats none of them.

Reminders are Billy's own email (`services.invoice_mail`), not a Stripe call: each invoice gets
its own audit row and its own result, so one failure never hides the others, and a repeated
submit with the same key sends nothing twice (one stored intent per invoice).

Audit rows name the invoice and its customer by id, with amounts; never an email address, a
name or a line's description (DESIGN, Audit log).
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select

from services import audit, clock, stripe_writes
from services.db import run_transaction, session_scope
from services.errors import BillyError, NotFound, PermissionDenied, StripeRequestFailed, ValidationFailed
from services.invoice_mail import invoice_reminder_mail, lateness
from services.mailer import MailDeliveryFailed, get_mailer
from services.models import IdempotencyRecord, Organization, StripeCustomer, StripeInvoice, StripePrice, StripeProduct
from services.money import format_money, is_currency_code
from services.permissions import Actor, authorize
from services.stripe_gateway import StripeGateway
from services.stripe_writes import INVOICE_WRITE

log = logging.getLogger(__name__)

# An invoice's lines arrive embedded in it, and Stripe embeds the first 10 (api/invoices/object,
# `lines`): at most that many, so the store always holds the whole invoice.
MAX_LINES = 10
MAX_QUANTITY = 10_000
# Stripe's largest amount for most currencies is 99,999,999 minor units ($999,999.99; docs:
# currencies#minimum-and-maximum-charge-amounts): a line and the whole invoice stay within it.
MAX_AMOUNT = 99_999_999
DESCRIPTION_MAX = 500  # a custom line's description
MEMO_MAX = 500  # the invoice's memo (Stripe's `description`)
LONGEST_TERM = timedelta(days=365)  # the latest due date Billy accepts
MAX_REMINDERS = 200  # invoices one bulk reminder may cover

_CUSTOMER_ID = re.compile(r"^cus_[A-Za-z0-9]{1,251}$")
_INVOICE_ID = re.compile(r"^in_[A-Za-z0-9]{1,251}$")
_PRICE_ID = re.compile(r"^(price|plan)_[A-Za-z0-9]{1,249}$")

CUSTOMER_GONE = (
    "This customer no longer exists in Stripe (it was deleted there), so no invoice was made. "
    "The next sync removes it from Billy."
)
INVOICE_GONE = (
    "This invoice no longer exists in Stripe (a draft deleted there), so nothing was changed. "
    "The next sync removes it from Billy."
)
_MAIL_NOT_DELIVERED = {
    True: "The mail server could not take the reminder right now (a temporary problem).",
    False: "The mail server refused the reminder (check the customer's address or Billy's mail settings).",
}


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceChoice:
    """An active one-time price the "New invoice" dialog offers, as the store has it."""

    id: str
    label: str  # "Setup fee · $250.00"
    unit_amount: int
    currency: str


@dataclass(frozen=True)
class PreviewLine:
    label: str  # "2 × Setup fee" or the custom line's description
    amount: int
    currency: str


@dataclass(frozen=True)
class InvoicePreview:
    """What "Create invoice" would make: each line's amount and the total, before Stripe is asked."""

    customer_id: str
    lines: tuple[PreviewLine, ...]
    total: int
    currency: str

    @property
    def total_label(self) -> str:
        return format_money(self.total, self.currency)


@dataclass(frozen=True)
class InvoiceCreated:
    """The draft as stored after creating it (or as Stripe answered, when the store write failed)."""

    invoice_id: str
    customer_id: str
    total: int
    currency: str
    lines: int
    replayed: bool = False
    stored: bool = True  # False: Stripe has it but the store write failed (sync repairs it)


@dataclass(frozen=True)
class InvoiceChange:
    """One invoice after a send, void or write-off: its status as Stripe now has it."""

    invoice_id: str
    number: str
    status: str
    replayed: bool = False
    stored: bool = True


@dataclass(frozen=True)
class ReminderResult:
    """What happened to one invoice of a (bulk) reminder: sent to whom, or why not."""

    invoice_id: str
    number: str  # the invoice number, or its id when it has none
    customer_id: str
    outcome: str  # sent | already_sent | no_email | mail_failed | not_open | not_found | refused | failed
    to: str = ""  # where it went (only when sent)
    message: str = ""  # in plain words, for the person who sent it

    @property
    def sent(self) -> bool:
        return self.outcome == "sent"


# --- small checks ----------------------------------------------------------------------------


def derived_key(key: str, suffix: str) -> str:
    """The key of one of several Stripe calls a write makes: the caller's key and the call's
    name, within Stripe's 255 characters (a long key is replaced by its digest)."""
    candidate = f"{key}-{suffix}"
    if len(candidate) <= 255:
        return candidate
    return f"{hashlib.sha256(key.encode()).hexdigest()[:64]}-{suffix}"[:255]


def _target(value: object) -> str:
    return str(value)[:255]


def _text(words: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"The {words} must be text.")
    text = value.strip()
    if len(text) > limit:
        raise ValidationFailed(f"The {words} can be at most {limit} characters long.")
    if any(unicodedata.category(ch) in ("Cc", "Cs") and ch != "\n" for ch in text) or "\u2028" in text:
        raise ValidationFailed(f"The {words} contains a character that cannot be saved; retype it.")
    return text


def _whole_number(words: str, value: object, lowest: int, highest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"The {words} must be a whole number.")
    if not lowest <= value <= highest:
        raise ValidationFailed(f"The {words} must be between {lowest:,} and {highest:,}.")
    return value


def _stored_customer(customer_id: object) -> str:
    if not isinstance(customer_id, str) or not _CUSTOMER_ID.match(customer_id):
        raise ValidationFailed("That is not a Stripe customer id (they start with cus_).")
    with session_scope() as session:
        row = session.get(StripeCustomer, customer_id)
        if row is None or row.deleted:
            raise NotFound("No customer with that id has been synced from Stripe.")
    return customer_id


@dataclass(frozen=True)
class _StoredInvoice:
    id: str
    number: str
    status: str
    collection_method: str
    customer_id: str
    amount_due: int
    amount_remaining: int
    currency: str
    due_date: int | None
    hosted_invoice_url: str
    customer_email: str  # the address the invoice was issued to (personal data: never audited)


def _stored_invoice(invoice_id: object) -> _StoredInvoice:
    if not isinstance(invoice_id, str) or not _INVOICE_ID.match(invoice_id):
        raise ValidationFailed("That is not a Stripe invoice id (they start with in_).")
    with session_scope() as session:
        row = session.get(StripeInvoice, invoice_id)
        if row is None or row.deleted:
            raise NotFound("No invoice with that id has been synced from Stripe.")
        raw = row.raw or {}
        return _StoredInvoice(
            id=row.id,
            number=row.number or row.id,
            status=row.status or "",
            collection_method=row.collection_method or "",
            customer_id=row.customer_id or "",
            amount_due=row.amount_due,
            amount_remaining=row.amount_remaining,
            currency=row.currency,
            due_date=row.due_date,
            hosted_invoice_url=str(raw.get("hosted_invoice_url") or ""),
            customer_email=row.customer_email or "",
        )


@dataclass(frozen=True)
class InvoiceFacts:
    """What a confirmation says about an invoice before a change: from the store."""

    id: str
    number: str
    status: str
    collection_method: str
    total_label: str  # what is still due, e.g. "$45.00"
    due: int | None
    days_overdue: int | None


CONFIRMED_ACTIONS = frozenset({"invoices.send", "invoices.remind", "invoices.void", "invoices.mark_uncollectible"})


def invoice_facts(actor: Actor, invoice_id: str, action: str) -> InvoiceFacts:
    """The invoice as the confirmation of `action` describes it; only for a member who may do
    it (a refusal is audited), so the dialog never opens for a role that cannot confirm."""
    if action not in CONFIRMED_ACTIONS:
        raise ValidationFailed("Billy does not know that invoice action.")
    audit.authorize_read(actor, action, _target(invoice_id))
    invoice = _stored_invoice(invoice_id)
    due_now = invoice.amount_remaining if invoice.status != "draft" else invoice.amount_due
    return InvoiceFacts(
        invoice.id,
        invoice.number,
        invoice.status,
        invoice.collection_method,
        format_money(due_now, invoice.currency),
        invoice.due_date,
        days_overdue(invoice.due_date, clock.now()) if invoice.status == "open" else None,
    )


def _describe(draft: audit.AuditDraft, invoice: _StoredInvoice) -> None:
    """The audit row's facts about the invoice: its customer by id, what is due."""
    if invoice.customer_id:
        draft.targets.append(invoice.customer_id)
    draft.amount, draft.currency = invoice.amount_remaining, invoice.currency
    draft.details["status_before"] = invoice.status


# --- creating ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """One checked line: either a price and a quantity, or a custom amount with its description."""

    price_id: str
    quantity: int
    description: str
    amount: int  # the line's total in minor units
    currency: str
    label: str

    def stripe_params(self, customer_id: str, invoice_id: str) -> dict[str, Any]:
        base = {"customer": customer_id, "invoice": invoice_id}
        if self.price_id:
            return {**base, "pricing": {"price": self.price_id}, "quantity": self.quantity}
        return {**base, "amount": self.amount, "currency": self.currency, "description": self.description}


def invoice_price_choices(actor: Actor) -> list[PriceChoice]:
    """The prices a new invoice may use: active, one-time, with a fixed amount, of an active
    product (a recurring price belongs on a subscription)."""
    audit.authorize_read(actor, "invoices.create")
    with session_scope() as session:
        rows = session.exec(
            select(StripePrice, StripeProduct.name)
            .join(StripeProduct, col(StripeProduct.id) == col(StripePrice.product_id), isouter=True)
            .where(
                col(StripePrice.active).is_(True),
                col(StripePrice.deleted).is_(False),
                col(StripePrice.recurring_interval).is_(None),
                col(StripePrice.unit_amount).is_not(None),
            )
            .order_by(col(StripePrice.created).desc())
            .limit(200)
        ).all()
        return [
            PriceChoice(
                id=price.id,
                label=f"{name or price.nickname or price.id} · {format_money(price.unit_amount or 0, price.currency)}",
                unit_amount=price.unit_amount or 0,
                currency=price.currency,
            )
            for price, name in rows
        ]


def _price_line(number: int, line: Mapping[str, Any]) -> _Line:
    price_id = line.get("price_id")
    if not isinstance(price_id, str) or not _PRICE_ID.match(price_id):
        raise ValidationFailed(f"Line {number}: that is not a Stripe price id (they start with price_).")
    quantity = _whole_number(f"quantity on line {number}", line.get("quantity", 1), 1, MAX_QUANTITY)
    with session_scope() as session:
        price = session.get(StripePrice, price_id)
        if price is None or price.deleted:
            raise ValidationFailed(f"Line {number}: Billy does not know that price; sync, then pick it again.")
        product = session.get(StripeProduct, price.product_id) if price.product_id else None
        name = (product.name if product else "") or price.nickname or price.id
        if not price.active or (product is not None and not product.active):
            raise ValidationFailed(f"Line {number}: the price “{name}” is archived in Stripe; pick an active one.")
        if price.recurring_interval is not None:
            raise ValidationFailed(
                f"Line {number}: “{name}” is a recurring price (for subscriptions); an invoice line needs a "
                "one-time price or a custom amount."
            )
        if price.unit_amount is None:
            raise ValidationFailed(f"Line {number}: “{name}” has no fixed amount; use a custom line instead.")
        amount, currency = price.unit_amount * quantity, price.currency.lower()
    if amount > MAX_AMOUNT:
        raise ValidationFailed(f"Line {number} comes to more than {format_money(MAX_AMOUNT, currency)}; lower it.")
    label = f"{quantity} × {name}" if quantity != 1 else name
    return _Line(price_id, quantity, "", amount, currency, label)


def _custom_line(number: int, line: Mapping[str, Any]) -> _Line:
    description = _text(f"description of line {number}", line.get("description", ""), DESCRIPTION_MAX)
    if not description:
        raise ValidationFailed(f"Line {number} needs a description: say what the customer pays for.")
    currency = line.get("currency")
    if not isinstance(currency, str) or not is_currency_code(currency.strip().lower()):
        raise ValidationFailed(f"Line {number} needs a currency as its three-letter code, e.g. usd or eur.")
    currency = currency.strip().lower()
    amount = line.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationFailed(f"Line {number}'s amount must be a whole number of cents (minor units).")
    if amount <= 0:
        raise ValidationFailed(f"Line {number}'s amount must be more than zero.")
    if amount > MAX_AMOUNT:
        raise ValidationFailed(f"Line {number} can be at most {format_money(MAX_AMOUNT, currency)}.")
    return _Line("", 1, description, amount, currency, description)


def _check_lines(lines: object) -> tuple[_Line, ...]:
    if not isinstance(lines, Sequence) or isinstance(lines, str | bytes) or not lines:
        raise ValidationFailed("An invoice needs at least one line: a price or a custom amount.")
    if len(lines) > MAX_LINES:
        raise ValidationFailed(f"An invoice made in Billy has at most {MAX_LINES} lines; you added {len(lines)}.")
    checked = []
    for number, line in enumerate(lines, start=1):
        if not isinstance(line, Mapping):
            raise ValidationFailed(f"Line {number} must name a price or give a description and an amount.")
        known = {"price_id", "quantity"} if "price_id" in line else {"description", "amount", "currency"}
        unknown = sorted(str(k)[:40] for k in line if k not in known)
        if unknown:
            raise ValidationFailed(
                f"Line {number} has {unknown[0]!r}: a line is either a price and a quantity, or a "
                "description, an amount and a currency."
            )
        checked.append(_price_line(number, line) if "price_id" in line else _custom_line(number, line))
    currencies = sorted({line.currency for line in checked})
    if len(currencies) > 1:
        raise ValidationFailed(
            f"An invoice is in one currency, and these lines mix {' and '.join(c.upper() for c in currencies)}: "
            "make one invoice per currency."
        )
    total = sum(line.amount for line in checked)
    if total > MAX_AMOUNT:
        raise ValidationFailed(
            f"The invoice would come to {format_money(total, currencies[0])}, more than Stripe accepts on one "
            f"invoice ({format_money(MAX_AMOUNT, currencies[0])}): split it."
        )
    return tuple(checked)


def _due_moment(due_date: object) -> int:
    """The due date as Stripe's Unix time: in the future and within a year."""
    if not isinstance(due_date, datetime) or due_date.tzinfo is None:
        raise ValidationFailed("Pick the day the invoice is due.")
    now = clock.now()
    if due_date <= now:
        raise ValidationFailed("The due date has passed: pick a day from today on.")
    if due_date > now + LONGEST_TERM:
        raise ValidationFailed("The due date is more than a year away: pick a day within the next year.")
    return int(due_date.timestamp())


def preview_invoice(actor: Actor, customer_id: str, lines: Sequence[Mapping[str, Any]]) -> InvoicePreview:
    """Each line's amount and the total, checked exactly as `create_invoice` checks them."""
    audit.authorize_read(actor, "invoices.create", _target(customer_id))
    customer_id = _stored_customer(customer_id)
    checked = _check_lines(lines)
    return InvoicePreview(
        customer_id,
        tuple(PreviewLine(line.label, line.amount, line.currency) for line in checked),
        sum(line.amount for line in checked),
        checked[0].currency,
    )


def create_invoice(
    actor: Actor,
    customer_id: str,
    lines: Sequence[Mapping[str, Any]],
    due_date: datetime,
    idempotency_key: str,
    memo: str = "",
    gateway: StripeGateway | None = None,
) -> InvoiceCreated:
    """A draft invoice in Stripe for the customer, emailed for payment (`send_invoice`) and due
    on `due_date`, with one invoice item per line. `lines` are `{price_id, quantity}` (an active
    one-time price) or `{description, amount, currency}` (amount in minor units). Sending it is
    a separate step (`send_invoice`), so it can be checked first."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "invoices.create", _target(customer_id)) as draft:
        authorize(actor, "invoices.create")
        customer_id = _stored_customer(customer_id)
        checked = _check_lines(lines)
        due = _due_moment(due_date)
        description = _text("memo", memo, MEMO_MAX)
        currency, total = checked[0].currency, sum(line.amount for line in checked)
        draft.amount, draft.currency = total, currency
        draft.details.update(
            {"lines": len(checked), "prices": [line.price_id for line in checked if line.price_id], "due_date": due}
        )
        replayed = stripe_writes.claim_write(
            actor, idempotency_key, "invoices.create", customer_id, INVOICE_WRITE, draft
        )
        params: dict[str, Any] = {
            "customer": customer_id,
            "collection_method": "send_invoice",
            "due_date": due,
            "currency": currency,
            "pending_invoice_items_behavior": "exclude",  # only the lines chosen here
            "auto_advance": False,  # Billy finalizes and sends when asked, not Stripe an hour later
        }
        if description:
            params["description"] = description
        try:
            invoice = gateway.write("invoices", "create", params, idempotency_key)
        except StripeRequestFailed as exc:
            raise stripe_writes.plain_refusal(exc, INVOICE_WRITE, missing=CUSTOMER_GONE, replayed=replayed) from exc
        draft.targets.append(invoice["id"])
        for number, line in enumerate(checked, start=1):
            try:
                gateway.write(
                    "invoice_items",
                    "create",
                    line.stripe_params(customer_id, invoice["id"]),
                    derived_key(idempotency_key, f"line-{number}"),
                )
            except StripeRequestFailed as exc:
                stripe_writes.mirror_answers(gateway, [("invoice", invoice)], draft, refetch=True)
                refusal = stripe_writes.plain_refusal(exc, INVOICE_WRITE, missing=CUSTOMER_GONE, replayed=replayed)
                raise type(refusal)(
                    f"Stripe refused line {number}: {refusal.message} The draft invoice {invoice['id']} was made "
                    f"with the lines before it; fix the line and save again, or delete the draft in Stripe.",
                    code=refusal.code,
                ) from exc
        stored = stripe_writes.mirror_answers(gateway, [("invoice", invoice)], draft, refetch=True)
    return InvoiceCreated(invoice["id"], customer_id, total, currency, len(checked), replayed=replayed, stored=stored)


# --- sending, voiding, writing off -------------------------------------------------------------


def _sendable(invoice: _StoredInvoice) -> None:
    if invoice.collection_method != "send_invoice":
        raise ValidationFailed(
            f"Invoice {invoice.number} is charged to the customer's card automatically, so it is not sent by "
            "email. Remind the customer instead."
        )
    if invoice.status == "paid":
        raise ValidationFailed(f"Invoice {invoice.number} is already paid: there is nothing to ask for.")
    if invoice.status == "void":
        raise ValidationFailed(f"Invoice {invoice.number} is void: it can no longer be paid, so it is not sent.")
    if invoice.status == "draft" and invoice.amount_due <= 0:
        raise ValidationFailed(
            f"Invoice {invoice.number} comes to {format_money(invoice.amount_due, invoice.currency)}: "
            "add lines in Stripe before sending it."
        )


def _voidable(invoice: _StoredInvoice) -> None:
    if invoice.status == "draft":
        raise ValidationFailed(
            f"Invoice {invoice.number} is a draft that was never sent, so it cannot be voided: delete the draft "
            "in Stripe instead."
        )
    if invoice.status == "paid":
        raise ValidationFailed(
            f"Invoice {invoice.number} is paid, and Stripe cannot void a paid invoice: refund its payment instead."
        )
    if invoice.status == "void":
        raise ValidationFailed(f"Invoice {invoice.number} is already void.")


def _collectible(invoice: _StoredInvoice) -> None:
    if invoice.status == "uncollectible":
        raise ValidationFailed(f"Invoice {invoice.number} is already marked uncollectible.")
    if invoice.status != "open":
        why = {
            "draft": "is a draft: only an invoice that was sent and not paid can be written off",
            "paid": "is paid: there is nothing to write off",
            "void": "is void: it cannot be paid anyway",
        }.get(invoice.status, f"is {invoice.status}, and only open invoices can be marked uncollectible")
        raise ValidationFailed(f"Invoice {invoice.number} {why}.")


def _change(
    actor: Actor,
    action: str,
    draft: audit.AuditDraft,
    invoice: _StoredInvoice,
    idempotency_key: str,
    calls: Sequence[tuple[str, str]],
    gateway: StripeGateway,
) -> InvoiceChange:
    """The write shape's tail for one invoice: key, permission, intent, the Stripe call(s), store.
    `calls` are (sdk method, key suffix); a suffix of "" uses the caller's own key."""
    replayed = stripe_writes.claim_write(actor, idempotency_key, action, invoice.id, INVOICE_WRITE, draft)
    answer: dict[str, Any] = {}
    try:
        for method, suffix in calls:
            key = derived_key(idempotency_key, suffix) if suffix else idempotency_key
            answer = gateway.write("invoices", method, {}, key, object_id=invoice.id)
    except StripeRequestFailed as exc:
        raise stripe_writes.plain_refusal(exc, INVOICE_WRITE, missing=INVOICE_GONE, replayed=replayed) from exc
    stored = stripe_writes.mirror_answers(gateway, [("invoice", answer)], draft, refetch=replayed)
    draft.details["status_after"] = str(answer.get("status") or "")
    return InvoiceChange(
        invoice.id,
        str(answer.get("number") or invoice.number),
        str(answer.get("status") or ""),
        replayed=replayed,
        stored=stored,
    )


def send_invoice(
    actor: Actor, invoice_id: str, idempotency_key: str, gateway: StripeGateway | None = None
) -> InvoiceChange:
    """Finalize a draft (it gets its number and becomes payable), then have Stripe email it to
    the customer. An invoice already open is sent again."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "invoices.send", _target(invoice_id)) as draft:
        authorize(actor, "invoices.send")
        invoice = _stored_invoice(invoice_id)
        _describe(draft, invoice)
        _sendable(invoice)
        try:  # Stripe's status, not the store's: a draft finalized elsewhere a moment ago is not finalized twice
            status = (
                str(gateway.retrieve("invoice", invoice.id).get("status") or "") if invoice.status == "draft" else ""
            )
        except StripeRequestFailed as exc:
            raise stripe_writes.plain_refusal(exc, INVOICE_WRITE, missing=INVOICE_GONE, replayed=False) from exc
        calls = [("finalize_invoice", "finalize")] if status == "draft" else []
        return _change(
            actor, "invoices.send", draft, invoice, idempotency_key, [*calls, ("send_invoice", "send")], gateway
        )


def void_invoice(
    actor: Actor, invoice_id: str, idempotency_key: str, gateway: StripeGateway | None = None
) -> InvoiceChange:
    """Void an open or uncollectible invoice: it stays on record but can no longer be paid."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "invoices.void", _target(invoice_id)) as draft:
        authorize(actor, "invoices.void")
        invoice = _stored_invoice(invoice_id)
        _describe(draft, invoice)
        _voidable(invoice)
        return _change(actor, "invoices.void", draft, invoice, idempotency_key, [("void_invoice", "")], gateway)


def mark_uncollectible(
    actor: Actor, invoice_id: str, idempotency_key: str, gateway: StripeGateway | None = None
) -> InvoiceChange:
    """Write an open invoice off as bad debt; the customer may still pay it (or it can be voided)."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "invoices.mark_uncollectible", _target(invoice_id)) as draft:
        authorize(actor, "invoices.mark_uncollectible")
        invoice = _stored_invoice(invoice_id)
        _describe(draft, invoice)
        _collectible(invoice)
        return _change(
            actor, "invoices.mark_uncollectible", draft, invoice, idempotency_key, [("mark_uncollectible", "")], gateway
        )


# --- reminders ---------------------------------------------------------------------------------


def _org_name() -> str:
    with session_scope() as session:
        org = session.get(Organization, 1)
        return org.name if org else "Our team"


def _customer_email(invoice: _StoredInvoice) -> str:
    """Where a reminder goes: the customer's address in the store, else the one on the invoice."""
    with session_scope() as session:
        customer = session.get(StripeCustomer, invoice.customer_id) if invoice.customer_id else None
        email = (customer.email or "").strip() if customer is not None and not customer.deleted else ""
    return email or invoice.customer_email.strip()


def days_overdue(due_date: int | None, now: datetime) -> int | None:
    """Whole days past the due moment (0 on the day it passed), or None when not yet due."""
    if due_date is None or due_date >= now.timestamp():
        return None
    return (now - datetime.fromtimestamp(due_date, UTC)).days


def _release(key: str) -> None:
    """Forget a reminder's intent when no mail left, so trying again with the same key can send it."""

    def forget(session: Any) -> None:
        seen = session.get(IdempotencyRecord, key)
        if seen is not None:
            session.delete(seen)

    run_transaction(forget)


def plan_reminders(actor: Actor, invoice_ids: object, idempotency_key: object = None) -> list[str]:
    """The whole request's checks, before any invoice: the role (a refusal is audited), the
    list's shape and size, and (when sending) the key. A failure leaves one row for the request.
    The dialog asks this first, to say how many invoices a run covers."""
    shown = [str(i)[:255] for i in invoice_ids[:20]] if isinstance(invoice_ids, list | tuple) else []
    with audit.refusal_recorded(actor, "invoices.remind", *shown):
        authorize(actor, "invoices.remind")
    try:
        if not isinstance(invoice_ids, list | tuple) or not invoice_ids:
            raise ValidationFailed("Choose at least one invoice to remind its customer about.")
        if len(invoice_ids) > MAX_REMINDERS:
            raise ValidationFailed(
                f"One reminder run covers at most {MAX_REMINDERS} invoices; you chose {len(invoice_ids)}. "
                "Narrow the list (for example by customer or date) and send the rest in a second run."
            )
        if not all(isinstance(i, str) for i in invoice_ids):
            raise ValidationFailed("Invoices are named by their Stripe ids (they start with in_).")
        if idempotency_key is not None:
            stripe_writes.require_idempotency_key(idempotency_key)
    except ValidationFailed as exc:
        audit.record(actor, "invoices.remind", "failed", audit.AuditDraft(targets=shown), exc.message)
        raise
    return list(dict.fromkeys(invoice_ids))  # each invoice once, in the order given


def send_reminders(actor: Actor, invoice_ids: Sequence[str], idempotency_key: str) -> list[ReminderResult]:
    """Email each invoice's customer a payment reminder (amount due, how late, the pay link),
    with one audit row and one result per invoice; a failure is reported and the rest go on.
    The same key again sends nothing twice: each invoice's intent is stored under a key
    derived from it before its mail is sent (and forgotten if the mail could not leave)."""
    ids = plan_reminders(actor, invoice_ids, idempotency_key)
    org_name, now = _org_name(), clock.now()
    return [_remind(actor, invoice_id, idempotency_key, org_name, now) for invoice_id in ids]


def _remind(actor: Actor, invoice_id: str, idempotency_key: str, org_name: str, now: datetime) -> ReminderResult:
    number, customer_id, shown = invoice_id[:255], "", ""
    try:
        with audit.audited(actor, "invoices.remind", invoice_id[:255]) as draft:
            authorize(actor, "invoices.remind")
            invoice = _stored_invoice(invoice_id)
            number, customer_id = invoice.number, invoice.customer_id
            _describe(draft, invoice)
            if invoice.status != "open":
                raise ValidationFailed(
                    f"Invoice {invoice.number} is {invoice.status or 'not open'} now, so there is nothing to remind "
                    "the customer of.",
                    code="not_open",
                )
            if not invoice.hosted_invoice_url:
                raise ValidationFailed(
                    f"Billy has no payment link for invoice {invoice.number} yet; sync with Stripe and try again.",
                    code="no_pay_link",
                )
            email = _customer_email(invoice)
            if not email:
                raise ValidationFailed(
                    "The customer has no email address in Stripe, so no reminder can be sent. Add one to the "
                    "customer (or remind them another way).",
                    code="no_email",
                )
            late = days_overdue(invoice.due_date, now)
            draft.details["days_overdue"] = late
            key = derived_key(idempotency_key, f"remind-{invoice.id}")
            if stripe_writes.claim_intent(actor, key, "invoices.remind", invoice.id):
                draft.details["replay"] = True
                return ReminderResult(
                    invoice.id,
                    number,
                    customer_id,
                    "already_sent",
                    "",
                    "Already reminded by this same request: not sent twice.",
                )
            mail = invoice_reminder_mail(
                to=email,
                org_name=org_name,
                number=invoice.number,
                amount_label=format_money(invoice.amount_remaining, invoice.currency),
                due=datetime.fromtimestamp(invoice.due_date, UTC) if invoice.due_date is not None else None,
                days_overdue=late,
                pay_link=invoice.hosted_invoice_url,
            )
            try:
                get_mailer().send(mail)
            except MailDeliveryFailed as exc:
                _release(key)
                shown = exc.message  # the person's fuller sentence names the address; the audit row does not
                raise BillyError(_MAIL_NOT_DELIVERED[exc.retryable], code="mail_failed") from None
        words = lateness(late)
        return ReminderResult(
            invoice.id,
            number,
            customer_id,
            "sent",
            email,
            f"Reminder sent to {email}" + (f" ({words})." if words else "."),
        )
    except PermissionDenied as exc:
        return ReminderResult(invoice_id[:255], number, customer_id, "refused", "", exc.message)
    except NotFound as exc:
        return ReminderResult(invoice_id[:255], number, customer_id, "not_found", "", exc.message)
    except BillyError as exc:
        outcome = exc.code if exc.code in ("not_open", "no_email", "mail_failed", "no_pay_link") else "failed"
        return ReminderResult(invoice_id[:255], number, customer_id, outcome, "", shown or exc.message)
    except Exception:  # one invoice's bug must not hide the others' results
        log.exception("Reminder for invoice %s not sent", invoice_id[:64])
        return ReminderResult(
            invoice_id[:255], number, customer_id, "failed", "", "Not sent: an internal error (logged)."
        )
