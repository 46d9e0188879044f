"""What Billy's subscription changes rely on Stripe to do, checked against the sandbox and, when a
test-mode key is given (`BILLY_STRIPE_TEST_KEY=sk_test_…`), against real Stripe with the very same
assertions (as tests/test_stripe_contract.py does for charges and refunds).

Billy previews a change with a proration date and then makes it with the same date, trusting
that Stripe then prorates exactly what it previewed and that the next invoice is the previewed
one; it pauses collection with `pause_collection`, clears it with "", cancels at the period end or
now and withdraws a pending cancellation with `cancel_at_period_end=false`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe


@pytest.fixture
def subscribed(stripe_client: stripe.StripeClient) -> Iterator[dict[str, Any]]:
    """A paying customer on a $49/month price, with a $99/month and a EUR price of the same product."""
    client = stripe_client
    product = client.v1.products.create(params={"name": "Billy contract plan"})

    def price(amount: int, currency: str = "usd") -> str:
        recurring = {"interval": "month"}
        params = {"product": product.id, "unit_amount": amount, "currency": currency, "recurring": recurring}
        return str(client.v1.prices.create(params=params).id)

    prices = {"basic": price(4900), "plus": price(9900), "euro": price(4500, "eur")}
    customer = client.v1.customers.create(params={"source": "tok_visa", "email": "contract@example.com"})
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": prices["basic"]}]})
    yield {"client": client, "sub": sub, "customer": customer.id, "prices": prices}
    if client.v1.subscriptions.retrieve(sub.id).status != "canceled":
        client.v1.subscriptions.cancel(sub.id)


def _is_proration(line: Any) -> bool:
    details = (line.get("parent") or {}).get("subscription_item_details") or {}
    return bool(details.get("proration") or line.get("proration"))


def test_a_change_made_with_the_previewed_date_makes_the_previewed_prorations(subscribed: dict[str, Any]) -> None:
    client, sub = subscribed["client"], subscribed["sub"]
    item = sub["items"].data[0]
    moment = int(time.time())
    change = [{"id": item.id, "price": subscribed["prices"]["plus"], "quantity": 2}]
    preview = client.v1.invoices.create_preview(
        params={
            "customer": subscribed["customer"],
            "subscription": sub.id,
            "subscription_details": {
                "items": change,
                "proration_date": moment,
                "proration_behavior": "create_prorations",
            },
        }
    ).to_dict()
    previewed = [line for line in preview["lines"]["data"] if _is_proration(line)]
    assert previewed and all(line["period"]["start"] == moment for line in previewed)
    assert min(line["amount"] for line in previewed) < 0 < max(line["amount"] for line in previewed)

    updated = client.v1.subscriptions.update(
        sub.id, params={"items": change, "proration_date": moment, "proration_behavior": "create_prorations"}
    )
    assert [(i.price.id, i.quantity) for i in updated["items"].data] == [(subscribed["prices"]["plus"], 2)]
    assert updated.latest_invoice == sub.latest_invoice  # nothing is billed at the change
    pending = client.v1.invoice_items.list(params={"customer": subscribed["customer"], "pending": True}).data
    assert sorted(p.amount for p in pending) == sorted(line["amount"] for line in previewed)
    upcoming = client.v1.invoices.create_preview(params={"customer": subscribed["customer"], "subscription": sub.id})
    assert upcoming.total == preview["total"]


def test_a_subscription_keeps_its_currency(subscribed: dict[str, Any]) -> None:
    client, sub = subscribed["client"], subscribed["sub"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": sub["items"].data[0].id, "price": subscribed["prices"]["euro"]}]}
        )


def test_pause_collection_is_set_and_cleared(subscribed: dict[str, Any]) -> None:
    client, sub = subscribed["client"], subscribed["sub"]
    paused = client.v1.subscriptions.update(sub.id, params={"pause_collection": {"behavior": "mark_uncollectible"}})
    assert paused.status == "active" and paused.pause_collection is not None
    assert paused.pause_collection.behavior == "mark_uncollectible" and paused.pause_collection.resumes_at is None
    resumed = client.v1.subscriptions.update(sub.id, params={"pause_collection": ""})
    assert resumed.pause_collection is None
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, params={"pause_collection": {"behavior": "sleep"}})


def test_cancel_at_period_end_reactivate_and_cancel_now(subscribed: dict[str, Any]) -> None:
    client, sub = subscribed["client"], subscribed["sub"]
    ending = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert ending.cancel_at_period_end is True and ending.status == "active"
    assert ending.cancel_at == ending["items"].data[0].current_period_end
    kept = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False})
    assert (kept.cancel_at_period_end, kept.cancel_at) == (False, None)
    ended = client.v1.subscriptions.cancel(sub.id)
    assert ended.status == "canceled" and ended.canceled_at is not None
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, params={"pause_collection": {"behavior": "void"}})
