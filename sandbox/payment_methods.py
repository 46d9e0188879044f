"""PaymentMethod events and updates as Stripe sends them.

localstripe attaches, detaches and updates PaymentMethods silently. Stripe (docs:
api/events/types) sends `payment_method.attached` when one is attached to a customer,
`payment_method.detached` when it is detached (the object then has `customer: null`, and
`previous_attributes.customer` names the customer it left), and `payment_method.updated`
when its details change, for example a new expiry date (docs: api/payment_methods/update:
`card[exp_month]`, `card[exp_year]`, `billing_details`, `metadata`). A store that keeps
cards searchable follows these events, so the sandbox must send them.

localstripe's update replaces the whole `card` hash with the posted one; Stripe changes only
the expiry, so the update here merges it.
"""

from __future__ import annotations

from typing import Any

from localstripe.resources import PaymentMethod
from localstripe.server import api_extra

from sandbox.errors import invalid_request, unknown_parameter
from sandbox.events import emit
from sandbox.params import merged_metadata, to_int

_orig: dict[str, Any] = {}
CARD_FIELDS = ("exp_month", "exp_year")


def _attach(cls: Any, id: str, customer: Any = None, **kwargs: Any) -> Any:
    payment_method = _orig["attach"].__func__(cls, id, customer=customer, **kwargs)
    emit("payment_method.attached", payment_method)
    return payment_method


def _detach(cls: Any, id: str, **kwargs: Any) -> Any:
    before = cls._api_retrieve(id).customer
    payment_method = _orig["detach"].__func__(cls, id, **kwargs)
    if before is not None:
        emit("payment_method.detached", payment_method, previous_attributes={"customer": before})
    return payment_method


def _card_changes(current: dict[str, Any], posted: Any) -> dict[str, Any]:
    if not isinstance(posted, dict):
        raise invalid_request("Invalid object", param="card")
    for name in posted:
        if name not in CARD_FIELDS:
            raise unknown_parameter(f"card[{name}]")
    return {**current, **{name: to_int(f"card[{name}]", value) for name, value in posted.items()}}


def _update(cls: Any, id: str, **data: Any) -> Any:
    payment_method = cls._api_retrieve(id)
    before = payment_method._export()
    if "card" in data:
        if payment_method.type != "card":
            raise invalid_request("This PaymentMethod is not a card.", param="card")
        payment_method.card = _card_changes(payment_method.card, data.pop("card"))
    if "metadata" in data:
        payment_method.metadata = merged_metadata(payment_method.metadata, data.pop("metadata"))
    if data:
        _orig["update"].__func__(cls, id, **data)
    after = payment_method._export()
    previous = {key: before.get(key) for key in after if key in before and before[key] != after[key]}
    if previous:
        emit("payment_method.updated", payment_method, previous_attributes=previous)
    return payment_method


def install() -> None:
    """After `charges.install` (which refuses declined cards on attach): wrap what it left."""
    _orig["attach"] = PaymentMethod.__dict__["_api_attach"]
    _orig["detach"] = PaymentMethod.__dict__["_api_detach"]
    _orig["update"] = PaymentMethod.__dict__.get("_api_update") or classmethod(
        lambda cls, id, **data: super(PaymentMethod, cls)._api_update(id, **data)
    )
    PaymentMethod._api_attach = classmethod(_attach)
    PaymentMethod._api_detach = classmethod(_detach)
    PaymentMethod._api_update = classmethod(_update)


def routes() -> list[tuple[str, str, Any]]:
    """localstripe bound attach and detach to its own functions when it was imported."""
    return [
        ("POST", "/v1/payment_methods/{id}/attach", api_extra(PaymentMethod._api_attach, "")),
        ("POST", "/v1/payment_methods/{id}/detach", api_extra(PaymentMethod._api_detach, "")),
    ]
