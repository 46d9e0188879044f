"""Products as Stripe's current API creates, changes, lists and announces them.

localstripe has a Product class from an old API version: create refuses a missing
name with a bare "Bad request", update stores whatever it is sent (`active=false`
becomes the string "false"), nothing announces a change, and objects carry old
fields (`caption`, `attributes`, `type`) but no `updated`. Stripe (docs:
api/products/object, api/products/create, api/products/update,
api/products/list, api/products/delete, api/events/types):

* `name` is required; `active` (default true), `description`, `metadata`,
  `statement_descriptor` (at most 22 characters), `unit_label`, `url`,
  `images`, `shippable`, `tax_code` and a custom `id` are optional;
* an update changes only what it names; "" unsets an optional field, while
  `name` cannot be unset; `active=false` archives the product and leaves its
  prices as they are (a price keeps its own `active`, docs:
  products-prices/manage-prices#archive-product);
* `updated` is the time of the last change;
* `product.created`, `product.updated` (with `data.previous_attributes`) and
  `product.deleted` events;
* a product that has prices cannot be deleted (archive it instead);
* `GET /v1/products` filters by `active`, `ids[]`, `shippable`, `url` and
  `created`, newest first.

`default_price_data` (a price made with the product) is refused in words: create
the price with `POST /v1/prices` (sandbox/prices.py) instead.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from localstripe.resources import Product, StripeObject, store

from sandbox.errors import invalid_request, resource_missing
from sandbox.events import emit
from sandbox.lists import ListSpec
from sandbox.objects import Snapshot, bool_filter, expand_export, from_path, refuse_unknown, required
from sandbox.params import merged_metadata, metadata_param, read_params, string_list, string_param, to_bool
from sandbox.responses import json_response
from sandbox.state import INDEX

OPTIONAL_TEXT = ("description", "statement_descriptor", "unit_label", "url", "tax_code")
CREATE_PARAMS = {
    "active",
    "default_price_data",
    "description",
    "expand",
    "id",
    "images",
    "metadata",
    "name",
    "shippable",
    "statement_descriptor",
    "tax_code",
    "unit_label",
    "url",
}
UPDATE_PARAMS = {
    "active",
    "default_price",
    "description",
    "expand",
    "images",
    "metadata",
    "name",
    "shippable",
    "statement_descriptor",
    "tax_code",
    "unit_label",
    "url",
}
STATEMENT_DESCRIPTOR_MAX = 22


def product_json(product: Any, expand: Any = None) -> dict[str, Any]:
    """A product in the shape of Stripe's current API (also for products localstripe made)."""
    data = {
        "id": product.id,
        "object": "product",
        "active": bool(product.active),
        "created": product.created,
        "default_price": getattr(product, "default_price", None),
        "description": product.description,
        "images": list(getattr(product, "images", None) or []),
        "livemode": False,
        "marketing_features": [],
        "metadata": dict(product.metadata or {}),
        "name": product.name,
        "package_dimensions": None,
        "shippable": getattr(product, "shippable", None),
        "statement_descriptor": product.statement_descriptor,
        "tax_code": getattr(product, "tax_code", None),
        "unit_label": getattr(product, "unit_label", None),
        "updated": getattr(product, "updated", None) or product.created,
        "url": product.url,
    }
    return expand_export(data, expand)


def _name(value: Any) -> str:
    name = string_param("name", value)
    if not name.strip():
        raise _cannot_unset("name")
    return name


def _cannot_unset(name: str) -> Exception:
    return invalid_request(
        f"You passed an empty string for '{name}'. We assume empty values are an attempt to unset a parameter; "
        f"however '{name}' cannot be unset. You should remove '{name}' from your request or supply a non-empty value.",
        param=name,
    )


def _optional_text(name: str, value: Any) -> str | None:
    """An optional text field: "" unsets it (Stripe answers null)."""
    if value == "":
        return None
    text = string_param(name, value)
    if name == "statement_descriptor" and len(text) > STATEMENT_DESCRIPTOR_MAX:
        raise invalid_request(
            f"The statement descriptor must be at most {STATEMENT_DESCRIPTOR_MAX} characters.", param=name
        )
    return text


def _images(value: Any) -> list[str]:
    return [] if value == "" else string_list("images", value)


def _new_product_id(value: Any) -> str | None:
    if value is None:
        return None
    product_id = string_param("id", value)
    if INDEX.get("product", product_id) is not None:
        raise invalid_request("Product already exists.", param="id", code="resource_already_exists")
    return product_id


def create_product(params: dict[str, Any]) -> Any:
    """POST /v1/products: a new product, announced by `product.created`."""
    refuse_unknown(params, CREATE_PARAMS)
    if params.get("default_price_data") is not None:
        raise invalid_request(
            "The sandbox does not create a default price with the product: create the product, "
            "then its price with POST /v1/prices.",
            param="default_price_data",
        )
    name = _name(required(params, "name"))
    fields = {field: _optional_text(field, params[field]) for field in OPTIONAL_TEXT if field in params}
    active = to_bool("active", params.get("active", True))
    shippable = None if params.get("shippable") in (None, "") else to_bool("shippable", params["shippable"])
    images = _images(params.get("images", ""))
    metadata = metadata_param(params.get("metadata"))
    product_id = _new_product_id(params.get("id"))
    # Built without localstripe's constructor, which would announce the product in its old shape.
    product = Product.__new__(Product)
    StripeObject.__init__(product, product_id)
    product.name, product.active, product.metadata = name, active, metadata
    product.type, product.caption, product.attributes = "service", None, None  # localstripe's own code reads these
    product.description = fields.get("description")
    product.statement_descriptor = fields.get("statement_descriptor")
    product.unit_label, product.url, product.tax_code = (
        fields.get("unit_label"),
        fields.get("url"),
        fields.get("tax_code"),
    )
    product.images, product.shippable, product.default_price = images, shippable, None
    product.updated = product.created
    emit("product.created", Snapshot(product_json(product)))
    return product


def _default_price(product: Any, value: Any) -> str | None:
    if value == "":
        return None
    price = INDEX.get("price", string_param("default_price", value))
    if price is None:
        raise resource_missing("price", str(value), param="default_price", status=400)
    if price.product != product.id:
        raise invalid_request("The default price must belong to this product.", param="default_price")
    if not price.active:
        raise invalid_request("The default price must be active.", param="default_price")
    return str(price.id)


def update_product(product: Any, params: dict[str, Any]) -> Any:
    """POST /v1/products/{id}: the named fields change; `product.updated` says what they were."""
    refuse_unknown(params, UPDATE_PARAMS)
    new: dict[str, Any] = {}
    for field, value in params.items():
        if field == "expand":
            continue
        if field == "name":
            new[field] = _name(value)
        elif field in ("active", "shippable"):
            new[field] = to_bool(field, value)
        elif field == "metadata":
            new[field] = merged_metadata(product.metadata, value)
        elif field == "images":
            new[field] = _images(value)
        elif field == "default_price":
            new[field] = _default_price(product, value)
        else:
            new[field] = _optional_text(field, value)
    previous: dict[str, Any] = {}
    for field, value in new.items():
        old = getattr(product, field, None)
        if value != old:
            previous[field] = dict(old) if isinstance(old, dict) else old
            setattr(product, field, value)
    if previous:
        now, before = int(time.time()), getattr(product, "updated", None) or product.created
        if now != before:
            previous["updated"], product.updated = before, now
        emit("product.updated", Snapshot(product_json(product)), previous, origin=product.id)
    return product


def delete_product(product: Any) -> dict[str, Any]:
    """DELETE /v1/products/{id}: only a product without prices; the others are archived instead."""
    if any(price.product == product.id for price in INDEX.objects("price")):
        raise invalid_request("This product cannot be deleted because it has one or more user-created prices.")
    snapshot = product_json(product)
    del store[f"product:{product.id}"]
    emit("product.deleted", Snapshot(snapshot), origin=product.id)
    return {"id": product.id, "object": "product", "deleted": True}


def _ids_filter(value: Any) -> Any:
    wanted = set(string_list("ids", value))
    return lambda product: product.id in wanted


def _url_filter(value: Any) -> Any:
    wanted = string_param("url", value)
    return lambda product: product.url == wanted


PRODUCTS = ListSpec(
    "product",
    "/v1/products",
    {"active": bool_filter("active"), "ids": _ids_filter, "shippable": bool_filter("shippable"), "url": _url_filter},
    export=product_json,
)


# -- routes ---------------------------------------------------------------------------


async def create(request: web.Request) -> web.Response:
    params = await read_params(request)
    return json_response(product_json(create_product(params), params.get("expand")))


async def retrieve(request: web.Request) -> web.Response:
    product = from_path(request, "product")
    return json_response(product_json(product, (await read_params(request)).get("expand")))


async def update(request: web.Request) -> web.Response:
    product = from_path(request, "product")
    params = await read_params(request)
    return json_response(product_json(update_product(product, params), params.get("expand")))


async def delete(request: web.Request) -> web.Response:
    return json_response(delete_product(from_path(request, "product")))


def routes() -> list[tuple[str, str, Any]]:
    return [
        ("POST", "/v1/products", create),
        ("GET", "/v1/products", PRODUCTS.handler()),
        ("GET", "/v1/products/{id}", retrieve),
        ("POST", "/v1/products/{id}", update),
        ("DELETE", "/v1/products/{id}", delete),
    ]
