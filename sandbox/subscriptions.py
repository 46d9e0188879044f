"""Subscriptions on Prices, with several items, Stripe's statuses and renewals.

localstripe allows one item per subscription, drops metadata updates, has no
`customer.subscription.updated` events and bills nothing after creation.
Stripe (docs: api/subscriptions, billing/subscriptions/overview,
billing/subscriptions/cancel, billing/subscriptions/trials):

* a subscription has `items[]`, each a Price (or Plan) and a `quantity`; all
  items share one currency and one billing interval; a price appears once;
* creating one bills the first period at once (`billing_reason:
  subscription_create`): paid → `active`; a declined card → `incomplete` with
  the invoice left open (`payment_behavior=allow_incomplete`, the default);
  `default_incomplete` leaves the invoice open without trying to pay;
  `collection_method=send_invoice` sends the invoice and starts `active`;
* a trial (`trial_period_days` / `trial_end`) starts `trialing` with a $0
  invoice; when it ends the first real period is billed;
* each renewal bills the next period (`subscription_cycle`): a declined renewal
  makes the subscription `past_due`, a second one in a row `unpaid` (the
  "mark unpaid after retries" setting); paying the open invoices makes it
  `active` again; an `incomplete` subscription expires after 23 hours
  (`incomplete_expired`, its invoice voided);
* in the current API the billing period lives on the items
  (`items.data[].current_period_start/end`); the subscription-level fields are
  kept too, for older API versions;
* updates change `metadata`, `cancel_at_period_end` (sets `cancel_at` to the
  period end and `canceled_at` to now), `cancel_at`, `items` (quantity, price,
  add, `deleted`), `description`, `default_payment_method`, `collection_method`,
  `days_until_due`, `trial_end`, `pause_collection` and emit
  `customer.subscription.updated` with `previous_attributes`; a canceled
  subscription only takes `metadata` and `cancellation_details`;
* an item's new price or quantity mid-period is prorated (`proration_behavior`,
  `proration_date`: see `sandbox/previews.py`, which also answers
  `POST /v1/invoices/create_preview`); a new interval resets the cycle and bills
  at once instead;
* `pause_collection` (docs: billing/subscriptions/pause-payment,
  api/subscriptions/update#update_subscription-pause_collection) keeps the
  subscription `active` but changes what each renewal does with its invoice:
  `keep_as_draft` leaves it a draft that is never finalized, `mark_uncollectible`
  finalizes it and marks it uncollectible, `void` finalizes and voids it; none is
  charged. `resumes_at` ends the pause by itself; `pause_collection=""` ends it now;
* `DELETE /v1/subscriptions/{id}` cancels now: `status: canceled`,
  `canceled_at`, `ended_at`, `cancellation_details`, event
  `customer.subscription.deleted`;
* `GET /v1/subscriptions` leaves out canceled and expired subscriptions unless
  `status` is given (`all`, `ended`, or one status), and filters by `customer`,
  `price`, `collection_method`, `created` and `current_period_start/end`.

The sandbox has no clock of its own: backdating a subscription
(`/_config/backdate`) replays every renewal, trial end and scheduled
cancellation between its new start and now, at the moment each would have
happened, as Stripe's test clocks do.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from localstripe.resources import Customer, StripeObject, store

from sandbox import exports, invoices, previews, timeline
from sandbox.errors import invalid_request, resource_missing
from sandbox.events import emit
from sandbox.invoices import Invoice, changes
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
from sandbox.prices import Price, price_for
from sandbox.responses import json_response
from sandbox.state import INDEX

INCOMPLETE_EXPIRY_SECONDS = 23 * 3600
FUTURE_TIMESTAMP = "Invalid timestamp: must be an integer Unix timestamp in the future."
ENDED = ("canceled", "incomplete_expired")
STATUSES = (
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
PAUSE_BEHAVIORS = ("keep_as_draft", "mark_uncollectible", "void")
PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete")
CREATE_PARAMS = {
    "cancel_at",
    "cancel_at_period_end",
    "collection_method",
    "currency",
    "customer",
    "days_until_due",
    "default_payment_method",
    "default_source",
    "description",
    "expand",
    "items",
    "metadata",
    "off_session",
    "payment_behavior",
    "proration_behavior",
    "trial_end",
    "trial_from_plan",
    "trial_period_days",
}
UPDATE_PARAMS = {
    "cancel_at",
    "cancel_at_period_end",
    "cancellation_details",
    "collection_method",
    "days_until_due",
    "default_payment_method",
    "default_source",
    "description",
    "expand",
    "items",
    "metadata",
    "off_session",
    "pause_collection",
    "payment_behavior",
    "proration_behavior",
    "proration_date",
    "trial_end",
}
ITEM_PARAMS = {"id", "price", "plan", "quantity", "metadata", "deleted", "tax_rates", "clear_usage", "discounts"}


class SubscriptionItem(StripeObject):
    """One price and quantity of a subscription (stored, so /v1/subscription_items/{id} works)."""

    object = "subscription_item"
    _id_prefix = "si_"

    def __init__(self, *, subscription: str, price: str, quantity: int, metadata: dict[str, str] | None) -> None:
        super().__init__()
        self.subscription = subscription
        self.price = price
        self.quantity = quantity
        self.metadata = metadata or {}

    def price_object(self) -> Price:
        return INDEX.get("price", self.price)

    def _export(self, expand: Any = None) -> dict[str, Any]:
        sub = INDEX.get("subscription", self.subscription)
        start, end = sub.period() if sub is not None else (self.created, self.created)
        price = self.price_object()
        data = {
            "id": self.id,
            "object": "subscription_item",
            "billing_thresholds": None,
            "created": self.created,
            "current_period_end": end,
            "current_period_start": start,
            "discounts": [],
            "metadata": dict(self.metadata),
            "plan": price.plan_export(),
            "price": price._export(),
            "quantity": self.quantity,
            "subscription": self.subscription,
            "tax_rates": [],
        }
        return expand_export(data, expand)


class Subscription(StripeObject):
    object = "subscription"
    _id_prefix = "sub_"
    # {"behavior", "resumes_at"} while collection is paused (a class default, so subscriptions
    # saved before pauses existed load without it).
    pause_collection: dict[str, Any] | None = None

    def __init__(
        self,
        *,
        customer: str,
        currency: str,
        collection_method: str,
        days_until_due: int | None,
        default_payment_method: str | None,
        description: str | None,
        metadata: dict[str, str],
    ) -> None:
        super().__init__()
        self.customer = customer
        self.currency = currency
        self.collection_method = collection_method
        self.days_until_due = days_until_due
        self.default_payment_method = default_payment_method
        self.description = description
        self.metadata = metadata
        self.status = "incomplete"
        self.start_date = self.created
        self.billing_cycle_anchor = self.created
        self.cancel_at: int | None = None
        self.cancel_at_period_end = False
        self.canceled_at: int | None = None
        self.ended_at: int | None = None
        self.cancellation_details: dict[str, Any] = {"comment": None, "feedback": None, "reason": None}
        self.trial_start: int | None = None
        self.trial_end: int | None = None
        self.latest_invoice: str | None = None
        self._item_ids: list[str] = []
        self._cycle = 0
        self._in_trial = False
        self._quiet = False
        INDEX.refresh("subscription", self.id)

    # -- derived -------------------------------------------------------------------

    @property
    def items_list(self) -> list[SubscriptionItem]:
        return [INDEX.get("subscription_item", item_id) for item_id in self._item_ids]

    def interval(self) -> tuple[str, int]:
        price = self.items_list[0].price_object()
        return price.interval or "month", price.interval_count

    def period(self) -> tuple[int, int]:
        if self._in_trial and self.trial_start is not None and self.trial_end is not None:
            return self.trial_start, self.trial_end
        interval, count = self.interval()
        anchor = self.billing_cycle_anchor
        return (
            timeline.add_interval(anchor, interval, count * self._cycle),
            timeline.add_interval(anchor, interval, count * (self._cycle + 1)),
        )

    @property
    def current_period_start(self) -> int:
        return self.period()[0]

    @property
    def current_period_end(self) -> int:
        return self.period()[1]

    def _export(self, expand: Any = None) -> dict[str, Any]:
        start, end = self.period()
        items = [item._export() for item in self.items_list]
        data = {
            "id": self.id,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": self.billing_cycle_anchor,
            "billing_cycle_anchor_config": None,
            "billing_mode": {"flexible": None, "type": "classic"},
            "billing_thresholds": None,
            "cancel_at": self.cancel_at,
            "cancel_at_period_end": self.cancel_at_period_end,
            "canceled_at": self.canceled_at,
            "cancellation_details": dict(self.cancellation_details),
            "collection_method": self.collection_method,
            "created": self.created,
            "currency": self.currency,
            "customer": self.customer,
            "days_until_due": self.days_until_due,
            "default_payment_method": self.default_payment_method,
            "default_source": None,
            "default_tax_rates": [],
            "description": self.description,
            "discounts": [],
            "ended_at": self.ended_at,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": list_object(f"/v1/subscription_items?subscription={self.id}", items),
            "latest_invoice": self.latest_invoice,
            "livemode": False,
            "metadata": dict(self.metadata),
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": dict(self.pause_collection) if self.pause_collection else None,
            "payment_settings": {
                "payment_method_options": None,
                "payment_method_types": None,
                "save_default_payment_method": "off",
            },
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": self.start_date,
            "status": self.status,
            "test_clock": None,
            "transfer_data": None,
            "trial_end": self.trial_end,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": self.trial_start,
            # Older API versions, kept for tolerant clients:
            "current_period_end": end,
            "current_period_start": start,
            "plan": items[0]["plan"] if len(items) == 1 else None,
            "quantity": items[0]["quantity"] if len(items) == 1 else None,
        }
        return expand_export(data, expand)

    def shift(self, delta: int) -> None:
        """Backdating: the subscription, its items, invoices and events move, then renewals catch up."""
        timeline.move_created("subscription", self, delta)
        for name in ("start_date", "billing_cycle_anchor", "trial_start", "trial_end", "canceled_at", "ended_at"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name) + delta)
        if self.cancel_at_period_end and self.status not in ENDED:
            self.cancel_at = self.current_period_end  # months differ in length
        elif self.cancel_at is not None:
            self.cancel_at += delta
        if self.pause_collection and self.pause_collection.get("resumes_at"):
            self.pause_collection = {**self.pause_collection, "resumes_at": self.pause_collection["resumes_at"] + delta}
        for item in self.items_list:
            timeline.move_created("subscription_item", item, delta)
        timeline.shift_events(self.id, delta)
        for invoice in list(_invoices_of(self)):
            invoice.shift(delta)
        if delta < 0:
            advance(self, timeline.now())


def _invoices_of(sub: Subscription) -> list[Invoice]:
    return list(INDEX.objects("invoice", "customer", sub.customer, where=lambda inv: inv.subscription == sub.id))


# -- status changes ---------------------------------------------------------------------


def _set_status(sub: Subscription, status: str) -> None:
    if sub.status == status:
        return
    before = sub._export()
    sub.status = status
    if not sub._quiet:
        emit("customer.subscription.updated", sub, changes(before, sub._export()), origin=sub.id)


def _open_failed(sub: Subscription) -> list[Invoice]:
    return [inv for inv in _invoices_of(sub) if inv.status == "open" and inv.attempted]


def on_invoice(kind: str, invoice: Invoice) -> None:
    """How an invoice's payment outcome moves its subscription's status."""
    sub = INDEX.get("subscription", invoice.subscription) if invoice.subscription else None
    if sub is None or sub.status in ENDED:
        return
    if kind == "paid":
        if sub.status in ("incomplete", "past_due", "unpaid") and not _open_failed(sub):
            _set_status(sub, "active")
    elif kind == "payment_failed":
        if sub.status in ("active", "trialing"):
            _set_status(sub, "past_due")
        elif sub.status == "past_due" and len(_open_failed(sub)) >= 2:
            _set_status(sub, "unpaid")
    elif kind == "voided" and sub.status == "incomplete" and invoice.id == sub.latest_invoice:
        _set_status(sub, "incomplete_expired")


# -- billing ----------------------------------------------------------------------------


def _bill(sub: Subscription, reason: str, trial: bool = False, attempt: bool = True) -> Invoice:
    """Invoice the current period of every item (and the subscription's pending items)."""
    invoice = Invoice(
        customer=sub.customer,
        currency=sub.currency,
        subscription=sub.id,
        billing_reason=reason,
        collection_method=sub.collection_method,
        days_until_due=sub.days_until_due,
        default_payment_method=sub.default_payment_method,
    )
    start, end = sub.period()
    lines = []
    for item in sub.items_list:
        price = item.price_object()
        lines.append(
            invoices.subscription_line(
                invoice,
                subscription_item=item.id,
                price=price,
                quantity=item.quantity,
                period={"start": start, "end": end},
                amount=0 if trial else None,
                description=f"Trial period for {price.product_name()}" if trial else None,
            )
        )
    invoices.add_lines(invoice, lines)
    for pending in invoices._pending_items(sub.customer):
        if pending.subscription == sub.id and pending.currency == sub.currency:
            pending.invoice = invoice.id
            invoices.add_lines(invoice, [previews.line_for(invoice, pending)])
    paused = (sub.pause_collection or {}).get("behavior") if reason == "subscription_cycle" else None
    if paused == "keep_as_draft":
        invoice.auto_advance = False
    invoices.emit_created(invoice)
    sub.latest_invoice = invoice.id
    if paused == "keep_as_draft":
        return invoice
    invoices.finalize(invoice)
    if invoice.status == "open" and paused is not None:
        (invoices.void if paused == "void" else invoices.mark_uncollectible)(invoice)
    elif invoice.status == "open":
        if sub.collection_method == "send_invoice":
            invoices.send(invoice)
        elif attempt:
            label = "Subscription creation" if reason == "subscription_create" else "Subscription update"
            invoices.collect(invoice, sub.default_payment_method, description=label)
    return invoice


def _end(sub: Subscription, reason: str = "cancellation_requested") -> None:
    moment = timeline.now()
    sub.status = "canceled"
    sub.ended_at = moment
    sub.canceled_at = sub.canceled_at or moment
    sub.cancel_at = sub.cancel_at or None
    sub.cancellation_details = {**sub.cancellation_details, "reason": reason}
    emit("customer.subscription.deleted", sub, origin=sub.id)


def advance(sub: Subscription, until: int) -> None:
    """Replay what happens to a subscription up to `until`: expiry, trial end, renewals, cancellation."""
    while sub.status not in ENDED:
        if sub.status == "incomplete":
            expiry = sub.created + INCOMPLETE_EXPIRY_SECONDS
            if expiry > until:
                return
            with timeline.at(expiry):
                latest = INDEX.get("invoice", sub.latest_invoice) if sub.latest_invoice else None
                if latest is not None and latest.status == "open":
                    invoices.void(latest)
                _set_status(sub, "incomplete_expired")
            return
        boundary = sub.trial_end if sub._in_trial else sub.current_period_end
        resumes_at = (sub.pause_collection or {}).get("resumes_at")
        if resumes_at is not None and boundary is not None and resumes_at <= min(boundary, until):
            with timeline.at(resumes_at):  # the pause ends by itself
                before = sub._export()
                sub.pause_collection = None
                emit("customer.subscription.updated", sub, changes(before, sub._export()), origin=sub.id)
            continue
        if sub.cancel_at is not None and not sub.cancel_at_period_end and sub.cancel_at <= boundary:
            if sub.cancel_at > until:
                return
            with timeline.at(sub.cancel_at):
                _end(sub)
            return
        if boundary is None or boundary > until:
            return
        with timeline.at(boundary):
            if sub.cancel_at_period_end:
                _end(sub)
                return
            before = sub._export()
            sub._quiet = True
            try:
                if sub._in_trial:
                    sub._in_trial = False
                    sub.billing_cycle_anchor = boundary
                    sub._cycle = 0
                    sub.status = "active"
                else:
                    sub._cycle += 1
                _bill(sub, "subscription_cycle")
            finally:
                sub._quiet = False
            emit("customer.subscription.updated", sub, changes(before, sub._export()), origin=sub.id)


# -- parameters -------------------------------------------------------------------------


def _item_price(spec: dict[str, Any], index: int) -> Price:
    name = "price" if spec.get("price") is not None else "plan"
    return price_for(spec.get(name), f"items[{index}][{name}]")


def _quantity(spec: dict[str, Any], index: int, default: int = 1) -> int:
    if spec.get("quantity") in (None, ""):
        return default
    return bounded_int(f"items[{index}][quantity]", spec["quantity"], minimum=0)


def _item_specs(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):  # items[0][price]=… sent as a hash by some clients
        value = [value[key] for key in sorted(value, key=lambda k: int(k) if str(k).isdigit() else 0)]
    if not isinstance(value, list) or not all(isinstance(spec, dict) for spec in value):
        raise invalid_request("Invalid array", param="items")
    for index, spec in enumerate(value):
        refuse_unknown(spec, ITEM_PARAMS, f"items[{index}]")
    return value


def _check_prices(prices: list[Price]) -> None:
    if not prices:
        raise invalid_request("A subscription needs at least one item.", param="items")
    seen: set[str] = set()
    for price in prices:
        if price.id in seen:
            raise invalid_request(
                f"Cannot add multiple subscription items with the same price: {price.id}.",
                param="items",
            )
        seen.add(price.id)
        if price.recurring is None:
            raise invalid_request(
                f"The price specified ({price.id}) is set to `type=one_time` but this field only accepts "
                "prices with `type=recurring`.",
                param="items",
            )
    first = prices[0]
    for price in prices[1:]:
        if price.currency != first.currency:
            raise invalid_request(
                "Currency and interval fields must match across all plans on this subscription. "
                f"Found mismatch in currency field: {first.currency} and {price.currency}.",
                param="items",
            )
        if (price.interval, price.interval_count) != (first.interval, first.interval_count):
            raise invalid_request(
                "Currency and interval fields must match across all plans on this subscription. "
                "Found mismatch in interval field.",
                param="items",
            )


def _collection(params: dict[str, Any], current: Subscription | None = None) -> tuple[str, int | None]:
    method = params.get("collection_method", current.collection_method if current else "charge_automatically")
    method = one_of("collection_method", method, invoices.COLLECTION_METHODS)
    days = params.get("days_until_due", current.days_until_due if current else None)
    days = None if days in (None, "") else bounded_int("days_until_due", days, minimum=0, maximum=36500)
    if method == "send_invoice" and days is None:
        raise invalid_request(
            "Missing required param: days_until_due.",
            param="days_until_due",
            code="parameter_missing",
        )
    if method == "charge_automatically" and days is not None:
        raise invalid_request(
            "`days_until_due` can only be set when `collection_method` is `send_invoice`.",
            param="days_until_due",
        )
    return method, days


def _trial_end(params: dict[str, Any], prices: list[Price]) -> int | None:
    moment = timeline.now()
    if params.get("trial_end") not in (None, ""):
        if params["trial_end"] == "now":
            return None
        trial_end = bounded_int("trial_end", params["trial_end"], minimum=1)
        if trial_end <= moment:
            raise invalid_request(FUTURE_TIMESTAMP, param="trial_end")
        return trial_end
    days = params.get("trial_period_days")
    if days in (None, "") and to_bool("trial_from_plan", params.get("trial_from_plan", False)):
        days = prices[0].recurring.get("trial_period_days")
    if days in (None, "", 0, "0"):
        return None
    return moment + bounded_int("trial_period_days", days, minimum=0, maximum=730) * timeline.DAY


def _pause(value: Any) -> dict[str, Any] | None:
    """`pause_collection`: "" ends a pause; else a `behavior` and an optional future `resumes_at`."""
    if value in (None, ""):
        return None
    if not isinstance(value, dict):
        raise invalid_request("Invalid object", param="pause_collection")
    refuse_unknown(value, {"behavior", "resumes_at"}, "pause_collection")
    behavior = one_of(
        "pause_collection[behavior]",
        required(value, "behavior", "pause_collection[behavior]"),
        PAUSE_BEHAVIORS,
    )
    resumes_at = None
    if value.get("resumes_at") not in (None, ""):
        resumes_at = bounded_int("pause_collection[resumes_at]", value["resumes_at"], minimum=1)
        if resumes_at <= timeline.now():
            raise invalid_request(FUTURE_TIMESTAMP, param="pause_collection[resumes_at]")
    return {"behavior": behavior, "resumes_at": resumes_at}


def _cancel_at(value: Any, sub: Subscription | None = None) -> int | None:
    if value in (None, ""):
        return None
    cancel_at = bounded_int("cancel_at", value, minimum=1)
    if cancel_at <= timeline.now():
        raise invalid_request(FUTURE_TIMESTAMP, param="cancel_at")
    return cancel_at


# -- create, update, cancel ------------------------------------------------------------


def create_subscription(params: dict[str, Any], customer_id: str | None = None) -> Subscription:
    """POST /v1/subscriptions."""
    refuse_unknown(params, CREATE_PARAMS | ({"customer"} if customer_id else set()))
    customer = lookup("customer", customer_id or required(params, "customer"), "customer")
    specs = _item_specs(required(params, "items"))
    prices = [_item_price(spec, index) for index, spec in enumerate(specs)]
    _check_prices(prices)
    quantities = [_quantity(spec, index) for index, spec in enumerate(specs)]
    method, days = _collection(params)
    trial_end = _trial_end(params, prices)
    behavior = one_of("payment_behavior", params.get("payment_behavior", "allow_incomplete"), PAYMENT_BEHAVIORS)
    default_pm = params.get("default_payment_method") or params.get("default_source")
    cancel_at = _cancel_at(params.get("cancel_at"))
    cancel_at_period_end = to_bool("cancel_at_period_end", params.get("cancel_at_period_end", False))
    total = sum(price.unit_amount * quantity for price, quantity in zip(prices, quantities, strict=True))
    if (
        method == "charge_automatically"
        and trial_end is None
        and behavior != "default_incomplete"
        and total > 0
        and default_pm is None
        and not invoices._has_payment_source(customer.id)
    ):
        raise invoices.no_payment_method()
    sub = Subscription(
        customer=customer.id,
        currency=prices[0].currency,
        collection_method=method,
        days_until_due=days,
        default_payment_method=None if default_pm is None else string_param("default_payment_method", default_pm),
        description=None if params.get("description") is None else string_param("description", params["description"]),
        metadata=metadata_param(params.get("metadata")),
    )
    for spec, price, quantity in zip(specs, prices, quantities, strict=True):
        item = SubscriptionItem(
            subscription=sub.id,
            price=price.id,
            quantity=quantity,
            metadata=metadata_param(spec.get("metadata")),
        )
        sub._item_ids.append(item.id)
    sub.cancel_at = cancel_at
    if cancel_at is not None or cancel_at_period_end:
        sub.canceled_at = sub.created
    sub._quiet = True
    try:
        if trial_end is not None:
            sub.status = "trialing"
            sub._in_trial = True
            sub.trial_start = sub.created
            sub.trial_end = trial_end
            _bill(sub, "subscription_create", trial=True)
        else:
            if method == "send_invoice":
                sub.status = "active"
            _bill(sub, "subscription_create", attempt=behavior != "default_incomplete")
    finally:
        sub._quiet = False
    if cancel_at_period_end:
        sub.cancel_at_period_end = True
        sub.cancel_at = sub.current_period_end
    emit("customer.subscription.created", sub, origin=sub.id)
    return sub


def plan_items(sub: Subscription, specs: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Every item change checked, nothing applied: ("update", (item, price, quantity, metadata)),
    ("delete", item) or ("add", (price, quantity, metadata)), in the order asked."""
    current = {item.id: item for item in sub.items_list}
    plan: list[tuple[str, Any]] = []  # ("update", (item, price, quantity, metadata)) / ("delete", item) / ("add", …)
    for index, spec in enumerate(specs):
        item_id = spec.get("id")
        if item_id is not None:
            if item_id not in current:
                raise resource_missing("subscription_item", str(item_id), param=f"items[{index}][id]", status=400)
            item = current[item_id]
            if to_bool(f"items[{index}][deleted]", spec.get("deleted", False)):
                plan.append(("delete", item))
                continue
            price = _item_price(spec, index) if (spec.get("price") or spec.get("plan")) else item.price_object()
            quantity = _quantity(spec, index, item.quantity)
            plan.append(("update", (item, price, quantity, spec.get("metadata"))))
        else:
            if spec.get("price") is None and spec.get("plan") is None:
                raise invalid_request(
                    f"Missing required param: items[{index}][price].",
                    param=f"items[{index}][price]",
                    code="parameter_missing",
                )
            plan.append(("add", (_item_price(spec, index), _quantity(spec, index), spec.get("metadata"))))
    deleted = {item.id for kind, item in plan if kind == "delete"}
    updated = {entry[0].id: entry for kind, entry in plan if kind == "update"}
    final_prices = []
    for item in sub.items_list:
        if item.id in deleted:
            continue
        final_prices.append(updated[item.id][1] if item.id in updated else item.price_object())
    final_prices += [entry[0] for kind, entry in plan if kind == "add"]
    _check_prices(final_prices)
    if final_prices[0].currency != sub.currency:  # a subscription keeps its currency
        raise invalid_request(
            "Currency and interval fields must match across all plans on this subscription. "
            f"Found mismatch in currency field: {sub.currency} and {final_prices[0].currency}.",
            param="items",
        )
    return plan


def items_after(sub: Subscription, plan: list[tuple[str, Any]]) -> previews.ItemState:
    """The items as `plan` would leave them, by id ("new<n>" for the ones it adds)."""
    after = previews.item_state(sub)
    added = 0
    for kind, entry in plan:
        if kind == "delete":
            del after[entry.id]
        elif kind == "update":
            after[entry[0].id] = (entry[1], entry[2])
        else:
            after[f"new{added}"] = (entry[0], entry[1])
            added += 1
    return after


def _apply_items(sub: Subscription, specs: list[dict[str, Any]]) -> bool:
    """Validate every item change first, then apply them; True if the interval changed."""
    plan = plan_items(sub, specs)
    old_interval = sub.interval()
    for kind, entry in plan:
        if kind == "delete":
            sub._item_ids.remove(entry.id)
            del store[f"subscription_item:{entry.id}"]
        elif kind == "update":
            item, price, quantity, metadata = entry
            item.price, item.quantity = price.id, quantity
            if metadata is not None:
                item.metadata = merged_metadata(item.metadata, metadata)
        else:
            price, quantity, metadata = entry
            item = SubscriptionItem(
                subscription=sub.id, price=price.id, quantity=quantity, metadata=metadata_param(metadata)
            )
            sub._item_ids.append(item.id)
    return sub.interval() != old_interval


def update_subscription(sub: Subscription, params: dict[str, Any]) -> Subscription:
    """POST /v1/subscriptions/{id}."""
    refuse_unknown(params, UPDATE_PARAMS)
    if sub.status in ENDED:
        for name in params:
            if name not in ("metadata", "cancellation_details", "expand"):
                raise invalid_request(
                    "A canceled subscription can only update its cancellation_details and metadata.",
                    param=name,
                )
    pause = _pause(params["pause_collection"]) if "pause_collection" in params else None
    behavior = one_of(
        "proration_behavior", params.get("proration_behavior", "create_prorations"), previews.PRORATION_BEHAVIORS
    )
    items_before = previews.item_state(sub)
    proration_date = None
    if params.get("items") is not None:
        proration_date = previews.proration_moment(sub, params.get("proration_date"), "proration_date")
    before = sub._export()
    interval_changed = False
    if params.get("items") is not None:
        interval_changed = _apply_items(sub, _item_specs(params["items"]))
    if "pause_collection" in params:
        sub.pause_collection = pause
    if {"collection_method", "days_until_due"} & set(params):
        sub.collection_method, sub.days_until_due = _collection(params, sub)
    if "metadata" in params:
        sub.metadata = merged_metadata(sub.metadata, params["metadata"])
    if "description" in params:
        sub.description = None if params["description"] == "" else string_param("description", params["description"])
    for name in ("default_payment_method", "default_source"):
        if name in params:
            sub.default_payment_method = None if params[name] == "" else string_param(name, params[name])
    if isinstance(params.get("cancellation_details"), dict):
        details = params["cancellation_details"]
        refuse_unknown(details, {"comment", "feedback"}, "cancellation_details")
        sub.cancellation_details = {**sub.cancellation_details, **{k: v or None for k, v in details.items()}}
    if "cancel_at_period_end" in params:
        sub.cancel_at_period_end = to_bool("cancel_at_period_end", params["cancel_at_period_end"])
        sub.cancel_at = sub.current_period_end if sub.cancel_at_period_end else None
        sub.canceled_at = timeline.now() if sub.cancel_at_period_end else None
    if "cancel_at" in params:
        sub.cancel_at = _cancel_at(params["cancel_at"], sub)
        sub.cancel_at_period_end = False
        sub.canceled_at = timeline.now() if sub.cancel_at is not None else None
    if params.get("trial_end") == "now" and sub._in_trial:
        sub.trial_end = timeline.now()
        advance(sub, timeline.now())
    elif params.get("trial_end") not in (None, "") and sub._in_trial:
        sub.trial_end = _trial_end({"trial_end": params["trial_end"]}, [])
    sub._quiet = True
    try:
        if interval_changed:  # Stripe resets the billing cycle and bills the new interval now
            sub.billing_cycle_anchor = timeline.now()
            sub._cycle = 0
            _bill(sub, "subscription_update")
        elif proration_date is not None and behavior != "none":
            previews.create_prorations(sub, items_before, proration_date, behavior)
    finally:
        sub._quiet = False
    previous = changes(before, sub._export())
    if previous:
        emit("customer.subscription.updated", sub, previous, origin=sub.id)
    return sub


def cancel_subscription(sub: Subscription, params: dict[str, Any]) -> Subscription:
    """DELETE /v1/subscriptions/{id}: ends it now."""
    refuse_unknown(params, {"cancellation_details", "expand", "invoice_now", "prorate"})
    if sub.status in ENDED:
        raise invalid_request(f"The subscription {sub.id} has already been canceled.", param="id")
    if isinstance(params.get("cancellation_details"), dict):
        details = params["cancellation_details"]
        refuse_unknown(details, {"comment", "feedback"}, "cancellation_details")
        sub.cancellation_details = {**sub.cancellation_details, **{k: v or None for k, v in details.items()}}
    sub.canceled_at = timeline.now()
    _end(sub)
    return sub


# -- lists ---------------------------------------------------------------------------------


def _status(value: Any) -> Predicate:
    status = one_of("status", value, STATUSES)
    if status == "all":
        return lambda sub: True
    if status == "ended":
        return lambda sub: sub.status in ENDED
    return lambda sub: sub.status == status


def _price(value: Any) -> Predicate:
    wanted = string_param("price", value)
    return lambda sub: any(item.price == wanted for item in sub.items_list)


SUBSCRIPTIONS = ListSpec(
    "subscription",
    "/v1/subscriptions",
    {
        "customer": equals("customer"),
        "status": _status,
        "price": _price,
        "plan": _price,
        "collection_method": equals("collection_method"),
        "current_period_start": range_filter("current_period_start"),
        "current_period_end": range_filter("current_period_end"),
        "test_clock": lambda value: lambda sub: False,
        "automatic_tax": lambda value: lambda sub: True,
    },
    indexed=("customer",),
    default=lambda params: None if params.get("status") is not None else (lambda sub: sub.status not in ENDED),
)


# -- routes ------------------------------------------------------------------------------


def _sub(request: web.Request, key: str = "id") -> Subscription:
    return from_path(request, "subscription", key)


async def create(request: web.Request) -> web.Response:
    params = await read_params(request)
    return respond(create_subscription(params), params)


async def retrieve(request: web.Request) -> web.Response:
    sub = _sub(request)
    params = await read_params(request)
    refuse_unknown(params, {"expand"})
    return respond(sub, params)


async def update(request: web.Request) -> web.Response:
    sub = _sub(request)
    params = await read_params(request)
    return respond(update_subscription(sub, params), params)


async def cancel(request: web.Request) -> web.Response:
    sub = _sub(request)
    params = await read_params(request)
    return respond(cancel_subscription(sub, params), params)


def _customer_sub(request: web.Request) -> Subscription:
    customer = lookup("customer", request.match_info["id"], "customer")
    sub = _sub(request, "subscription_id")
    if sub.customer != customer.id:
        raise resource_missing("subscription", sub.id)
    return sub


async def customer_list(request: web.Request) -> web.Response:
    customer_id = request.match_info["id"]
    lookup("customer", customer_id, "customer")
    return SUBSCRIPTIONS.respond(
        await read_params(request), url=f"/v1/customers/{customer_id}/subscriptions", fixed={"customer": customer_id}
    )


async def customer_create(request: web.Request) -> web.Response:
    params = await read_params(request)
    return respond(create_subscription(params, customer_id=request.match_info["id"]), params)


async def customer_retrieve(request: web.Request) -> web.Response:
    return respond(_customer_sub(request), await read_params(request))


async def customer_update(request: web.Request) -> web.Response:
    sub = _customer_sub(request)
    params = await read_params(request)
    return respond(update_subscription(sub, params), params)


def _item(request: web.Request) -> SubscriptionItem:
    return from_path(request, "subscription_item")


async def items_list(request: web.Request) -> web.Response:
    params = await read_params(request)
    refuse_unknown(params, {"subscription", "limit", "starting_after", "ending_before", "expand"})
    sub = lookup("subscription", required(params, "subscription"), "subscription")
    limit = bounded_int("limit", params.get("limit", 10), 1, 100)
    rows = [item._export() for item in sub.items_list]
    return json_response(
        {"object": "list", "data": rows[:limit], "has_more": len(rows) > limit, "url": "/v1/subscription_items"}
    )


async def item_retrieve(request: web.Request) -> web.Response:
    return respond(_item(request), await read_params(request))


PRORATION_PARAMS = ("proration_behavior", "proration_date")


def _proration_params(params: dict[str, Any]) -> dict[str, Any]:
    return {name: params[name] for name in PRORATION_PARAMS if name in params}


async def item_create(request: web.Request) -> web.Response:
    params = await read_params(request)
    refuse_unknown(params, {"subscription", "price", "plan", "quantity", "metadata", "expand", *PRORATION_PARAMS})
    sub = lookup("subscription", required(params, "subscription"), "subscription")
    spec = {k: params[k] for k in ("price", "plan", "quantity", "metadata") if k in params}
    known = set(sub._item_ids)
    update_subscription(sub, {"items": [spec], **_proration_params(params)})
    new_id = next(item_id for item_id in sub._item_ids if item_id not in known)
    return respond(INDEX.get("subscription_item", new_id), params)


async def item_update(request: web.Request) -> web.Response:
    item = _item(request)
    params = await read_params(request)
    refuse_unknown(params, {"price", "plan", "quantity", "metadata", "expand", *PRORATION_PARAMS})
    spec = {"id": item.id, **{k: params[k] for k in ("price", "plan", "quantity", "metadata") if k in params}}
    update_subscription(INDEX.get("subscription", item.subscription), {"items": [spec], **_proration_params(params)})
    return respond(item, params)


async def item_delete(request: web.Request) -> web.Response:
    item = _item(request)
    update_subscription(INDEX.get("subscription", item.subscription), {"items": [{"id": item.id, "deleted": True}]})
    return json_response({"id": item.id, "object": "subscription_item", "deleted": True})


UNLESS_EXPANDED = frozenset({"subscriptions"})


def _export_customer(self: Any, expand: Any = None) -> dict[str, Any]:
    """Stripe (API 2020-08-27 on): `customer.subscriptions` only appears when expanded (and is
    not looked up otherwise: a customer page exports 100 customers)."""
    if isinstance(expand, list) and "subscriptions" in expand:
        return exports.export(self, expand)
    data = exports.export(self, expand, leave_out=UNLESS_EXPANDED)
    data.pop("subscriptions", None)  # an instance's own attribute, if one was ever set
    return data


def install() -> None:
    from sandbox import backdate

    Customer._export = _export_customer
    invoices.LISTENERS.append(on_invoice)
    backdate.SHIFTERS["subscription"] = lambda sub, delta: sub.shift(delta)


def routes() -> list[tuple[str, str, Any]]:
    return [
        ("POST", "/v1/subscriptions", create),
        ("GET", "/v1/subscriptions", SUBSCRIPTIONS.handler()),
        ("GET", "/v1/subscriptions/{id}", retrieve),
        ("POST", "/v1/subscriptions/{id}", update),
        ("DELETE", "/v1/subscriptions/{id}", cancel),
        ("GET", "/v1/customers/{id}/subscriptions", customer_list),
        ("POST", "/v1/customers/{id}/subscriptions", customer_create),
        ("GET", "/v1/customers/{id}/subscriptions/{subscription_id}", customer_retrieve),
        ("POST", "/v1/customers/{id}/subscriptions/{subscription_id}", customer_update),
        ("GET", "/v1/subscription_items", items_list),
        ("POST", "/v1/subscription_items", item_create),
        ("GET", "/v1/subscription_items/{id}", item_retrieve),
        ("POST", "/v1/subscription_items/{id}", item_update),
        ("DELETE", "/v1/subscription_items/{id}", item_delete),
    ]
