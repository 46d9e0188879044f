"""The sandbox's injected faults (`POST /_config/faults`) and clock offset (`POST /_config/clock`).

A fault before the write leaves nothing behind, so the retry with the same key executes; a
fault after the write leaves the change made and its answer saved, so the retry is answered
from that record (`Idempotent-Replayed: true`) and nothing is made twice."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import pytest
import stripe

from controlplane.local_http import local_http
from sandbox import SandboxHandle
from sandbox.server import SandboxRequestError
from tests.sandbox.helpers import SECRET_KEY, make_client


def _create(client: stripe.StripeClient, key: str) -> stripe.Customer:
    return client.v1.customers.create(params={"name": "Fault Tester"}, options={"idempotency_key": key})


def _customers(client: stripe.StripeClient) -> int:
    return len(client.v1.customers.list(params={"limit": 100}).data)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("429", stripe.RateLimitError),
        ("500", stripe.APIError),
        ("503", stripe.APIError),
        ("reset", stripe.APIConnectionError),
    ],
)
def test_a_fault_before_the_write_changes_nothing_and_the_retry_executes(
    sandbox: SandboxHandle, kind: str, error: type[Exception]
) -> None:
    client = make_client(sandbox)
    sandbox.set_faults([{"path": "/v1/customers", "kind": kind}])
    with pytest.raises(error):
        _create(client, "fault-before-write-0001")
    assert _customers(client) == 0
    made = _create(client, "fault-before-write-0001")
    assert made.last_response is not None and "Idempotent-Replayed" not in made.last_response.headers
    assert _customers(client) == 1
    fired = sandbox.faults()
    assert fired["faults"] == [] and [(f["kind"], f["idempotency_key"]) for f in fired["fired"]] == [
        (kind, "fault-before-write-0001")
    ]


@pytest.mark.parametrize("kind", ["after_write_reset", "after_write_timeout"])
def test_a_fault_after_the_write_leaves_it_made_and_the_retry_replays_it(sandbox: SandboxHandle, kind: str) -> None:
    client = sandbox.client(SECRET_KEY, max_network_retries=0, http_client=stripe.RequestsClient(timeout=0.5))
    sandbox.set_faults([{"path": "/v1/customers", "kind": kind, "seconds": 1}])
    with pytest.raises(stripe.APIConnectionError):
        _create(client, "fault-after-write-0001")
    assert _customers(client) == 1  # made, though its answer never came
    replayed = _create(client, "fault-after-write-0001")
    assert replayed.last_response is not None and replayed.last_response.headers["Idempotent-Replayed"] == "true"
    assert _customers(client) == 1
    assert replayed.id == client.v1.customers.list().data[0].id


def test_a_timeout_holds_the_connection_then_drops_it_unexecuted(sandbox: SandboxHandle) -> None:
    client = sandbox.client(SECRET_KEY, max_network_retries=0, http_client=stripe.RequestsClient(timeout=0.3))
    sandbox.set_faults([{"path": "/v1/customers", "kind": "timeout", "seconds": 1}])
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError, match=r"(?i)timed? ?out"):
        _create(client, "fault-timeout-00001")
    assert time.monotonic() - started < 1  # the client gave up; the sandbox was still holding it
    assert _customers(client) == 0


def test_faults_match_method_and_path_glob_and_count_down(sandbox: SandboxHandle) -> None:
    client = make_client(sandbox)
    customer = client.v1.customers.create(params={"name": "Glob"})
    sandbox.set_faults([{"path": "/v1/customers/cus_*", "kind": "503", "count": 2}])
    client.v1.customers.retrieve(customer.id)  # a GET: not the faulted method
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            client.v1.customers.update(customer.id, params={"name": "Globbed"})
    assert client.v1.customers.update(customer.id, params={"name": "Globbed"}).name == "Globbed"
    assert len(sandbox.faults()["fired"]) == 2


def test_bad_faults_are_refused_and_a_reset_clears_them(sandbox: SandboxHandle) -> None:
    for bad in ({"path": "/v1/customers", "kind": "explode"}, {"path": "customers", "kind": "500"}):
        with pytest.raises(SandboxRequestError) as refused:
            sandbox.set_faults([bad])
        assert refused.value.status == 400
    sandbox.set_faults([{"path": "/v1/customers", "kind": "500"}])
    sandbox.reset()
    assert sandbox.faults() == {"faults": [], "fired": []}


def test_the_clock_offset_moves_created_and_the_date_header(sandbox: SandboxHandle) -> None:
    client = make_client(sandbox)
    now = sandbox.set_clock_offset(-600)
    try:
        assert abs(now - (time.time() - 600)) < 5
        made = client.v1.customers.create(params={"name": "Behind"})
        assert abs(made.created - (time.time() - 600)) < 5
        event = client.v1.events.list(params={"limit": 1}).data[0]
        assert abs(event.created - made.created) <= 1
        answered = local_http().get(f"{sandbox.url}/v1/customers", headers={"Authorization": f"Bearer {SECRET_KEY}"})
        stripe_time = parsedate_to_datetime(answered.headers["Date"]).timestamp()
        assert abs(stripe_time - (time.time() - 600)) < 5
    finally:
        sandbox.set_clock_offset(0)
    sandbox.set_clock_offset(120)
    sandbox.reset()
    assert local_http().get(f"{sandbox.url}/_config/clock").json()["offset_seconds"] == 0
