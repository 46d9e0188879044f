"""List endpoints answered from the indexes, paginated exactly as Stripe does.

Stripe lists newest first (`created` descending), `limit` 1..100 (default 10),
`starting_after` / `ending_before` cursors that must name an existing object of
the listed type, `has_more`, and `created` range filters (docs: api/pagination).
localstripe lists oldest first by scanning the whole store, silently restarts at
page one on an unknown cursor and refuses `ending_before`.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from localstripe.errors import UserError
from localstripe.resources import Charge, Customer, List, StripeObject

from sandbox import cards
from sandbox.errors import invalid_request, resource_missing, unknown_parameter
from sandbox.indexes import SortKey
from sandbox.params import (
    Predicate,
    bounded_int,
    created_bounds,
    created_filter,
    read_params,
    string_list,
    string_param,
)
from sandbox.responses import json_response
from sandbox.state import INDEX

Export = Callable[[Any, list[str] | None], dict[str, Any]]
FilterBuilder = Callable[[Any], Predicate]


def default_export(obj: Any, expand: list[str] | None) -> dict[str, Any]:
    return obj._export(expand=expand)


@dataclass
class Page:
    items: list[Any]
    has_more: bool


@dataclass(frozen=True)
class Cursor:
    """Where a page starts, taken from `starting_after` / `ending_before`."""

    starting_after: str | None = None
    ending_before: str | None = None
    limit: int = 10

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Cursor:
        after = params.pop("starting_after", None)
        before = params.pop("ending_before", None)
        if after and before:
            raise invalid_request(
                "You may only specify one of these parameters: ending_before, starting_after.",
                param="ending_before",
            )
        limit = params.pop("limit", None)
        return cls(
            starting_after=string_param("starting_after", after) if after else None,
            ending_before=string_param("ending_before", before) if before else None,
            limit=10 if limit in (None, "") else bounded_int("limit", limit, 1, 100),
        )

    @property
    def cursor_param(self) -> str:
        return "starting_after" if self.starting_after else "ending_before"

    @property
    def cursor_id(self) -> str | None:
        return self.starting_after or self.ending_before


def _take(candidates: Iterator[Any], limit: int) -> Page:
    items: list[Any] = []
    for obj in candidates:
        if len(items) == limit:
            return Page(items, has_more=True)
        items.append(obj)
    return Page(items, has_more=False)


def paginate_index(
    object_type: str,
    cursor: Cursor,
    where: Predicate,
    field_name: str | None = None,
    value: Any = None,
    span: tuple[int | None, int | None] = (None, None),
) -> Page:
    """One page from an index view, newest first. `span` ([oldest created, first created past
    the newest), None where open) lets a `created` filter seek rather than scan: the index is
    sorted by (created, insertion), so the page starts at the span's top and ends at its bottom."""
    view = INDEX.view(object_type, field_name, value)
    lowest, below = span
    top: SortKey | None = None if below is None else (below, 0)  # before every object created at `below`

    def objects(ids: Iterable[str]) -> Iterator[Any]:
        for object_id in ids:
            obj = INDEX.get(object_type, object_id)
            if obj is None:
                continue
            if lowest is not None and int(obj.created or 0) < lowest:
                return  # newest first: everything after this is older still
            if where(obj):
                yield obj

    if cursor.cursor_id is None:
        return _take(objects(view.newest_first(before=top)), cursor.limit)
    key = INDEX.sort_key(object_type, cursor.cursor_id)
    if key is None:
        raise resource_missing(object_type, cursor.cursor_id, param=cursor.cursor_param, status=400)
    if cursor.starting_after:
        return _take(objects(view.newest_first(before=key if top is None else min(key, top))), cursor.limit)
    page = _take(objects(view.oldest_first(after=key)), cursor.limit)
    return Page(list(reversed(page.items)), page.has_more)


def paginate_sequence(items: list[Any], object_type: str, cursor: Cursor, where: Predicate) -> Page:
    """One page from an in-memory list that is already newest first."""
    ids = [getattr(obj, "id", None) for obj in items]
    if cursor.cursor_id is not None and cursor.cursor_id not in ids:
        raise resource_missing(object_type, cursor.cursor_id, param=cursor.cursor_param, status=400)
    if cursor.starting_after:
        rest = items[ids.index(cursor.starting_after) + 1 :]
        return _take((obj for obj in rest if where(obj)), cursor.limit)
    if cursor.ending_before:
        newer = items[: ids.index(cursor.ending_before)]
        page = _take((obj for obj in reversed(newer) if where(obj)), cursor.limit)
        return Page(list(reversed(page.items)), page.has_more)
    return _take((obj for obj in items if where(obj)), cursor.limit)


def list_body(url: str, page: Page, export: Export, expand: Any) -> dict[str, Any]:
    item_expand = [
        path.removeprefix("data.") for path in string_list("expand", expand or []) if path.startswith("data.")
    ]
    return {
        "object": "list",
        "data": [export(obj, item_expand or None) for obj in page.items],
        "has_more": page.has_more,
        "url": url,
    }


def equals(attribute: str) -> FilterBuilder:
    def build(value: Any) -> Predicate:
        wanted = string_param(attribute, value)
        return lambda obj: getattr(obj, attribute, None) == wanted

    return build


def accept_any(value: Any) -> Predicate:
    """Filters the sandbox accepts but cannot narrow by (for example delivery_success)."""
    return lambda obj: True


def _all(predicates: list[Predicate]) -> Predicate:
    return lambda obj: all(test(obj) for test in predicates)


@dataclass(frozen=True)
class ListSpec:
    """A list endpoint: its object type, filters, and which filter an index serves."""

    object_type: str
    url: str
    filters: dict[str, FilterBuilder] = field(default_factory=dict)
    indexed: tuple[str, ...] = ()
    exclusive: tuple[str, ...] = ()
    default: Callable[[dict[str, Any]], Predicate | None] | None = None
    export: Export = default_export

    def page(self, params: dict[str, Any], fixed: dict[str, Any] | None = None) -> Page:
        params = dict(params)
        params.pop("expand", None)
        cursor = Cursor.from_params(params)
        present = [name for name in self.exclusive if params.get(name) is not None]
        if len(present) > 1:
            raise invalid_request(
                "You may only specify one of these parameters: " + ", ".join(present) + ".",
                param=present[-1],
            )
        predicates: list[Predicate] = []
        if self.default is not None:
            default = self.default(params)
            if default is not None:
                predicates.append(default)
        narrowing: tuple[str, Any] | None = None
        span: tuple[int | None, int | None] = (None, None)
        for name, value in {**params, **(fixed or {})}.items():
            if name == "created":
                predicates.append(created_filter(value))
                span = created_bounds(value)
            elif name in self.indexed and narrowing is None:
                narrowing = (name, string_param(name, value))
            elif name in self.filters:
                predicates.append(self.filters[name](value))
            else:
                raise unknown_parameter(name)
        where = _all(predicates)
        if narrowing is None:
            return paginate_index(self.object_type, cursor, where, span=span)
        return paginate_index(self.object_type, cursor, where, *narrowing, span=span)

    def respond(
        self, params: dict[str, Any], url: str | None = None, fixed: dict[str, Any] | None = None
    ) -> web.Response:
        page = self.page(params, fixed)
        return json_response(list_body(url or self.url, page, self.export, params.get("expand")))

    def handler(self) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            params = await read_params(request)
            page = self.page(params)
            return json_response(await list_body_yielding(self.url, page, self.export, params.get("expand")))

        return handle


# Objects exported between two yields to the event loop while a list page is built.
EXPORT_SLICE = 10


async def list_body_yielding(url: str, page: Page, export: Export, expand: Any) -> dict[str, Any]:
    """`list_body`, letting other requests in every `EXPORT_SLICE` objects. A page of 100
    charges takes tens of milliseconds to export; built in one go it held the event loop, so
    requests arriving meanwhile were admitted (and counted by the rate limit) late and in a
    bunch, and a client pacing itself at the limit met 429s Stripe, which counts requests as
    they arrive, would not send."""
    item_expand = [
        path.removeprefix("data.") for path in string_list("expand", expand or []) if path.startswith("data.")
    ]
    data = []
    for index, obj in enumerate(page.items):
        data.append(export(obj, item_expand or None))
        if index % EXPORT_SLICE == EXPORT_SLICE - 1:
            await asyncio.sleep(0)
    return {"object": "list", "data": data, "has_more": page.has_more, "url": url}


# -- filters specific to one resource ---------------------------------------


def event_type(value: Any) -> Predicate:
    """Stripe: `type` is an event name or a group using `*` as a wildcard."""
    pattern = string_param("type", value)
    return lambda event: fnmatch.fnmatchcase(event.type, pattern)


def event_types(value: Any) -> Predicate:
    """Stripe: `types` is an array of up to 20 exact event names."""
    names = set(string_list("types", value))
    if len(names) > 20:
        raise invalid_request("You may pass at most 20 types.", param="types")
    return lambda event: event.type in names


def refund_payment_intent(value: Any) -> Predicate:
    wanted = string_param("payment_intent", value)
    return lambda refund: refund.payment_intent == wanted


def card_as_payment_method(card: Any) -> dict[str, Any]:
    """Stripe: a customer's saved card sources are listed as PaymentMethods too."""
    return {
        "id": card.id,
        "object": "payment_method",
        "billing_details": {
            "address": {
                "city": card.address_city,
                "country": card.address_country,
                "line1": card.address_line1,
                "line2": card.address_line2,
                "postal_code": card.address_zip,
                "state": card.address_state,
            },
            "email": None,
            "name": card.name,
            "phone": None,
        },
        "card": {
            "brand": cards.brand(card._card_number),
            "country": card.country,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "fingerprint": card.fingerprint,
            "funding": card.funding,
            "last4": card.last4,
        },
        "created": card.created,
        "customer": card.customer,
        "livemode": False,
        "metadata": dict(card.metadata or {}),
        "type": "card",
    }


def pm_export(obj: Any, expand: list[str] | None) -> dict[str, Any]:
    if getattr(obj, "object", None) == "card":
        return card_as_payment_method(obj)
    return obj._export(expand=expand)


SPECS: dict[str, ListSpec] = {
    "customers": ListSpec("customer", "/v1/customers", {"email": equals("email"), "test_clock": accept_any}),
    "charges": ListSpec(
        "charge",
        "/v1/charges",
        {
            "customer": equals("customer"),
            "payment_intent": equals("payment_intent"),
            "transfer_group": equals("transfer_group"),
        },
        indexed=("customer",),
    ),
    "refunds": ListSpec(
        "refund",
        "/v1/refunds",
        {"charge": equals("charge"), "payment_intent": refund_payment_intent},
        indexed=("charge",),
    ),
    "events": ListSpec(
        "event",
        "/v1/events",
        {"type": event_type, "types": event_types, "delivery_success": accept_any},
        exclusive=("type", "types"),
    ),
    "payment_intents": ListSpec("payment_intent", "/v1/payment_intents", {"customer": equals("customer")}),
    "payment_methods": ListSpec(
        "payment_method",
        "/v1/payment_methods",
        {"customer": equals("customer"), "type": equals("type")},
    ),
    "disputes": ListSpec(
        "dispute",
        "/v1/disputes",
        {"charge": equals("charge"), "payment_intent": equals("payment_intent")},
    ),
}


# -- routes that are not a plain list of one type -----------------------------


async def customer_payment_methods(request: web.Request) -> web.Response:
    """GET /v1/customers/{id}/payment_methods: attached PaymentMethods and card sources."""
    customer_id = request.match_info["id"]
    customer = Customer._api_retrieve(customer_id)
    params = await read_params(request)
    kind = params.pop("type", None)
    expand = params.pop("expand", None)
    params.pop("allow_redisplay", None)
    cursor = Cursor.from_params(params)
    for name in params:
        raise unknown_parameter(name)
    items = list(INDEX.objects("payment_method", where=lambda pm: pm.customer == customer_id))
    items += [s for s in customer.sources._list if getattr(s, "object", "") == "card"]
    items.sort(key=lambda obj: obj.created, reverse=True)
    wanted = None if kind is None else string_param("type", kind)
    page = paginate_sequence(
        items,
        "payment_method",
        cursor,
        lambda obj: wanted is None or getattr(obj, "type", "card") == wanted,
    )
    url = f"/v1/customers/{customer_id}/payment_methods"
    return json_response(list_body(url, page, pm_export, expand))


async def retrieve_dispute(request: web.Request) -> web.Response:
    raise resource_missing("dispute", request.match_info["id"])


async def charge_refunds(request: web.Request) -> web.Response:
    """GET /v1/charges/{id}/refunds, from the refunds-by-charge index."""
    charge_id = request.match_info["id"]
    Charge._api_retrieve(charge_id)
    return SPECS["refunds"].respond(
        await read_params(request),
        url=f"/v1/charges/{charge_id}/refunds",
        fixed={"charge": charge_id},
    )


def subscriptions_of(customer: Any) -> Any:
    """`customer.subscriptions` from the index instead of a store scan."""
    li = List(f"/v1/customers/{customer.id}/subscriptions")
    li._list = list(
        INDEX.objects(
            "subscription",
            "customer",
            customer.id,
            where=lambda sub: sub.status not in ("canceled", "incomplete_expired"),
        )
    )
    return li


def base_list_all(cls: Any, url: Any, limit: Any = None, starting_after: Any = None, **kwargs: Any) -> Any:
    """localstripe's internal lists, served from the type index in store order."""
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    li = List(url, limit=limit, starting_after=starting_after)
    li._list = INDEX.insertion_order(cls.object)
    return li


def install() -> None:
    """Every localstripe list reads the type index instead of scanning the store."""
    StripeObject._api_list_all = classmethod(base_list_all)
    Customer.subscriptions = property(subscriptions_of)


def routes() -> list[tuple[str, str, Callable[[web.Request], Any]]]:
    table = [("GET", spec.url, spec.handler()) for spec in SPECS.values()]
    table += [
        ("GET", "/v1/customers/{id}/payment_methods", customer_payment_methods),
        ("GET", "/v1/charges/{id}/refunds", charge_refunds),
        ("GET", "/v1/disputes/{id}", retrieve_dispute),
    ]
    return table
