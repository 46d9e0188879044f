"""Subscription changes: prorations, the preview that shows them first, and paused collection.

A change previewed with a proration date and then made with the same date leaves exactly the
previewed prorations, and the next invoice is the previewed one (docs:
billing/subscriptions/prorations, api/invoices/create_preview); paused collection keeps the
subscription active but drafts, voids or marks uncollectible what renewals bill (docs:
billing/subscriptions/pause-payment).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe

from sandbox import SandboxHandle

DAY = 86_400


@pytest.fixture
def catalog(client: stripe.StripeClient) -> dict[str, Any]:
    team = client.v1.products.create(params={"name": "Team"})

    def price(amount: int, interval: str = "month", currency: str = "usd") -> Any:
        return client.v1.prices.create(
            params={
                "product": team.id,
                "unit_amount": amount,
                "currency": currency,
                "recurring": {"interval": interval},
            }
        )

    return {
        "basic": price(4900),
        "plus": price(9900),
        "yearly": price(49000, "year"),
        "euro": price(4500, "month", "eur"),
    }


def _mid_period(sandbox: SandboxHandle, client: stripe.StripeClient, customer_id: str, price_id: str) -> Any:
    """A subscription started ten days ago, so a change now falls mid-period."""
    sub = client.v1.subscriptions.create(params={"customer": customer_id, "items": [{"price": price_id}]})
    sandbox.backdate(sub.id, int(time.time()) - 10 * DAY)
    return client.v1.subscriptions.retrieve(sub.id)


def _prorated(total: int, remaining: int, period: int) -> int:
    return (total * remaining * 2 + period) // (2 * period)


def _preview(client: stripe.StripeClient, sub: Any, **details: Any) -> Any:
    params: dict[str, Any] = {"subscription": sub.id}
    if details:
        params["subscription_details"] = details
    return client.v1.invoices.create_preview(params=params)


def _is_proration(line: Any) -> bool:
    return bool(line.parent.subscription_item_details and line.parent.subscription_item_details.proration)


def test_a_previewed_change_leaves_exactly_the_previewed_prorations_and_next_invoice(
    sandbox: SandboxHandle, client: stripe.StripeClient, customer: Any, catalog: dict[str, Any]
) -> None:
    sub = _mid_period(sandbox, client, customer.id, catalog["basic"].id)
    item = sub["items"].data[0]
    start, end = item.current_period_start, item.current_period_end
    moment = int(time.time())
    change = [{"id": item.id, "price": catalog["plus"].id, "quantity": 2}]

    preview = _preview(client, sub, items=change, proration_date=moment)
    credit = -_prorated(4900, end - moment, end - start)
    charge = _prorated(2 * 9900, end - moment, end - start)
    prorations = [line for line in preview.lines.data if _is_proration(line)]
    assert [line.amount for line in prorations] == [credit, charge]
    assert [line.period.start for line in prorations] == [moment, moment]
    assert prorations[0].description.startswith("Unused time on Team after ")
    assert prorations[1].description.startswith("Remaining time on 2 × Team after ")
    renewal = [line for line in preview.lines.data if not _is_proration(line)]
    assert [(line.amount, line.period.start) for line in renewal] == [(2 * 9900, end)]
    assert preview.total == preview.amount_due == credit + charge + 2 * 9900
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == catalog["basic"].id  # unchanged

    updated = client.v1.subscriptions.update(sub.id, params={"items": change, "proration_date": moment})
    assert [(i.price.id, i.quantity) for i in updated["items"].data] == [(catalog["plus"].id, 2)]
    assert updated.latest_invoice == sub.latest_invoice  # nothing billed now
    pending = client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data
    assert sorted(p.amount for p in pending) == sorted([credit, charge])
    assert all(p.proration and p.parent.subscription_details.subscription == sub.id for p in pending)
    event = client.v1.events.list(params={"type": "customer.subscription.updated", "limit": 1}).data[0]
    assert event.data.previous_attributes["items"]["data"][0]["quantity"] == 1

    assert _preview(client, updated).total == preview.total  # the next invoice, as previewed
    sandbox.backdate(sub.id, int(time.time()) - 40 * DAY)  # let that renewal happen
    invoices = client.v1.invoices.list(params={"subscription": sub.id}).data
    billed = next(i for i in invoices if any(_is_proration(line) for line in i.lines.data))
    assert billed.billing_reason == "subscription_cycle" and billed.status == "paid"
    assert billed.total == preview.total
    assert sorted(line.amount for line in billed.lines.data) == sorted(line.amount for line in preview.lines.data)
    assert client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data == []


def test_always_invoice_bills_the_prorations_now_and_none_makes_none(
    sandbox: SandboxHandle, client: stripe.StripeClient, customer: Any, catalog: dict[str, Any]
) -> None:
    sub = _mid_period(sandbox, client, customer.id, catalog["basic"].id)
    item = sub["items"].data[0]
    preview = _preview(client, sub, items=[{"id": item.id, "quantity": 3}], proration_behavior="always_invoice")
    assert preview.billing_reason == "subscription_update"
    assert all(_is_proration(line) for line in preview.lines.data) and len(preview.lines.data) == 2
    now = client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item.id, "quantity": 3}], "proration_behavior": "always_invoice"}
    )
    invoice = client.v1.invoices.retrieve(now.latest_invoice)
    assert (invoice.billing_reason, invoice.status) == ("subscription_update", "paid")
    assert abs(invoice.total - preview.total) <= 2  # a second or so may pass between preview and change
    client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item.id, "quantity": 1}], "proration_behavior": "none"}
    )
    assert client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data == []


def test_a_trial_prorates_nothing(client: stripe.StripeClient, customer: Any, catalog: dict[str, Any]) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog["basic"].id}], "trial_period_days": 14}
    )
    item = sub["items"].data[0]
    preview = _preview(client, sub, items=[{"id": item.id, "price": catalog["plus"].id}])
    assert [(line.amount, _is_proration(line)) for line in preview.lines.data] == [(9900, False)]
    assert preview.lines.data[0].period.start == sub.trial_end
    client.v1.subscriptions.update(sub.id, params={"items": [{"id": item.id, "price": catalog["plus"].id}]})
    assert client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data == []


def test_previews_refuse_what_an_update_would(
    sandbox: SandboxHandle, client: stripe.StripeClient, customer: Any, catalog: dict[str, Any]
) -> None:
    sub = _mid_period(sandbox, client, customer.id, catalog["basic"].id)
    item = sub["items"].data[0]
    cases = [
        ({"items": [{"id": item.id, "price": "price_nothing"}]}, "No such price: 'price_nothing'"),
        ({"items": [{"id": item.id, "price": catalog["euro"].id}]}, "mismatch in currency"),
        ({"items": [{"id": "si_nothing", "quantity": 2}]}, "No such subscription_item"),
        ({"items": [{"id": item.id, "quantity": 2}], "proration_date": int(time.time()) + 60 * DAY}, "current period"),
        ({"items": [{"id": item.id, "price": catalog["yearly"].id}]}, "billing interval"),
        ({"items": [{"id": item.id}], "colour": "red"}, "Received unknown parameter: subscription_details[colour]"),
    ]
    for details, message in cases:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            _preview(client, sub, **details)
        assert message in caught.value.user_message, details
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": item.id, "quantity": 2}], "proration_date": int(time.time()) + 60 * DAY}
        )
    assert caught.value.param == "proration_date"
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _preview(client, sub)
    assert caught.value.code == "invoice_upcoming_none"


def test_paused_collection_drafts_voids_or_writes_off_renewals(
    sandbox: SandboxHandle, client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    outcomes = {}
    for behavior in ("keep_as_draft", "void", "mark_uncollectible"):
        customer = client.v1.customers.create(params={"source": "tok_visa"})
        sub = client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": catalog["basic"].id}]}
        )
        paused = client.v1.subscriptions.update(sub.id, params={"pause_collection": {"behavior": behavior}})
        assert paused.pause_collection.to_dict() == {"behavior": behavior, "resumes_at": None}
        assert paused.status == "active"
        event = client.v1.events.list(params={"type": "customer.subscription.updated", "limit": 1}).data[0]
        assert event.data.previous_attributes.to_dict() == {"pause_collection": None}
        sandbox.backdate(sub.id, int(time.time()) - 40 * DAY)
        renewed = client.v1.subscriptions.retrieve(sub.id)
        latest = client.v1.invoices.retrieve(renewed.latest_invoice)
        outcomes[behavior] = (latest.billing_reason, latest.status, latest.amount_paid, renewed.status)
        assert len(client.v1.charges.list(params={"customer": customer.id}).data) == 1  # the first period only
    assert outcomes == {
        "keep_as_draft": ("subscription_cycle", "draft", 0, "active"),
        "void": ("subscription_cycle", "void", 0, "active"),
        "mark_uncollectible": ("subscription_cycle", "uncollectible", 0, "active"),
    }


def test_resuming_by_hand_and_by_date(
    sandbox: SandboxHandle, client: stripe.StripeClient, customer: Any, catalog: dict[str, Any]
) -> None:
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": catalog["basic"].id}]})
    client.v1.subscriptions.update(sub.id, params={"pause_collection": {"behavior": "void"}})
    resumed = client.v1.subscriptions.update(sub.id, params={"pause_collection": ""})
    assert resumed.pause_collection is None
    event = client.v1.events.list(params={"type": "customer.subscription.updated", "limit": 1}).data[0]
    assert event.data.previous_attributes.pause_collection.behavior == "void"

    soon = int(time.time()) + 5 * DAY
    client.v1.subscriptions.update(sub.id, params={"pause_collection": {"behavior": "void", "resumes_at": soon}})
    sandbox.backdate(sub.id, int(time.time()) - 40 * DAY)  # the pause ends before the renewal comes
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed.pause_collection is None
    assert client.v1.invoices.retrieve(renewed.latest_invoice).status == "paid"

    for pause, param in (
        ({"behavior": "sleep"}, "pause_collection[behavior]"),
        ({"behavior": "void", "resumes_at": int(time.time()) - 60}, "pause_collection[resumes_at]"),
        ({"resumes_at": soon}, "pause_collection[behavior]"),
    ):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.subscriptions.update(sub.id, params={"pause_collection": pause})
        assert caught.value.param == param
    client.v1.subscriptions.cancel(sub.id)
    with pytest.raises(stripe.InvalidRequestError, match="canceled subscription can only update"):
        client.v1.subscriptions.update(sub.id, params={"pause_collection": {"behavior": "void"}})
