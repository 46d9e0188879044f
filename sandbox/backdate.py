"""POST /_config/backdate: move an object back in time (sandbox only).

Real Stripe cannot do this; demo data needs charges spread over past weeks.
The object's `created` changes and lists re-sort (created descending, ties by
insertion order, as the indexes keep them). Events its creation caused (for a
charge: charge.succeeded / charge.failed; for a refund: refund.created and
charge.refunded) move with it, so event lists tell the same story.

Subscriptions and invoices move as a whole: every time on them (periods, due
date, status transitions), every event about them and the charges that paid
them shift by the same delta; a subscription then bills the renewals that fall
between its new start and now (see `sandbox.subscriptions`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.errors import invalid_request, resource_missing
from sandbox.params import read_json_or_form, string_param, to_int
from sandbox.responses import json_response
from sandbox.state import INDEX, mark_dirty

# Types whose whole history moves by the same delta (subscriptions, invoices):
# registered by their modules, called with the object and the delta in seconds.
SHIFTERS: dict[str, Callable[[Any, int], None]] = {}


def _set_created(object_type: str, obj: Any, created: int) -> None:
    if getattr(obj, "date", None) == obj.created:
        obj.date = created  # localstripe mirrors `created` in `date` on some objects
    obj.created = created
    INDEX.set_created(object_type, obj.id, created)


def backdate(object_id: str, created: int) -> Any:
    object_type = INDEX.type_of(object_id)
    obj = INDEX.get(object_type, object_id) if object_type else None
    if obj is None:
        raise resource_missing(object_type or "object", object_id)
    if object_type in SHIFTERS:
        SHIFTERS[object_type](obj, created - obj.created)
        mark_dirty()
        return obj
    _set_created(object_type, obj, created)
    for event in list(INDEX.objects("event", "_origin", object_id)):
        _set_created("event", event, created)
        data_object = event.data.get("object", {})
        if data_object.get("id") == object_id:
            event.data["object"] = {**data_object, "created": created}
    mark_dirty()
    return obj


async def backdate_route(request: web.Request) -> web.Response:
    body = await read_json_or_form(request)
    if "id" not in body or "created" not in body:
        raise invalid_request('Send {"id": "<object id>", "created": <unix time>}.')
    created = to_int("created", body["created"])
    if created < 0:
        raise invalid_request("`created` must be a Unix timestamp.", param="created")
    obj = backdate(string_param("id", body["id"]), created)
    return json_response(obj._export())
