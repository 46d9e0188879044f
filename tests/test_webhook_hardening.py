"""`/api/stripe/webhook` against replayed, forged, stale and oversized deliveries (issue 16).

Stale is judged by Billy's clock (the injectable one, moved here instead of waited for) against
the signature's time, with Stripe's tolerance of 300 s. A body over `BILLY_WEBHOOK_MAX_BYTES`
(1 MiB) is refused with 413 before it is parsed: read chunk by chunk and dropped at the limit,
whatever `Content-Length` claims. Nothing refused is applied, and nothing is applied twice."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from billy_app.api.routes import build_api
from sandbox.events import signature_header
from services import clock, stripe_events
from services.config import get_settings
from services.db import session_scope
from services.models import StripeCustomer, StripeEvent

SECRET = "whsec_" + "h" * 32
MIB = 1024 * 1024
PATH = "/api/stripe/webhook"


def _event(event_id: str, email: str, padding: int = 0, ago: int = 0) -> bytes:
    now = int(time.time()) - ago
    customer = {"id": "cus_hard1", "object": "customer", "email": email, "name": "H", "created": now - 100}
    if padding:
        customer["metadata"] = {"pad": "x" * padding}
    return json.dumps(
        {"id": event_id, "object": "event", "type": "customer.updated", "created": now, "data": {"object": customer}}
    ).encode()


def _signed(body: bytes, at: int | None = None, secret: str = SECRET) -> dict[str, str]:
    return {"stripe-signature": signature_header(secret, body, int(time.time()) if at is None else at)}


@pytest.fixture
def client(any_store: Any, any_store_owner: Any) -> TestClient:
    stripe_events.set_webhook_secret(any_store_owner, SECRET)
    return TestClient(build_api(), base_url="http://localhost:3000")


@pytest.fixture
def unparsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Deliveries that reached verification and parsing (none may, past the size limit)."""
    seen: list[bytes] = []
    real = stripe_events.receive_webhook

    def spy(payload: bytes, signature: str | None) -> Any:
        seen.append(payload)
        return real(payload, signature)

    monkeypatch.setattr(stripe_events, "receive_webhook", spy)
    return seen


def _stored() -> tuple[list[tuple[str, str]], str | None]:
    with session_scope() as s:
        events = sorted((e.id, e.outcome) for e in s.exec(select(StripeEvent)))
        customer = s.get(StripeCustomer, "cus_hard1")
        return events, customer.email if customer else None


def test_a_replayed_delivery_is_a_duplicate_and_applies_nothing_twice(client: TestClient) -> None:
    first = _event("evt_hard1", "first@example.com", ago=10)
    assert client.post(PATH, content=first, headers=_signed(first)).text == "applied"
    later = _event("evt_hard2", "later@example.com")
    assert client.post(PATH, content=later, headers=_signed(later)).text == "applied"
    for _ in range(3):  # Stripe's retries, or an attacker replaying within the tolerance
        again = client.post(PATH, content=first, headers=_signed(first))
        assert (again.status_code, again.text) == (200, "duplicate")
    assert _stored() == ([("evt_hard1", "applied"), ("evt_hard2", "applied")], "later@example.com")


@pytest.mark.parametrize(
    ("moved", "accepted"),
    [(timedelta(seconds=300), True), (timedelta(seconds=301), False), (timedelta(hours=1), False)],
)
def test_a_delivery_older_than_the_tolerance_is_refused(client: TestClient, moved: timedelta, accepted: bool) -> None:
    body = _event("evt_stale", "stale@example.com")
    signed_at = int(time.time())
    headers = _signed(body, signed_at)  # signed now; Billy's clock then stands `moved` later
    with clock.freeze(datetime.fromtimestamp(signed_at, UTC) + moved):
        answer = client.post(PATH, content=body, headers=headers)
    if accepted:
        assert (answer.status_code, answer.text) == (200, "applied")
    else:
        assert answer.status_code == 400 and "past the 300 s" in answer.text
        assert _stored() == ([], None)


@pytest.mark.parametrize("forgery", ["another secret", "body changed after signing", "no v1 signature", "garbage"])
def test_a_forged_delivery_is_refused(client: TestClient, forgery: str) -> None:
    body = _event("evt_forged", "attacker@example.com")
    header = {
        "another secret": _signed(body, secret="whsec_" + "z" * 32)["stripe-signature"],
        "body changed after signing": _signed(_event("evt_forged", "victim@example.com"))["stripe-signature"],
        "no v1 signature": f"t={int(time.time())}",
        "garbage": "t=soon,v1=",
    }[forgery]
    answer = client.post(PATH, content=body, headers={"stripe-signature": header})
    assert answer.status_code == 400 and "signature" in answer.text
    assert _stored() == ([], None)


def test_a_body_over_one_mib_is_refused_unparsed_and_one_within_it_is_read(
    client: TestClient, unparsed: list[bytes]
) -> None:
    assert get_settings().webhook_max_bytes == MIB  # the default
    big = _event("evt_big", "big@example.com", padding=MIB)
    answer = client.post(PATH, content=big, headers=_signed(big))
    assert answer.status_code == 413 and "refused unread" in answer.text
    assert unparsed == [] and _stored() == ([], None)

    fits = _event("evt_fits", "fits@example.com", padding=MIB - 400)
    assert len(fits) <= MIB
    assert client.post(PATH, content=fits, headers=_signed(fits)).text == "applied"
    assert unparsed == [fits]


def _drive(body_chunks: Iterator[bytes], headers: dict[str, str]) -> tuple[int, int]:
    """POST through the ASGI app itself, the body in chunks as a server hands them over:
    (status, how many chunks the app asked for)."""
    app = build_api()
    asked = 0
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        chunk = next(body_chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("localhost", 3000),
    }
    asyncio.run(app(scope, receive, send))
    return status[0], asked


@pytest.mark.parametrize("claim", ["a lying Content-Length", "no Content-Length (chunked)", "an honest one"])
def test_an_oversized_body_is_dropped_at_the_limit_whatever_its_length_claims(
    client: TestClient, unparsed: list[bytes], monkeypatch: pytest.MonkeyPatch, claim: str
) -> None:
    monkeypatch.setenv("BILLY_WEBHOOK_MAX_BYTES", str(64 * 1024))
    get_settings.cache_clear()
    chunk, chunks = b"x" * 16 * 1024, 256  # 4 MiB offered, 16 KiB at a time
    headers = {"stripe-signature": f"t={int(time.time())},v1=" + "0" * 64}
    if claim == "a lying Content-Length":
        headers["content-length"] = "100"
    elif claim == "an honest one":
        headers["content-length"] = str(len(chunk) * chunks)
    status, asked = _drive(iter([chunk] * chunks), headers)
    assert status == 413 and unparsed == []
    if claim == "an honest one":
        assert asked == 0  # refused on its claim, before a byte was read
    else:
        assert asked <= 64 // 16 + 1  # read up to the limit, then no further


def test_a_delivery_is_applied_while_every_dashboard_thread_is_busy(client: TestClient) -> None:
    """Stripe's deliveries do not queue behind the pages' reads: with every thread of the shared
    pool held (a burst's worth of open pages re-reading), a delivery is still applied at once."""
    from billy_app import blocking

    release = threading.Event()
    held = [blocking._pool.submit(release.wait, 30) for _ in range(blocking.SERVICE_THREADS)]
    try:
        body = _event("evt_while_busy", "busy@example.com")
        began = time.monotonic()
        answer = client.post(PATH, content=body, headers=_signed(body))
        took = time.monotonic() - began
        assert answer.status_code == 200 and answer.text == "applied", answer.text
        assert took < 5  # not the 30 s the held threads would make it wait
        with session_scope() as s:
            assert s.get(StripeCustomer, "cus_hard1").email == "busy@example.com"
    finally:
        release.set()
        for future in held:
            future.result(5)


@pytest.fixture
def secret_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read of the webhook secret from the secret store (a Key Vault call on Azure)."""
    from services.secrets import get_secret_store

    store, reads = get_secret_store(), []
    real = store.get

    def counted(name: str) -> str | None:
        if name == stripe_events.WEBHOOK_SECRET:
            reads.append(name)
        return real(name)

    monkeypatch.setattr(store, "get", counted)
    return reads


def test_deliveries_read_the_secret_from_the_store_once_and_forgeries_cannot_make_them_read_it_more(
    client: TestClient, secret_reads: list[str]
) -> None:
    for n in range(20):
        body = _event(f"evt_kept{n}", f"kept{n}@example.com", ago=40 - n)  # one second each: no refetch
        assert client.post(PATH, content=body, headers=_signed(body)).text == "applied"
    assert secret_reads == []  # kept since the Owner saved it
    for _ in range(20):  # forged: each fails its signature; the store is asked again once at most
        body = _event("evt_forged", "forged@example.com")
        assert client.post(PATH, content=body, headers=_signed(body, secret="whsec_" + "f" * 32)).status_code == 400
    assert len(secret_reads) <= 1
    assert _stored()[1] == "kept19@example.com"


def test_a_secret_replaced_in_the_store_is_taken_up_by_the_next_delivery_it_signs(
    client: TestClient, secret_reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when the Owner saves a rolled secret on another worker, or an operator sets it in the vault."""
    from services.secrets import get_secret_store

    body = _event("evt_before_roll", "before@example.com", ago=5)
    assert client.post(PATH, content=body, headers=_signed(body)).text == "applied"
    rolled = "whsec_" + "r" * 32
    get_secret_store().set(stripe_events.WEBHOOK_SECRET, rolled)
    monkeypatch.setattr(stripe_events, "WEBHOOK_SECRET_RECHECK_SECONDS", 0.0)
    body = _event("evt_after_roll", "after@example.com")
    answer = client.post(PATH, content=body, headers=_signed(body, secret=rolled))
    assert answer.status_code == 200 and answer.text == "applied", answer.text
    body = _event("evt_old_secret", "old@example.com")  # the old secret no longer signs
    assert client.post(PATH, content=body, headers=_signed(body)).status_code == 400
    assert _stored()[1] == "after@example.com"
