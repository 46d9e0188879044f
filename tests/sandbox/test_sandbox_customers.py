"""POST /v1/customers/{id} as Stripe answers it: empty values unset, metadata merges,
`customer.updated` with `previous_attributes`, and a no-op update sends no event."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from sandbox import DEMO_RESTRICTED_KEY, SandboxHandle
from tests.sandbox.helpers import make_client

ADDRESS = {"line1": "1 Main St", "line2": "Flat 2", "city": "Springfield", "state": "IL", "postal_code": "62701"}


def _updated_events(client: stripe.StripeClient, customer_id: str) -> list[Any]:
    events = client.v1.events.list(params={"type": "customer.updated", "limit": 100}).data
    return [e for e in events if e.data.object["id"] == customer_id]


def test_update_sets_unsets_and_reports_previous_attributes(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(
        params={"name": "Ada", "email": "ada@example.com", "phone": "+1 555 0100", "metadata": {"tier": "gold"}}
    )
    updated = client.v1.customers.update(
        customer.id,
        params={
            "name": "Ada Lovelace",
            "phone": "",  # Stripe: an empty value unsets the field
            "description": "VIP",
            "address": {**ADDRESS, "country": "US"},
            "metadata": {"tier": "", "region": "emea"},  # "" removes one key, others merge
        },
    )
    assert (updated.name, updated.phone, updated.description, updated.email) == (
        "Ada Lovelace",
        None,
        "VIP",
        "ada@example.com",
    )
    assert updated.address.to_dict() == {**ADDRESS, "country": "US"}
    assert updated.metadata.to_dict() == {"region": "emea"}
    again = client.v1.customers.retrieve(customer.id)
    assert again.name == "Ada Lovelace" and again.metadata.to_dict() == {"region": "emea"}

    (event,) = _updated_events(client, customer.id)
    previous = event.data.previous_attributes.to_dict()
    assert previous["name"] == "Ada" and previous["phone"] == "+1 555 0100"
    assert previous["metadata"] == {"tier": "gold"} and previous["address"] is None
    assert "email" not in previous


def test_the_address_is_replaced_whole_and_can_be_unset(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"address": {**ADDRESS, "country": "US"}})
    moved = client.v1.customers.update(customer.id, params={"address": {"line1": "9 Elm Rd", "country": "GB"}})
    assert moved.address.to_dict() == {
        "line1": "9 Elm Rd",
        "line2": None,
        "city": None,
        "state": None,
        "postal_code": None,
        "country": "GB",
    }
    assert client.v1.customers.update(customer.id, params={"address": ""}).address is None


def test_an_update_that_changes_nothing_sends_no_event(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"name": "Same"})
    client.v1.customers.update(customer.id, params={"name": "Same"})
    assert _updated_events(client, customer.id) == []


def test_unknown_address_parts_are_refused_and_nothing_changes(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"name": "Before"})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.customers.update(customer.id, params={"name": "After", "address": {"planet": "Mars"}})
    assert "Received unknown parameter: address[planet]" in str(refused.value)
    assert client.v1.customers.retrieve(customer.id).name == "Before"


def test_other_parameters_still_reach_localstripes_update(client: stripe.StripeClient, customer: Any) -> None:
    card = client.v1.customers.payment_sources.create(customer.id, params={"source": "tok_mastercard"})
    updated = client.v1.customers.update(customer.id, params={"default_source": card.id, "name": "Card Holder"})
    assert (updated.default_source, updated.name) == (card.id, "Card Holder")


def test_a_key_without_customer_write_is_refused_with_stripes_403(sandbox: SandboxHandle) -> None:
    owner = make_client(sandbox)
    customer = owner.v1.customers.create(params={"name": "Kept"})
    key = sandbox.create_restricted_key(profile="billy", without=["rak_customer_write"])
    limited = make_client(sandbox, key)
    with pytest.raises(stripe.PermissionError) as refused:
        limited.v1.customers.update(customer.id, params={"name": "Changed"})
    assert "rak_customer_write" in str(refused.value)
    assert owner.v1.customers.retrieve(customer.id).name == "Kept"
    assert (
        make_client(sandbox, DEMO_RESTRICTED_KEY).v1.customers.update(customer.id, params={"name": "Ok"}).name == "Ok"
    )
