"""What the catalogue relies on Stripe to do with products and prices, checked against the sandbox
and, when a test-mode key is given (`BILLY_STRIPE_TEST_KEY=sk_test_…`), against real Stripe with
the very same assertions (as tests/test_stripe_contract.py does for charges and refunds).

If the two disagree, the real run fails here: the sandbox (sandbox/products.py, sandbox/prices.py)
is then wrong, and so is every catalogue test that trusts it.
"""

from __future__ import annotations

import secrets

import pytest
import stripe


def _product(client: stripe.StripeClient, **params: object) -> stripe.Product:
    return client.v1.products.create(params={"name": f"Billy contract {secrets.token_hex(4)}", **params})  # type: ignore[arg-type]


def test_a_product_is_created_renamed_described_and_archived(stripe_client: stripe.StripeClient) -> None:
    made = _product(stripe_client, description="First words")
    assert (made.object, made.active, made.description, made.default_price) == ("product", True, "First words", None)
    assert made.updated >= made.created
    renamed = stripe_client.v1.products.update(made.id, params={"name": "Billy contract renamed", "description": ""})
    assert (renamed.name, renamed.description) == ("Billy contract renamed", None)  # "" unsets the description
    archived = stripe_client.v1.products.update(made.id, params={"active": False})
    assert archived.active is False
    assert stripe_client.v1.products.retrieve(made.id).active is False


def test_a_products_name_cannot_be_unset(stripe_client: stripe.StripeClient) -> None:
    made = _product(stripe_client)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe_client.v1.products.update(made.id, params={"name": ""})
    assert refused.value.http_status == 400
    assert stripe_client.v1.products.retrieve(made.id).name == made.name


def test_updating_a_product_that_does_not_exist_is_404_resource_missing(stripe_client: stripe.StripeClient) -> None:
    """Billy learns whether its key may write products by updating an id that cannot exist."""
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe_client.v1.products.update("prod_billyprobe", params={})
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as missing_price:
        stripe_client.v1.prices.update("price_billyprobe", params={})
    assert (missing_price.value.http_status, missing_price.value.code) == (404, "resource_missing")


def test_archiving_a_product_leaves_its_prices_active(stripe_client: stripe.StripeClient) -> None:
    made = _product(stripe_client)
    price = stripe_client.v1.prices.create(
        params={"product": made.id, "unit_amount": 4900, "currency": "usd", "recurring": {"interval": "month"}}
    )
    stripe_client.v1.products.update(made.id, params={"active": False})
    assert stripe_client.v1.prices.retrieve(price.id).active is True


def test_prices_in_usd_and_jpy_recurring_and_one_off(stripe_client: stripe.StripeClient) -> None:
    made = _product(stripe_client)
    quarterly = stripe_client.v1.prices.create(
        params={
            "product": made.id,
            "unit_amount": 2500,
            "currency": "usd",
            "recurring": {"interval": "month", "interval_count": 3},
            "nickname": "Quarterly",
        }
    )
    assert (quarterly.type, quarterly.unit_amount, quarterly.currency, quarterly.nickname) == (
        "recurring",
        2500,
        "usd",
        "Quarterly",
    )
    assert quarterly.recurring is not None
    assert (quarterly.recurring.interval, quarterly.recurring.interval_count) == ("month", 3)
    yen = stripe_client.v1.prices.create(params={"product": made.id, "unit_amount": 5000, "currency": "jpy"})
    assert (yen.type, yen.unit_amount, yen.currency, yen.recurring) == ("one_time", 5000, "jpy", None)
    longest = stripe_client.v1.prices.create(
        params={
            "product": made.id,
            "unit_amount": 100,
            "currency": "usd",
            "recurring": {"interval": "year", "interval_count": 3},
        }
    )
    assert longest.recurring is not None and longest.recurring.interval_count == 3


def test_billing_more_rarely_than_every_three_years_is_refused(stripe_client: stripe.StripeClient) -> None:
    made = _product(stripe_client)
    for interval, count in (("year", 4), ("month", 37), ("week", 157), ("day", 1096)):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            stripe_client.v1.prices.create(
                params={
                    "product": made.id,
                    "unit_amount": 100,
                    "currency": "usd",
                    "recurring": {"interval": interval, "interval_count": count},
                }
            )
        assert refused.value.http_status == 400


def test_a_prices_amount_cannot_be_changed(stripe_client: stripe.StripeClient) -> None:
    made = _product(stripe_client)
    price = stripe_client.v1.prices.create(params={"product": made.id, "unit_amount": 4900, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe_client.v1.prices.update(price.id, params={"unit_amount": 100})  # type: ignore[typeddict-unknown-key]
    assert "unit_amount" in str(refused.value.user_message)
    assert stripe_client.v1.prices.retrieve(price.id).unit_amount == 4900


def test_the_same_idempotency_key_creates_one_product_and_one_price(stripe_client: stripe.StripeClient) -> None:
    key = secrets.token_urlsafe(16)
    name = f"Billy contract {secrets.token_hex(4)}"
    first = stripe_client.v1.products.create(params={"name": name}, options={"idempotency_key": key})
    second = stripe_client.v1.products.create(params={"name": name}, options={"idempotency_key": key})
    assert first.id == second.id
    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.products.create(params={"name": name + " other"}, options={"idempotency_key": key})
    price_key = secrets.token_urlsafe(16)
    params = {"product": first.id, "unit_amount": 900, "currency": "usd"}
    one = stripe_client.v1.prices.create(params=params, options={"idempotency_key": price_key})  # type: ignore[arg-type]
    two = stripe_client.v1.prices.create(params=params, options={"idempotency_key": price_key})  # type: ignore[arg-type]
    assert one.id == two.id
    assert [p.id for p in stripe_client.v1.prices.list(params={"product": first.id}).data] == [one.id]


def test_product_and_price_changes_are_announced(stripe_client: stripe.StripeClient) -> None:
    made = _product(stripe_client)
    stripe_client.v1.products.update(made.id, params={"name": "Billy contract announced"})
    price = stripe_client.v1.prices.create(params={"product": made.id, "unit_amount": 100, "currency": "usd"})
    events = stripe_client.v1.events.list(params={"limit": 20}).data
    seen = {(e.type, e.data.object["id"]) for e in events}
    assert {("product.created", made.id), ("product.updated", made.id), ("price.created", price.id)} <= seen
    (updated,) = [e for e in events if e.type == "product.updated" and e.data.object["id"] == made.id]
    assert updated.data.to_dict()["previous_attributes"]["name"] == made.name
