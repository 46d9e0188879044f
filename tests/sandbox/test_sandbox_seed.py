"""The seeding script: deterministic, varied, with Jane Smith's order, idempotent."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import stripe

from sandbox import SandboxHandle
from sandbox.seed import FAILURE_SOURCES, main, plan, seed
from tests.sandbox.helpers import SECRET_KEY

NOW = 1_790_000_000


def snapshot(client: stripe.StripeClient) -> list[tuple[Any, ...]]:
    """What the seed made, without the random ids."""
    names = {
        c.id: (c.name, c.email, c.address.to_dict())
        for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter()
    }
    return [
        (
            names[c.customer],
            c.amount,
            c.description,
            c.metadata.to_dict(),
            c.status,
            c.failure_code,
            c.outcome.type,
            c.amount_refunded,
            NOW - c.created,
        )
        for c in client.v1.charges.list(params={"limit": 100}).auto_paging_iter()
    ]


def test_plan_is_deterministic_and_varied() -> None:
    assert plan(42, 50) == plan(42, 50)
    assert plan(42, 50) != plan(7, 50)
    charges = [c for person in plan(42, 50) for c in person.charges]
    kinds = Counter(c.refund or c.outcome for c in charges)
    for reason in FAILURE_SOURCES:
        assert kinds[reason] >= 2
    assert kinds["partial"] >= 2 and kinds["full"] >= 2
    assert kinds["succeeded"] > len(charges) * 0.7
    assert all(2 <= len(person.charges) <= 6 for person in plan(42, 50))
    assert all(3600 <= c.age <= 60 * 86400 for c in charges)
    numbers = [c.order_number for c in charges]
    assert len(numbers) == len(set(numbers))
    repeaters = [
        p
        for p in plan(42, 50)
        if max(Counter(c.outcome for c in p.charges if c.outcome != "succeeded").values(), default=0) >= 2
    ]
    assert len(repeaters) >= 2


def test_same_seed_same_data(sandbox: SandboxHandle) -> None:
    client = sandbox.client(SECRET_KEY, max_network_retries=0)
    seed(sandbox.url, seed=3, customers=8, now=NOW)
    first = snapshot(client)
    sandbox.reset()
    seed(sandbox.url, seed=3, customers=8, now=NOW)
    assert snapshot(client) == first
    assert len(first) >= 16


def test_full_seed_has_jane_smiths_order(sandbox: SandboxHandle) -> None:
    started = time.monotonic()
    summary = seed(sandbox.url)
    assert time.monotonic() - started < 30
    assert summary["customers"] == 50 and 100 <= summary["charges"] <= 300
    client = sandbox.client(SECRET_KEY, max_network_retries=0)
    jane = client.v1.customers.list(params={"email": "jane.smith@example.com"}).data
    assert [c.name for c in jane] == ["Jane Smith"]
    orders = [c for c in client.v1.charges.list(params={"customer": jane[0].id}).data if c.description == "Order #5678"]
    assert len(orders) == 1
    order = orders[0]
    assert (order.amount, order.currency, order.status) == (4599, "usd", "succeeded")
    assert order.metadata.order_number == "5678"
    assert summary["jane_smith"] == {"customer": jane[0].id, "charge": order.id}
    failures = Counter(
        c.outcome.type if c.outcome.type == "blocked" else c.failure_code
        for c in client.v1.charges.list(params={"limit": 100}).auto_paging_iter()
        if c.status == "failed"
    )
    assert failures["expired_card"] and failures["card_declined"] and failures["blocked"]
    now = time.time()
    created = [c.created for c in client.v1.charges.list(params={"limit": 100}).auto_paging_iter()]
    assert min(created) >= now - 61 * 86400 and max(created) <= now


def test_second_run_says_already_seeded(sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--api", sandbox.url, "--customers", "3"]) == 0
    assert "seeded 3 customers" in capsys.readouterr().out
    assert main(["--api", sandbox.url]) == 0
    assert capsys.readouterr().out.strip() == "already seeded"
    client = sandbox.client(SECRET_KEY, max_network_retries=0)
    assert len(client.v1.customers.list(params={"limit": 100}).data) == 3
