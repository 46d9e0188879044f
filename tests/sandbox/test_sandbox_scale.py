"""What a sync at Stripe scale needs of the sandbox: `created` ranges that seek, PaymentMethod
events, customers listed with their cards expanded, and a large account made in-process."""

from __future__ import annotations

import time
from typing import Any

import stripe

from controlplane.local_http import local_http
from sandbox import SandboxHandle
from tests.sandbox.helpers import ids


def _generate(sandbox: SandboxHandle, **body: Any) -> dict[str, Any]:
    made = local_http().post(f"{sandbox.url}/_config/generate", json=body, timeout=120)
    made.raise_for_status()
    return made.json()


def _walk(client: stripe.StripeClient, resource: str, **params: Any) -> list[str]:
    return [o.id for o in getattr(client.v1, resource).list(params={"limit": 7, **params}).auto_paging_iter()]


def _within(created: int, span: dict[str, int]) -> bool:
    return (
        created >= span.get("gte", created)
        and created < span.get("lt", created + 1)
        and created <= span.get("lte", created)
    )


def test_created_ranges_list_exactly_the_objects_in_them_newest_first(
    sandbox: SandboxHandle, client: stripe.StripeClient
) -> None:
    """A walk of a `created` range returns the objects in it and no other, in the unfiltered
    list's order, page after page; ranges that tile the account list it all exactly once."""
    _generate(sandbox, customers=30, seed=7, days=100)
    everything = [(c.id, c.created) for c in client.v1.charges.list(params={"limit": 100}).auto_paging_iter()]
    newest, oldest = everything[0][1], everything[-1][1]
    cuts = [oldest + (newest - oldest) * k // 4 for k in (1, 2, 3)]
    spans = [{"lt": cuts[0]}, {"gte": cuts[0], "lt": cuts[1]}, {"gte": cuts[1], "lte": cuts[2] - 1}, {"gte": cuts[2]}]
    walked = [_walk(client, "charges", created=span) for span in spans]
    assert all(walked), "each quarter holds charges"
    assert [i for part in reversed(walked) for i in part] == [i for i, _ in everything]
    for span, part in zip(spans, walked, strict=True):
        assert part == [i for i, created in everything if _within(created, span)]


def test_a_range_deep_in_the_past_is_as_quick_as_the_newest_page(
    sandbox: SandboxHandle, client: stripe.StripeClient
) -> None:
    _generate(sandbox, customers=400, seed=3, days=365)
    oldest = min(c.created for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter())

    def seconds(**params: Any) -> float:
        started = time.perf_counter()
        for _ in range(5):
            client.v1.charges.list(params={"limit": 1, **params})
        return time.perf_counter() - started

    newest = seconds()
    deep = seconds(created={"lt": oldest + 86_400})
    assert deep < max(5 * newest, 0.05), (deep, newest)  # a seek, not a scan of every newer charge


def test_payment_method_attach_update_and_detach_send_their_events(
    sandbox: SandboxHandle, client: stripe.StripeClient, customer: Any
) -> None:
    since = int(time.time()) - 1
    pm = client.v1.payment_methods.attach("pm_card_riskLevelElevated", params={"customer": customer.id})
    client.v1.payment_methods.update(pm.id, params={"card": {"exp_month": 3, "exp_year": 2031}})
    client.v1.payment_methods.detach(pm.id)
    events = client.v1.events.list(params={"created": {"gte": since}, "limit": 10}).data
    by_type = {e.type: e for e in events if e.type.startswith("payment_method.")}
    assert set(by_type) == {"payment_method.attached", "payment_method.updated", "payment_method.detached"}
    attached = by_type["payment_method.attached"].data.object
    assert (attached.id, attached.customer, attached.card.last4) == (pm.id, customer.id, "9235")
    updated = by_type["payment_method.updated"].data
    assert (updated.object.card.exp_month, updated.object.card.last4) == (3, "9235")  # the rest of the card stays
    assert updated.previous_attributes.card.exp_month == 12
    detached = by_type["payment_method.detached"].data
    assert detached.object.customer is None and detached.previous_attributes.customer == customer.id


def test_customers_list_with_their_default_cards_expanded(sandbox: SandboxHandle, client: stripe.StripeClient) -> None:
    with_source = client.v1.customers.create(params={"name": "Source", "source": "tok_discover"})
    with_pm = client.v1.customers.create(params={"name": "PaymentMethod"})
    pm = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": with_pm.id})
    client.v1.customers.update(with_pm.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    expand = ["data.invoice_settings.default_payment_method", "data.default_source", "data.sources"]
    listed = {c.id: c for c in client.v1.customers.list(params={"limit": 10, "expand": expand}).data}
    assert listed[with_source.id].default_source.last4 == "1117"
    assert listed[with_pm.id].invoice_settings.default_payment_method.card.last4 == "4444"
    assert ids(client.v1.customers.list(params={"limit": 10})) == [with_pm.id, with_source.id]


def test_a_generated_account_is_the_same_made_in_chunks_or_at_once(sandbox: SandboxHandle) -> None:
    now = int(time.time())
    whole = _generate(sandbox, customers=40, seed=5, days=90, now=now)
    client = stripe.StripeClient("sk_test_scale", base_addresses={"api": sandbox.url})
    once = sorted((c.name, c.created) for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter())
    sandbox.reset()
    chunks = [_generate(sandbox, customers=15, seed=5, days=90, offset=o, now=now) for o in (0, 15)]
    chunks.append(_generate(sandbox, customers=10, seed=5, days=90, offset=30, now=now))
    again = sorted((c.name, c.created) for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter())
    assert once == again and whole["customers"] == 40
    assert sum(c["charges"] for c in chunks) == whole["charges"] and whole["charges"] >= 80
    oldest = min(created for _, created in once)
    assert now - 90 * 86_400 <= oldest < now
