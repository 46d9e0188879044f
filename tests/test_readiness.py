"""`/readyz` (issue 10, F3): anyone may call it, so it must not spend Billy's Stripe budget.

Stripe requests are counted where they arrive, at the sandbox (by the key they carry), with a
fresh restricted key per test so nothing else's traffic is counted. Time is moved with the
Stripe check's injectable clock instead of sleeping.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from starlette.testclient import TestClient

from billy_app.api.routes import build_api
from controlplane.local_http import local_http
from services import health, stripe_gateway, stripe_keys
from services.config import get_settings
from services.permissions import Actor

BASE_URL = "http://localhost:3000"
READYZ_PER_SECOND = 10


@dataclass
class Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A fresh Stripe check on a clock the test moves, and a fresh per-address limit."""
    clock = Clock()
    monkeypatch.setattr(health, "stripe_check", health.StripeCheck(clock=clock))
    monkeypatch.setattr(health, "readyz_limit", health.AddressLimit(f"{READYZ_PER_SECOND}/second"))
    return clock


@dataclass
class SandboxRequests:
    """Every API request the sandbox receives, as (key, method, path)."""

    seen: list[tuple[str, str, str]]

    def with_key(self, key: str) -> int:
        return sum(1 for sent_key, _, path in self.seen if sent_key == key and path.startswith("/v1/"))


@pytest.fixture
def sandbox_requests(stripe_peer, monkeypatch: pytest.MonkeyPatch) -> SandboxRequests:  # type: ignore[no-untyped-def]
    """Wraps the sandbox's own key lookup, which its auth middleware runs for every request."""
    from sandbox import keys as sandbox_keys

    requests = SandboxRequests([])
    key_of = sandbox_keys.api_key_of

    def counting(request):  # type: ignore[no-untyped-def]
        key = key_of(request)
        requests.seen.append((key or "", request.method, request.path))
        return key

    monkeypatch.setattr(sandbox_keys, "api_key_of", counting)
    return requests


@pytest.fixture
def connected_key(owner: Actor, stripe_peer) -> str:  # type: ignore[no-untyped-def]
    """A restricted key of this test's own, connected the way the wizard does."""
    key = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, key)
    return key


def _client(address: str = "10.0.0.1") -> TestClient:
    return TestClient(build_api(), base_url=BASE_URL, client=(address, 50_000))


def _all_ready(clients: list[TestClient], calls: int) -> None:
    for i in range(calls):
        response = clients[i % len(clients)].get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json() == {"ready": True, "checks": {"database": "ok", "secret_store": "ok", "stripe": "ok"}}


def test_200_calls_cost_one_stripe_request(clock: Clock, connected_key: str, sandbox_requests: SandboxRequests) -> None:
    # 20 addresses, 10 calls each: all within the per-address limit, so every call is answered.
    clients = [_client(f"10.0.1.{n}") for n in range(20)]
    _all_ready(clients, 200)
    assert sandbox_requests.with_key(connected_key) == 1


def test_stripe_is_asked_again_only_after_30_seconds(
    clock: Clock, connected_key: str, sandbox_requests: SandboxRequests
) -> None:
    clients = [_client(f"10.0.2.{n}") for n in range(5)]
    _all_ready(clients, 5)
    assert sandbox_requests.with_key(connected_key) == 1
    clock.advance(health.STRIPE_CHECK_SECONDS - 0.1)
    _all_ready(clients, 5)
    assert sandbox_requests.with_key(connected_key) == 1
    clock.advance(0.1)
    _all_ready(clients, 5)
    assert sandbox_requests.with_key(connected_key) == 2  # one more, then cached again


def test_concurrent_callers_share_one_check(
    clock: Clock, connected_key: str, stripe_peer, sandbox_requests: SandboxRequests
) -> None:  # type: ignore[no-untyped-def]
    """A slow Stripe: callers arriving mid-check wait for it (first time) or get the previous
    answer (later), and none of them sends a request of its own."""
    local_http().post(f"{stripe_peer.url}/_config/latency", json={"seconds": 0.5}).raise_for_status()
    try:
        for expected_requests in (1, 2):
            start = threading.Barrier(16)
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(_together, [start] * 16))
            assert [a["stripe"] for a in answers] == ["ok"] * 16
            assert sandbox_requests.with_key(connected_key) == expected_requests
            clock.advance(health.STRIPE_CHECK_SECONDS)
    finally:
        local_http().post(f"{stripe_peer.url}/_config/latency", json={"seconds": 0})


def _together(start: threading.Barrier) -> dict[str, str]:
    start.wait()
    return health.readiness()


def test_a_flood_from_one_address_gets_429_while_another_address_is_answered(
    clock: Clock, connected_key: str, sandbox_requests: SandboxRequests, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks_run: list[bool] = []
    readiness = health.readiness

    def counted() -> dict[str, str]:
        checks_run.append(True)
        return readiness()

    monkeypatch.setattr(health, "readiness", counted)
    flooder = _client("203.0.113.66")
    started = time.monotonic()
    responses = [flooder.get("/readyz") for _ in range(60)]
    elapsed = time.monotonic() - started
    statuses = [r.status_code for r in responses]
    answered = statuses.count(200)
    assert set(statuses) == {200, 429}
    assert READYZ_PER_SECOND <= answered <= READYZ_PER_SECOND * (int(elapsed) + 1)
    assert statuses[:READYZ_PER_SECOND] == [200] * READYZ_PER_SECOND
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.headers["retry-after"] == "1"  # a one-second window
    assert len(checks_run) == answered  # a refused call does no checking at all
    # Someone else, meanwhile, is answered in full.
    other = _client("198.51.100.7").get("/readyz")
    assert other.status_code == 200 and other.json()["checks"]["stripe"] == "ok"
    assert sandbox_requests.with_key(connected_key) == 1


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_stripe_outage_reads_failed_without_raising(
    clock: Clock, connected_key: str, stripe_peer, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BILLY_STRIPE_API_BASE", f"http://127.0.0.1:{_unused_port()}")  # nothing listens
    get_settings.cache_clear()
    started = time.monotonic()
    checks = health.readiness()
    assert time.monotonic() - started < 10  # one attempt, not the sync's back-off
    assert checks["database"] == checks["secret_store"] == "ok" and checks["stripe"].startswith("failed")
    ready = _client().get("/readyz")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert ready.json()["checks"]["stripe"] == checks["stripe"]  # the failure is cached too

    monkeypatch.setenv("BILLY_STRIPE_API_BASE", stripe_peer.url)  # Stripe is back
    get_settings.cache_clear()
    assert _client().get("/readyz").status_code == 200


@pytest.mark.parametrize(
    "breakage",
    [
        lambda monkeypatch: monkeypatch.setattr(health.StripeGateway, "check_reachable", _raise),
        lambda monkeypatch: monkeypatch.setattr(stripe_gateway, "rate_gate", _raise),
    ],
    ids=["gateway raises", "rate gate raises"],
)
def test_an_unexpected_error_in_the_stripe_check_is_reported_not_raised(
    clock: Clock, connected_key: str, monkeypatch: pytest.MonkeyPatch, breakage: Callable[[pytest.MonkeyPatch], None]
) -> None:
    breakage(monkeypatch)
    ready = _client().get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["stripe"] == "failed: RuntimeError"


def _raise(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom")


def test_a_429_from_stripe_counts_as_reachable(
    clock: Clock, connected_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stripe answered and knew the key; only Billy's request budget is in use right now."""
    import stripe

    def throttled(self: object) -> None:
        raise stripe_gateway.billy_error(stripe.RateLimitError("Too many requests", http_status=429))

    monkeypatch.setattr(health.StripeGateway, "check_reachable", throttled)
    ready = _client().get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["stripe"] == "ok"


def test_a_broken_secret_store_is_reported_not_raised(clock: Clock, owner: Actor, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(health, "get_secret_store", _raise)
    ready = _client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "ok", "secret_store": "failed: RuntimeError"}


def test_a_newly_connected_key_is_checked_at_once(
    clock: Clock, owner: Actor, connected_key: str, stripe_peer, sandbox_requests: SandboxRequests
) -> None:  # type: ignore[no-untyped-def]
    client = _client()
    assert client.get("/readyz").status_code == 200
    other_key = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, other_key)  # its permission probes are requests too
    probes = sandbox_requests.with_key(other_key)
    assert client.get("/readyz").status_code == 200
    assert sandbox_requests.with_key(connected_key) == 1 and sandbox_requests.with_key(other_key) == probes + 1


def test_without_a_connected_key_stripe_is_not_asked(
    clock: Clock, owner: Actor, sandbox_requests: SandboxRequests
) -> None:
    ready = _client().get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "secret_store": "ok"}
    assert sandbox_requests.seen == []
