"""Prorations of subscription changes, and the preview invoice that shows them first.

Stripe (docs: billing/subscriptions/prorations, billing/subscriptions/change-price,
api/invoices/create_preview, api/invoiceitems/object):

* changing an item's price or quantity mid-period credits the unused time of the old
  item and charges the remaining time of the new one, both prorated to the second from
  the proration date (`proration_date`, default now) to the end of the current period;
  an item removed is credited, an item added is charged. A trial is free, so a change
  during it prorates nothing;
* `proration_behavior`: `create_prorations` (the default) leaves the prorations as
  pending invoice items (`proration: true`, not discountable) that the next invoice
  collects ("positive prorations aren't immediately billed"); `always_invoice` bills
  them at once on an invoice with `billing_reason: subscription_update`; `none` makes
  none;
* `POST /v1/invoices/create_preview` with `subscription` shows the next invoice as it
  would be made now: the subscription's pending invoice items, then the next period of
  every item. With `subscription_details` (`items`, `proration_date`,
  `proration_behavior`) it shows the same for the subscription as the change would
  leave it, the change's own prorations included, so a client can show the amounts
  first and then update with the same `proration_date` to get exactly those amounts.
  On a preview (and on the invoice that later carries them) proration lines have
  `parent.subscription_item_details.proration: true` and their period starts at the
  proration date. A subscription that has ended, or that ends at this period's end,
  has no next invoice (`invoice_upcoming_none`).

Left out (the sandbox's limits): customer balances (a credit larger than the next
invoice leaves a negative total; `amount_due` never goes below zero), discounts and
taxes, and previewing a change of billing interval (the update itself still resets the
cycle and bills the new interval at once, without crediting the old one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from localstripe.resources import store

from sandbox import invoices, timeline
from sandbox.errors import invalid_request
from sandbox.events import emit
from sandbox.invoices import Invoice, InvoiceItem
from sandbox.objects import lookup, one_of, refuse_unknown
from sandbox.params import bounded_int, read_params
from sandbox.prices import Price
from sandbox.responses import json_response
from sandbox.state import INDEX

PRORATION_BEHAVIORS = ("create_prorations", "always_invoice", "none")
PREVIEW_PARAMS = {"customer", "subscription", "subscription_details", "expand"}
DETAILS_PARAMS = {"items", "proration_behavior", "proration_date"}

# An item of a subscription before or after a change: its id ("new<n>" for one not made yet),
# price and quantity.
ItemState = dict[str, tuple[Price, int]]


@dataclass(frozen=True)
class Proration:
    """One proration line: a credit (negative) for the old item or a charge for the new one."""

    subscription_item: str | None
    price: Price
    quantity: int
    amount: int
    description: str
    period: dict[str, int]


class ProrationItem(InvoiceItem):
    """The pending invoice item a mid-period change leaves for the next invoice."""

    def __init__(self, *, subscription_item: str | None, amount: int, **fields: Any) -> None:
        self._amount = amount
        self.subscription_item = subscription_item
        super().__init__(**fields)

    @property
    def amount(self) -> int:
        return self._amount

    def _export(self, expand: Any = None) -> dict[str, Any]:
        data = super()._export(expand)
        data["proration"] = True
        data["parent"] = {
            "type": "subscription_details",
            "subscription_details": {"subscription": self.subscription, "subscription_item": self.subscription_item},
        }
        return data


# -- the arithmetic ------------------------------------------------------------------------


def _prorated(total: int, remaining: int, period: int) -> int:
    """`total × remaining / period`, rounded half up, in whole minor units (per line, as Stripe)."""
    return (total * remaining * 2 + period) // (2 * period)


def _day(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%d %b %Y")


def _what(price: Price, quantity: int) -> str:
    name = price.product_name()
    return name if quantity == 1 else f"{quantity} × {name}"


def _same(one: tuple[Price, int] | None, other: tuple[Price, int]) -> bool:
    return one is not None and (one[0].id, one[1]) == (other[0].id, other[1])


def item_state(sub: Any) -> ItemState:
    return {item.id: (item.price_object(), item.quantity) for item in sub.items_list}


def prorations(sub: Any, before: ItemState, after: ItemState, proration_date: int) -> list[Proration]:
    """Credits for the items a change replaces, then charges for the items it brings."""
    start, end = sub.period()
    if sub._in_trial or end <= start or proration_date >= end:
        return []
    period, remaining = end - start, end - proration_date
    moment = {"start": proration_date, "end": end}
    lines = []
    for key, (price, quantity) in before.items():
        if not _same(after.get(key), (price, quantity)):
            amount = -_prorated(price.unit_amount * quantity, remaining, period)
            text = f"Unused time on {_what(price, quantity)} after {_day(proration_date)}"
            lines.append(Proration(key, price, quantity, amount, text, moment))
    for key, (price, quantity) in after.items():
        if not _same(before.get(key), (price, quantity)):
            amount = _prorated(price.unit_amount * quantity, remaining, period)
            text = f"Remaining time on {_what(price, quantity)} after {_day(proration_date)}"
            lines.append(Proration(None if key.startswith("new") else key, price, quantity, amount, text, moment))
    return lines


def proration_moment(sub: Any, value: Any, param: str) -> int:
    """The proration date asked for (now by default): within the current period."""
    if value in (None, ""):
        return timeline.now()
    moment = bounded_int(param, value, minimum=1)
    start, end = sub.period()
    if not start <= moment <= end:
        raise invalid_request(
            f"The proration date must fall within the subscription's current period ({start} to {end}).",
            param=param,
        )
    return moment


# -- lines -----------------------------------------------------------------------------------


def _proration_line(invoice: Invoice, subscription: str, p: Proration, invoice_item: str | None) -> dict[str, Any]:
    unit = p.amount // p.quantity if p.quantity else p.amount
    return {
        "id": "il_" + invoices.timeline_token(invoice.id, invoice_item or p.description, str(p.amount)),
        "object": "line_item",
        "amount": p.amount,
        "currency": p.price.currency,
        "description": p.description,
        "discount_amounts": [],
        "discountable": False,
        "discounts": [],
        "invoice": invoice.id,
        "livemode": False,
        "metadata": {},
        "parent": {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": invoice_item,
                "proration": True,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": p.subscription_item,
            },
        },
        "period": dict(p.period),
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": p.price.id, "product": p.price.product},
            "type": "price_details",
            "unit_amount_decimal": str(unit),
        },
        "proration": True,  # older API versions
        "quantity": p.quantity,
        "subscription": subscription,
        "subtotal": p.amount,
        "taxes": [],
    }


def line_for(invoice: Invoice, pending: InvoiceItem) -> dict[str, Any]:
    """A pending item as a line of `invoice`: prorations keep their proration shape."""
    if not isinstance(pending, ProrationItem):
        return invoices.item_line(pending)
    price = INDEX.get("price", pending.price)
    p = Proration(
        pending.subscription_item, price, pending.quantity, pending.amount, pending.description or "", pending.period
    )
    return _proration_line(invoice, pending.subscription or "", p, pending.id)


def _pending_of(sub: Any) -> list[InvoiceItem]:
    return [
        item
        for item in invoices._pending_items(sub.customer)
        if item.subscription == sub.id and item.currency == sub.currency
    ]


# -- a change ---------------------------------------------------------------------------------


def create_prorations(sub: Any, before: ItemState, proration_date: int, behavior: str) -> None:
    """After an update changed the items: the pending proration items, billed at once for
    `always_invoice`."""
    made = prorations(sub, before, item_state(sub), proration_date)
    for p in made:
        item = ProrationItem(
            subscription_item=p.subscription_item,
            amount=p.amount,
            customer=sub.customer,
            currency=p.price.currency,
            unit_amount=p.amount // p.quantity if p.quantity else p.amount,
            quantity=p.quantity,
            description=p.description,
            price=p.price.id,
            subscription=sub.id,
            period=dict(p.period),
            discountable=False,
        )
        emit("invoiceitem.created", item, origin=item.id)
    if made and behavior == "always_invoice":
        _invoice_now(sub)


def _invoice_now(sub: Any) -> None:
    invoice = Invoice(
        customer=sub.customer,
        currency=sub.currency,
        subscription=sub.id,
        billing_reason="subscription_update",
        collection_method=sub.collection_method,
        days_until_due=sub.days_until_due,
        default_payment_method=sub.default_payment_method,
    )
    for pending in _pending_of(sub):
        pending.invoice = invoice.id
        invoices.add_lines(invoice, [line_for(invoice, pending)])
    invoices.emit_created(invoice)
    sub.latest_invoice = invoice.id
    invoices.finalize(invoice)
    if invoice.status == "open":
        if sub.collection_method == "send_invoice":
            invoices.send(invoice)
        else:
            invoices.collect(invoice, sub.default_payment_method, description="Subscription update")


# -- the preview -------------------------------------------------------------------------------


def _subscription_for(params: dict[str, Any]) -> Any:
    from sandbox.subscriptions import ENDED

    customer = lookup("customer", params["customer"], "customer") if params.get("customer") is not None else None
    if params.get("subscription") is not None:
        sub = lookup("subscription", params["subscription"], "subscription")
        if customer is not None and sub.customer != customer.id:
            raise invalid_request(
                f"The subscription {sub.id} does not belong to the customer {customer.id}.", param="subscription"
            )
        candidates = [sub]
    elif customer is not None:
        candidates = list(INDEX.objects("subscription", "customer", customer.id))
    else:
        raise invalid_request(
            "Missing required param: customer or subscription.", param="customer", code="parameter_missing"
        )
    running = [sub for sub in candidates if sub.status not in ENDED and not sub.cancel_at_period_end]
    if not running:
        owner = customer.id if customer is not None else candidates[0].customer
        raise invalid_request(
            f"No upcoming invoices for customer: {owner}", param="customer", code="invoice_upcoming_none"
        )
    return running[0]


def preview_invoice(params: dict[str, Any]) -> dict[str, Any]:
    """The next invoice of a subscription, as it is or as a change would leave it (not stored)."""
    from sandbox import subscriptions

    refuse_unknown(params, PREVIEW_PARAMS)
    sub = _subscription_for(params)
    details = params.get("subscription_details") or {}
    if not isinstance(details, dict):
        raise invalid_request("Invalid object", param="subscription_details")
    refuse_unknown(details, DETAILS_PARAMS, "subscription_details")
    behavior = one_of(
        "subscription_details[proration_behavior]",
        details.get("proration_behavior", "create_prorations"),
        PRORATION_BEHAVIORS,
    )
    before = item_state(sub)
    after = before
    proposed: list[Proration] = []
    if details.get("items") is not None:
        proration_date = proration_moment(sub, details.get("proration_date"), "subscription_details[proration_date]")
        after = subscriptions.items_after(
            sub, subscriptions.plan_items(sub, subscriptions._item_specs(details["items"]))
        )
        first = next(iter(after.values()))[0]
        if (first.interval, first.interval_count) != sub.interval():
            raise invalid_request(
                "The sandbox cannot preview a change of billing interval (Stripe can).",
                param="subscription_details[items]",
            )
        if behavior != "none":
            proposed = prorations(sub, before, after, proration_date)
    invoice = Invoice(
        customer=sub.customer,
        currency=sub.currency,
        subscription=sub.id,
        billing_reason="subscription_update" if behavior == "always_invoice" and proposed else "upcoming",
        collection_method=sub.collection_method,
        days_until_due=sub.days_until_due,
    )
    try:
        # In the order the renewal (`subscriptions._bill`) writes them: the period, then pending items.
        start = sub.trial_end if sub._in_trial else sub.current_period_end
        interval, count = sub.interval()
        period = {"start": start, "end": timeline.add_interval(start, interval, count)}
        lines = []
        if invoice.billing_reason == "upcoming":
            lines += [
                invoices.subscription_line(
                    invoice, subscription_item=key, price=price, quantity=quantity, period=period
                )
                for key, (price, quantity) in after.items()
            ]
        lines += [line_for(invoice, pending) for pending in _pending_of(sub)]
        lines += [_proration_line(invoice, sub.id, p, None) for p in proposed]
        invoices.add_lines(invoice, lines)
        data = invoice._export(expand=params.get("expand"))
    finally:
        del store[f"invoice:{invoice.id}"]
    data["id"] = "upcoming_" + invoice.id
    if invoice.billing_reason == "upcoming":
        data["created"] = data["period_start"] = period["start"]
        data["next_payment_attempt"] = period["start"] if sub.collection_method == "charge_automatically" else None
    data["amount_due"] = data["amount_remaining"] = max(0, data["total"])
    return data


async def create_preview(request: web.Request) -> web.Response:
    """POST /v1/invoices/create_preview (and the older GET /v1/invoices/upcoming, without
    its old `subscription_*` parameters)."""
    return json_response(preview_invoice(await read_params(request)))


def routes() -> list[tuple[str, str, Any]]:
    return [
        ("POST", "/v1/invoices/create_preview", create_preview),
        ("GET", "/v1/invoices/upcoming", create_preview),
    ]
