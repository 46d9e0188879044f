"""The sandbox's Stripe-style rate limit (`POST /_config/rate_limit`, `--rate-limit N`).

Stripe answers requests over its per-account limit with HTTP 429 and an error
object `{"type": "invalid_request_error", "code": "rate_limit", ...}`, no
`Retry-After`, and the limiter's name in `Stripe-Rate-Limited-Reason`
(docs: rate-limits, error-codes, error-low-level).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import stripe

from controlplane.local_http import local_http
from sandbox import DEMO_RESTRICTED_KEY, SandboxHandle, run_in_process
from sandbox.ratelimit import RateLimit
from tests.sandbox.helpers import SECRET_KEY, make_client


@pytest.fixture
def limited(sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    yield sandbox
    sandbox.set_rate_limit(0)  # never leak a limit into the next test, whatever it asserted


def _burst(client: stripe.StripeClient, n: int) -> list[stripe.RateLimitError | None]:
    outcomes: list[stripe.RateLimitError | None] = []
    for _ in range(n):
        try:
            client.v1.customers.list(params={"limit": 1})
            outcomes.append(None)
        except stripe.RateLimitError as exc:
            outcomes.append(exc)
    return outcomes


def test_over_the_limit_is_a_stripe_429(limited: SandboxHandle) -> None:
    client = make_client(limited)
    limited.set_rate_limit(5)
    outcomes = _burst(client, 7)
    assert outcomes[:5] == [None] * 5
    refused = outcomes[5]
    assert isinstance(refused, stripe.RateLimitError) and isinstance(outcomes[6], stripe.RateLimitError)
    assert refused.http_status == 429
    error = (refused.json_body or {})["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "rate_limit"
    assert error["message"].startswith("Request rate limit exceeded.")
    assert error["doc_url"].endswith("/error-codes/rate-limit")
    headers = refused.headers or {}
    assert headers.get("Stripe-Rate-Limited-Reason") == "global-rate"
    assert headers.get("Request-Id", "").startswith("req_")
    assert "Retry-After" not in headers and "Stripe-Should-Retry" not in headers
    assert limited.rate_limit() == {"requests_per_second": 5, "default": 0, "refused": 2}


def test_under_the_limit_is_fine_and_the_window_moves(limited: SandboxHandle) -> None:
    client = make_client(limited)
    limited.set_rate_limit(4)
    assert _burst(client, 4) == [None] * 4
    time.sleep(1.05)  # the first four leave the moving window
    assert _burst(client, 4) == [None] * 4
    assert isinstance(_burst(client, 1)[0], stripe.RateLimitError)


def test_requests_spaced_at_the_limit_pass(limited: SandboxHandle) -> None:
    client = make_client(limited)
    limited.set_rate_limit(10)
    for _ in range(15):  # 1.5 s at 10/s with a little slack: never more than 10 in any second
        assert _burst(client, 1) == [None]
        time.sleep(0.11)


def test_off_by_default_and_with_zero(limited: SandboxHandle) -> None:
    client = make_client(limited)
    assert limited.rate_limit()["requests_per_second"] == 0
    assert _burst(client, 60) == [None] * 60
    limited.set_rate_limit(2)
    limited.set_rate_limit(0)
    assert _burst(client, 30) == [None] * 30


def test_every_key_and_method_shares_one_budget(limited: SandboxHandle) -> None:
    secret, restricted = make_client(limited), make_client(limited, DEMO_RESTRICTED_KEY)
    limited.set_rate_limit(3)
    secret.v1.customers.create(params={"name": "A"})
    restricted.v1.charges.list(params={"limit": 1})
    secret.v1.customers.list(params={"limit": 1})
    with pytest.raises(stripe.RateLimitError):
        restricted.v1.customers.create(params={"name": "B"})


def test_config_routes_are_not_counted(limited: SandboxHandle) -> None:
    client = make_client(limited)
    limited.set_rate_limit(1)
    customer = client.v1.customers.create(params={"name": "A"})
    for _ in range(5):
        limited.backdate(customer.id, 1_700_000_000)
        limited.rate_limit()
    assert limited.rate_limit()["refused"] == 0


def test_a_refused_post_is_not_saved_under_its_idempotency_key(limited: SandboxHandle) -> None:
    client = make_client(limited)
    limited.set_rate_limit(1)
    client.v1.customers.list(params={"limit": 1})
    with pytest.raises(stripe.RateLimitError):
        client.v1.customers.create(params={"name": "Later"}, options={"idempotency_key": "rl-1"})
    time.sleep(1.05)
    created = client.v1.customers.create(params={"name": "Later"}, options={"idempotency_key": "rl-1"})
    assert created.name == "Later"
    limited.set_rate_limit(0)
    assert [c.id for c in client.v1.customers.list().data] == [created.id]


def test_the_sdk_does_not_retry_a_429_by_itself(limited: SandboxHandle) -> None:
    """No `Stripe-Should-Retry: true`, so stripe-python's own retries leave a 429 alone:
    Billy's gateway retries rate-limited reads itself (services/stripe_gateway.py)."""
    client = limited.client(SECRET_KEY, max_network_retries=2)
    limited.set_rate_limit(1)
    client.v1.customers.list(params={"limit": 1})
    with pytest.raises(stripe.RateLimitError):
        client.v1.customers.list(params={"limit": 1})
    assert limited.rate_limit()["refused"] == 1


def test_a_reset_returns_to_the_start_up_limit(limited: SandboxHandle) -> None:
    limited.set_rate_limit(1)
    make_client(limited).v1.customers.list(params={"limit": 1})
    limited.reset()
    assert limited.rate_limit() == {"requests_per_second": 0, "default": 0, "refused": 0}
    assert _burst(make_client(limited), 5) == [None] * 5


@pytest.mark.parametrize("bad", [-1, 2.5, "ten", True, 10**6])
def test_the_limit_must_be_a_whole_number(limited: SandboxHandle, bad: object) -> None:
    response = local_http().post(f"{limited.url}/_config/rate_limit", json={"requests_per_second": bad}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "requests_per_second"


def test_an_absent_value_turns_it_off(limited: SandboxHandle) -> None:
    limited.set_rate_limit(3)
    response = local_http().post(f"{limited.url}/_config/rate_limit", json={}, timeout=10)
    assert response.json()["requests_per_second"] == 0


def test_the_command_line_flag_sets_the_start_up_limit() -> None:
    handle = run_in_process(port=0, rate_limit=3)
    try:
        client = make_client(handle)
        assert handle.rate_limit() == {"requests_per_second": 3, "default": 3, "refused": 0}
        assert [e is None for e in _burst(client, 4)] == [True, True, True, False]
        handle.reset()  # clears data and the window, keeps the limit it was started with
        assert handle.rate_limit() == {"requests_per_second": 3, "default": 3, "refused": 0}
        handle.set_rate_limit(0)
        assert _burst(client, 10) == [None] * 10
    finally:
        handle.stop()


def test_the_window_is_a_moving_second() -> None:
    now = [100.0]
    limit = RateLimit(clock=lambda: now[0])
    limit.configure(2)
    assert limit.admit() and limit.admit() and not limit.admit()  # two at t=100.0
    now[0] = 100.6
    assert not limit.admit()  # still two in (99.6, 100.6]
    now[0] = 101.0
    assert limit.admit()  # the two at t=100.0 left the window (100.0, 101.0]
    now[0] = 101.5
    assert limit.admit() and not limit.admit()
    assert limit.refused == 3
