"""The invoice writes Billy makes (issue 12), as Stripe documents them: a draft from prices and
custom lines, finalize → hosted page, send (drafts finalized first, paid re-sent, void refused),
void and mark uncollectible with their refusals and events, and inactive prices refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe

DAY = 86_400


def _draft(client: stripe.StripeClient, customer_id: str, amount: int = 5000, **params: Any) -> Any:
    invoice = client.v1.invoices.create(
        params={
            "customer": customer_id,
            "collection_method": "send_invoice",
            "due_date": int(time.time()) + 14 * DAY,
            "pending_invoice_items_behavior": "exclude",
            "auto_advance": False,
            **params,
        }
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


def _types(client: stripe.StripeClient, count: int) -> list[str]:
    return [e.type for e in client.v1.events.list(params={"limit": count}).data]


def test_a_draft_from_a_price_and_a_custom_line_keeps_only_its_own_lines(
    client: stripe.StripeClient, customer: Any
) -> None:
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 999, "currency": "usd"})  # pending
    setup = client.v1.prices.create(params={"product_data": {"name": "Setup"}, "unit_amount": 25000, "currency": "usd"})
    invoice = _draft(client, customer.id, 1500)
    client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": invoice.id, "pricing": {"price": setup.id}, "quantity": 2}
    )
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert (invoice.status, invoice.total, invoice.auto_advance) == ("draft", 51500, False)
    assert [line.description for line in invoice.lines.data] == ["Consulting", "Setup"]
    assert invoice.hosted_invoice_url is None and invoice.invoice_pdf is None and invoice.number is None


def test_finalizing_gives_the_hosted_page_and_sending_emits_invoice_sent(
    client: stripe.StripeClient, customer: Any
) -> None:
    invoice = _draft(client, customer.id)
    finalized = client.v1.invoices.finalize_invoice(invoice.id)
    assert finalized.status == "open" and finalized.number
    assert finalized.hosted_invoice_url.startswith("https://invoice.stripe.com/i/acct_")
    assert finalized.invoice_pdf.endswith("/pdf?s=ap")
    assert client.v1.invoices.retrieve(invoice.id).hosted_invoice_url == finalized.hosted_invoice_url
    sent = client.v1.invoices.send_invoice(invoice.id)
    assert sent.status == "open"
    assert _types(client, 3) == ["invoice.sent", "invoice.updated", "invoice.finalized"]


def test_sending_a_draft_finalizes_it_first(client: stripe.StripeClient, customer: Any) -> None:
    """api/invoices/finalize: "Stripe automatically finalizes drafts before sending"."""
    invoice = _draft(client, customer.id)
    sent = client.v1.invoices.send_invoice(invoice.id)
    assert sent.status == "open" and sent.hosted_invoice_url
    assert _types(client, 3) == ["invoice.sent", "invoice.updated", "invoice.finalized"]


def test_a_paid_invoice_can_be_sent_again_a_void_one_cannot(client: stripe.StripeClient, customer: Any) -> None:
    paid = _draft(client, customer.id)
    client.v1.invoices.pay(paid.id, params={"paid_out_of_band": True})
    assert client.v1.invoices.send_invoice(paid.id).status == "paid"  # api/invoices/send
    voided = _draft(client, customer.id)
    client.v1.invoices.finalize_invoice(voided.id)
    client.v1.invoices.void_invoice(voided.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.send_invoice(voided.id)
    assert "status 'void'" in str(caught.value.user_message)


def test_void_takes_open_and_uncollectible_and_refuses_paid_and_drafts(
    client: stripe.StripeClient, customer: Any
) -> None:
    invoice = _draft(client, customer.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.void_invoice(invoice.id)
    assert "delete a draft instead" in str(caught.value.user_message)
    client.v1.invoices.finalize_invoice(invoice.id)
    voided = client.v1.invoices.void_invoice(invoice.id)
    assert voided.status == "void" and voided.status_transitions.voided_at
    assert _types(client, 2) == ["invoice.voided", "invoice.updated"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(invoice.id)

    written_off = _draft(client, customer.id)
    client.v1.invoices.finalize_invoice(written_off.id)
    client.v1.invoices.mark_uncollectible(written_off.id)
    assert client.v1.invoices.void_invoice(written_off.id).status == "void"

    paid = _draft(client, customer.id)
    client.v1.invoices.pay(paid.id, params={"paid_out_of_band": True})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.void_invoice(paid.id)
    assert "this invoice is paid" in str(caught.value.user_message)


def test_mark_uncollectible_takes_open_invoices_only(client: stripe.StripeClient, customer: Any) -> None:
    invoice = _draft(client, customer.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.mark_uncollectible(invoice.id)
    client.v1.invoices.finalize_invoice(invoice.id)
    marked = client.v1.invoices.mark_uncollectible(invoice.id)
    assert marked.status == "uncollectible" and marked.status_transitions.marked_uncollectible_at
    assert marked.amount_remaining == 5000  # still payable
    assert _types(client, 2) == ["invoice.marked_uncollectible", "invoice.updated"]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.mark_uncollectible(invoice.id)
    assert "this invoice is uncollectible" in str(caught.value.user_message)


def test_due_date_needs_send_invoice_and_the_future(client: stripe.StripeClient, customer: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.create(params={"customer": customer.id, "due_date": int(time.time()) + DAY})
    assert caught.value.param == "due_date"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.create(
            params={
                "customer": customer.id,
                "collection_method": "send_invoice",
                "due_date": int(time.time()) - 3 * DAY,
            }
        )
    assert caught.value.param == "due_date"


def test_an_archived_price_cannot_be_invoiced(client: stripe.StripeClient, customer: Any) -> None:
    old = client.v1.prices.create(params={"product_data": {"name": "Old"}, "unit_amount": 100, "currency": "usd"})
    client.v1.prices.update(old.id, params={"active": False})
    invoice = _draft(client, customer.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoice_items.create(
            params={"customer": customer.id, "invoice": invoice.id, "pricing": {"price": old.id}}
        )
    assert "inactive" in str(caught.value.user_message) and caught.value.param == "pricing[price]"
    assert client.v1.invoices.retrieve(invoice.id).total == 5000


def test_an_idempotent_retry_of_create_and_item_makes_each_once(client: stripe.StripeClient, customer: Any) -> None:
    params = {
        "customer": customer.id,
        "collection_method": "send_invoice",
        "due_date": int(time.time()) + 7 * DAY,
    }
    first = client.v1.invoices.create(params=params, options={"idempotency_key": "create-key-0123456789"})
    again = client.v1.invoices.create(params=params, options={"idempotency_key": "create-key-0123456789"})
    assert first.id == again.id
    item = {"customer": customer.id, "invoice": first.id, "amount": 700, "currency": "usd"}
    client.v1.invoice_items.create(params=item, options={"idempotency_key": "create-key-0123456789-line-1"})
    client.v1.invoice_items.create(params=item, options={"idempotency_key": "create-key-0123456789-line-1"})
    assert client.v1.invoices.retrieve(first.id).total == 700
