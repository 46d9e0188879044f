"""Invoices and invoice items with Stripe's life cycle, due dates and events.

localstripe makes invoices only for subscriptions, cannot finalize, send or
mark them uncollectible, has no due dates, numbers or status filters, and
emits no finalize/paid/void events. Stripe (docs: api/invoices,
invoicing/overview, invoicing/integration/workflow-transitions,
api/invoiceitems):

* an invoice is created as a `draft`; invoice items are added to it (or left
  pending on the customer and pulled in with
  `pending_invoice_items_behavior=include`); `finalize` makes it `open`, gives
  it a `number` and, for `collection_method=send_invoice`, a `due_date`
  (`days_until_due` after finalization, unless `due_date` was set);
* a finalized invoice pays (`paid`), can be voided (`void`) or marked
  `uncollectible` while open; an uncollectible invoice can still be paid or
  voided; paid and void invoices are final. Each transition refuses the wrong
  state with a 400 `invalid_request_error` ("Invoice is already paid",
  "Voided invoices cannot be paid.", "This invoice is already finalized, you
  can't re-finalize a non-draft invoice.", ...); a draft's money fields can be
  edited, a finalized invoice's cannot (`invoice_not_editable`);
* `pay` charges the customer's default card (or `source` / `payment_method`);
  a declined card answers 402 `card_error`, leaves the invoice open and counts
  the attempt; `paid_out_of_band=true` marks it paid without a charge; `pay`
  and `send` finalize a draft first; a $0 invoice is paid when finalized;
* `send` is for `send_invoice` invoices only; it finalizes a draft first ("Stripe automatically
  finalizes drafts before sending", api/invoices/finalize) and may re-send a paid invoice ("When
  sending invoices that have already been paid, there will be no reference to the payment in the
  email", api/invoices/send); a void invoice is refused (the sandbox's assumption: Stripe does not
  document it). Test mode sends no email, only the `invoice.sent` event;
* `hosted_invoice_url` and `invoice_pdf` are null on a draft and set when it is finalized
  (api/invoices/object): the customer's page to see and pay it. The sandbox's addresses have
  Stripe's form (invoice.stripe.com/i/<account>/test_<token>) but lead nowhere;
* an invoice item's price must be active ("The price specified is inactive. This field only
  accepts active prices.") and one-time;
* amounts: `subtotal` and `total` are the sum of the lines, `amount_due` the
  total, `amount_paid` what was collected, `amount_remaining` the difference;
* events: invoice.created, invoice.updated (with `previous_attributes`),
  invoice.finalized, invoice.sent, invoice.paid, invoice.payment_succeeded,
  invoice.payment_failed, invoice.voided, invoice.marked_uncollectible,
  invoice.deleted, invoiceitem.created / updated / deleted;
* `GET /v1/invoices` filters by `customer`, `subscription`, `status`,
  `collection_method`, `created` and `due_date` (exact or ranges), newest first.

The shape follows the pinned API version (`parent.subscription_details`,
`lines[].parent`, `lines[].pricing`, `payments`); the older top-level
`subscription`, `paid` and `charge` fields are kept as well for tolerant clients.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from aiohttp import web
from localstripe.resources import Charge, StripeObject, store

from sandbox import timeline
from sandbox.charges import MINIMUM_AMOUNTS
from sandbox.errors import StripeApiError, invalid_request, resource_missing
from sandbox.events import emit
from sandbox.lists import ListSpec, equals
from sandbox.objects import (
    expand_export,
    from_path,
    list_object,
    lookup,
    one_of,
    range_filter,
    refuse_unknown,
    required,
    respond,
)
from sandbox.params import Predicate, bounded_int, merged_metadata, metadata_param, read_params, string_param, to_bool
from sandbox.prices import price_for
from sandbox.responses import json_response
from sandbox.state import ACCOUNT_ID, INDEX

DAY = timeline.DAY
STATUSES = ("draft", "open", "paid", "uncollectible", "void")
COLLECTION_METHODS = ("charge_automatically", "send_invoice")
# What listeners (subscriptions) hear: "paid", "payment_failed", "voided".
Listener = Callable[[str, "Invoice"], None]
LISTENERS: list[Listener] = []

INVOICE_CREATE_PARAMS = {
    "auto_advance",
    "collection_method",
    "currency",
    "customer",
    "days_until_due",
    "default_payment_method",
    "description",
    "due_date",
    "expand",
    "footer",
    "metadata",
    "pending_invoice_items_behavior",
    "subscription",
}
INVOICE_UPDATE_PARAMS = {
    "auto_advance",
    "collection_method",
    "days_until_due",
    "default_payment_method",
    "description",
    "due_date",
    "expand",
    "footer",
    "metadata",
}
# Editable after finalization (Stripe: money fields and collection_method freeze).
FINALIZED_EDITABLE = {"auto_advance", "description", "due_date", "footer", "metadata", "expand"}
ITEM_CREATE_PARAMS = {
    "amount",
    "currency",
    "customer",
    "description",
    "discountable",
    "expand",
    "invoice",
    "metadata",
    "period",
    "price",
    "price_data",
    "pricing",
    "quantity",
    "subscription",
    "tax_rates",
    "unit_amount_decimal",
}
ITEM_UPDATE_PARAMS = {
    "amount",
    "description",
    "discountable",
    "expand",
    "metadata",
    "period",
    "price",
    "pricing",
    "quantity",
    "unit_amount_decimal",
}


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Stripe's `previous_attributes`: the old values of the top-level fields that changed."""
    return {key: value for key, value in before.items() if after.get(key) != value}


class InvoiceItem(StripeObject):
    """A Stripe invoice item: a one-off amount, pending on a customer or on a draft invoice."""

    object = "invoiceitem"
    _id_prefix = "ii_"

    def __init__(
        self,
        *,
        customer: str,
        currency: str,
        unit_amount: int,
        quantity: int,
        description: str | None,
        price: str | None = None,
        invoice: str | None = None,
        subscription: str | None = None,
        period: dict[str, int] | None = None,
        metadata: dict[str, str] | None = None,
        discountable: bool = True,
    ) -> None:
        super().__init__()
        self.customer = customer
        self.currency = currency
        self.unit_amount = unit_amount
        self.quantity = quantity
        self.description = description
        self.price = price
        self.invoice = invoice
        self.subscription = subscription
        self.period = period or {"start": self.created, "end": self.created}
        self.metadata = metadata or {}
        self.discountable = discountable
        self.date = self.created

    @property
    def amount(self) -> int:
        return self.unit_amount * self.quantity

    def _export(self, expand: Any = None) -> dict[str, Any]:
        price = INDEX.get("price", self.price) if self.price else None
        data = {
            "id": self.id,
            "object": "invoiceitem",
            "amount": self.amount,
            "currency": self.currency,
            "customer": self.customer,
            "date": self.date,
            "description": self.description,
            "discountable": self.discountable,
            "discounts": [],
            "invoice": self.invoice,
            "livemode": False,
            "metadata": dict(self.metadata),
            "net_amount": self.amount,
            "parent": (
                {
                    "type": "subscription_details",
                    "subscription_details": {"subscription": self.subscription, "subscription_item": None},
                }
                if self.subscription
                else None
            ),
            "period": dict(self.period),
            "pricing": _pricing(price, self.unit_amount),
            "proration": False,
            "proration_details": {"credited_items": None},
            "quantity": self.quantity,
            "tax_rates": [],
            "test_clock": None,
            # Older API versions:
            "price": price._export() if price else None,
            "subscription": self.subscription,
            "unit_amount": self.unit_amount,
        }
        return expand_export(data, expand)


def _pricing(price: Any, unit_amount: int) -> dict[str, Any]:
    return {
        "price_details": {"price": price.id, "product": price.product} if price else None,
        "type": "price_details",
        "unit_amount_decimal": str(unit_amount),
    }


class Invoice(StripeObject):
    """A Stripe invoice; its status is stored, not derived as localstripe does."""

    object = "invoice"
    _id_prefix = "in_"

    def __init__(
        self,
        *,
        customer: str,
        currency: str,
        subscription: str | None = None,
        billing_reason: str = "manual",
        collection_method: str = "charge_automatically",
        days_until_due: int | None = None,
        due_date: int | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        auto_advance: bool | None = None,
        default_payment_method: str | None = None,
        footer: str | None = None,
    ) -> None:
        super().__init__()
        self.customer = customer
        self.currency = currency
        self.subscription = subscription
        self.billing_reason = billing_reason
        self.collection_method = collection_method
        self.days_until_due = days_until_due
        self.due_date = due_date
        self.description = description
        self.metadata = metadata or {}
        self.auto_advance = (subscription is not None) if auto_advance is None else auto_advance
        self.default_payment_method = default_payment_method
        self.footer = footer
        self.status = "draft"
        self.number: str | None = None
        self.amount_paid = 0
        self.attempt_count = 0
        self.attempted = False
        self.effective_at: int | None = None
        self.next_payment_attempt: int | None = None
        self.webhooks_delivered_at: int | None = None
        self.hosted_invoice_url: str | None = None  # set when finalized
        self.invoice_pdf: str | None = None
        self.period_start = self.created
        self.period_end = self.created
        self.status_transitions: dict[str, int | None] = {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        }
        self._lines: list[dict[str, Any]] = []
        self._payments: list[dict[str, Any]] = []
        self._customer_details = _customer_details(customer)
        INDEX.refresh("invoice", self.id)

    # -- amounts -----------------------------------------------------------------

    @property
    def subtotal(self) -> int:
        return sum(line["amount"] for line in self._lines)

    @property
    def total(self) -> int:
        return self.subtotal

    @property
    def amount_due(self) -> int:
        return self.total

    @property
    def amount_remaining(self) -> int:
        return max(0, self.amount_due - self.amount_paid)

    @property
    def charge(self) -> str | None:
        charges = [p["payment"]["charge"] for p in self._payments if p["payment"].get("charge")]
        return charges[-1] if charges else None

    def _export(self, expand: Any = None) -> dict[str, Any]:
        details = self._customer_details
        data = {
            "id": self.id,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Billy Sandbox",
            "amount_due": self.amount_due,
            "amount_overpaid": 0,
            "amount_paid": self.amount_paid,
            "amount_remaining": self.amount_remaining,
            "amount_shipping": 0,
            "application": None,
            "attempt_count": self.attempt_count,
            "attempted": self.attempted,
            "auto_advance": self.auto_advance,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "automatically_finalizes_at": None,
            "billing_reason": self.billing_reason,
            "collection_method": self.collection_method,
            "created": self.created,
            "currency": self.currency,
            "custom_fields": None,
            "customer": self.customer,
            "customer_address": details.get("address"),
            "customer_email": details.get("email"),
            "customer_name": details.get("name"),
            "customer_phone": details.get("phone"),
            "customer_shipping": None,
            "customer_tax_exempt": "none",
            "customer_tax_ids": [],
            "days_until_due": self.days_until_due,
            "default_payment_method": self.default_payment_method,
            "default_source": None,
            "default_tax_rates": [],
            "description": self.description,
            "discounts": [],
            "due_date": self.due_date,
            "effective_at": self.effective_at,
            "ending_balance": None if self.status == "draft" else 0,
            "footer": self.footer,
            "from_invoice": None,
            # getattr: invoices saved by an older sandbox (sandbox/persistence.py) lack them
            "hosted_invoice_url": getattr(self, "hosted_invoice_url", None),
            "invoice_pdf": getattr(self, "invoice_pdf", None),
            "issuer": {"type": "self"},
            "last_finalization_error": None,
            "latest_revision": None,
            "lines": list_object(f"/v1/invoices/{self.id}/lines", [dict(line) for line in self._lines]),
            "livemode": False,
            "metadata": dict(self.metadata),
            "next_payment_attempt": self.next_payment_attempt,
            "number": self.number,
            "on_behalf_of": None,
            "parent": (
                {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {"metadata": {}, "subscription": self.subscription},
                }
                if self.subscription
                else None
            ),
            "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
            "payments": list_object(
                f"/v1/invoice_payments?invoice={self.id}", [dict(payment) for payment in reversed(self._payments)]
            ),
            "period_end": self.period_end,
            "period_start": self.period_start,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": None,
            "rendering": None,
            "shipping_cost": None,
            "shipping_details": None,
            "starting_balance": 0,
            "statement_descriptor": None,
            "status": self.status,
            "status_transitions": dict(self.status_transitions),
            "subtotal": self.subtotal,
            "subtotal_excluding_tax": self.subtotal,
            "test_clock": None,
            "total": self.total,
            "total_discount_amounts": [],
            "total_excluding_tax": self.total,
            "total_taxes": [],
            "webhooks_delivered_at": self.webhooks_delivered_at,
            # Older API versions, kept for tolerant clients:
            "charge": self.charge,
            "paid": self.status == "paid",
            "subscription": self.subscription,
        }
        return expand_export(data, expand)

    def shift(self, delta: int) -> None:
        """Backdating: the invoice's whole history moves, its charges and events too."""
        timeline.move_created("invoice", self, delta)
        for name in ("due_date", "effective_at", "next_payment_attempt", "webhooks_delivered_at"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name) + delta)
        self.period_start += delta
        self.period_end += delta
        self.status_transitions = {k: None if v is None else v + delta for k, v in self.status_transitions.items()}
        self._lines = timeline.shift_snapshot(self._lines, delta)
        self._payments = timeline.shift_snapshot(self._payments, delta)
        for line in self._lines:
            item_id = (line["parent"].get("invoice_item_details") or {}).get("invoice_item")
            item = INDEX.get("invoiceitem", item_id) if item_id else None
            if item is not None:
                timeline.move_created("invoiceitem", item, delta)
                item.period = {k: v + delta for k, v in item.period.items()}
                timeline.shift_events(item.id, delta)
        for payment in self._payments:
            if payment["payment"].get("charge"):
                timeline.shift_charge(payment["payment"]["charge"], delta)
        timeline.shift_events(self.id, delta)


def _customer_details(customer_id: str) -> dict[str, Any]:
    customer = INDEX.get("customer", customer_id)
    return {
        "address": getattr(customer, "address", None),
        "email": getattr(customer, "email", None),
        "name": getattr(customer, "name", None),
        "phone": getattr(customer, "phone", None),
    }


def _invoice_prefix(customer_id: str) -> str:
    """Stripe numbers invoices per customer: a prefix of letters and digits, then -0001."""
    digest = hashlib.sha256(customer_id.encode()).hexdigest().upper()
    return digest[:8]


def _next_number(invoice: Invoice) -> str:
    numbered = sum(1 for other in INDEX.objects("invoice", "customer", invoice.customer) if other.number)
    return f"{_invoice_prefix(invoice.customer)}-{numbered + 1:04d}"


# -- lines ---------------------------------------------------------------------------


def item_line(item: InvoiceItem) -> dict[str, Any]:
    price = INDEX.get("price", item.price) if item.price else None
    return {
        "id": "il_" + item.id.removeprefix("ii_"),
        "object": "line_item",
        "amount": item.amount,
        "currency": item.currency,
        "description": item.description,
        "discount_amounts": [],
        "discountable": item.discountable,
        "discounts": [],
        "invoice": item.invoice,
        "livemode": False,
        "metadata": dict(item.metadata),
        "parent": {
            "type": "invoice_item_details",
            "invoice_item_details": {
                "invoice_item": item.id,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": item.subscription,
            },
            "subscription_item_details": None,
        },
        "period": dict(item.period),
        "pretax_credit_amounts": [],
        "pricing": _pricing(price, item.unit_amount),
        "quantity": item.quantity,
        "subscription": item.subscription,
        "subtotal": item.amount,
        "taxes": [],
    }


def subscription_line(
    invoice: Invoice,
    *,
    subscription_item: str,
    price: Any,
    quantity: int,
    period: dict[str, int],
    amount: int | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    amount = price.unit_amount * quantity if amount is None else amount
    return {
        "id": "il_" + timeline_token(invoice.id, subscription_item),
        "object": "line_item",
        "amount": amount,
        "currency": price.currency,
        "description": description or f"{quantity} × {price.product_name()} (at {_money(price)} / {price.interval})",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice.id,
        "livemode": False,
        "metadata": {},
        "parent": {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": invoice.subscription,
                "subscription_item": subscription_item,
            },
        },
        "period": dict(period),
        "pretax_credit_amounts": [],
        "pricing": _pricing(price, price.unit_amount),
        "quantity": quantity,
        "subscription": invoice.subscription,
        "subtotal": amount,
        "taxes": [],
    }


def timeline_token(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:24]


def _money(price: Any) -> str:
    from sandbox.refunds import money

    return money(price.unit_amount, price.currency)


def add_lines(invoice: Invoice, lines: list[dict[str, Any]]) -> None:
    invoice._lines.extend(lines)
    periods = [line["period"] for line in invoice._lines if line["parent"]["type"] == "subscription_item_details"]
    if periods:
        invoice.period_start = min(p["start"] for p in periods)
        invoice.period_end = max(p["end"] for p in periods)


# -- the life cycle ------------------------------------------------------------------


def _notify(kind: str, invoice: Invoice) -> None:
    for listener in LISTENERS:
        listener(kind, invoice)


def emit_created(invoice: Invoice) -> None:
    emit("invoice.created", invoice, origin=invoice.id)


def finalize(invoice: Invoice) -> None:
    """draft → open (a $0 invoice goes on to paid), with a number and a due date."""
    if invoice.status != "draft":
        raise invalid_request(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            param="invoice",
        )
    before = invoice._export()
    moment = timeline.now()
    invoice.status = "open"
    invoice.number = _next_number(invoice)
    invoice.status_transitions["finalized_at"] = moment
    invoice.effective_at = moment
    invoice.webhooks_delivered_at = moment
    invoice.hosted_invoice_url, invoice.invoice_pdf = _hosted_pages(invoice)
    invoice._customer_details = _customer_details(invoice.customer)
    if invoice.collection_method == "send_invoice" and invoice.due_date is None:
        invoice.due_date = moment + (invoice.days_until_due or 30) * DAY
    if invoice.collection_method == "charge_automatically" and invoice.amount_due > 0:
        invoice.next_payment_attempt = moment
    emit("invoice.finalized", invoice, origin=invoice.id)
    emit("invoice.updated", invoice, changes(before, invoice._export()), origin=invoice.id)
    if invoice.amount_due == 0:
        _mark_paid(invoice, None)


def _hosted_pages(invoice: Invoice) -> tuple[str, str]:
    """The hosted invoice page and its PDF, in the form Stripe gives them once finalized."""
    token = "test_" + timeline_token(invoice.id, "hosted")
    page = f"https://invoice.stripe.com/i/{ACCOUNT_ID}/{token}"
    return f"{page}?s=ap", f"https://pay.stripe.com/invoice/{ACCOUNT_ID}/{token}/pdf?s=ap"


def _mark_paid(invoice: Invoice, charge: Any, out_of_band: bool = False) -> None:
    before = invoice._export()
    moment = timeline.now()
    if charge is not None or out_of_band or invoice.amount_remaining:
        invoice._payments.append(_payment(invoice, charge, "paid"))
    invoice.amount_paid = invoice.amount_due
    invoice.status = "paid"
    invoice.status_transitions["paid_at"] = moment
    invoice.next_payment_attempt = None
    if charge is not None:
        invoice.attempted = True
        invoice.attempt_count += 1
    emit("invoice.updated", invoice, changes(before, invoice._export()), origin=invoice.id)
    emit("invoice.paid", invoice, origin=invoice.id)
    emit("invoice.payment_succeeded", invoice, origin=invoice.id)
    _notify("paid", invoice)


def _payment(invoice: Invoice, charge: Any, status: str) -> dict[str, Any]:
    return {
        "id": "inpay_" + timeline_token(invoice.id, str(len(invoice._payments))),
        "object": "invoice_payment",
        "amount_paid": invoice.amount_remaining if status == "paid" else None,
        "amount_requested": invoice.amount_remaining,
        "created": timeline.now(),
        "currency": invoice.currency,
        "invoice": invoice.id,
        "is_default": status == "paid",
        "livemode": False,
        "payment": (
            {"type": "charge", "charge": charge.id}
            if charge is not None
            else {"type": "out_of_band_payment", "charge": None}
        ),
        "status": status,
        "status_transitions": {"canceled_at": None, "paid_at": timeline.now() if status == "paid" else None},
    }


def _has_payment_source(customer_id: str) -> bool:
    customer = INDEX.get("customer", customer_id)
    return customer is not None and customer._get_default_payment_method_or_source() is not None


def no_payment_method(param: str | None = None) -> StripeApiError:
    return invalid_request(
        "This customer has no attached payment source or default payment method. "
        "Please consider adding a default payment method.",
        param=param,
    )


def collect(invoice: Invoice, source: str | None = None, description: str = "Payment for Invoice") -> Any:
    """One payment attempt on an open invoice; returns the card error if it failed."""
    amount = invoice.amount_remaining
    source = source or invoice.default_payment_method
    if amount < MINIMUM_AMOUNTS.get(invoice.currency, 1):
        _mark_paid(invoice, None)  # Stripe carries tiny amounts over to the customer's balance
        return None
    if source is None and not _has_payment_source(invoice.customer):
        raise no_payment_method()
    params = {"amount": amount, "currency": invoice.currency, "customer": invoice.customer, "description": description}
    if source is not None:
        params["source"] = source
    try:
        charge = Charge._api_create(**params)
    except StripeApiError as exc:
        if exc.code != 402 or not exc.error.get("charge"):
            raise
        charge = INDEX.get("charge", exc.error["charge"])
        charge.invoice = invoice.id
        _mark_failed(invoice, charge)
        return exc
    charge.invoice = invoice.id
    _mark_paid(invoice, charge)
    return None


def _mark_failed(invoice: Invoice, charge: Any) -> None:
    before = invoice._export()
    invoice._payments.append(_payment(invoice, charge, "failed"))
    invoice.attempted = True
    invoice.attempt_count += 1
    # Stripe's Smart Retries would try again later; the sandbox never retries.
    invoice.next_payment_attempt = None
    emit("invoice.updated", invoice, changes(before, invoice._export()), origin=invoice.id)
    emit("invoice.payment_failed", invoice, origin=invoice.id)
    _notify("payment_failed", invoice)


def pay(invoice: Invoice, params: dict[str, Any]) -> Invoice:
    """POST /v1/invoices/{id}/pay."""
    refuse_unknown(
        params, {"expand", "forgive", "mandate", "off_session", "paid_out_of_band", "payment_method", "source"}
    )
    if invoice.status == "paid":
        raise invalid_request("Invoice is already paid", param="invoice")
    if invoice.status == "void":
        raise invalid_request("Voided invoices cannot be paid.", param="invoice")
    source = params.get("payment_method") or params.get("source")
    if source is not None:
        source = string_param("payment_method", source)
    out_of_band = to_bool("paid_out_of_band", params.get("paid_out_of_band", False))
    if invoice.status == "draft":
        if not out_of_band and source is None and invoice.amount_due and not _has_payment_source(invoice.customer):
            raise no_payment_method()
        finalize(invoice)
        if invoice.status == "paid":
            return invoice
    if out_of_band:
        _mark_paid(invoice, None, out_of_band=True)
        return invoice
    error = collect(invoice, source)
    if error is not None:
        raise error
    return invoice


def send(invoice: Invoice) -> Invoice:
    """POST /v1/invoices/{id}/send: email the invoice (here: the invoice.sent event)."""
    if invoice.collection_method != "send_invoice":
        raise invalid_request(
            "You can only manually send an invoice if its collection method is 'send_invoice'.",
            param="invoice",
        )
    if invoice.status == "void":
        raise invalid_request("You can't send an invoice with status 'void'.", param="invoice")
    if invoice.status == "draft":
        finalize(invoice)
    emit("invoice.sent", invoice, origin=invoice.id)
    return invoice


def void(invoice: Invoice) -> Invoice:
    if invoice.status not in ("open", "uncollectible"):
        detail = "delete a draft instead" if invoice.status == "draft" else f"this invoice is {invoice.status}"
        raise invalid_request(f"You can only void open or uncollectible invoices; {detail}.", param="invoice")
    before = invoice._export()
    invoice.status = "void"
    invoice.status_transitions["voided_at"] = timeline.now()
    invoice.next_payment_attempt = None
    emit("invoice.updated", invoice, changes(before, invoice._export()), origin=invoice.id)
    emit("invoice.voided", invoice, origin=invoice.id)
    _notify("voided", invoice)
    return invoice


def mark_uncollectible(invoice: Invoice) -> Invoice:
    if invoice.status != "open":
        raise invalid_request(
            f"You can only mark open invoices as uncollectible; this invoice is {invoice.status}.",
            param="invoice",
        )
    before = invoice._export()
    invoice.status = "uncollectible"
    invoice.status_transitions["marked_uncollectible_at"] = timeline.now()
    invoice.next_payment_attempt = None
    emit("invoice.updated", invoice, changes(before, invoice._export()), origin=invoice.id)
    emit("invoice.marked_uncollectible", invoice, origin=invoice.id)
    _notify("marked_uncollectible", invoice)
    return invoice


# -- creating and editing -------------------------------------------------------------


def _collection(params: dict[str, Any], current: Invoice | None = None) -> tuple[str, int | None, int | None]:
    method = params.get("collection_method", current.collection_method if current else "charge_automatically")
    method = one_of("collection_method", method, COLLECTION_METHODS)
    days = params.get("days_until_due", current.days_until_due if current else None)
    due = params.get("due_date", current.due_date if current else None)
    days = None if days in (None, "") else bounded_int("days_until_due", days, minimum=0, maximum=36500)
    due = None if due in (None, "") else bounded_int("due_date", due, minimum=1)
    if method == "charge_automatically" and (days is not None or due is not None):
        name = "days_until_due" if days is not None else "due_date"
        raise invalid_request(
            f"`{name}` can only be set when `collection_method` is `send_invoice`.",
            param=name,
        )
    if method == "send_invoice" and days is None and due is None:
        raise invalid_request(
            "Invoices with `collection_method=send_invoice` need `days_until_due` or `due_date`.",
            param="days_until_due",
            code="parameter_missing",
        )
    if "due_date" in params and due is not None and due < timeline.now() - DAY:
        raise invalid_request("The due date must be in the future.", param="due_date")
    return method, days, due


def create_invoice(params: dict[str, Any]) -> Invoice:
    """POST /v1/invoices: a draft (pending items only with pending_invoice_items_behavior=include)."""
    refuse_unknown(params, INVOICE_CREATE_PARAMS)
    customer = lookup("customer", required(params, "customer"), "customer")
    subscription = None
    if params.get("subscription") is not None:
        subscription = lookup("subscription", params["subscription"], "subscription")
        if subscription.customer != customer.id:
            raise invalid_request(
                f"The subscription {subscription.id} does not belong to customer {customer.id}.",
                param="subscription",
            )
    method, days, due = _collection(params)
    behavior = params.get("pending_invoice_items_behavior", "exclude")
    behavior = one_of("pending_invoice_items_behavior", behavior, ("exclude", "include"))
    pending = []
    if behavior == "include":
        pending = [
            item
            for item in _pending_items(customer.id)
            if subscription is None or item.subscription in (None, subscription.id)
        ]
    currency = params.get("currency") or (pending[0].currency if pending else "usd")
    invoice = Invoice(
        customer=customer.id,
        currency=string_param("currency", currency).lower(),
        subscription=subscription.id if subscription else None,
        collection_method=method,
        days_until_due=days,
        due_date=due,
        description=None if params.get("description") is None else string_param("description", params["description"]),
        metadata=metadata_param(params.get("metadata")),
        auto_advance=None if params.get("auto_advance") is None else to_bool("auto_advance", params["auto_advance"]),
        default_payment_method=params.get("default_payment_method"),
        footer=params.get("footer"),
    )
    for item in pending:
        if item.currency == invoice.currency:
            item.invoice = invoice.id
            add_lines(invoice, [item_line(item)])
    emit_created(invoice)
    return invoice


def update_invoice(invoice: Invoice, params: dict[str, Any]) -> Invoice:
    refuse_unknown(params, INVOICE_UPDATE_PARAMS)
    if invoice.status != "draft":
        for name in params:
            if name not in FINALIZED_EDITABLE:
                raise not_editable(invoice, name)
        if invoice.status in ("paid", "void") and set(params) - {"metadata", "description", "expand", "footer"}:
            raise not_editable(invoice, next(iter(set(params) - {"metadata", "description", "expand", "footer"})))
    before = invoice._export()
    if {"collection_method", "days_until_due", "due_date"} & set(params):
        method, days, due = _collection(params, invoice)
        invoice.collection_method, invoice.days_until_due, invoice.due_date = method, days, due
    for name in ("description", "footer", "default_payment_method"):
        if name in params:
            invoice_value = params[name]
            setattr(invoice, name, None if invoice_value == "" else string_param(name, invoice_value))
    if "auto_advance" in params:
        invoice.auto_advance = to_bool("auto_advance", params["auto_advance"])
    if "metadata" in params:
        invoice.metadata = merged_metadata(invoice.metadata, params["metadata"])
    previous = changes(before, invoice._export())
    if previous:
        emit("invoice.updated", invoice, previous, origin=invoice.id)
    return invoice


def not_editable(invoice: Invoice, param: str) -> StripeApiError:
    return invalid_request(
        f"This invoice can no longer be edited: it is {invoice.status}, and `{param}` can only change on a draft.",
        param=param,
        code="invoice_not_editable",
    )


def delete_invoice(invoice: Invoice) -> dict[str, Any]:
    if invoice.status != "draft":
        raise invalid_request(
            "You can only delete draft invoices; void or mark a finalized invoice uncollectible instead.",
            param="invoice",
        )
    for line in invoice._lines:
        details = line["parent"].get("invoice_item_details")
        if details and INDEX.get("invoiceitem", details["invoice_item"]) is not None:
            del store[f"invoiceitem:{details['invoice_item']}"]
    emit("invoice.deleted", invoice, origin=invoice.id)
    del store[f"invoice:{invoice.id}"]
    return {"id": invoice.id, "object": "invoice", "deleted": True}


def _pending_items(customer_id: str) -> list[InvoiceItem]:
    items = INDEX.objects("invoiceitem", where=lambda item: item.customer == customer_id and item.invoice is None)
    return sorted(items, key=lambda item: (item.created, item.id))


def _item_price(params: dict[str, Any]) -> Any:
    price_id = params.get("price")
    pricing = params.get("pricing")
    if isinstance(pricing, dict):
        refuse_unknown(pricing, {"price"}, "pricing")
        price_id = pricing.get("price", price_id)
    if price_id is None:
        return None
    price = price_for(price_id, "pricing[price]")
    if not getattr(price, "active", True):
        raise invalid_request(
            "The price specified is inactive. This field only accepts active prices.", param="pricing[price]"
        )
    if price.recurring is not None:
        raise invalid_request(
            f"The price specified ({price.id}) is set to `type=recurring` but this field only accepts "
            "prices with `type=one_time`.",
            param="pricing[price]",
        )
    return price


def _price_data(params: dict[str, Any]) -> tuple[str, int] | None:
    data = params.get("price_data")
    if data is None:
        return None
    if not isinstance(data, dict):
        raise invalid_request("Invalid object", param="price_data")
    refuse_unknown(data, {"currency", "product", "tax_behavior", "unit_amount", "unit_amount_decimal"}, "price_data")
    lookup("product", required(data, "product", "price_data[product]"), "price_data[product]")
    currency = string_param("price_data[currency]", required(data, "currency", "price_data[currency]")).lower()
    amount = data.get("unit_amount", data.get("unit_amount_decimal"))
    if amount is None:
        raise invalid_request(
            "Missing required param: price_data[unit_amount].",
            param="price_data[unit_amount]",
            code="parameter_missing",
        )
    return currency, bounded_int("price_data[unit_amount]", amount, minimum=0)


def _period(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_request("Invalid object", param="period")
    refuse_unknown(value, {"start", "end"}, "period")
    start = bounded_int("period[start]", required(value, "start", "period[start]"), minimum=1)
    end = bounded_int("period[end]", required(value, "end", "period[end]"), minimum=1)
    if end < start:
        raise invalid_request("The period's end must not be before its start.", param="period[end]")
    return {"start": start, "end": end}


def create_item(params: dict[str, Any]) -> InvoiceItem:
    """POST /v1/invoiceitems."""
    refuse_unknown(params, ITEM_CREATE_PARAMS)
    invoice = None
    if params.get("invoice") is not None:
        invoice = lookup("invoice", params["invoice"], "invoice")
        if invoice.status != "draft":
            raise not_editable(invoice, "invoice")
    customer_id = params.get("customer") or (invoice.customer if invoice else None)
    customer = lookup("customer", required({"customer": customer_id}, "customer"), "customer")
    if invoice is not None and invoice.customer != customer.id:
        raise invalid_request(
            f"The invoice {invoice.id} belongs to another customer than {customer.id}.", param="invoice"
        )
    subscription = None
    if params.get("subscription") is not None:
        subscription = lookup("subscription", params["subscription"], "subscription").id
    price = _item_price(params)
    price_data = _price_data(params)
    quantity = bounded_int("quantity", params.get("quantity", 1), minimum=1)
    given = [name for name in ("amount", "price_data", "unit_amount_decimal") if params.get(name) is not None]
    if price is not None:
        given.append("pricing[price]")
    if len(given) > 1:
        raise invalid_request("You may only specify one of these parameters: " + ", ".join(given) + ".")
    if price is not None:
        currency, unit_amount = price.currency, price.unit_amount
    elif price_data is not None:
        currency, unit_amount = price_data
    elif params.get("unit_amount_decimal") is not None:
        currency = string_param("currency", required(params, "currency")).lower()
        unit_amount = bounded_int("unit_amount_decimal", params["unit_amount_decimal"], minimum=0)
    else:
        total = bounded_int("amount", required(params, "amount"), minimum=-99_999_999)
        currency = string_param("currency", required(params, "currency")).lower()
        if quantity != 1:
            raise invalid_request("`quantity` cannot be combined with `amount`; use `unit_amount_decimal`.")
        unit_amount = total
    if params.get("currency") is not None and str(params["currency"]).lower() != currency:
        raise invalid_request(f"The price's currency is {currency}.", param="currency")
    if invoice is not None and invoice._lines and invoice.currency != currency:
        raise invalid_request(
            f"The currency of the invoice item ({currency}) must match the invoice's ({invoice.currency}).",
            param="currency",
        )
    description = params.get("description")
    if description is None and price is not None:
        description = INDEX.get("product", price.product).name if INDEX.get("product", price.product) else None
    item = InvoiceItem(
        customer=customer.id,
        currency=currency,
        unit_amount=unit_amount,
        quantity=quantity,
        description=None if description is None else string_param("description", description),
        price=price.id if price else None,
        invoice=invoice.id if invoice else None,
        subscription=subscription,
        period=_period(params.get("period")),
        metadata=metadata_param(params.get("metadata")),
        discountable=to_bool("discountable", params.get("discountable", True)),
    )
    emit("invoiceitem.created", item, origin=item.id)
    if invoice is not None:
        before = invoice._export()
        if not invoice._lines:
            invoice.currency = currency
        add_lines(invoice, [item_line(item)])
        emit("invoice.updated", invoice, changes(before, invoice._export()), origin=invoice.id)
    return item


def _item_invoice(item: InvoiceItem) -> Invoice | None:
    invoice = INDEX.get("invoice", item.invoice) if item.invoice else None
    if invoice is not None and invoice.status != "draft":
        raise not_editable(invoice, "invoiceitem")
    return invoice


def _relink(invoice: Invoice | None, item: InvoiceItem, remove: bool = False) -> None:
    if invoice is None:
        return
    before = invoice._export()
    lines = [
        line
        for line in invoice._lines
        if (line["parent"].get("invoice_item_details") or {}).get("invoice_item") != item.id
    ]
    invoice._lines = lines if remove else [*lines, item_line(item)]
    emit("invoice.updated", invoice, changes(before, invoice._export()), origin=invoice.id)


def update_item(item: InvoiceItem, params: dict[str, Any]) -> InvoiceItem:
    refuse_unknown(params, ITEM_UPDATE_PARAMS)
    invoice = _item_invoice(item)
    before = item._export()
    price = _item_price(params)
    if price is not None:
        item.price, item.unit_amount, item.currency = price.id, price.unit_amount, price.currency
    if params.get("amount") is not None:
        item.unit_amount = bounded_int("amount", params["amount"], minimum=-99_999_999) // max(item.quantity, 1)
    if params.get("unit_amount_decimal") is not None:
        item.unit_amount = bounded_int("unit_amount_decimal", params["unit_amount_decimal"], minimum=0)
    if params.get("quantity") is not None:
        item.quantity = bounded_int("quantity", params["quantity"], minimum=1)
    if "description" in params:
        item.description = None if params["description"] == "" else string_param("description", params["description"])
    if "metadata" in params:
        item.metadata = merged_metadata(item.metadata, params["metadata"])
    if params.get("period") is not None:
        item.period = _period(params["period"]) or item.period
    if "discountable" in params:
        item.discountable = to_bool("discountable", params["discountable"])
    previous = changes(before, item._export())
    if previous:
        emit("invoiceitem.updated", item, previous, origin=item.id)
        _relink(invoice, item)
    return item


def delete_item(item: InvoiceItem) -> dict[str, Any]:
    invoice = _item_invoice(item)
    emit("invoiceitem.deleted", item, origin=item.id)
    del store[f"invoiceitem:{item.id}"]
    _relink(invoice, item, remove=True)
    return {"id": item.id, "object": "invoiceitem", "deleted": True}


# -- lists ---------------------------------------------------------------------------


def _status_filter(value: Any) -> Predicate:
    wanted = one_of("status", value, STATUSES)
    return lambda invoice: invoice.status == wanted


def _pending_filter(value: Any) -> Predicate:
    wanted = to_bool("pending", value)
    return lambda item: (item.invoice is None) == wanted


INVOICES = ListSpec(
    "invoice",
    "/v1/invoices",
    {
        "customer": equals("customer"),
        "subscription": equals("subscription"),
        "status": _status_filter,
        "collection_method": equals("collection_method"),
        "due_date": range_filter("due_date"),
        "test_clock": lambda value: lambda invoice: False,
    },
    indexed=("customer",),
)
INVOICE_ITEMS = ListSpec(
    "invoiceitem",
    "/v1/invoiceitems",
    {"customer": equals("customer"), "invoice": equals("invoice"), "pending": _pending_filter},
)


# -- routes --------------------------------------------------------------------------


def _invoice(request: web.Request) -> Invoice:
    return from_path(request, "invoice")


def _item(request: web.Request) -> InvoiceItem:
    return from_path(request, "invoiceitem")


async def create(request: web.Request) -> web.Response:
    params = await read_params(request)
    return respond(create_invoice(params), params)


async def retrieve(request: web.Request) -> web.Response:
    invoice = _invoice(request)
    params = await read_params(request)
    refuse_unknown(params, {"expand"})
    return respond(invoice, params)


async def update(request: web.Request) -> web.Response:
    invoice = _invoice(request)
    params = await read_params(request)
    return respond(update_invoice(invoice, params), params)


async def delete(request: web.Request) -> web.Response:
    return json_response(delete_invoice(_invoice(request)))


def _finalized(invoice: Invoice) -> Invoice:
    finalize(invoice)
    return invoice


def _action(action: Callable[[Invoice], Invoice]) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        invoice = _invoice(request)
        params = await read_params(request)
        refuse_unknown(params, {"expand", "auto_advance"})
        if "auto_advance" in params:
            invoice.auto_advance = to_bool("auto_advance", params["auto_advance"])
        return respond(action(invoice), params)

    return handle


async def pay_route(request: web.Request) -> web.Response:
    invoice = _invoice(request)
    params = await read_params(request)
    return respond(pay(invoice, params), params)


async def lines(request: web.Request) -> web.Response:
    """GET /v1/invoices/{id}/lines, in the invoice's order."""
    invoice = _invoice(request)
    params = await read_params(request)
    refuse_unknown(params, {"limit", "starting_after", "ending_before", "expand"})
    limit = bounded_int("limit", params.get("limit", 10), 1, 100)
    rows = [dict(line) for line in invoice._lines]
    ids = [row["id"] for row in rows]
    if params.get("starting_after"):
        if params["starting_after"] not in ids:
            raise resource_missing("line_item", str(params["starting_after"]), param="starting_after", status=400)
        rows = rows[ids.index(params["starting_after"]) + 1 :]
    elif params.get("ending_before"):
        if params["ending_before"] not in ids:
            raise resource_missing("line_item", str(params["ending_before"]), param="ending_before", status=400)
        rows = rows[: ids.index(params["ending_before"])][-limit:]
    url = f"/v1/invoices/{invoice.id}/lines"
    return json_response({"object": "list", "data": rows[:limit], "has_more": len(rows) > limit, "url": url})


async def item_create(request: web.Request) -> web.Response:
    params = await read_params(request)
    return respond(create_item(params), params)


async def item_retrieve(request: web.Request) -> web.Response:
    return respond(_item(request), await read_params(request))


async def item_update(request: web.Request) -> web.Response:
    item = _item(request)
    params = await read_params(request)
    return respond(update_item(item, params), params)


async def item_delete(request: web.Request) -> web.Response:
    return json_response(delete_item(_item(request)))


def install() -> None:
    from sandbox import backdate

    backdate.SHIFTERS["invoice"] = lambda invoice, delta: invoice.shift(delta)


def routes() -> list[tuple[str, str, Any]]:
    return [
        ("POST", "/v1/invoices", create),
        ("GET", "/v1/invoices", INVOICES.handler()),
        ("GET", "/v1/invoices/{id}", retrieve),
        ("POST", "/v1/invoices/{id}", update),
        ("DELETE", "/v1/invoices/{id}", delete),
        ("POST", "/v1/invoices/{id}/finalize", _action(_finalized)),
        ("POST", "/v1/invoices/{id}/send", _action(send)),
        ("POST", "/v1/invoices/{id}/pay", pay_route),
        ("POST", "/v1/invoices/{id}/void", _action(void)),
        ("POST", "/v1/invoices/{id}/mark_uncollectible", _action(mark_uncollectible)),
        ("GET", "/v1/invoices/{id}/lines", lines),
        ("POST", "/v1/invoiceitems", item_create),
        ("GET", "/v1/invoiceitems", INVOICE_ITEMS.handler()),
        ("GET", "/v1/invoiceitems/{id}", item_retrieve),
        ("POST", "/v1/invoiceitems/{id}", item_update),
        ("DELETE", "/v1/invoiceitems/{id}", item_delete),
    ]
