"""POST /v1/customers/{id} for the fields Billy edits, answering as Stripe does.

localstripe's generic update sets whatever it is given. Stripe (docs: api/customers/update,
api/metadata, api/events/object) differs where Billy depends on it:

* an empty string unsets a field: `email=""` leaves `"email": null`, not `""`;
* `address` is one value: the posted parts replace the old address (parts left out are
  null), `address=""` unsets it, and an unknown part is "Received unknown parameter:
  address[x]". Billy always posts all six parts, so it does not rely on this either way;
* metadata merges: a key posted as "" is removed, `metadata=""` removes every key;
* `customer.updated` carries `data.previous_attributes` (the changed fields' old values),
  and an update that changes nothing sends no event.

Other parameters (default_source, invoice_settings, ...) still go to localstripe's update.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from localstripe.resources import Customer

from sandbox.errors import invalid_request, unknown_parameter
from sandbox.events import emit
from sandbox.params import merged_metadata, read_params, string_param
from sandbox.responses import json_response

TEXT_FIELDS = ("name", "email", "phone", "description")
ADDRESS_PARTS = ("line1", "line2", "city", "state", "postal_code", "country")


def _text(name: str, value: Any) -> str | None:
    return None if value == "" else string_param(name, value)


def _address(value: Any) -> dict[str, str | None] | None:
    if value == "":
        return None
    if not isinstance(value, dict):
        raise invalid_request("Invalid object", param="address")
    for part in value:
        if part not in ADDRESS_PARTS:
            raise unknown_parameter(f"address[{part}]")
    return {part: _text(f"address[{part}]", value.get(part, "")) for part in ADDRESS_PARTS}


def _localstripe_update(customer_id: str, data: dict[str, Any]) -> None:
    """localstripe's own update for the other parameters, without its event (ours follows)."""
    settings = data.get("invoice_settings")
    if isinstance(settings, dict) and settings.get("default_payment_method") == "":
        settings["default_payment_method"] = None
    super(Customer, Customer)._api_update(customer_id, **data)  # StripeObject's: no event


async def update_customer(request: web.Request) -> web.Response:
    customer = Customer._api_retrieve(request.match_info["id"])
    data = await read_params(request)
    expand = data.pop("expand", None)
    # Everything is checked before anything changes, as Stripe refuses a request whole.
    changes: dict[str, Any] = {name: _text(name, data.pop(name)) for name in TEXT_FIELDS if name in data}
    if "address" in data:
        changes["address"] = _address(data.pop("address"))
    if "metadata" in data:
        changes["metadata"] = merged_metadata(customer.metadata, data.pop("metadata"))
    before = customer._export()
    if data:
        _localstripe_update(customer.id, data)
    for name, value in changes.items():
        setattr(customer, name, value)
    after = customer._export()
    previous = {key: before.get(key) for key in after if key in before and before[key] != after[key]}
    if previous:
        emit("customer.updated", customer, previous_attributes=previous)
    return json_response(customer._export(expand=expand))


def routes() -> list[tuple[str, str, Any]]:
    return [("POST", "/v1/customers/{id}", update_customer)]
