"""Billy's own request ceiling (`stripe_gateway.RateGate`) and its back-off after a 429.

The sandbox answers 429 past its limit as Stripe does (`POST /_config/rate_limit`), so a
ceiling set equal to that limit can be checked against a real moving window.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import stripe

from services import stripe_gateway
from services.stripe_gateway import RateGate


def test_a_gate_equal_to_the_limit_draws_no_429s(sandbox) -> None:  # type: ignore[no-untyped-def]
    """Counting at send time with a window of exactly one second let about one request in
    fifteen land inside the sandbox's second (jitter); the gate's margin absorbs that."""
    client = sandbox.client("sk_test_billygate", max_network_retries=0)
    gate = RateGate(10)
    sandbox.set_rate_limit(10)
    refused = 0
    try:
        started = time.monotonic()
        for _ in range(40):
            gate.acquire()
            try:
                client.v1.customers.list(params={"limit": 1})
            except stripe.RateLimitError:
                refused += 1
        took = time.monotonic() - started
    finally:
        sandbox.set_rate_limit(0)
    assert refused <= 1  # 0 on a quiet machine; one allows for a descheduled thread
    assert 2.9 < took < 3.6  # 10 at once, then 10 per 1.02 s: the margin costs about 2 %


def test_the_gate_never_lets_more_than_its_rate_into_any_window() -> None:
    gate = RateGate(20)
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            gate.acquire()
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent.sort()
    assert len(sent) == 50
    assert all(later - earlier >= 1.0 for earlier, later in zip(sent, sent[20:], strict=False))


def _state(failure: BaseException, attempt: int) -> Any:
    outcome = SimpleNamespace(exception=lambda: failure)
    return SimpleNamespace(outcome=outcome, attempt_number=attempt)


def test_a_429_is_retried_sooner_than_a_server_error() -> None:
    wait = stripe_gateway._read_backoff()
    throttled = stripe.RateLimitError("Too many requests", http_status=429)
    broken = stripe.APIError("Boom", http_status=500)
    assert all(0.25 <= wait(_state(throttled, 1)) <= 0.5 for _ in range(20))
    assert all(0.5 <= wait(_state(throttled, 2)) <= 0.75 for _ in range(20))
    assert all(0.5 <= wait(_state(broken, 1)) <= 1.5 for _ in range(20))
