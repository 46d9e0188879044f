"""Charges: decline codes, outcomes and card details per Stripe test card."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from sandbox import SandboxHandle
from tests.sandbox.helpers import charge

# token, card number, error code, decline code, failure message, outcome (type, network, reason, risk)
DECLINES = [
    (
        "tok_chargeDeclinedExpiredCard",
        "4000000000000069",
        "expired_card",
        "expired_card",
        "Your card has expired.",
        ("issuer_declined", "declined_by_network", "expired_card", "normal"),
    ),
    (
        "tok_chargeDeclinedInsufficientFunds",
        "4000000000009995",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
        ("issuer_declined", "declined_by_network", "insufficient_funds", "normal"),
    ),
    (
        "tok_radarBlock",
        "4100000000000019",
        "card_declined",
        "fraudulent",
        "Your card was declined.",
        ("blocked", "not_sent_to_network", "highest_risk_level", "highest"),
    ),
    (
        "tok_chargeDeclined",
        "4000000000000002",
        "card_declined",
        "generic_decline",
        "Your card was declined.",
        ("issuer_declined", "declined_by_network", "generic_decline", "normal"),
    ),
    (
        "tok_chargeDeclinedIncorrectCvc",
        "4000000000000127",
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
        ("issuer_declined", "declined_by_network", "incorrect_cvc", "normal"),
    ),
]


def card_token(client: stripe.StripeClient, number: str) -> str:
    token = client.v1.tokens.create(params={"card": {"number": number, "exp_month": 4, "exp_year": 2031, "cvc": "314"}})
    return token.id


def failed_charge(client: stripe.StripeClient, customer_id: str, source: str) -> stripe.CardError:
    with pytest.raises(stripe.CardError) as caught:
        charge(client, customer_id, 2500, source=source)
    return caught.value


@pytest.mark.parametrize(("token", "number", "code", "decline_code", "message", "outcome"), DECLINES)
@pytest.mark.parametrize("by", ["test token", "card number"])
def test_declines_make_a_failed_charge_and_a_card_error(
    client: stripe.StripeClient,
    customer: Any,
    by: str,
    token: str,
    number: str,
    code: str,
    decline_code: str,
    message: str,
    outcome: tuple[str, str, str, str],
) -> None:
    source = token if by == "test token" else card_token(client, number)
    error = failed_charge(client, customer.id, source)
    body = error.json_body["error"]
    assert error.http_status == 402
    assert (body["type"], body["code"], body["decline_code"], body["message"]) == (
        "card_error",
        code,
        decline_code,
        message,
    )
    assert error.code == code
    stored = client.v1.charges.retrieve(body["charge"])
    assert stored.status == "failed" and stored.paid is False
    assert stored.customer == customer.id
    assert (stored.failure_code, stored.failure_message) == (code, message)
    kind, network, reason, risk = outcome
    assert stored.outcome.type == kind
    assert stored.outcome.network_status == network
    assert stored.outcome.reason == reason
    assert stored.outcome.risk_level == risk
    assert isinstance(stored.outcome.risk_score, int) and stored.outcome.seller_message
    assert stored.payment_method_details.card.last4 == number[-4:]


def test_radar_block_is_marked_fraudulent(client: stripe.StripeClient, customer: Any) -> None:
    error = failed_charge(client, customer.id, "tok_radarBlock")
    stored = client.v1.charges.retrieve(error.json_body["error"]["charge"])
    assert stored.outcome.seller_message == "Stripe blocked this payment as too risky."
    assert stored.outcome.risk_score >= 75
    assert stored.fraud_details.to_dict() == {"stripe_report": "fraudulent"}


def test_success_has_an_authorized_outcome_and_card_details(client: stripe.StripeClient, customer: Any) -> None:
    paid = charge(client, customer.id, 4599, description="Order #1")
    assert paid.status == "succeeded" and paid.paid is True
    assert paid.outcome.type == "authorized"
    assert paid.outcome.network_status == "approved_by_network"
    assert paid.outcome.risk_level == "normal"
    card = paid.payment_method_details.card
    assert (card.brand, card.last4, card.exp_month) == ("visa", "4242", 12)
    assert card.exp_year > 2025
    assert paid.source.last4 == "4242" and paid.source.brand == "Visa"
    assert paid.amount_captured == 4599 and paid.amount_refunded == 0


def test_card_details_follow_the_card(client: stripe.StripeClient, customer: Any) -> None:
    paid = charge(client, customer.id, source=card_token(client, "5555555555554444"))
    card = paid.payment_method_details.card
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("mastercard", "4444", 4, 2031)


def test_issuer_declines_are_refused_when_saved(client: stripe.StripeClient, customer: Any) -> None:
    with pytest.raises(stripe.CardError) as caught:
        client.raw_request(
            "post",
            f"/v1/customers/{customer.id}/sources",
            source="tok_chargeDeclinedInsufficientFunds",
        )
    assert caught.value.json_body["error"]["decline_code"] == "insufficient_funds"
    assert "charge" not in caught.value.json_body["error"]


def test_charge_customer_fail_card_attaches_then_fails(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"source": "tok_chargeCustomerFail"})
    error = failed_charge(client, customer.id, customer.default_source)
    assert error.json_body["error"]["decline_code"] == "generic_decline"


def test_payment_intent_declines_carry_the_decline_code(client: stripe.StripeClient, customer: Any) -> None:
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_intents.create(
            params={
                "amount": 1500,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds",
                "confirm": True,
                "description": "Order #77",
            }
        )
    body = caught.value.json_body["error"]
    assert body["decline_code"] == "insufficient_funds"
    assert body["payment_intent"]["status"] == "requires_payment_method"
    assert body["payment_intent"]["last_payment_error"]["decline_code"] == "insufficient_funds"
    stored = client.v1.charges.retrieve(body["charge"])
    assert stored.customer == customer.id and stored.description == "Order #77"
    assert stored.payment_intent == body["payment_intent"]["id"]


def test_payment_intent_success(client: stripe.StripeClient, customer: Any) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    assert intent.status == "succeeded"
    paid = client.v1.charges.retrieve(intent.latest_charge["id"])
    assert paid.outcome.type == "authorized" and paid.payment_intent == intent.id


def test_charge_update_changes_allowed_fields_only(client: stripe.StripeClient, customer: Any) -> None:
    paid = charge(client, customer.id, metadata={"order_number": "12", "keep": "x"})
    updated = client.v1.charges.update(paid.id, params={"description": "Order #12", "metadata": {"order_number": ""}})
    assert updated.description == "Order #12"
    assert updated.metadata.to_dict() == {"keep": "x"}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.charges.update(paid.id, params={"amount": 1})
    assert caught.value.code == "parameter_unknown"


def test_stripe_validation_of_new_charges(client: stripe.StripeClient, customer: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as too_small:
        charge(client, customer.id, 10)
    assert too_small.value.code == "amount_too_small"
    bare = client.v1.customers.create(params={"name": "No card"})
    with pytest.raises(stripe.InvalidRequestError) as no_card:
        charge(client, bare.id)
    assert no_card.value.json_body["error"]["param"] == "card"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        charge(client, customer.id, colour="red")
    assert unknown.value.user_message == "Received unknown parameter: colour"


def test_unknown_routes_answer_stripe_json(sandbox: SandboxHandle, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.raw_request("get", "/v1/nothing_here")
    assert caught.value.http_status == 404
    assert caught.value.user_message.startswith("Unrecognized request URL (GET: /v1/nothing_here)")
