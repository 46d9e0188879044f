"""Prices, and Plans as the older name for recurring Prices.

localstripe has Plans only. Stripe (docs: api/prices, api/plans,
products-prices/how-products-and-prices-work):

* a Price belongs to a Product, has a `currency`, a `unit_amount` in the
  smallest currency unit, and is either `one_time` or `recurring` with
  `recurring[interval]` (day, week, month or year) and `interval_count`;
* `product_data` creates the product with the price;
* prices cannot change their amount once created: only `active`, `metadata`,
  `nickname`, `lookup_key` and `tax_behavior` can be updated;
* Plans are the older API for recurring prices: a Plan and its Price share the
  id, so `price_…` and `plan_…` ids work in either API;
* `price.created` / `price.updated` (and `plan.created` for the Plans API) events;
* `GET /v1/prices` filters by `product`, `active`, `currency`, `type`,
  `recurring[interval]`, `lookup_keys[]` and `created`, newest first.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from localstripe.resources import Product, StripeObject

from sandbox.errors import invalid_request, resource_missing
from sandbox.events import emit
from sandbox.lists import ListSpec, equals
from sandbox.objects import Snapshot, bool_filter, expand_export, lookup, one_of, refuse_unknown, required
from sandbox.params import (
    Predicate,
    bounded_int,
    merged_metadata,
    metadata_param,
    read_params,
    string_list,
    string_param,
    to_bool,
)
from sandbox.responses import json_response
from sandbox.state import INDEX

INTERVALS = ("day", "week", "month", "year")
TAX_BEHAVIORS = ("exclusive", "inclusive", "unspecified")
CREATE_PARAMS = {
    "active",
    "billing_scheme",
    "currency",
    "expand",
    "lookup_key",
    "metadata",
    "nickname",
    "product",
    "product_data",
    "recurring",
    "tax_behavior",
    "unit_amount",
    "unit_amount_decimal",
}
UPDATE_PARAMS = {"active", "metadata", "nickname", "lookup_key", "tax_behavior", "expand"}
PLAN_CREATE_PARAMS = {
    "active",
    "amount",
    "amount_decimal",
    "billing_scheme",
    "currency",
    "expand",
    "id",
    "interval",
    "interval_count",
    "metadata",
    "nickname",
    "product",
    "trial_period_days",
    "usage_type",
}


class Price(StripeObject):
    """A Stripe Price, stored in localstripe's store under `price:<id>`."""

    object = "price"
    _id_prefix = "price_"

    def __init__(
        self,
        *,
        product: str,
        currency: str,
        unit_amount: int,
        recurring: dict[str, Any] | None,
        active: bool = True,
        nickname: str | None = None,
        lookup_key: str | None = None,
        metadata: dict[str, str] | None = None,
        tax_behavior: str = "unspecified",
        id: str | None = None,
    ) -> None:
        super().__init__(id)
        self.product = product
        self.currency = currency
        self.unit_amount = unit_amount
        self.recurring = recurring
        self.active = active
        self.nickname = nickname
        self.lookup_key = lookup_key
        self.metadata = metadata or {}
        self.tax_behavior = tax_behavior

    @property
    def type(self) -> str:
        return "one_time" if self.recurring is None else "recurring"

    @property
    def interval(self) -> str | None:
        return None if self.recurring is None else self.recurring["interval"]

    @property
    def interval_count(self) -> int:
        return 1 if self.recurring is None else self.recurring["interval_count"]

    def product_name(self) -> str:
        product = INDEX.get("product", self.product)
        return getattr(product, "name", None) or self.product

    def _export(self, expand: Any = None) -> dict[str, Any]:
        data = {
            "id": self.id,
            "object": "price",
            "active": self.active,
            "billing_scheme": "per_unit",
            "created": self.created,
            "currency": self.currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": self.lookup_key,
            "metadata": dict(self.metadata),
            "nickname": self.nickname,
            "product": self.product,
            "recurring": None if self.recurring is None else dict(self.recurring),
            "tax_behavior": self.tax_behavior,
            "tiers_mode": None,
            "transform_quantity": None,
            "type": self.type,
            "unit_amount": self.unit_amount,
            "unit_amount_decimal": str(self.unit_amount),
        }
        return expand_export(data, expand)

    def plan_export(self, expand: Any = None) -> dict[str, Any]:
        """The same price as the Plans API shows it."""
        recurring = self.recurring or {}
        data = {
            "id": self.id,
            "object": "plan",
            "active": self.active,
            "amount": self.unit_amount,
            "amount_decimal": str(self.unit_amount),
            "billing_scheme": "per_unit",
            "created": self.created,
            "currency": self.currency,
            "interval": recurring.get("interval"),
            "interval_count": recurring.get("interval_count", 1),
            "livemode": False,
            "metadata": dict(self.metadata),
            "meter": None,
            "nickname": self.nickname,
            "product": self.product,
            "tiers_mode": None,
            "transform_usage": None,
            "trial_period_days": recurring.get("trial_period_days"),
            "usage_type": recurring.get("usage_type", "licensed"),
        }
        return expand_export(data, expand)


def price_for(price_id: Any, param: str) -> Price:
    """A price (or plan: same thing) named in a request parameter."""
    return lookup("price", price_id, param)


def _currency(value: Any) -> str:
    currency = string_param("currency", value).lower()
    if len(currency) != 3 or not currency.isalpha():
        raise invalid_request(f"Invalid currency: {currency}.", param="currency")
    return currency


def _amount(params: dict[str, Any], name: str) -> int:
    if params.get(name) is None and params.get(f"{name}_decimal") is not None:
        value = str(params[f"{name}_decimal"])
        if not value.isdigit():
            raise invalid_request(f"Invalid decimal: {value}", param=f"{name}_decimal")
        return int(value)
    if params.get(name) is None:
        raise invalid_request(
            f"Missing required param: {name}.",
            param=name,
            code="parameter_missing",
        )
    return bounded_int(name, params[name], minimum=0)


def _recurring(value: Any, trial_days: Any = None, usage_type: Any = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_request("Invalid object", param="recurring")
    refuse_unknown(value, {"interval", "interval_count", "trial_period_days", "usage_type"}, "recurring")
    interval = one_of("recurring[interval]", required(value, "interval", "recurring[interval]"), INTERVALS)
    count = bounded_int("recurring[interval_count]", value.get("interval_count", 1), minimum=1)
    limits = {"day": 1095, "week": 156, "month": 36, "year": 3}
    if count > limits[interval]:
        raise invalid_request(
            "The maximum billing frequency is 3 years (36 months, 156 weeks or 1095 days).",
            param="recurring[interval_count]",
        )
    trial = value.get("trial_period_days", trial_days)
    usage = value.get("usage_type", usage_type) or "licensed"
    return {
        "interval": interval,
        "interval_count": count,
        "meter": None,
        "trial_period_days": None if trial in (None, "") else bounded_int("trial_period_days", trial, minimum=0),
        "usage_type": one_of("recurring[usage_type]", usage, ("licensed", "metered")),
    }


def _product(params: dict[str, Any]) -> str:
    if params.get("product") is not None and params.get("product_data") is not None:
        raise invalid_request(
            "You may only specify one of these parameters: product, product_data.",
            param="product_data",
        )
    if params.get("product_data") is not None:
        data = params["product_data"]
        if not isinstance(data, dict):
            raise invalid_request("Invalid object", param="product_data")
        refuse_unknown(data, {"name", "active", "metadata", "statement_descriptor", "unit_label"}, "product_data")
        name = string_param("product_data[name]", required(data, "name", "product_data[name]"))
        return Product(name=name, metadata=metadata_param(data.get("metadata"))).id
    product = params.get("product")
    if product is None:
        raise invalid_request(
            "You must specify either `product` or `product_data` when creating a price.",
            param="product",
            code="parameter_missing",
        )
    if isinstance(product, dict):  # the Plans API's inline product hash
        name = string_param("product[name]", required(product, "name", "product[name]"))
        return Product(name=name, metadata=metadata_param(product.get("metadata"))).id
    return lookup("product", product, "product").id


def _billing_scheme(params: dict[str, Any]) -> None:
    if params.get("billing_scheme", "per_unit") != "per_unit":
        raise invalid_request("The sandbox supports per_unit prices only (no tiers).", param="billing_scheme")


def _check_new_id(price_id: Any) -> str | None:
    if price_id is None:
        return None
    price_id = string_param("id", price_id)
    if INDEX.type_of(price_id) is not None:
        raise invalid_request("Plan already exists.", param="id", code="resource_already_exists")
    return price_id


def create_price(params: dict[str, Any]) -> Price:
    """POST /v1/prices."""
    refuse_unknown(params, CREATE_PARAMS)
    _billing_scheme(params)
    currency = _currency(required(params, "currency"))
    unit_amount = _amount(params, "unit_amount")
    recurring = None if params.get("recurring") in (None, "") else _recurring(params["recurring"])
    tax_behavior = one_of("tax_behavior", params.get("tax_behavior", "unspecified"), TAX_BEHAVIORS)
    product = _product(params)
    price = Price(
        product=product,
        currency=currency,
        unit_amount=unit_amount,
        recurring=recurring,
        active=to_bool("active", params.get("active", True)),
        nickname=None if params.get("nickname") is None else string_param("nickname", params["nickname"]),
        lookup_key=None if params.get("lookup_key") is None else string_param("lookup_key", params["lookup_key"]),
        metadata=metadata_param(params.get("metadata")),
        tax_behavior=tax_behavior,
    )
    emit("price.created", price)
    return price


def create_plan(params: dict[str, Any]) -> Price:
    """POST /v1/plans: a recurring price under its older name."""
    refuse_unknown(params, PLAN_CREATE_PARAMS)
    _billing_scheme(params)
    currency = _currency(required(params, "currency"))
    amount = _amount(params, "amount")
    recurring = _recurring(
        {
            "interval": required(params, "interval"),
            "interval_count": params.get("interval_count", 1),
        },
        trial_days=params.get("trial_period_days"),
        usage_type=params.get("usage_type"),
    )
    plan_id = _check_new_id(params.get("id"))
    product = _product(params)
    price = Price(
        id=plan_id,
        product=product,
        currency=currency,
        unit_amount=amount,
        recurring=recurring,
        active=to_bool("active", params.get("active", True)),
        nickname=None if params.get("nickname") is None else string_param("nickname", params["nickname"]),
        metadata=metadata_param(params.get("metadata")),
    )
    emit("plan.created", Snapshot(price.plan_export()), origin=price.id)
    emit("price.created", price)
    return price


def update_price(price: Price, params: dict[str, Any], event_type: str = "price.updated") -> Price:
    """Only the descriptive fields of a price change; its amount never does."""
    refuse_unknown(params, UPDATE_PARAMS)
    previous: dict[str, Any] = {}
    for name, value in params.items():
        if name == "expand":
            continue
        old = getattr(price, name)
        if name == "metadata":
            new: Any = merged_metadata(old, value)
        elif name == "active":
            new = to_bool("active", value)
        elif name == "tax_behavior":
            new = one_of("tax_behavior", value, TAX_BEHAVIORS)
        else:
            new = None if value == "" else string_param(name, value)
        if new != old:
            previous[name] = dict(old) if isinstance(old, dict) else old
            setattr(price, name, new)
    if previous:
        target = Snapshot(price.plan_export()) if event_type == "plan.updated" else price
        emit(event_type, target, previous, origin=price.id)
    return price


# -- lists -------------------------------------------------------------------------


def _type_filter(value: Any) -> Predicate:
    wanted = one_of("type", value, ("one_time", "recurring"))
    return lambda price: price.type == wanted


def _recurring_filter(value: Any) -> Predicate:
    if not isinstance(value, dict):
        raise invalid_request("Invalid object", param="recurring")
    refuse_unknown(value, {"interval", "usage_type", "meter"}, "recurring")
    interval = value.get("interval")
    usage = value.get("usage_type")
    return lambda price: (
        price.recurring is not None
        and (interval is None or price.recurring["interval"] == interval)
        and (usage is None or price.recurring["usage_type"] == usage)
    )


def _lookup_keys(value: Any) -> Predicate:
    keys = set(string_list("lookup_keys", value))
    return lambda price: price.lookup_key in keys


def _currency_filter(value: Any) -> Predicate:
    wanted = string_param("currency", value).lower()
    return lambda price: price.currency == wanted


PRICES = ListSpec(
    "price",
    "/v1/prices",
    {
        "active": bool_filter("active"),
        "product": equals("product"),
        "currency": _currency_filter,
        "type": _type_filter,
        "recurring": _recurring_filter,
        "lookup_keys": _lookup_keys,
    },
)
PLANS = ListSpec(
    "price",
    "/v1/plans",
    {"active": bool_filter("active"), "product": equals("product")},
    default=lambda params: lambda price: price.recurring is not None,
    export=lambda price, expand: price.plan_export(expand),
)


# -- routes --------------------------------------------------------------------------


def _price_from_path(request: web.Request, name: str = "price") -> Price:
    price_id = request.match_info["id"]
    price = INDEX.get("price", price_id)
    if price is None or (name == "plan" and price.recurring is None):
        raise resource_missing(name, price_id)
    return price


async def create(request: web.Request) -> web.Response:
    params = await read_params(request)
    return json_response(create_price(params)._export(expand=params.get("expand")))


async def retrieve(request: web.Request) -> web.Response:
    price = _price_from_path(request)
    return json_response(price._export(expand=(await read_params(request)).get("expand")))


async def update(request: web.Request) -> web.Response:
    price = _price_from_path(request)
    params = await read_params(request)
    return json_response(update_price(price, params)._export(expand=params.get("expand")))


async def plan_create(request: web.Request) -> web.Response:
    params = await read_params(request)
    return json_response(create_plan(params).plan_export(expand=params.get("expand")))


async def plan_retrieve(request: web.Request) -> web.Response:
    price = _price_from_path(request, "plan")
    return json_response(price.plan_export(expand=(await read_params(request)).get("expand")))


async def plan_update(request: web.Request) -> web.Response:
    price = _price_from_path(request, "plan")
    params = await read_params(request)
    refuse_unknown(params, {"active", "metadata", "nickname", "expand"})
    return json_response(update_price(price, params, "plan.updated").plan_export(expand=params.get("expand")))


async def plan_delete(request: web.Request) -> web.Response:
    """Stripe: deleting a plan removes it from the Plans API; subscriptions keep theirs."""
    price = _price_from_path(request, "plan")
    price.active = False
    emit("plan.deleted", Snapshot(price.plan_export()), origin=price.id)
    return json_response({"id": price.id, "object": "plan", "deleted": True})


def routes() -> list[tuple[str, str, Any]]:
    return [
        ("POST", "/v1/prices", create),
        ("GET", "/v1/prices", PRICES.handler()),
        ("GET", "/v1/prices/{id}", retrieve),
        ("POST", "/v1/prices/{id}", update),
        ("POST", "/v1/plans", plan_create),
        ("GET", "/v1/plans", PLANS.handler()),
        ("GET", "/v1/plans/{id}", plan_retrieve),
        ("POST", "/v1/plans/{id}", plan_update),
        ("DELETE", "/v1/plans/{id}", plan_delete),
    ]
