"""Refunds: Stripe's amount checks, reasons, metadata, lists and the charge's totals."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.sandbox.helpers import charge, raw_json


@pytest.fixture
def paid(client: stripe.StripeClient, customer: Any) -> Any:
    return charge(client, customer.id, 4599, description="Order #5678")


def refund(client: stripe.StripeClient, charge_id: str, **params: Any) -> Any:
    return client.v1.refunds.create(params={"charge": charge_id, **params})


def refusal(client: stripe.StripeClient, charge_id: str, **params: Any) -> dict[str, Any]:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        refund(client, charge_id, **params)
    assert caught.value.http_status == 400
    return caught.value.json_body["error"]


def test_partial_then_the_rest(client: stripe.StripeClient, paid: Any) -> None:
    first = refund(client, paid.id, amount=1000, reason="requested_by_customer", metadata={"ticket": "T-1"})
    assert (first.amount, first.currency, first.charge, first.status) == (1000, "usd", paid.id, "succeeded")
    assert first.reason == "requested_by_customer" and first.metadata.to_dict() == {"ticket": "T-1"}
    assert first.id.startswith("re_") and first.payment_intent is None
    halfway = client.v1.charges.retrieve(paid.id)
    assert (halfway.amount_refunded, halfway.refunded) == (1000, False)
    rest = refund(client, paid.id)
    assert rest.amount == 3599 and rest.reason is None
    done = client.v1.charges.retrieve(paid.id)
    assert (done.amount_refunded, done.refunded) == (4599, True)
    assert [r.id for r in done.refunds.data] == [rest.id, first.id]


def test_over_refund_is_refused(client: stripe.StripeClient, paid: Any) -> None:
    refund(client, paid.id, amount=4000)
    error = refusal(client, paid.id, amount=600)
    assert error["code"] == "amount_too_large" and error["param"] == "amount"
    assert error["message"] == ("Refund amount ($6.00) is greater than unrefunded amount on charge ($5.99)")
    assert client.v1.charges.retrieve(paid.id).amount_refunded == 4000


def test_refunding_a_refunded_charge_is_refused(client: stripe.StripeClient, paid: Any) -> None:
    refund(client, paid.id)
    for params in ({}, {"amount": 100}):
        error = refusal(client, paid.id, **params)
        assert error["code"] == "charge_already_refunded"
        assert error["message"] == f"Charge {paid.id} has already been refunded."


@pytest.mark.parametrize("amount", [0, -5])
def test_amount_must_be_positive(client: stripe.StripeClient, paid: Any, amount: int) -> None:
    error = refusal(client, paid.id, amount=amount)
    assert error["param"] == "amount"


@pytest.mark.parametrize("reason", ["duplicate", "fraudulent", "requested_by_customer"])
def test_stripe_reasons_are_accepted(client: stripe.StripeClient, paid: Any, reason: str) -> None:
    assert refund(client, paid.id, amount=100, reason=reason).reason == reason


@pytest.mark.parametrize("reason", ["expired_uncaptured_charge", "changed_mind"])
def test_other_reasons_are_refused(client: stripe.StripeClient, paid: Any, reason: str) -> None:
    error = refusal(client, paid.id, reason=reason)
    assert error["param"] == "reason"
    assert error["message"] == ("Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer")


def test_failed_and_unknown_charges_cannot_be_refunded(client: stripe.StripeClient, customer: Any) -> None:
    with pytest.raises(stripe.CardError) as caught:
        charge(client, customer.id, source="tok_chargeDeclined")
    assert refusal(client, caught.value.json_body["error"]["charge"])["code"] == "charge_not_refundable"
    missing = refusal(client, "ch_doesnotexist")
    assert (missing["code"], missing["param"]) == ("resource_missing", "charge")


def test_list_retrieve_and_update(client: stripe.StripeClient, customer: Any, paid: Any) -> None:
    other = charge(client, customer.id, 2000)
    mine = refund(client, paid.id, amount=500)
    theirs = refund(client, other.id, amount=700)
    assert [r.id for r in client.v1.refunds.list().data] == [theirs.id, mine.id]
    assert [r.id for r in client.v1.refunds.list(params={"charge": paid.id}).data] == [mine.id]
    assert client.v1.refunds.retrieve(mine.id).amount == 500
    updated = client.v1.refunds.update(mine.id, params={"metadata": {"note": "late"}})
    assert updated.metadata.to_dict() == {"note": "late"}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.update(mine.id, params={"amount": 1})
    listed = raw_json(client, "get", f"/v1/charges/{paid.id}/refunds")
    assert [r["id"] for r in listed["data"]] == [mine.id]


def test_payment_intent_refunds_name_the_intent(client: stripe.StripeClient, customer: Any) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 3000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    made = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1000})
    assert made.payment_intent == intent.id
    assert made.charge == intent.latest_charge["id"]
