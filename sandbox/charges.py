"""Charges that fail and succeed the way Stripe's test cards make them.

localstripe declines most test cards when they are attached (so a charge never
exists), stores the few failed charges it makes with `failure_code=card_declined`
only, and records no `outcome`, `decline_code` or card details. Here:

* Stripe: each documented test card number (and its `tok_...` / `pm_card_...`
  name) fails with its own `failure_code`, `decline_code`, `failure_message` and
  `outcome`; Radar blocks have `outcome.type = "blocked"` (docs: testing,
  declines, api/charges/object#outcome).
* Stripe: a failed charge is still created (status "failed") and the API answers
  402 `card_error` carrying `code`, `decline_code` and `charge` (docs: api/errors).
* Stripe: cards are verified when they are saved, so issuer-declined cards are
  refused on attach with the same card error; 4000000000000341 attaches and then
  fails every charge (docs: testing#declined-payments).
* Stripe: `payment_method_details.card` (brand, last4, exp_month, exp_year) and,
  for charges on card sources, `source` (docs: api/charges/object).
* Stripe: `charge.succeeded`, `charge.failed` and `charge.updated` events.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from localstripe.resources import (
    Card,
    Charge,
    Customer,
    DeletedObject,
    List,
    PaymentIntent,
    PaymentMethod,
    Token,
)
from localstripe.server import api_extra

from sandbox import cards
from sandbox.errors import DOC_URL, StripeApiError, invalid_request, unknown_parameter
from sandbox.events import emit
from sandbox.params import (
    merged_metadata,
    metadata_param,
    read_params,
    string_param,
    to_int,
)
from sandbox.responses import json_response
from sandbox.state import INDEX

# Stripe: minimum charge amounts per currency (docs: currencies#minimum-and-maximum-charge-amounts).
MINIMUM_AMOUNTS = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50}

CREATE_PARAMS = {
    "amount",
    "currency",
    "customer",
    "source",
    "description",
    "metadata",
    "capture",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "receipt_email",
    "shipping",
    "transfer_group",
    "radar_options",
}
UPDATE_PARAMS = {
    "customer",
    "description",
    "metadata",
    "receipt_email",
    "shipping",
    "fraud_details",
    "transfer_group",
}

_orig = {
    "card_init": Card.__init__,
    "pm_init": PaymentMethod.__init__,
    "pm_magic": PaymentMethod._try_get_canonical_test_article.__func__,
    "pm_attach": PaymentMethod._api_attach.__func__,
    "pm_charging": PaymentMethod._charging_is_declined,
    "pm_attaching": PaymentMethod._attaching_is_declined,
    "token_retrieve": Token._api_retrieve.__func__,
    "customer_create": Customer._api_create.__func__,
    "add_source": Customer._api_add_source.__func__,
    "remove_source": Customer._api_remove_source.__func__,
    "charge_init": Charge.__init__,
    "charge_initialize": Charge._initialize_charge,
    "pi_init": PaymentIntent.__init__,
    "pi_last_error": PaymentIntent.last_payment_error.fget,
}


def card_error(decline: cards.Decline, **extra: Any) -> StripeApiError:
    """Stripe's 402 `card_error` body for a declined card."""
    return StripeApiError(
        402,
        {
            "type": "card_error",
            "code": decline.code,
            "decline_code": decline.decline_code,
            "message": decline.message,
            "param": decline.param,
            "doc_url": DOC_URL + decline.code.replace("_", "-"),
            **extra,
        },
    )


def source_object(source_id: str | None) -> Any:
    """A charge's payment source (PaymentMethod, Card or Source) from the index."""
    if not source_id:
        return None
    object_type = INDEX.type_of(source_id)
    return INDEX.get(object_type, source_id) if object_type else None


def card_spec(obj: Any) -> cards.CardSpec | None:
    return cards.behaviour(getattr(obj, "_card_number", None))


# -- test cards: brands, magic ids, declines ---------------------------------


def _card_init(self: Card, *args: Any, **kwargs: Any) -> None:
    _orig["card_init"](self, *args, **kwargs)
    spec = card_spec(self)
    self.brand = cards.CARD_BRANDS[cards.brand(self._card_number)]
    self.country = "US"
    self.funding = spec.funding if spec else "credit"


def _pm_init(self: PaymentMethod, *args: Any, **kwargs: Any) -> None:
    _orig["pm_init"](self, *args, **kwargs)
    if self.type == "card":
        spec = card_spec(self)
        self.card.update(
            brand=cards.brand(self._card_number),
            country="US",
            funding=spec.funding if spec else "credit",
            checks={
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "unchecked",
            },
        )


def _pm_magic(cls: Any, id: str) -> Any:
    """Stripe: every `pm_card_<name>` test id creates a fresh PaymentMethod."""
    name = cards.magic_card_name(id) if id.startswith("pm_card_") else None
    if name is None:
        return _orig["pm_magic"](cls, id)
    return PaymentMethod(type="card", card=cards.card_params(name))


def _token_retrieve(cls: Any, id: str) -> Any:
    """Stripe: `tok_visa`, `tok_chargeDeclined`... are usable test tokens."""
    name = cards.magic_card_name(id) if id.startswith("tok_") else None
    if name is None:
        return _orig["token_retrieve"](cls, id)
    return Token(card=cards.card_params(name))


def _charging_is_declined(self: Any) -> bool:
    spec = card_spec(self)
    if spec is None:
        return _orig["pm_charging"](self)
    return spec.decline is not None


def _attaching_is_declined(self: Any) -> bool:
    spec = card_spec(self)
    if spec is None:
        return _orig["pm_attaching"](self)
    return spec.declined_on_attach


def _refuse_on_attach(number: str | None) -> None:
    spec = cards.behaviour(number)
    if spec is not None and spec.declined_on_attach and spec.decline is not None:
        raise card_error(spec.decline)


def _attachable_source(source: Any) -> Any:
    """Resolve a test token once and refuse cards Stripe would decline on save."""
    if isinstance(source, str) and source.startswith("tok_"):
        token = Token._api_retrieve(source)
        _refuse_on_attach(token.card._card_number)
        return token.id
    if isinstance(source, dict):
        _refuse_on_attach(source.get("number"))
    return source


def _pm_attach(cls: Any, id: str, customer: Any = None, **kwargs: Any) -> Any:
    payment_method = cls._api_retrieve(id)
    _refuse_on_attach(getattr(payment_method, "_card_number", None))
    return _orig["pm_attach"](cls, payment_method.id, customer=customer, **kwargs)


def _customer_create(cls: Any, source: Any = None, **data: Any) -> Any:
    return _orig["customer_create"](cls, source=_attachable_source(source), **data)


def _add_source(cls: Any, id: str, source: Any = None, **kwargs: Any) -> Any:
    return _orig["add_source"](cls, id, source=_attachable_source(source), **kwargs)


def _remove_source(cls: Any, id: str, source_id: str, **kwargs: Any) -> Any:
    """Stripe's DELETE /v1/customers/{id}/sources/{card}: the card goes, `customer.source.deleted`
    announces it, and `customer.updated` follows when it was the default (docs: api/cards/delete).
    localstripe removes the card silently and answers with the customer; Stripe answers with the
    deleted card."""
    source = cls._api_retrieve_source(id, source_id)
    previous_default = cls._api_retrieve(id).default_source
    customer = _orig["remove_source"](cls, id, source_id, **kwargs)
    emit("customer.source.deleted", source)
    if customer.default_source != previous_default:
        emit("customer.updated", customer, previous_attributes={"default_source": previous_default})
    return DeletedObject(source_id, getattr(source, "object", "card"))


# -- charge creation -----------------------------------------------------------


def _check_amount(amount: Any, currency: Any) -> None:
    if amount is None:
        raise invalid_request("Missing required param: amount.", param="amount", code="parameter_missing")
    if currency is None:
        raise invalid_request("Missing required param: currency.", param="currency", code="parameter_missing")
    value = to_int("amount", amount)
    minimum = MINIMUM_AMOUNTS.get(str(currency).lower(), 1)
    if value < minimum:
        raise invalid_request(
            f"Amount must be at least {minimum} {str(currency).lower()} cents.",
            param="amount",
            code="amount_too_small",
        )


def _charge_init(
    self: Charge,
    amount: Any = None,
    currency: Any = None,
    customer: Any = None,
    source: Any = None,
    receipt_email: Any = None,
    shipping: Any = None,
    transfer_group: Any = None,
    statement_descriptor_suffix: Any = None,
    radar_options: Any = None,
    **kwargs: Any,
) -> None:
    """Accept Stripe's test tokens as `source` (with or without `customer`)."""
    _check_amount(amount, currency)
    if isinstance(source, str) and source.startswith("tok_"):
        source = Token._api_retrieve(source).card.id
    if source is None and customer is not None:
        owner = Customer._api_retrieve(customer)
        if owner._get_default_payment_method_or_source() is None:
            raise invalid_request(
                "Cannot charge a customer that has no active card",
                param="card",
                code="missing",
            )
    self.receipt_email = receipt_email
    self.shipping = shipping
    self.transfer_group = transfer_group
    self.statement_descriptor_suffix = statement_descriptor_suffix
    _orig["charge_init"](self, amount=amount, currency=currency, customer=customer, source=source, **kwargs)


def _card_details(card: dict[str, Any], cvc_check: str | None) -> dict[str, Any]:
    return {
        "brand": card.get("brand"),
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": cvc_check,
        },
        "country": card.get("country"),
        "exp_month": card.get("exp_month"),
        "exp_year": card.get("exp_year"),
        "fingerprint": card.get("fingerprint"),
        "funding": card.get("funding"),
        "installments": None,
        "last4": card.get("last4"),
        "network": card.get("brand"),
        "three_d_secure": None,
        "wallet": None,
    }


def _describe_payment(charge: Charge) -> None:
    """Fill the card fields Stripe shows on every charge."""
    src = source_object(charge.payment_method)
    spec = card_spec(src)
    cvc_check = "fail" if spec and spec.decline and spec.decline.code == "incorrect_cvc" else "pass"
    charge.source = None
    charge.billing_details = {
        "address": None,
        "email": None,
        "name": None,
        "phone": None,
    }
    kind = getattr(src, "object", None)
    if kind == "payment_method" and src.type == "card":
        charge.payment_method_details = {
            "type": "card",
            "card": _card_details(src.card, cvc_check),
        }
        charge.billing_details.update(src.billing_details or {})
    elif kind == "payment_method":
        charge.payment_method_details = {
            "type": src.type,
            src.type: dict(getattr(src, src.type, {}) or {}),
        }
    elif kind == "card":
        card = {
            "brand": cards.brand(src._card_number),
            "country": src.country,
            "exp_month": src.exp_month,
            "exp_year": src.exp_year,
            "fingerprint": src.fingerprint,
            "funding": src.funding,
            "last4": src.last4,
        }
        charge.payment_method_details = {"type": "card", "card": _card_details(card, cvc_check)}
        charge.billing_details["name"] = src.name
        charge.source = src._export()
    elif kind == "source":
        charge.payment_method_details = {"type": src.type}
        charge.source = src._export()


def _initialize_charge(
    self: Charge,
    on_success: Any = None,
    on_failure_now: Any = None,
    on_failure_later: Any = None,
) -> None:
    """Outcome, card details and `charge.succeeded`, around localstripe's flow."""
    self.fraud_details = {}
    self.disputed = False
    self.dispute = None
    if self.payment_intent and self.description is None:
        intent = INDEX.get("payment_intent", self.payment_intent)
        self.description = getattr(intent, "description", None)
    _describe_payment(self)
    self.outcome = (
        cards.success_outcome(card_spec(source_object(self.payment_method)), self.id) if self._authorized else None
    )
    _orig["charge_initialize"](self, on_success, on_failure_now, on_failure_later)
    if self.status == "succeeded":
        emit("charge.succeeded", self, origin=self.id)


def _set_auth_failure(self: Charge) -> None:
    """Stripe: the failed charge records the card's own decline (not always card_declined)."""
    spec = card_spec(source_object(self.payment_method))
    decline = spec.decline if spec and spec.decline else cards.GENERIC
    self.status = "failed"
    self.failure_code = decline.code
    self.failure_message = decline.message
    self.outcome = decline.outcome(cards.risk_score(self.id, "highest" if decline.blocked else "normal"))
    if decline.blocked:
        self.fraud_details = {"stripe_report": "fraudulent"}
    self._decline = decline
    emit("charge.failed", self, origin=self.id)


def _raise_failure(self: Charge) -> None:
    decline = getattr(self, "_decline", cards.GENERIC)
    extra: dict[str, Any] = {"charge": self.id}
    if self.payment_intent:
        intent = INDEX.get("payment_intent", self.payment_intent)
        extra["payment_intent"] = intent._export() if intent else None
    raise card_error(decline, **extra)


def _charge_refunds(self: Charge) -> List:
    """`charge.refunds`, newest first, from the refunds-by-charge index."""
    li = List(f"/v1/charges/{self.id}/refunds")
    li._list = list(INDEX.objects("refund", "charge", self.id))
    return li


def _amount_refunded(self: Charge) -> int:
    return sum(
        refund.amount
        for refund in INDEX.objects("refund", "charge", self.id)
        if refund.status in ("succeeded", "pending")
    )


def _amount_captured(self: Charge) -> int:
    return self.amount if self.captured and self.status == "succeeded" else 0


# -- payment intents -------------------------------------------------------------


def _pi_init(
    self: PaymentIntent,
    payment_method: Any = None,
    description: Any = None,
    receipt_email: Any = None,
    statement_descriptor: Any = None,
    **kwargs: Any,
) -> None:
    """Stripe: `pm_card_...` test ids and `description` on PaymentIntents."""
    if isinstance(payment_method, str) and cards.magic_card_name(payment_method):
        payment_method = PaymentMethod._api_retrieve(payment_method).id
    self.description = description
    self.receipt_email = receipt_email
    self.statement_descriptor = statement_descriptor
    _orig["pi_init"](self, payment_method=payment_method, **kwargs)


def _pi_last_payment_error(self: PaymentIntent) -> Any:
    """Stripe: `last_payment_error` is the card error, with its `decline_code`."""
    error = _orig["pi_last_error"](self)
    charge = self.latest_charge
    decline = getattr(charge, "_decline", None)
    if error and decline is not None and charge.status == "failed":
        error = {
            **error,
            "type": "card_error",
            "decline_code": decline.decline_code,
            "doc_url": DOC_URL + decline.code.replace("_", "-"),
            "payment_method": {"id": charge.payment_method},
        }
    return error


# -- routes ----------------------------------------------------------------------


async def create_charge(request: web.Request) -> web.Response:
    """POST /v1/charges, refusing parameters Stripe does not know."""
    data = await read_params(request)
    expand = data.pop("expand", None)
    for name in data:
        if name not in CREATE_PARAMS:
            raise unknown_parameter(name)
    if "metadata" in data:
        data["metadata"] = metadata_param(data["metadata"])
    return json_response(Charge._api_create(**data)._export(expand=expand))


async def update_charge(request: web.Request) -> web.Response:
    """POST /v1/charges/{id}: Stripe's updatable fields, then `charge.updated`."""
    charge = Charge._api_retrieve(request.match_info["id"])
    data = await read_params(request)
    expand = data.pop("expand", None)
    for name in data:
        if name not in UPDATE_PARAMS:
            raise unknown_parameter(name)
    previous: dict[str, Any] = {}
    for name, value in data.items():
        old = getattr(charge, name, None)
        if name == "metadata":
            value = merged_metadata(old, value)
        elif name == "customer":
            value = string_param("customer", value)
            Customer._api_retrieve(value)
            if old not in (None, value):
                raise invalid_request("This charge already has a customer.", param="customer")
        if value != old:
            previous[name] = old
            setattr(charge, name, value)
    if previous:
        emit("charge.updated", charge, previous_attributes=previous)
    return json_response(charge._export(expand=expand))


def install() -> None:
    Card.__init__ = _card_init
    PaymentMethod.__init__ = _pm_init
    PaymentMethod._try_get_canonical_test_article = classmethod(_pm_magic)
    PaymentMethod._charging_is_declined = _charging_is_declined
    PaymentMethod._attaching_is_declined = _attaching_is_declined
    PaymentMethod._api_attach = classmethod(_pm_attach)
    Token._api_retrieve = classmethod(_token_retrieve)
    Customer._api_create = classmethod(_customer_create)
    Customer._api_add_source = classmethod(_add_source)
    Customer._api_remove_source = classmethod(_remove_source)
    Charge.__init__ = _charge_init
    Charge._initialize_charge = _initialize_charge
    Charge._set_auth_failure = _set_auth_failure
    Charge._raise_failure = _raise_failure
    Charge.refunds = property(_charge_refunds)
    Charge.amount_refunded = property(_amount_refunded)
    Charge.amount_captured = property(_amount_captured)
    PaymentIntent.__init__ = _pi_init
    PaymentIntent.last_payment_error = property(_pi_last_payment_error)


def routes() -> list[tuple[str, str, Any]]:
    """Charge routes, plus the attach and detach routes localstripe bound to its unpatched methods."""
    attach_routes = [
        ("POST", "/v1/customers/{id}/sources", Customer._api_add_source),
        ("POST", "/v1/customers/{id}/cards", Customer._api_add_source),
        ("DELETE", "/v1/customers/{id}/sources/{source_id}", Customer._api_remove_source),
        ("POST", "/v1/payment_methods/{id}/attach", PaymentMethod._api_attach),
    ]
    return [
        ("POST", "/v1/charges", create_charge),
        ("POST", "/v1/charges/{id}", update_charge),
        *((method, url, api_extra(func, url)) for method, url, func in attach_routes),
    ]
