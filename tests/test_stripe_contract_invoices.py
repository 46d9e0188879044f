"""What Billy's invoice writes rely on Stripe to do (issue 12), checked against the sandbox and,
when a test-mode key is given (`BILLY_STRIPE_TEST_KEY=sk_test_…`), against real Stripe with the
very same assertions (see tests/test_stripe_contract.py). A disagreement means the sandbox lies."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
import stripe

DAY = 86_400


@pytest.fixture
def customer(stripe_client: stripe.StripeClient) -> Any:
    return stripe_client.v1.customers.create(params={"name": "Contract Test", "email": "contract@example.com"})


def _draft(client: stripe.StripeClient, customer_id: str, amount: int = 4500, **options: Any) -> Any:
    """A draft as Billy makes one: emailed for payment, a fixed due date, only its own lines."""
    invoice = client.v1.invoices.create(
        params={
            "customer": customer_id,
            "collection_method": "send_invoice",
            "due_date": int(time.time()) + 14 * DAY,
            "currency": "usd",
            "pending_invoice_items_behavior": "exclude",
            "auto_advance": False,
        },
        options=options,
    )
    client.v1.invoice_items.create(
        params={
            "customer": customer_id,
            "invoice": invoice.id,
            "amount": amount,
            "currency": "usd",
            "description": "Consulting",
        }
    )
    return client.v1.invoices.retrieve(invoice.id)


def test_a_draft_has_its_lines_and_no_hosted_page_until_finalized(
    stripe_client: stripe.StripeClient, customer: Any
) -> None:
    price = stripe_client.v1.prices.create(
        params={"product_data": {"name": "Setup"}, "unit_amount": 25000, "currency": "usd"}
    )
    invoice = _draft(stripe_client, customer.id)
    stripe_client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": invoice.id, "pricing": {"price": price.id}, "quantity": 2}
    )
    invoice = stripe_client.v1.invoices.retrieve(invoice.id)
    assert (invoice.status, invoice.total, invoice.amount_due) == ("draft", 54500, 54500)
    assert invoice.hosted_invoice_url is None and invoice.number is None
    finalized = stripe_client.v1.invoices.finalize_invoice(invoice.id)
    assert finalized.status == "open" and finalized.number
    assert (finalized.hosted_invoice_url or "").startswith("https://")
    assert stripe_client.v1.invoices.send_invoice(invoice.id).status == "open"


def test_send_finalizes_a_draft_first(stripe_client: stripe.StripeClient, customer: Any) -> None:
    invoice = _draft(stripe_client, customer.id)
    sent = stripe_client.v1.invoices.send_invoice(invoice.id)
    assert sent.status == "open" and sent.number


def test_a_paid_invoice_can_be_sent_again(stripe_client: stripe.StripeClient, customer: Any) -> None:
    invoice = _draft(stripe_client, customer.id)
    stripe_client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
    assert stripe_client.v1.invoices.send_invoice(invoice.id).status == "paid"


def test_void_and_mark_uncollectible_follow_the_life_cycle(stripe_client: stripe.StripeClient, customer: Any) -> None:
    draft = _draft(stripe_client, customer.id)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.void_invoice(draft.id)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.mark_uncollectible(draft.id)
    stripe_client.v1.invoices.finalize_invoice(draft.id)
    marked = stripe_client.v1.invoices.mark_uncollectible(draft.id)
    assert marked.status == "uncollectible" and marked.amount_remaining == 4500
    assert stripe_client.v1.invoices.void_invoice(draft.id).status == "void"

    paid = _draft(stripe_client, customer.id)
    stripe_client.v1.invoices.pay(paid.id, params={"paid_out_of_band": True})
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.void_invoice(paid.id)
    assert stripe_client.v1.invoices.retrieve(paid.id).status == "paid"


def test_due_date_needs_send_invoice(stripe_client: stripe.StripeClient, customer: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.invoices.create(params={"customer": customer.id, "due_date": int(time.time()) + DAY})
    assert caught.value.param == "due_date"


def test_an_archived_price_is_refused_on_an_invoice_item(stripe_client: stripe.StripeClient, customer: Any) -> None:
    price = stripe_client.v1.prices.create(
        params={"product_data": {"name": "Old"}, "unit_amount": 100, "currency": "usd"}
    )
    stripe_client.v1.prices.update(price.id, params={"active": False})
    invoice = _draft(stripe_client, customer.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.invoice_items.create(
            params={"customer": customer.id, "invoice": invoice.id, "pricing": {"price": price.id}}
        )
    assert "inactive" in str(caught.value.user_message)


def test_the_same_key_creates_one_invoice(stripe_client: stripe.StripeClient, customer: Any) -> None:
    key = "contract-" + secrets.token_hex(12)
    first = _draft(stripe_client, customer.id, idempotency_key=key)
    again = stripe_client.v1.invoices.create(
        params={
            "customer": customer.id,
            "collection_method": "send_invoice",
            "due_date": first.due_date,
            "currency": "usd",
            "pending_invoice_items_behavior": "exclude",
            "auto_advance": False,
        },
        options={"idempotency_key": key},
    )
    assert again.id == first.id
