"""Arranging Stripe data in the sandbox the way a test needs it (with a full secret key)."""

from __future__ import annotations

from typing import Any

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
