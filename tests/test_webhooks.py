"""`/api/stripe/webhook`: only Stripe's signed, fresh deliveries change the store, once each.

Deliveries are made over HTTP: by hand (forged, tampered, replayed) and by the sandbox
itself to a running server, the way Stripe delivers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from billy_app.api.routes import build_api
from sandbox.events import signature_header
from services import stripe_events, stripe_keys, sync
from services.db import session_scope
from services.errors import PermissionDenied, ValidationFailed
from services.models import AuditEntry, StripeCharge, StripeCustomer, StripeEvent, SyncState
from services.secrets import get_secret_store
from tests.conftest import member_actor
from tests.stripe_helpers import make_charge, sync_lists
from tests.waiting import eventually

SECRET = "whsec_" + "k" * 32


def signed(payload: bytes, secret: str = SECRET, at: int | None = None) -> str:
    """A Stripe-Signature header as Stripe computes it (the sandbox's own signer)."""
    return signature_header(secret, payload, int(time.time()) if at is None else at)


def customer_event(event_id: str, email: str, created: int | None = None) -> bytes:
    created = created or int(time.time())
    customer = {"id": "cus_webhook1", "object": "customer", "email": email, "name": "Web Hook", "created": created}
    event = {
        "id": event_id,
        "object": "event",
        "type": "customer.updated",
        "created": created,
        "data": {"object": customer},
    }
    return json.dumps(event).encode()


@pytest.fixture
def client(any_store, any_store_owner) -> TestClient:  # type: ignore[no-untyped-def]
    stripe_events.set_webhook_secret(any_store_owner, SECRET)
    return TestClient(build_api(), base_url="http://localhost:3000")


def _store() -> tuple[list[str], str | None]:
    with session_scope() as s:
        events = [e.id for e in s.exec(select(StripeEvent))]
        customer = s.get(StripeCustomer, "cus_webhook1")
        return events, customer.email if customer else None


def test_a_signed_delivery_is_applied_once(client) -> None:  # type: ignore[no-untyped-def]
    body = customer_event("evt_1", "first@example.com")
    answer = client.post("/api/stripe/webhook", content=body, headers={"stripe-signature": signed(body)})
    assert (answer.status_code, answer.text) == (200, "applied")
    again = client.post("/api/stripe/webhook", content=body, headers={"stripe-signature": signed(body)})
    assert (again.status_code, again.text) == (200, "duplicate")  # Stripe retries; nothing happens twice
    assert _store() == (["evt_1"], "first@example.com")


@pytest.mark.parametrize(
    "attack",
    ["no signature", "wrong secret", "tampered body", "replayed an hour later", "signature of another body"],
)
def test_forged_or_replayed_deliveries_change_nothing(client, attack: str) -> None:  # type: ignore[no-untyped-def]
    body = customer_event("evt_forged", "attacker@example.com")
    header = {
        "no signature": "",
        "wrong secret": signed(body, secret="whsec_" + "x" * 32),
        "tampered body": signed(customer_event("evt_forged", "innocent@example.com")),
        "replayed an hour later": signed(body, at=int(time.time()) - 3600),
        "signature of another body": signed(b"{}"),
    }[attack]
    answer = client.post("/api/stripe/webhook", content=body, headers={"stripe-signature": header} if header else {})
    assert answer.status_code == 400 and "signature" in answer.text
    assert _store() == ([], None)


def test_an_instance_without_a_secret_refuses_every_delivery(any_store) -> None:  # type: ignore[no-untyped-def]
    body = customer_event("evt_2", "x@example.com")
    answer = TestClient(build_api()).post(
        "/api/stripe/webhook", content=body, headers={"stripe-signature": signed(body)}
    )
    assert answer.status_code == 400 and "not set up" in answer.text
    assert _store() == ([], None)


def test_only_the_owner_sets_the_secret_and_it_is_never_stored_in_the_clear(any_store, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    manager = member_actor("billing_manager", "m@example.com")
    with pytest.raises(PermissionDenied):
        stripe_events.set_webhook_secret(manager, SECRET)
    with pytest.raises(ValidationFailed, match="starts with whsec_"):
        stripe_events.set_webhook_secret(any_store_owner, "sk_test_notasecret")
    assert get_secret_store().get(stripe_events.WEBHOOK_SECRET) is None
    stripe_events.set_webhook_secret(any_store_owner, SECRET)
    assert get_secret_store().get(stripe_events.WEBHOOK_SECRET) == SECRET
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action == "stripe.webhook_secret")).all()
    assert [r.outcome for r in rows] == ["denied", "failed", "ok"]
    assert all(SECRET not in json.dumps(r.details) for r in rows)
    db_file = any_store.data_dir / "db" / "billy.db"
    if db_file.exists():
        assert SECRET.encode() not in db_file.read_bytes()


# --- the sandbox delivering to a running server, as Stripe does -----------------------------


@pytest.fixture
def running_api(any_store) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A real socket in front of the app's routes (the ASGI app driven by Starlette's client)."""
    app = TestClient(build_api(), base_url="http://localhost:3000")

    class Forward(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            answer = app.post(self.path, content=body, headers=dict(self.headers.items()))
            self.send_response(answer.status_code)
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(10)


def test_the_sandbox_delivers_charges_and_refunds_to_the_endpoint(  # type: ignore[no-untyped-def]
    running_api, any_store_owner, stripe_peer, sandbox
) -> None:
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    sync_lists()
    stripe_events.set_webhook_secret(any_store_owner, SECRET)
    sandbox.register_webhook("billy", f"{running_api}/api/stripe/webhook", SECRET)
    try:
        charge = make_charge(stripe_peer, 4321, description="Order #9001")
        stored = eventually(lambda: _charge(charge["id"]), 15.0)
        assert stored, "timed out"
        assert (stored.amount, stored.status, stored.order_number) == (4321, "succeeded", "9001")
        stripe_peer.secret_client().v1.refunds.create(params={"charge": charge["id"], "amount": 321})
        refunded = eventually(lambda: (c := _charge(charge["id"])) and c.amount_refunded == 321 and c, 15.0)
        assert refunded, "timed out"
        assert refunded.amount_refunded == 321
    finally:
        sandbox.delete_webhook("billy")


def _charge(charge_id: str) -> StripeCharge | None:
    with session_scope() as s:
        return s.get(StripeCharge, charge_id)


def test_polling_resumes_after_the_newest_delivered_event_never_an_older_one(client) -> None:  # type: ignore[no-untyped-def]
    """Event polling goes on from the newest event seen (`polling_position`): a delivery moves it
    to its event when that is the newest, an older one arriving late leaves it, and a poll's own
    later position wins over older deliveries. Polling then never skips or repeats a stretch. A
    delivery writes only its event: nothing else for every delivery to queue on."""
    with session_scope() as s:
        assert stripe_events.polling_position(s) == (None, None)  # a fresh instance has no position yet
    now = int(time.time())
    for event_id, created in (("evt_mid", now - 60), ("evt_new", now - 30), ("evt_old", now - 90)):
        body = customer_event(event_id, f"{event_id}@example.com", created)
        answer = client.post("/api/stripe/webhook", content=body, headers={"stripe-signature": signed(body)})
        assert answer.status_code == 200, answer.text
        with session_scope() as s:
            position = stripe_events.polling_position(s)
        if event_id == "evt_mid":
            assert position == (now - 60, "evt_mid")
    assert position == (now - 30, "evt_new")
    with session_scope() as s:
        assert s.get(SyncState, sync.EVENTS) is None  # deliveries kept no position of their own
        sync.sync_state(s, sync.EVENTS).last_event_created = now - 10  # a poll (or backfill) since
    with session_scope() as s:
        assert stripe_events.polling_position(s) == (now - 10, None)
