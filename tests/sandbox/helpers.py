"""Helpers shared by the sandbox tests."""

from __future__ import annotations

import json
from typing import Any

import stripe

from sandbox import SandboxHandle

SECRET_KEY = "sk_test_billysandboxtests"


def make_client(sandbox: SandboxHandle, key: str = SECRET_KEY) -> stripe.StripeClient:
    # No retries: a test must see the first answer, not a retried one.
    return sandbox.client(key, max_network_retries=0)


def charge(client: stripe.StripeClient, customer_id: str, amount: int = 1000, **params: Any) -> Any:
    return client.v1.charges.create(params={"amount": amount, "currency": "usd", "customer": customer_id, **params})


def raw_json(client: stripe.StripeClient, method: str, path: str, **params: Any) -> Any:
    """A raw request's decoded JSON body (for routes the SDK has no method for)."""
    return json.loads(client.raw_request(method, path, **params).body)


def ids(page: Any) -> list[str]:
    return [obj.id for obj in page.data]
