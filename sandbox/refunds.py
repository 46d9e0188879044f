"""Refunds with Stripe's checks.

localstripe accepts any amount (over-refunds included), refuses `reason`, and
always refunds the whole charge when no amount is given. Stripe (docs:
api/refunds/create, api/refunds/update, error-codes):

* `reason` must be duplicate, fraudulent or requested_by_customer;
* `amount` defaults to what is left to refund; more than that is refused with
  `amount_too_large`: "Refund amount ($X) is greater than unrefunded amount on
  charge ($Y)";
* a fully refunded charge is refused with `charge_already_refunded`:
  "Charge ch_... has already been refunded.";
* refunds update only their `metadata`;
* creating one emits `charge.refunded` and `refund.created`; updating one emits
  `refund.updated` and `charge.refund.updated`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from localstripe.resources import Refund

from sandbox.errors import invalid_request, resource_missing, unknown_parameter
from sandbox.events import emit
from sandbox.params import (
    bounded_int,
    merged_metadata,
    metadata_param,
    read_params,
    string_param,
)
from sandbox.responses import json_response
from sandbox.state import INDEX

REASONS = ("duplicate", "fraudulent", "requested_by_customer")
CREATE_PARAMS = {
    "charge",
    "payment_intent",
    "amount",
    "reason",
    "metadata",
    "refund_application_fee",
    "reverse_transfer",
    "instructions_email",
}
CURRENCY_SYMBOLS = {"usd": "$", "cad": "$", "aud": "$", "eur": "€", "gbp": "£"}
ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "pyg", "xof", "xaf", "ugx", "rwf"}


def money(amount: int, currency: str) -> str:
    """An amount as Stripe words it in refund errors: "$45.99"."""
    currency = currency.lower()
    value = str(amount) if currency in ZERO_DECIMAL else f"{amount / 100:.2f}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def _charge_to_refund(params: dict[str, Any]) -> Any:
    charge_id = params.get("charge")
    intent_id = params.get("payment_intent")
    if charge_id is None and intent_id is None:
        raise invalid_request(
            "One of the following params should be provided for this request: payment_intent or charge.",
            code="parameter_missing",
        )
    if charge_id is not None:
        charge_id = string_param("charge", charge_id)
        charge = INDEX.get("charge", charge_id)
        if charge is None:
            raise resource_missing("charge", charge_id, param="charge", status=400)
        if intent_id is not None and charge.payment_intent != intent_id:
            raise invalid_request(
                f"Charge {charge_id} does not belong to PaymentIntent {intent_id}.",
                param="payment_intent",
            )
        return charge
    intent_id = string_param("payment_intent", intent_id)
    intent = INDEX.get("payment_intent", intent_id)
    if intent is None:
        raise resource_missing("payment_intent", intent_id, param="payment_intent", status=400)
    if intent.latest_charge is None or intent.latest_charge.status != "succeeded":
        raise invalid_request(
            f"PaymentIntent {intent_id} does not have a successful charge to refund.",
            param="payment_intent",
            code="charge_not_refundable",
        )
    return intent.latest_charge


def create_refund(params: dict[str, Any]) -> Refund:
    for name in params:
        if name not in CREATE_PARAMS:
            raise unknown_parameter(name)
    charge = _charge_to_refund(params)
    reason = params.get("reason")
    if reason not in (None, "") and reason not in REASONS:
        raise invalid_request(
            "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
            param="reason",
        )
    amount = params.get("amount")
    if amount is not None:
        amount = bounded_int("amount", amount, minimum=1)
    metadata = metadata_param(params.get("metadata"))
    if charge.status != "succeeded":
        raise invalid_request(
            f"Charge {charge.id} cannot be refunded because it has not succeeded.",
            param="charge",
            code="charge_not_refundable",
        )
    before = {"amount_refunded": charge.amount_refunded, "refunded": charge.refunded}
    remaining = charge.amount - before["amount_refunded"]
    if remaining <= 0:
        raise invalid_request(
            f"Charge {charge.id} has already been refunded.",
            code="charge_already_refunded",
        )
    if amount is None:
        amount = remaining
    elif amount > remaining:
        raise invalid_request(
            f"Refund amount ({money(amount, charge.currency)}) is greater than "
            f"unrefunded amount on charge ({money(remaining, charge.currency)})",
            param="amount",
            code="amount_too_large",
        )
    refund = Refund(charge=charge.id, amount=amount, metadata=metadata)
    refund.reason = reason or None
    refund.payment_intent = charge.payment_intent
    after = {"amount_refunded": charge.amount_refunded, "refunded": charge.refunded}
    emit(
        "charge.refunded",
        charge,
        previous_attributes={k: v for k, v in before.items() if after[k] != v},
        origin=refund.id,
    )
    emit("refund.created", refund, origin=refund.id)
    return refund


async def create(request: web.Request) -> web.Response:
    """POST /v1/refunds."""
    params = await read_params(request)
    expand = params.pop("expand", None)
    return json_response(create_refund(params)._export(expand=expand))


async def update(request: web.Request) -> web.Response:
    """POST /v1/refunds/{id}: Stripe accepts only `metadata` here."""
    refund = Refund._api_retrieve(request.match_info["id"])
    params = await read_params(request)
    expand = params.pop("expand", None)
    for name in params:
        if name != "metadata":
            raise unknown_parameter(name)
    if "metadata" in params:
        old = dict(refund.metadata or {})
        refund.metadata = merged_metadata(old, params["metadata"])
        if refund.metadata != old:
            for event_type in ("refund.updated", "charge.refund.updated"):
                emit(event_type, refund, previous_attributes={"metadata": old})
    return json_response(refund._export(expand=expand))


def install() -> None:
    """Fields every Stripe refund has, also on refunds localstripe makes itself."""
    Refund.reason = None
    Refund.receipt_number = None
    Refund.transfer_reversal = None
    Refund.source_transfer_reversal = None


def routes() -> list[tuple[str, str, Any]]:
    return [("POST", "/v1/refunds", create), ("POST", "/v1/refunds/{id}", update)]
