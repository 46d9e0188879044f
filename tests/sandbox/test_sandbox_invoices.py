"""One-off invoices: items, the draft → open → paid/void/uncollectible life cycle, due dates, events, lists."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe

from sandbox import SandboxHandle
from tests.sandbox.helpers import ids

DAY = 86_400


def draft(client: stripe.StripeClient, customer_id: str, *amounts: int, **params: Any) -> Any:
    invoice = client.v1.invoices.create(
        params={"customer": customer_id, "collection_method": "send_invoice", "days_until_due": 30, **params}
    )
    for n, amount in enumerate(amounts):
        client.v1.invoice_items.create(
            params={
                "customer": customer_id,
                "invoice": invoice.id,
                "amount": amount,
                "currency": "usd",
                "description": f"Work {n}",
            }
        )
    return client.v1.invoices.retrieve(invoice.id)


def types_since(client: stripe.StripeClient, count: int) -> list[str]:
    return [e.type for e in client.v1.events.list(params={"limit": count}).data]


def test_draft_with_items_totals_and_lines(client: stripe.StripeClient, customer: Any) -> None:
    invoice = draft(client, customer.id, 12000, 3000)
    assert invoice.id.startswith("in_") and invoice.status == "draft" and invoice.number is None
    assert (invoice.subtotal, invoice.total, invoice.amount_due, invoice.amount_paid, invoice.amount_remaining) == (
        15000,
        15000,
        15000,
        0,
        15000,
    )
    assert (invoice.currency, invoice.customer, invoice.collection_method, invoice.due_date) == (
        "usd",
        customer.id,
        "send_invoice",
        None,
    )
    assert invoice.customer_email == "test@example.com" and invoice.subscription is None and invoice.parent is None
    assert [(line.amount, line.description) for line in invoice.lines.data] == [(12000, "Work 0"), (3000, "Work 1")]
    assert invoice.lines.data[0].parent.invoice_item_details.invoice_item.startswith("ii_")
    lines = client.v1.invoices.line_items.list(invoice.id, params={"limit": 1})
    assert [line.amount for line in lines.data] == [12000] and lines.has_more
    assert types_since(client, 5) == [
        "invoice.updated",
        "invoiceitem.created",
        "invoice.updated",
        "invoiceitem.created",
        "invoice.created",
    ]
    grown = client.v1.events.list(params={"type": "invoice.updated"}).data[0]
    assert grown.data.object.total == 15000 and grown.data.previous_attributes.total == 12000


def test_pending_items_and_one_time_prices(client: stripe.StripeClient, customer: Any) -> None:
    setup = client.v1.prices.create(params={"product_data": {"name": "Setup"}, "unit_amount": 25000, "currency": "usd"})
    item = client.v1.invoice_items.create(
        params={"customer": customer.id, "pricing": {"price": setup.id}, "quantity": 2}
    )
    assert (item.amount, item.quantity, item.invoice, item.description) == (50000, 2, None, "Setup")
    assert item.pricing.price_details.price == setup.id
    assert ids(client.v1.invoice_items.list(params={"pending": True})) == [item.id]
    excluded = client.v1.invoices.create(params={"customer": customer.id})
    assert excluded.total == 0 and excluded.lines.data == []
    included = client.v1.invoices.create(params={"customer": customer.id, "pending_invoice_items_behavior": "include"})
    assert included.total == 50000 and client.v1.invoice_items.retrieve(item.id).invoice == included.id
    monthly = client.v1.prices.create(
        params={"product": setup.product, "unit_amount": 100, "currency": "usd", "recurring": {"interval": "month"}}
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoice_items.create(params={"customer": customer.id, "pricing": {"price": monthly.id}})
    assert "type=one_time" in caught.value.user_message


def test_finalize_send_and_due_date(client: stripe.StripeClient, customer: Any) -> None:
    invoice = draft(client, customer.id, 5000, days_until_due=14)
    finalized = client.v1.invoices.finalize_invoice(invoice.id)
    assert finalized.status == "open" and finalized.number.endswith("-0001")
    finalized_at = finalized.status_transitions.finalized_at
    assert finalized.due_date == finalized_at + 14 * DAY and finalized.effective_at == finalized_at
    sent = client.v1.invoices.send_invoice(invoice.id)
    assert sent.status == "open"
    assert types_since(client, 3) == ["invoice.sent", "invoice.updated", "invoice.finalized"]
    event = client.v1.events.list(params={"type": "invoice.updated"}).data[0]
    assert event.data.previous_attributes.status == "draft" and event.data.object.status == "open"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.finalize_invoice(invoice.id)
    assert "already finalized" in caught.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.update(invoice.id, params={"days_until_due": 3})
    assert caught.value.code == "invoice_not_editable"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoice_items.create(
            params={"customer": customer.id, "invoice": invoice.id, "amount": 100, "currency": "usd"}
        )
    assert caught.value.code == "invoice_not_editable"
    second = draft(client, customer.id, 700)
    assert client.v1.invoices.finalize_invoice(second.id).number.endswith("-0002")
    auto = client.v1.invoices.create(params={"customer": customer.id})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.send_invoice(auto.id)
    assert "collection method is 'send_invoice'" in caught.value.user_message


def test_collection_method_rules(client: stripe.StripeClient, customer: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.create(params={"customer": customer.id, "collection_method": "send_invoice"})
    assert caught.value.param == "days_until_due"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.create(params={"customer": customer.id, "days_until_due": 5})
    assert caught.value.param == "days_until_due"
    due = int(time.time()) + 10 * DAY
    fixed = client.v1.invoices.create(
        params={"customer": customer.id, "collection_method": "send_invoice", "due_date": due}
    )
    assert client.v1.invoices.finalize_invoice(fixed.id).due_date == due


def test_pay_by_card_and_the_state_machine(client: stripe.StripeClient, customer: Any) -> None:
    invoice = draft(client, customer.id, 4599)
    paid = client.v1.invoices.pay(invoice.id)  # a draft is finalized first
    assert (paid.status, paid.amount_paid, paid.amount_remaining, paid.attempt_count) == ("paid", 4599, 0, 1)
    assert paid.status_transitions.paid_at is not None and paid.number is not None
    payment = paid.payments.data[0]
    charge = client.v1.charges.retrieve(payment.payment.charge)
    assert (charge.amount, charge.customer, charge.status) == (4599, customer.id, "succeeded")
    assert types_since(client, 7) == [
        "invoice.payment_succeeded",
        "invoice.paid",
        "invoice.updated",
        "charge.succeeded",
        "invoice.updated",
        "invoice.finalized",
        "invoice.updated",
    ]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.pay(invoice.id)
    assert caught.value.user_message == "Invoice is already paid"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(invoice.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.mark_uncollectible(invoice.id)
    voided = client.v1.invoices.void_invoice(client.v1.invoices.finalize_invoice(draft(client, customer.id, 900).id).id)
    assert voided.status == "void" and voided.status_transitions.voided_at is not None
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.pay(voided.id)
    assert (caught.value.http_status, caught.value.user_message) == (400, "Voided invoices cannot be paid.")
    assert types_since(client, 2) == ["invoice.voided", "invoice.updated"]
    lost = client.v1.invoices.mark_uncollectible(
        client.v1.invoices.finalize_invoice(draft(client, customer.id, 800).id).id
    )
    assert lost.status == "uncollectible" and lost.status_transitions.marked_uncollectible_at is not None
    assert types_since(client, 2) == ["invoice.marked_uncollectible", "invoice.updated"]
    assert client.v1.invoices.pay(lost.id, params={"paid_out_of_band": True}).status == "paid"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.void_invoice(draft(client, customer.id, 100).id)
    assert "delete a draft" in caught.value.user_message


def test_declined_payment_leaves_the_invoice_open(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"source": "tok_chargeCustomerFail"})
    invoice = client.v1.invoices.finalize_invoice(draft(client, customer.id, 2500).id)
    with pytest.raises(stripe.CardError) as caught:
        client.v1.invoices.pay(invoice.id)
    assert caught.value.http_status == 402 and caught.value.code == "card_declined"
    after = client.v1.invoices.retrieve(invoice.id)
    assert (after.status, after.attempted, after.attempt_count, after.amount_remaining) == ("open", True, 1, 2500)
    assert after.payments.data[0].status == "failed"
    failed = client.v1.events.list(params={"type": "invoice.payment_failed"}).data[0]
    assert failed.data.object.id == invoice.id and failed.data.object.attempt_count == 1
    assert types_since(client, 3) == ["invoice.payment_failed", "invoice.updated", "charge.failed"]


def test_update_delete_and_metadata_events(client: stripe.StripeClient, customer: Any) -> None:
    invoice = draft(client, customer.id, 1000)
    updated = client.v1.invoices.update(invoice.id, params={"metadata": {"po": "77"}, "description": "Q3"})
    assert updated.metadata.po == "77" and updated.description == "Q3"
    event = client.v1.events.list(params={"type": "invoice.updated"}).data[0]
    assert event.data.previous_attributes.to_dict() == {"description": None, "metadata": {}}
    deleted = client.v1.invoices.delete(invoice.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.retrieve(invoice.id)
    assert caught.value.http_status == 404
    opened = client.v1.invoices.finalize_invoice(draft(client, customer.id, 1000).id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.delete(opened.id)


def test_lists_filter_by_status_due_date_customer_and_created(
    sandbox: SandboxHandle, client: stripe.StripeClient, customer: Any
) -> None:
    other = client.v1.customers.create(params={"source": "tok_visa"})
    now = int(time.time())
    overdue = client.v1.invoices.send_invoice(draft(client, customer.id, 1000, days_until_due=14).id)
    sandbox.backdate(overdue.id, now - 40 * DAY)
    not_due = client.v1.invoices.send_invoice(draft(client, customer.id, 2000).id)
    paid = client.v1.invoices.pay(draft(client, other.id, 3000).id)
    sandbox.backdate(paid.id, now - 20 * DAY)
    drafted = draft(client, other.id, 4000)
    overdue = client.v1.invoices.retrieve(overdue.id)
    assert overdue.created == now - 40 * DAY and overdue.due_date < now and overdue.status == "open"
    assert overdue.status_transitions.finalized_at == overdue.due_date - 14 * DAY
    assert ids(client.v1.invoices.list()) == [drafted.id, not_due.id, paid.id, overdue.id]
    assert ids(client.v1.invoices.list(params={"status": "open"})) == [not_due.id, overdue.id]
    assert ids(client.v1.invoices.list(params={"status": "open", "due_date": {"lt": now}})) == [overdue.id]
    assert ids(client.v1.invoices.list(params={"due_date": {"gt": now}})) == [not_due.id, paid.id]
    assert ids(client.v1.invoices.list(params={"customer": other.id})) == [drafted.id, paid.id]
    assert ids(client.v1.invoices.list(params={"created": {"lt": now - 30 * DAY}})) == [overdue.id]
    assert ids(client.v1.invoices.list(params={"collection_method": "charge_automatically"})) == []
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.list(params={"status": "late"})
    assert caught.value.param == "status"
    paid_events = client.v1.events.list(params={"type": "invoice.paid"}).data
    assert [e.created for e in paid_events] == [now - 20 * DAY]
    assert paid_events[0].data.object.status_transitions.paid_at == now - 20 * DAY
    charge = client.v1.charges.retrieve(client.v1.invoices.retrieve(paid.id).payments.data[0].payment.charge)
    assert charge.created == now - 20 * DAY
