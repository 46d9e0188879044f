"""Idempotent requests: replayed, refused on mismatch, serialised when concurrent."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import stripe

from sandbox import SandboxHandle
from sandbox.idempotency import KEY_TTL_SECONDS, IdempotencyCache, SavedResponse
from tests.sandbox.helpers import SECRET_KEY


def create_customer(client: stripe.StripeClient, key: str, name: str = "Idem") -> Any:
    return client.v1.customers.create(params={"name": name}, options={"idempotency_key": key})


def customer_count(client: stripe.StripeClient) -> int:
    return len(client.v1.customers.list(params={"limit": 100}).data)


def test_same_key_same_params_replays(client: stripe.StripeClient) -> None:
    key = str(uuid.uuid4())
    first = create_customer(client, key)
    second = create_customer(client, key)
    assert second.id == first.id
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert customer_count(client) == 1


def test_card_errors_are_replayed_too(client: stripe.StripeClient, customer: Any) -> None:
    key = str(uuid.uuid4())
    params = {"amount": 900, "currency": "usd", "customer": customer.id, "source": "tok_chargeDeclined"}
    charges = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as caught:
            client.v1.charges.create(params=params, options={"idempotency_key": key})
        charges.append(caught.value.json_body["error"]["charge"])
    assert charges[0] == charges[1]
    assert len(client.v1.charges.list().data) == 1


def test_same_key_other_params_is_an_idempotency_error(client: stripe.StripeClient) -> None:
    key = str(uuid.uuid4())
    create_customer(client, key, "First")
    with pytest.raises(stripe.IdempotencyError) as caught:
        create_customer(client, key, "Second")
    assert caught.value.http_status == 400
    assert caught.value.json_body["error"]["type"] == "idempotency_error"
    assert caught.value.user_message.startswith(
        "Keys for idempotent requests can only be used with the same parameters"
    )
    with pytest.raises(stripe.IdempotencyError):
        client.v1.products.create(params={"name": "First"}, options={"idempotency_key": key})
    assert customer_count(client) == 1


def test_validation_errors_are_not_saved(client: stripe.StripeClient, customer: Any) -> None:
    key = str(uuid.uuid4())
    paid = client.v1.charges.create(params={"amount": 800, "currency": "usd", "customer": customer.id})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"charge": "ch_missing"}, options={"idempotency_key": key})
    # The refused request saved nothing, so the key still works for a corrected one.
    made = client.v1.refunds.create(params={"charge": paid.id}, options={"idempotency_key": key})
    assert made.amount == 800


def test_concurrent_duplicates_make_one_object(sandbox: SandboxHandle) -> None:
    key = str(uuid.uuid4())
    sandbox.set_latency(0.2)  # every request is in flight at once, as with a slow endpoint
    clients = [sandbox.client(SECRET_KEY, max_network_retries=0) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        made = list(pool.map(lambda c: create_customer(c, key, "Racer").id, clients))
    assert len(set(made)) == 1
    assert customer_count(clients[0]) == 1


def test_keys_expire_after_a_day() -> None:
    now = [1_000_000.0]
    cache = IdempotencyCache(clock=lambda: now[0])
    entry = SavedResponse("/v1/customers", "", 200, b"{}", "application/json", None, now[0])
    cache.save("k", entry)
    now[0] += KEY_TTL_SECONDS - 1
    assert cache.get("k") is entry
    now[0] += 2
    assert cache.get("k") is None


def test_serialised_runs_one_at_a_time() -> None:
    cache = IdempotencyCache()
    order: list[str] = []

    async def job(name: str) -> None:
        order.append(f"{name} start")
        await asyncio.sleep(0.01)
        order.append(f"{name} end")

    async def both() -> None:
        await asyncio.gather(cache.serialised("k", lambda: job("a")), cache.serialised("k", lambda: job("b")))

    asyncio.run(both())
    assert order == ["a start", "a end", "b start", "b end"]
    assert cache._locks == {}
