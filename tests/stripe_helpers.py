"""Arranging Stripe data in the sandbox the way a test needs it (with a full secret key)."""

from __future__ import annotations

from typing import Any

from services import sync
from tests.conftest import StripePeer


def make_customer(peer: StripePeer, name: str = "Jane Smith", email: str = "jane.smith@example.com") -> str:
    return peer.secret_client().v1.customers.create(params={"name": name, "email": email}).id


def make_charge(
    peer: StripePeer, amount: int, customer: str | None = None, description: str = "Order #1001", card: str = "tok_visa"
) -> dict[str, Any]:
    """A charge paid with one of Stripe's documented test tokens."""
    customer = customer or make_customer(peer)
    charge = peer.secret_client().v1.charges.create(
        params={
            "amount": amount,
            "currency": "usd",
            "customer": customer,
            "source": card,
            "description": description,
        }
    )
    return charge.to_dict()


def make_team_subscription_and_open_invoice(peer: StripePeer, customer: str, description: str = "Work") -> Any:
    """A monthly $49 "Team" subscription and a finalized $120 invoice (by invoice, due in 10 days)
    for `customer`; returns (price, subscription, invoice)."""
    client = peer.secret_client()
    price = client.v1.prices.create(
        params={
            "product_data": {"name": "Team"},
            "unit_amount": 4900,
            "currency": "usd",
            "recurring": {"interval": "month"},
        }
    )
    subscription = client.v1.subscriptions.create(params={"customer": customer, "items": [{"price": price.id}]})
    invoice = client.v1.invoices.create(
        params={"customer": customer, "collection_method": "send_invoice", "days_until_due": 10}
    )
    client.v1.invoice_items.create(
        params={
            "customer": customer,
            "invoice": invoice.id,
            "amount": 12_000,
            "currency": "usd",
            "description": description,
        }
    )
    client.v1.invoices.finalize_invoice(invoice.id)
    return price, subscription, invoice


def sync_lists() -> dict[str, str]:
    """The store synced from the sandbox's lists, as a first sync leaves it before its card sweep
    (one request per customer for cards saved but never made a default). Tests whose subject is not
    those cards skip the sweep: it was about a third of the time their fixtures spent syncing.
    test_sync_ranges covers the sweep."""
    return sync.backfill(sweep=False)
