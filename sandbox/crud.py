"""Retrieve, update and delete answering like Stripe for every localstripe resource.

Stripe answers an unknown id with 404 `resource_missing` ("No such customer:
'cus_x'") before looking at the body, and an update without parameters returns
the object unchanged. The app probes write permissions by updating ids that
cannot exist, so that order matters. localstripe answers "Not Found", and 400
for an empty update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from localstripe import resources
from localstripe.resources import DeletedObject, StripeObject, store

from sandbox import exports
from sandbox.errors import resource_missing
from sandbox.params import read_params
from sandbox.responses import json_response

Handler = Callable[[web.Request], Any]

# The classes localstripe serves under /v1/<object>s/{id}.
CRUD_CLASSES = (
    resources.BalanceTransaction,
    resources.Charge,
    resources.Coupon,
    resources.Customer,
    resources.Event,
    resources.Invoice,
    resources.InvoiceItem,
    resources.PaymentIntent,
    resources.PaymentMethod,
    resources.Payout,
    resources.Plan,
    resources.Product,
    resources.Refund,
    resources.SetupIntent,
    resources.Source,
    resources.Subscription,
    resources.SubscriptionItem,
    resources.TaxRate,
    resources.Token,
)


def _retrieve(cls: Any, id: Any) -> Any:
    obj = store.get(f"{cls.object}:{id}") if isinstance(id, str) else None
    if obj is None:
        raise resource_missing(cls.object, str(id))
    return obj


def _delete(cls: Any, id: Any) -> Any:
    cls._api_retrieve(id)
    del store[f"{cls.object}:{id}"]
    return DeletedObject(id, cls.object)


def update_handler(cls: Any) -> Handler:
    """POST /v1/<objects>/{id}: the id is checked first, an empty update is a no-op."""

    async def handle(request: web.Request) -> web.Response:
        obj = cls._api_retrieve(request.match_info["id"])
        data = await read_params(request)
        expand = data.pop("expand", None)
        if data:
            obj = cls._api_update(obj.id, **data)
        return json_response(obj._export(expand=expand))

    return handle


def _export_balance(self: Any, expand: Any = None) -> dict[str, Any]:
    """Stripe objects always say what they are: `"object": "balance"`."""
    return {"object": "balance", **exports.export(self, expand)}


def install() -> None:
    StripeObject._api_retrieve = classmethod(_retrieve)
    StripeObject._api_delete = classmethod(_delete)
    resources.Balance._export = _export_balance


def routes() -> list[tuple[str, str, Handler]]:
    return [("POST", f"/v1/{cls.object}s/{{id}}", update_handler(cls)) for cls in CRUD_CLASSES]
