"""Subscriptions on prices: items, statuses, updates and cancellation, renewals, events, lists."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe

from sandbox import SandboxHandle
from tests.sandbox.helpers import ids

DAY = 86_400


@pytest.fixture
def catalog(client: stripe.StripeClient) -> dict[str, Any]:
    product = client.v1.products.create(params={"name": "Team"})
    seat = client.v1.products.create(params={"name": "Seat"})

    def price(product_id: str, amount: int, interval: str) -> Any:
        return client.v1.prices.create(
            params={
                "product": product_id,
                "unit_amount": amount,
                "currency": "usd",
                "recurring": {"interval": interval},
            }
        )

    return {
        "monthly": price(product.id, 4900, "month"),
        "yearly": price(product.id, 49000, "year"),
        "seat": price(seat.id, 800, "month"),
    }


def subscribe(client: stripe.StripeClient, customer_id: str, *items: dict[str, Any], **params: Any) -> Any:
    return client.v1.subscriptions.create(params={"customer": customer_id, "items": list(items), **params})


def failing_card(client: stripe.StripeClient, customer_id: str) -> None:
    card = client.v1.customers.payment_sources.create(customer_id, params={"source": "tok_chargeCustomerFail"})
    client.v1.customers.update(customer_id, params={"default_source": card.id})


def event_types(client: stripe.StripeClient, limit: int = 100) -> list[str]:
    return [e.type for e in client.v1.events.list(params={"limit": limit}).data]


def test_create_with_several_items_bills_and_activates(
    client: stripe.StripeClient, customer: Any, catalog: dict[str, Any]
) -> None:
    sub = subscribe(
        client,
        customer.id,
        {"price": catalog["monthly"].id},
        {"price": catalog["seat"].id, "quantity": 3},
        metadata={"team": "north"},
    )
    assert sub.id.startswith("sub_") and sub.status == "active" and sub.customer == customer.id
    assert [(i.price.id, i.quantity) for i in sub["items"].data] == [
        (catalog["monthly"].id, 1),
        (catalog["seat"].id, 3),
    ]
    item = sub["items"].data[0]
    assert item.current_period_start == sub.created == sub.start_date
    assert item.current_period_end - item.current_period_start in range(28 * DAY, 32 * DAY)
    assert sub.current_period_end == item.current_period_end  # older API versions' field
    assert (sub.cancel_at_period_end, sub.canceled_at, sub.metadata.to_dict()) == (False, None, {"team": "north"})
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.status, invoice.total, invoice.amount_paid, invoice.billing_reason) == (
        "paid",
        4900 + 3 * 800,
        7300,
        "subscription_create",
    )
    assert invoice.parent.subscription_details.subscription == sub.id
    assert [line.parent.subscription_item_details.subscription_item for line in invoice.lines.data] == [
        i.id for i in sub["items"].data
    ]
    assert event_types(client)[:7] == [
        "customer.subscription.created",
        "invoice.payment_succeeded",
        "invoice.paid",
        "invoice.updated",
        "charge.succeeded",
        "invoice.updated",
        "invoice.finalized",
    ]
    created = client.v1.events.list(params={"type": "customer.subscription.created"}).data[0]
    assert created.data.object.status == "active" and created.data.object.id == sub.id


def test_declined_first_payment_is_incomplete_and_trial_is_trialing(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    declined = client.v1.customers.create(params={"source": "tok_chargeCustomerFail"})
    sub = subscribe(client, declined.id, {"price": catalog["monthly"].id})
    assert sub.status == "incomplete"
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.status, invoice.attempt_count, invoice.amount_remaining) == ("open", 1, 4900)
    assert client.v1.events.list(params={"type": "invoice.payment_failed"}).data[0].data.object.id == invoice.id
    trial_customer = client.v1.customers.create(params={"source": "tok_visa"})
    trial = subscribe(client, trial_customer.id, {"price": catalog["monthly"].id}, trial_period_days=14)
    assert trial.status == "trialing" and trial.trial_end - trial.trial_start == 14 * DAY
    assert trial["items"].data[0].current_period_end == trial.trial_end
    zero = client.v1.invoices.retrieve(trial.latest_invoice)
    assert (zero.status, zero.total, zero.lines.data[0].description) == ("paid", 0, "Trial period for Team")


def test_validation(client: stripe.StripeClient, customer: Any, catalog: dict[str, Any]) -> None:
    once = client.v1.prices.create(params={"product_data": {"name": "x"}, "unit_amount": 100, "currency": "usd"})
    cases = [
        ({"items": [{"price": "price_nothing"}]}, "No such price: 'price_nothing'"),
        ({"items": [{"price": catalog["monthly"].id}, {"price": catalog["yearly"].id}]}, "mismatch in interval"),
        ({"items": [{"price": catalog["seat"].id}, {"price": catalog["seat"].id}]}, "same price"),
        ({"items": [{"price": once.id}]}, "`type=one_time`"),
        ({"items": [{"price": catalog["seat"].id}], "colour": "red"}, "Received unknown parameter: colour"),
    ]
    for params, message in cases:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.subscriptions.create(params={"customer": customer.id, **params})
        assert message in caught.value.user_message
    bare = client.v1.customers.create(params={"name": "No card"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        subscribe(client, bare.id, {"price": catalog["monthly"].id})
    assert "no attached payment source or default payment method" in caught.value.user_message
    assert client.v1.subscriptions.list(params={"status": "all"}).data == []


def test_update_emits_previous_attributes(client: stripe.StripeClient, customer: Any, catalog: dict[str, Any]) -> None:
    sub = subscribe(client, customer.id, {"price": catalog["monthly"].id})
    sub = client.v1.subscriptions.update(sub.id, params={"metadata": {"plan": "gold"}, "cancel_at_period_end": True})
    assert sub.metadata.to_dict() == {"plan": "gold"}
    assert sub.cancel_at_period_end is True and sub.cancel_at == sub["items"].data[0].current_period_end
    assert sub.canceled_at is not None and sub.status == "active"
    event = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert event.data.object.metadata.plan == "gold"
    assert event.data.previous_attributes.to_dict() == {
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "metadata": {},
    }
    item_id = sub["items"].data[0].id
    sub = client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": item_id, "quantity": 4}, {"price": catalog["seat"].id, "quantity": 2}]},
    )
    assert [(i.price.id, i.quantity) for i in sub["items"].data] == [
        (catalog["monthly"].id, 4),
        (catalog["seat"].id, 2),
    ]
    changed = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert [i["quantity"] for i in changed.data.previous_attributes["items"]["data"]] == [1]
    sub = client.v1.subscriptions.update(sub.id, params={"items": [{"id": item_id, "deleted": True}]})
    assert [i.price.id for i in sub["items"].data] == [catalog["seat"].id]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.update(sub.id, params={"items": [{"id": "si_nothing", "quantity": 2}]})
    assert caught.value.param == "items[0][id]" and caught.value.code == "resource_missing"


def test_yearly_switch_bills_the_new_interval(
    client: stripe.StripeClient, customer: Any, catalog: dict[str, Any]
) -> None:
    sub = subscribe(client, customer.id, {"price": catalog["monthly"].id})
    item = sub["items"].data[0]
    sub = client.v1.subscriptions.update(sub.id, params={"items": [{"id": item.id, "price": catalog["yearly"].id}]})
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.billing_reason, invoice.total, invoice.status) == ("subscription_update", 49000, "paid")
    period = sub["items"].data[0]
    assert period.current_period_end - period.current_period_start in range(365 * DAY, 367 * DAY)


def test_cancel_and_lists(client: stripe.StripeClient, catalog: dict[str, Any]) -> None:
    alice = client.v1.customers.create(params={"source": "tok_visa"})
    bob = client.v1.customers.create(params={"source": "tok_visa"})
    a = subscribe(client, alice.id, {"price": catalog["monthly"].id})
    b = subscribe(client, bob.id, {"price": catalog["seat"].id, "quantity": 2}, trial_period_days=7)
    c = subscribe(client, alice.id, {"price": catalog["yearly"].id})
    canceled = client.v1.subscriptions.cancel(
        a.id, params={"cancellation_details": {"comment": "Too pricey", "feedback": "too_expensive"}}
    )
    assert (canceled.status, canceled.canceled_at, canceled.ended_at) == (
        "canceled",
        canceled.ended_at,
        canceled.ended_at,
    )
    assert canceled.cancellation_details.to_dict() == {
        "comment": "Too pricey",
        "feedback": "too_expensive",
        "reason": "cancellation_requested",
    }
    deleted = client.v1.events.list(params={"type": "customer.subscription.deleted"}).data[0]
    assert deleted.data.object.id == a.id and deleted.data.object.status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.cancel(a.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.update(a.id, params={"cancel_at_period_end": True})
    assert "canceled subscription can only update" in caught.value.user_message
    assert client.v1.subscriptions.update(a.id, params={"metadata": {"x": "1"}}).metadata.x == "1"
    assert ids(client.v1.subscriptions.list()) == [c.id, b.id]
    assert ids(client.v1.subscriptions.list(params={"status": "all"})) == [c.id, b.id, a.id]
    assert ids(client.v1.subscriptions.list(params={"status": "canceled"})) == [a.id]
    assert ids(client.v1.subscriptions.list(params={"status": "ended"})) == [a.id]
    assert ids(client.v1.subscriptions.list(params={"status": "trialing"})) == [b.id]
    assert ids(client.v1.subscriptions.list(params={"customer": alice.id})) == [c.id]
    assert ids(client.v1.subscriptions.list(params={"customer": alice.id, "status": "all"})) == [c.id, a.id]
    assert ids(client.v1.subscriptions.list(params={"price": catalog["seat"].id})) == [b.id]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.list(params={"status": "sleeping"})
    assert caught.value.param == "status"


def test_backdating_replays_renewals(
    sandbox: SandboxHandle, client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = client.v1.customers.create(params={"source": "tok_visa"})
    sub = subscribe(client, customer.id, {"price": catalog["monthly"].id})
    start = int(time.time()) - 70 * DAY
    sandbox.backdate(sub.id, start)
    sub = client.v1.subscriptions.retrieve(sub.id)
    assert sub.created == sub.start_date == start and sub.status == "active"
    invoices = client.v1.invoices.list(params={"subscription": sub.id}).data
    assert [i.billing_reason for i in invoices] == ["subscription_cycle", "subscription_cycle", "subscription_create"]
    assert invoices[-1].created == start and all(i.status == "paid" for i in invoices)
    item = sub["items"].data[0]
    assert invoices[0].created == item.current_period_start < time.time() < item.current_period_end
    charges = client.v1.charges.list(params={"customer": customer.id}).data
    assert sorted(c.created for c in charges) == sorted(i.created for i in invoices)
    renewal_events = client.v1.events.list(
        params={"type": "customer.subscription.updated", "created": {"lt": int(time.time()) - DAY}}
    ).data
    assert len(renewal_events) == 2
    assert "current_period_start" in renewal_events[0].data.previous_attributes


def test_declined_renewals_make_past_due_then_unpaid_and_paying_recovers(
    sandbox: SandboxHandle, client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = client.v1.customers.create(params={"source": "tok_visa"})
    sub = subscribe(client, customer.id, {"price": catalog["monthly"].id})
    failing_card(client, customer.id)
    sandbox.backdate(sub.id, int(time.time()) - 40 * DAY)
    sub = client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "past_due"
    latest = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (latest.status, latest.attempted, latest.attempt_count, latest.billing_reason) == (
        "open",
        True,
        1,
        "subscription_cycle",
    )
    failed = client.v1.events.list(params={"type": "invoice.payment_failed"}).data[0]
    assert failed.data.object.id == latest.id and failed.created == latest.created
    status_change = [
        e
        for e in client.v1.events.list(params={"type": "customer.subscription.updated"}).data
        if e.data.object.status == "past_due"
    ]
    assert status_change and status_change[0].data.previous_attributes.status == "active"
    sandbox.backdate(sub.id, int(time.time()) - 70 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "unpaid"
    good = client.v1.customers.payment_sources.create(customer.id, params={"source": "tok_visa"})
    client.v1.customers.update(customer.id, params={"default_source": good.id})
    for invoice in client.v1.invoices.list(params={"subscription": sub.id, "status": "open"}).data:
        assert client.v1.invoices.pay(invoice.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_trial_ends_and_scheduled_cancellation_happen_when_backdated(
    sandbox: SandboxHandle, client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = client.v1.customers.create(params={"source": "tok_visa"})
    trial = subscribe(client, customer.id, {"price": catalog["monthly"].id}, trial_period_days=7)
    sandbox.backdate(trial.id, int(time.time()) - 10 * DAY)
    trial = client.v1.subscriptions.retrieve(trial.id)
    assert trial.status == "active" and trial.billing_cycle_anchor == trial.trial_end
    first = client.v1.invoices.retrieve(trial.latest_invoice)
    assert (first.billing_reason, first.total, first.status) == ("subscription_cycle", 4900, "paid")
    ending = subscribe(client, customer.id, {"price": catalog["seat"].id})
    client.v1.subscriptions.update(ending.id, params={"cancel_at_period_end": True})
    sandbox.backdate(ending.id, int(time.time()) - 45 * DAY)
    ended = client.v1.subscriptions.retrieve(ending.id)
    assert ended.status == "canceled" and ended.ended_at == ended["items"].data[0].current_period_end
    assert len(client.v1.invoices.list(params={"subscription": ending.id}).data) == 1


def test_subscription_items_endpoints(client: stripe.StripeClient, customer: Any, catalog: dict[str, Any]) -> None:
    sub = subscribe(client, customer.id, {"price": catalog["monthly"].id})
    added = client.v1.subscription_items.create(
        params={"subscription": sub.id, "price": catalog["seat"].id, "quantity": 5}
    )
    assert added.subscription == sub.id and added.quantity == 5
    assert client.v1.subscription_items.update(added.id, params={"quantity": 6}).quantity == 6
    listed = client.v1.subscription_items.list(params={"subscription": sub.id})
    assert [i.id for i in listed.data] == [sub["items"].data[0].id, added.id]
    client.v1.subscription_items.delete(added.id)
    assert len(client.v1.subscriptions.retrieve(sub.id)["items"].data) == 1
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscription_items.retrieve(added.id)
    assert caught.value.http_status == 404


def test_probe_paths_still_404(client: stripe.StripeClient) -> None:
    for path in ("/v1/subscriptions/sub_billyprobe", "/v1/invoices/in_billyprobe"):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.raw_request("post", path, metadata={"probe": "1"})
        assert caught.value.http_status == 404 and caught.value.code == "resource_missing"
