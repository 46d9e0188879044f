"""What Billy relies on Stripe to do, checked against the sandbox and, when a test-mode key is
given (`BILLY_STRIPE_TEST_KEY=sk_test_…`), against real Stripe with the very same assertions.

If the sandbox and Stripe ever disagree, one of these fails on the real run: the sandbox
is then lying, and every other test that trusts it is suspect.
"""

from __future__ import annotations

import secrets

import pytest
import stripe


def _charge(client: stripe.StripeClient, token: str, amount: int = 4599) -> stripe.Charge:
    return client.v1.charges.create(
        params={"amount": amount, "currency": "usd", "source": token, "description": "Order #5678"}
    )


@pytest.mark.parametrize(
    ("token", "code", "decline_code", "outcome_type"),
    [
        ("tok_chargeDeclinedExpiredCard", "expired_card", "expired_card", "issuer_declined"),
        ("tok_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds", "issuer_declined"),
        # Stripe's Radar test token (docs: radar/testing): highest risk, always blocked.
        ("tok_chargeDeclinedFraudulent", "card_declined", "fraudulent", "blocked"),
    ],
)
def test_declined_charges_carry_code_decline_code_and_outcome(
    stripe_client: stripe.StripeClient, token: str, code: str, decline_code: str | None, outcome_type: str
) -> None:
    with pytest.raises(stripe.CardError) as declined:
        _charge(stripe_client, token)
    assert declined.value.code == code
    if decline_code:
        assert (declined.value.error.decline_code if declined.value.error else None) == decline_code
    failed = stripe_client.v1.charges.retrieve(declined.value.error.charge)  # type: ignore[union-attr, arg-type]
    assert failed.status == "failed" and failed.failure_code == code
    assert failed.outcome is not None and failed.outcome.type == outcome_type


def test_successful_charge_is_authorized_with_card_details(stripe_client: stripe.StripeClient) -> None:
    charge = _charge(stripe_client, "tok_visa")
    assert (charge.status, charge.paid, charge.amount_refunded) == ("succeeded", True, 0)
    assert charge.outcome is not None and charge.outcome.type == "authorized"
    card = charge.to_dict().get("payment_method_details", {}).get("card") or charge.to_dict().get("source")
    assert card["last4"] == "4242" and card["brand"].lower() == "visa"


def test_refund_limits(stripe_client: stripe.StripeClient) -> None:
    charge = _charge(stripe_client, "tok_visa")
    stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 4000, "reason": "requested_by_customer"})
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 600})
    assert too_much.value.code == "amount_too_large"
    assert "is greater than unrefunded amount on charge ($5.99)" in str(too_much.value.user_message)
    rest = stripe_client.v1.refunds.create(params={"charge": charge.id})
    assert rest.amount == 599
    with pytest.raises(stripe.InvalidRequestError) as again:
        stripe_client.v1.refunds.create(params={"charge": charge.id})
    assert again.value.code == "charge_already_refunded"
    after = stripe_client.v1.charges.retrieve(charge.id)
    assert (after.amount_refunded, after.refunded) == (4599, True)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.refunds.create(params={"charge": charge.id, "reason": "because"})


def test_idempotent_refund_replays_instead_of_refunding_twice(stripe_client: stripe.StripeClient) -> None:
    charge = _charge(stripe_client, "tok_visa")
    key = secrets.token_urlsafe(16)
    first = stripe_client.v1.refunds.create(
        params={"charge": charge.id, "amount": 500}, options={"idempotency_key": key}
    )
    second = stripe_client.v1.refunds.create(
        params={"charge": charge.id, "amount": 500}, options={"idempotency_key": key}
    )
    assert first.id == second.id
    assert second.last_response is not None and second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert stripe_client.v1.charges.retrieve(charge.id).amount_refunded == 500
    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 700}, options={"idempotency_key": key})


def test_lists_are_newest_first_and_refuse_unknown_cursors(stripe_client: stripe.StripeClient) -> None:
    ids = [stripe_client.v1.customers.create(params={"email": f"list{i}@example.com"}).id for i in range(3)]
    page = stripe_client.v1.customers.list(params={"limit": 2})
    assert [c.id for c in page.data] == [ids[2], ids[1]] and page.has_more
    rest = stripe_client.v1.customers.list(params={"limit": 2, "starting_after": ids[1]})
    assert rest.data[0].id == ids[0]
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        stripe_client.v1.customers.list(params={"starting_after": "cus_doesnotexist000"})
    assert unknown.value.code == "resource_missing"


def test_a_page_read_as_plain_json_is_the_sdks_page_and_raises_the_sdks_errors(
    stripe_client: stripe.StripeClient,
) -> None:
    """Billy reads list pages past the SDK's parser (`get_json`, orjson): the same objects as
    `raw_request` gives, as plain dicts, with Stripe's clock in the headers; a refused request
    raises the SDK's own error, which the read retries and the refusal messages are built on."""
    from services.stripe_gateway import get_json

    for i in range(2):
        stripe_client.v1.customers.create(params={"email": f"plain{i}@example.com", "name": "Zoë Ünïcode"})
    query = {"limit": 2, "expand": ["data.sources"]}
    page = get_json(stripe_client, "/v1/customers", query)
    assert page.data == stripe_client.raw_request("get", "/v1/customers", **query).data
    assert type(page.data) is dict and type(page.data["data"][0]) is dict
    assert page.data["data"][0]["name"] == "Zoë Ünïcode"
    assert page.headers.get("date")  # read_stamp's source, whatever the case
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        get_json(stripe_client, "/v1/customers", {"starting_after": "cus_doesnotexist000"})
    assert unknown.value.code == "resource_missing" and unknown.value.param == "starting_after"


def test_charges_and_refunds_emit_events(stripe_client: stripe.StripeClient) -> None:
    charge = _charge(stripe_client, "tok_visa")
    refund = stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 100})
    events = stripe_client.v1.events.list(params={"limit": 20}).data
    seen = {(e.type, e.data.object["id"]) for e in events}
    assert ("charge.succeeded", charge.id) in seen
    assert ("charge.refunded", charge.id) in seen
    assert ("refund.created", refund.id) in seen
    created = [e.created for e in events]
    assert created == sorted(created, reverse=True)
