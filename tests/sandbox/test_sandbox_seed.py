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
        if c.description.startswith("Order #")
    ]


def billing_snapshot(client: stripe.StripeClient) -> list[tuple[Any, ...]]:
    """The seed's subscriptions and invoices, without ids."""
    names = {c.id: c.name for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter()}
    subscriptions = [
        (
            names[s.customer],
            s.status,
            [(i.price.unit_amount, i.price.recurring.interval, i.quantity) for i in s["items"].data],
            NOW - s.created,
        )
        for s in client.v1.subscriptions.list(params={"status": "all", "limit": 100}).auto_paging_iter()
    ]
    invoices = [
        (names[i.customer], i.status, i.billing_reason, i.total, NOW - i.created)
        for i in client.v1.invoices.list(params={"limit": 100}).auto_paging_iter()
    ]
    return [*subscriptions, *invoices]


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
    first_billing = billing_snapshot(client)
    sandbox.reset()
    seed(sandbox.url, seed=3, customers=8, now=NOW)
    assert snapshot(client) == first
    assert billing_snapshot(client) == first_billing
    assert len(first) >= 16 and len(first_billing) >= 13 + 10


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
    charges = list(client.v1.charges.list(params={"limit": 100}).auto_paging_iter())
    created = [c.created for c in charges if c.description.startswith("Order #")]
    assert min(created) >= now - 61 * 86400 and max(created) <= now
    assert all(now - 91 * 86400 <= c.created <= now for c in charges)


def test_full_seed_has_billing_history(sandbox: SandboxHandle) -> None:
    started = time.monotonic()
    summary = seed(sandbox.url)
    assert time.monotonic() - started < 30
    client = sandbox.client(SECRET_KEY, max_network_retries=0)
    now = time.time()
    prices = client.v1.prices.list(params={"limit": 100, "type": "recurring"}).data
    intervals = Counter((p.product, p.recurring.interval) for p in prices)
    assert sum(1 for (_, interval) in intervals if interval == "year") >= 3
    assert all(count == 1 for count in intervals.values())
    subs = list(client.v1.subscriptions.list(params={"status": "all", "limit": 100}).auto_paging_iter())
    statuses = Counter(s.status for s in subs)
    assert statuses["active"] >= 3 and statuses["trialing"] >= 1 and statuses["canceled"] >= 1
    assert statuses["past_due"] >= 1 and statuses["unpaid"] >= 1
    assert summary["subscriptions"] == len(subs)
    assert any(len(s["items"].data) > 1 for s in subs) and any(s.cancel_at_period_end for s in subs)
    jane = summary["jane_smith"]["customer"]
    assert all(s.customer != jane for s in subs)
    for sub in subs:
        if sub.status == "past_due":
            latest = client.v1.invoices.retrieve(sub.latest_invoice)
            assert (latest.status, latest.attempted, latest.billing_reason) == ("open", True, "subscription_cycle")
        if sub.status == "canceled":
            assert sub.ended_at < now and sub.canceled_at is not None
    assert min(s.created for s in subs) >= now - 91 * 86400
    invoices = list(client.v1.invoices.list(params={"limit": 100}).auto_paging_iter())
    one_off = [i for i in invoices if i.subscription is None]
    kinds = Counter(i.status for i in one_off)
    assert kinds["paid"] >= 2 and kinds["void"] >= 1 and kinds["uncollectible"] >= 1 and kinds["draft"] >= 1
    open_one_off = [i for i in one_off if i.status == "open"]
    assert all(i.collection_method == "send_invoice" for i in open_one_off)
    assert any(i.due_date < now for i in open_one_off) and any(i.due_date > now for i in open_one_off)
    overdue = client.v1.invoices.list(params={"status": "open", "due_date": {"lt": int(now)}}).data
    assert {i.id for i in overdue} == {i.id for i in open_one_off if i.due_date < now}
    assert min(i.created for i in invoices) >= now - 91 * 86400 and max(i.created for i in invoices) <= now
    assert max(now - i.created for i in invoices) > 60 * 86400
    failed = client.v1.events.list(params={"type": "invoice.payment_failed"}).data
    assert failed and all(e.created < now - 86400 for e in failed)


def test_second_run_says_already_seeded(sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--api", sandbox.url, "--customers", "3"]) == 0
    assert "seeded 3 customers" in capsys.readouterr().out
    assert main(["--api", sandbox.url]) == 0
    assert capsys.readouterr().out.strip().startswith("demo data: already in the sandbox at http")
    client = sandbox.client(SECRET_KEY, max_network_retries=0)
    assert len(client.v1.customers.list(params={"limit": 100}).data) == 3


def test_asking_for_more_customers_than_the_demo_can_name_fails_at_once() -> None:
    from sandbox.seed import MAX_CUSTOMERS, plan

    assert len(plan(customers=MAX_CUSTOMERS)) == MAX_CUSTOMERS
    with pytest.raises(ValueError, match="at most 2000"):
        plan(customers=MAX_CUSTOMERS + 1)
