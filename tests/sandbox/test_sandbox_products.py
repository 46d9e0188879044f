"""Products: create, retrieve, update (name, description, archive), list filters, delete, events."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from sandbox import SandboxHandle
from tests.sandbox.helpers import ids, make_client


def _events(client: stripe.StripeClient, kind: str) -> list[Any]:
    return list(client.v1.events.list(params={"type": kind, "limit": 100}).data)


def test_create_answers_in_stripes_current_shape_and_announces_it(client: stripe.StripeClient) -> None:
    made = client.v1.products.create(
        params={"name": "Team", "description": "For small teams", "metadata": {"tier": "2"}, "unit_label": "seat"}
    )
    assert made.id.startswith("prod_") and made.object == "product"
    assert (made.name, made.description, made.active, made.unit_label) == ("Team", "For small teams", True, "seat")
    assert made.metadata.to_dict() == {"tier": "2"} and made.updated == made.created
    body = made.to_dict()
    assert {"caption", "attributes"}.isdisjoint(body) and body["default_price"] is None and body["images"] == []
    assert client.v1.products.retrieve(made.id).name == "Team"
    (created,) = _events(client, "product.created")
    assert created.data.object["id"] == made.id and created.data.object["name"] == "Team"
    assert "caption" not in created.data.object.to_dict()


@pytest.mark.parametrize(
    ("params", "message", "param"),
    [
        ({}, "Missing required param: name.", "name"),
        ({"name": "   "}, "'name' cannot be unset", "name"),
        ({"name": "Team", "colour": "red"}, "Received unknown parameter: colour", "colour"),
        ({"name": "Team", "active": "maybe"}, "Invalid boolean: maybe", "active"),
        ({"name": "Team", "statement_descriptor": "x" * 23}, "at most 22 characters", "statement_descriptor"),
        (
            {"name": "Team", "default_price_data": {"currency": "usd", "unit_amount": 100}},
            "POST /v1/prices",
            "default_price_data",
        ),
    ],
)
def test_create_is_validated(client: stripe.StripeClient, params: dict[str, Any], message: str, param: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.products.create(params=params)
    assert caught.value.http_status == 400 and message in str(caught.value.user_message)
    assert caught.value.param == param
    assert _events(client, "product.created") == []


def test_a_custom_id_is_used_once(client: stripe.StripeClient) -> None:
    assert client.v1.products.create(params={"id": "prod_gold", "name": "Gold"}).id == "prod_gold"
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.products.create(params={"id": "prod_gold", "name": "Gold again"})
    assert again.value.code == "resource_already_exists"


def test_update_renames_describes_and_archives_with_previous_attributes(client: stripe.StripeClient) -> None:
    made = client.v1.products.create(params={"name": "Team", "description": "Old words"})
    renamed = client.v1.products.update(made.id, params={"name": "Team plan", "description": "New words"})
    assert (renamed.name, renamed.description, renamed.active) == ("Team plan", "New words", True)
    archived = client.v1.products.update(made.id, params={"active": "false"})
    assert archived.active is False  # a boolean, not the string localstripe kept
    cleared = client.v1.products.update(made.id, params={"description": ""})
    assert cleared.description is None and cleared.name == "Team plan"
    restored = client.v1.products.update(made.id, params={"active": True})
    assert restored.active is True
    changes = [e.data.to_dict().get("previous_attributes", {}) for e in reversed(_events(client, "product.updated"))]
    assert [{k: v for k, v in c.items() if k != "updated"} for c in changes] == [
        {"name": "Team", "description": "Old words"},
        {"active": True},
        {"description": "New words"},
        {"active": False},
    ]


def test_an_update_that_changes_nothing_is_not_announced(client: stripe.StripeClient) -> None:
    made = client.v1.products.create(params={"name": "Team"})
    same = client.v1.products.update(made.id, params={"name": "Team", "active": True})
    assert same.name == "Team" and _events(client, "product.updated") == []


def test_update_refuses_what_stripe_refuses(client: stripe.StripeClient) -> None:
    made = client.v1.products.create(params={"name": "Team"})
    with pytest.raises(stripe.InvalidRequestError, match="'name' cannot be unset"):
        client.v1.products.update(made.id, params={"name": ""})
    with pytest.raises(stripe.InvalidRequestError, match="Received unknown parameter: unit_amount"):
        client.v1.products.update(made.id, params={"unit_amount": 100})
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.products.update("prod_nothing", params={"name": "X"})
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    assert "No such product: 'prod_nothing'" in str(missing.value.user_message)
    assert client.v1.products.retrieve(made.id).name == "Team"


def test_archiving_a_product_leaves_its_prices_as_they_are(client: stripe.StripeClient) -> None:
    made = client.v1.products.create(params={"name": "Team"})
    price = client.v1.prices.create(
        params={"product": made.id, "unit_amount": 4900, "currency": "usd", "recurring": {"interval": "month"}}
    )
    client.v1.products.update(made.id, params={"active": False})
    assert client.v1.prices.retrieve(price.id).active is True


def test_a_default_price_must_be_the_products_own_active_price(client: stripe.StripeClient) -> None:
    made = client.v1.products.create(params={"name": "Team"})
    other = client.v1.products.create(params={"name": "Other"})
    own = client.v1.prices.create(params={"product": made.id, "unit_amount": 100, "currency": "usd"})
    foreign = client.v1.prices.create(params={"product": other.id, "unit_amount": 100, "currency": "usd"})
    assert client.v1.products.update(made.id, params={"default_price": own.id}).default_price == own.id
    with pytest.raises(stripe.InvalidRequestError, match="belong to this product"):
        client.v1.products.update(made.id, params={"default_price": foreign.id})


def test_list_is_newest_first_and_filters(client: stripe.StripeClient) -> None:
    first = client.v1.products.create(params={"name": "One", "url": "https://example.com/one"})
    second = client.v1.products.create(params={"name": "Two", "active": False})
    third = client.v1.products.create(params={"name": "Three", "shippable": True})
    assert ids(client.v1.products.list()) == [third.id, second.id, first.id]
    assert ids(client.v1.products.list(params={"active": True})) == [third.id, first.id]
    assert ids(client.v1.products.list(params={"active": False})) == [second.id]
    assert ids(client.v1.products.list(params={"ids": [first.id, second.id]})) == [second.id, first.id]
    assert ids(client.v1.products.list(params={"url": "https://example.com/one"})) == [first.id]
    assert ids(client.v1.products.list(params={"shippable": True})) == [third.id]
    page = client.v1.products.list(params={"limit": 2})
    assert page.has_more and ids(client.v1.products.list(params={"starting_after": page.data[-1].id})) == [first.id]
    listed = client.v1.products.list().data[0].to_dict()
    assert "updated" in listed and "caption" not in listed


def test_products_made_with_a_price_show_in_the_current_shape(client: stripe.StripeClient) -> None:
    price = client.v1.prices.create(params={"product_data": {"name": "Setup"}, "unit_amount": 100, "currency": "usd"})
    made = client.v1.products.retrieve(price.product)
    assert made.name == "Setup" and made.updated == made.created and made.active is True


def test_delete_only_without_prices(client: stripe.StripeClient) -> None:
    empty = client.v1.products.create(params={"name": "Empty"})
    priced = client.v1.products.create(params={"name": "Priced"})
    client.v1.prices.create(params={"product": priced.id, "unit_amount": 100, "currency": "usd"})
    assert client.v1.products.delete(empty.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError, match="has one or more user-created prices"):
        client.v1.products.delete(priced.id)
    assert [e.data.object["id"] for e in _events(client, "product.deleted")] == [empty.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.retrieve(empty.id)


def test_a_restricted_key_needs_products_write_to_change_them(sandbox: SandboxHandle) -> None:
    reader = make_client(sandbox, sandbox.create_restricted_key(permissions={"product": "read"}))
    writer = make_client(sandbox, sandbox.create_restricted_key(permissions={"product": "write"}))
    made = writer.v1.products.create(params={"name": "Team"})
    assert reader.v1.products.retrieve(made.id).name == "Team"
    with pytest.raises(stripe.PermissionError, match="rak_product_write"):
        reader.v1.products.update(made.id, params={"name": "Nope"})
    with pytest.raises(stripe.PermissionError, match="rak_product_write"):
        reader.v1.products.create(params={"name": "Nope"})


def test_the_same_idempotency_key_creates_one_product(client: stripe.StripeClient) -> None:
    key = "product-create-key-0001"
    first = client.v1.products.create(params={"name": "Once"}, options={"idempotency_key": key})
    second = client.v1.products.create(params={"name": "Once"}, options={"idempotency_key": key})
    assert first.id == second.id and len(client.v1.products.list().data) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.products.create(params={"name": "Twice"}, options={"idempotency_key": key})
