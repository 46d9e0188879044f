"""Prices (and Plans, their older name): create, retrieve, update, list filters, events."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.sandbox.helpers import ids


@pytest.fixture
def product(client: stripe.StripeClient) -> Any:
    return client.v1.products.create(params={"name": "Team"})


def monthly(client: stripe.StripeClient, product: Any, amount: int = 4900, **params: Any) -> Any:
    return client.v1.prices.create(
        params={
            "product": product.id,
            "unit_amount": amount,
            "currency": "usd",
            "recurring": {"interval": "month"},
            **params,
        }
    )


def test_create_and_retrieve_recurring_and_one_time(client: stripe.StripeClient, product: Any) -> None:
    price = monthly(client, product, nickname="Team monthly", lookup_key="team_monthly")
    assert price.id.startswith("price_") and price.object == "price"
    assert (price.product, price.unit_amount, price.currency, price.active) == (product.id, 4900, "usd", True)
    assert price.type == "recurring" and str(price.unit_amount_decimal) == "4900"
    assert price.recurring.to_dict() == {
        "interval": "month",
        "interval_count": 1,
        "meter": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }
    assert (price.nickname, price.lookup_key) == ("Team monthly", "team_monthly")
    once = client.v1.prices.create(params={"product_data": {"name": "Setup"}, "unit_amount": 25000, "currency": "USD"})
    assert once.type == "one_time" and once.recurring is None and once.currency == "usd"
    made = client.v1.products.retrieve(once.product)
    assert made.name == "Setup"
    fetched = client.v1.prices.retrieve(price.id, params={"expand": ["product"]})
    assert fetched.unit_amount == 4900 and fetched.product.name == "Team"


@pytest.mark.parametrize(
    ("params", "message", "param"),
    [
        ({"unit_amount": 100, "currency": "usd"}, "You must specify either `product` or `product_data`", "product"),
        ({"product": "prod_nothing", "unit_amount": 100, "currency": "usd"}, "No such product: 'prod_nothing'", None),
        ({"unit_amount": 100}, "Missing required param: currency.", "currency"),
        ({"currency": "usd"}, "Missing required param: unit_amount.", "unit_amount"),
        (
            {"unit_amount": 100, "currency": "usd", "recurring": {"interval": "fortnight"}},
            "Invalid recurring[interval]: must be one of day, week, month, or year",
            "recurring[interval]",
        ),
        ({"unit_amount": 100, "currency": "usd", "colour": "red"}, "Received unknown parameter: colour", "colour"),
    ],
)
def test_create_is_validated(
    client: stripe.StripeClient, product: Any, params: dict[str, Any], message: str, param: str | None
) -> None:
    if "product" not in params and param != "product":
        params = {**params, "product": product.id}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create(params=params)
    assert caught.value.http_status == 400
    assert message in caught.value.user_message
    if param:
        assert caught.value.param == param


def test_unknown_price_is_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.retrieve("price_nothing")
    assert caught.value.http_status == 404 and caught.value.code == "resource_missing"
    assert caught.value.user_message == "No such price: 'price_nothing'"


def test_update_changes_only_descriptive_fields_and_emits_event(client: stripe.StripeClient, product: Any) -> None:
    price = monthly(client, product)
    updated = client.v1.prices.update(price.id, params={"active": False, "metadata": {"tier": "b"}})
    assert updated.active is False and updated.metadata.to_dict() == {"tier": "b"} and updated.unit_amount == 4900
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.update(price.id, params={"unit_amount": 1})
    assert caught.value.user_message == "Received unknown parameter: unit_amount"
    event = client.v1.events.list(params={"type": "price.updated"}).data[0]
    assert event.data.object.id == price.id and event.data.object.active is False
    assert event.data.previous_attributes.to_dict() == {"active": True, "metadata": {}}
    assert [e.type for e in client.v1.events.list(params={"type": "price.*"}).data] == [
        "price.updated",
        "price.created",
    ]


def test_list_newest_first_with_filters(client: stripe.StripeClient, product: Any) -> None:
    other = client.v1.products.create(params={"name": "Other"})
    a = monthly(client, product)
    b = client.v1.prices.create(
        params={"product": product.id, "unit_amount": 49000, "currency": "usd", "recurring": {"interval": "year"}}
    )
    c = monthly(client, other, 900, active=False)
    d = client.v1.prices.create(params={"product": other.id, "unit_amount": 500, "currency": "eur"})
    assert ids(client.v1.prices.list()) == [d.id, c.id, b.id, a.id]
    assert ids(client.v1.prices.list(params={"product": product.id})) == [b.id, a.id]
    assert ids(client.v1.prices.list(params={"active": False})) == [c.id]
    assert ids(client.v1.prices.list(params={"active": True, "product": other.id})) == [d.id]
    assert ids(client.v1.prices.list(params={"type": "one_time"})) == [d.id]
    assert ids(client.v1.prices.list(params={"recurring": {"interval": "year"}})) == [b.id]
    assert ids(client.v1.prices.list(params={"currency": "eur"})) == [d.id]
    page = client.v1.prices.list(params={"limit": 2})
    assert ids(page) == [d.id, c.id] and page.has_more


def test_plans_are_recurring_prices(client: stripe.StripeClient, product: Any) -> None:
    plan = client.v1.plans.create(
        params={"amount": 2000, "currency": "usd", "interval": "month", "product": product.id, "nickname": "Old"}
    )
    assert plan.object == "plan" and (plan.amount, plan.interval, plan.interval_count) == (2000, "month", 1)
    price = client.v1.prices.retrieve(plan.id)
    assert (price.unit_amount, price.recurring.interval, price.nickname) == (2000, "month", "Old")
    once = client.v1.prices.create(params={"product": product.id, "unit_amount": 100, "currency": "usd"})
    assert ids(client.v1.plans.list()) == [plan.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.plans.retrieve(once.id)
    types = [e.type for e in client.v1.events.list(params={"limit": 3}).data]
    assert types == ["price.created", "price.created", "plan.created"]
