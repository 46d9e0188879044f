"""Events: Stripe-shaped, listed newest first with filters, delivered signed to webhooks."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from sandbox import SandboxHandle
from sandbox.state import API_VERSION
from tests.sandbox.helpers import charge

SECRET = "whsec_sandboxtest"


class Receiver:
    """A tiny webhook endpoint that keeps every delivery."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, str]] = []
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((body, self.headers.get("Stripe-Signature", "")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, event_type: str, timeout: float = 5.0) -> tuple[bytes, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body, signature in list(self.deliveries):
                if json.loads(body)["type"] == event_type:
                    return body, signature
            time.sleep(0.05)
        raise AssertionError(f"no {event_type} delivered")


@pytest.fixture
def receiver(sandbox: SandboxHandle) -> Iterator[Receiver]:
    hook = Receiver()
    hook_id = f"test-{uuid.uuid4().hex[:8]}"
    sandbox.register_webhook(hook_id, hook.url, SECRET)
    yield hook
    sandbox.delete_webhook(hook_id)
    hook.server.shutdown()


def types(events: Any) -> list[str]:
    return [event.type for event in events.data]


def test_charge_and_refund_events_newest_first(client: stripe.StripeClient, customer: Any) -> None:
    paid = charge(client, customer.id, 3000)
    with pytest.raises(stripe.CardError):
        charge(client, customer.id, source="tok_chargeDeclinedInsufficientFunds")
    made = client.v1.refunds.create(params={"charge": paid.id, "amount": 1000})
    client.v1.charges.update(paid.id, params={"description": "Order #9"})
    events = client.v1.events.list(params={"limit": 100})
    assert types(events)[:5] == [
        "charge.updated",
        "refund.created",
        "charge.refunded",
        "charge.failed",
        "charge.succeeded",
    ]
    assert types(events)[-1] == "customer.created"
    created = [event.created for event in events.data]
    assert created == sorted(created, reverse=True)
    by_type = {event.type: event for event in events.data}
    refunded = by_type["charge.refunded"]
    assert refunded.data.object.id == paid.id and refunded.data.object.amount_refunded == 1000
    assert refunded.data.previous_attributes.to_dict() == {"amount_refunded": 0}
    assert by_type["refund.created"].data.object.id == made.id
    assert by_type["charge.updated"].data.previous_attributes.to_dict() == {"description": None}
    failed = by_type["charge.failed"].data.object
    assert (failed.status, failed.outcome.reason) == ("failed", "insufficient_funds")


def test_events_carry_stripe_fields(client: stripe.StripeClient, customer: Any) -> None:
    key = str(uuid.uuid4())
    paid = client.v1.charges.create(
        params={"amount": 1200, "currency": "usd", "customer": customer.id},
        options={"idempotency_key": key},
    )
    event = client.v1.events.list(params={"type": "charge.succeeded"}).data[0]
    assert event.id.startswith("evt_") and event.object == "event"
    assert event.livemode is False and event.api_version == API_VERSION
    assert event.request.idempotency_key == key and event.request.id.startswith("req_")
    assert event.data.object.id == paid.id
    assert client.v1.events.retrieve(event.id).type == "charge.succeeded"


def test_event_filters(client: stripe.StripeClient, customer: Any) -> None:
    charge(client, customer.id)
    refund = client.v1.refunds.create(params={"charge": charge(client, customer.id).id})
    assert types(client.v1.events.list(params={"type": "charge.*"})) == [
        "charge.refunded",
        "charge.succeeded",
        "charge.succeeded",
    ]
    chosen = client.v1.events.list(params={"types": ["refund.created", "customer.created"]})
    assert types(chosen) == ["refund.created", "customer.created"]
    newest = client.v1.events.list(params={"limit": 1}).data[0]
    assert client.v1.events.list(params={"created": {"gt": newest.created}}).data == []
    assert newest.id in {e.id for e in client.v1.events.list(params={"created": {"gte": newest.created}}).data}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.list(params={"type": "charge.succeeded", "types": ["charge.failed"]})
    assert refund.id


def test_event_pagination(client: stripe.StripeClient, customer: Any) -> None:
    for _ in range(4):
        charge(client, customer.id)
    everything = [e.id for e in client.v1.events.list(params={"limit": 100}).data]
    first = client.v1.events.list(params={"limit": 2})
    assert [e.id for e in first.data] == everything[:2] and first.has_more
    after = client.v1.events.list(params={"limit": 2, "starting_after": everything[1]})
    assert [e.id for e in after.data] == everything[2:4]
    before = client.v1.events.list(params={"limit": 2, "ending_before": everything[4]})
    assert [e.id for e in before.data] == everything[2:4] and before.has_more


def test_webhooks_are_delivered_with_a_valid_signature(
    client: stripe.StripeClient, customer: Any, receiver: Receiver
) -> None:
    paid = charge(client, customer.id, 2100)
    client.v1.refunds.create(params={"charge": paid.id})
    for event_type in ("charge.succeeded", "charge.refunded", "refund.created"):
        body, signature = receiver.wait_for(event_type)
        event = stripe.Webhook.construct_event(body.decode(), signature, SECRET)
        assert event.type == event_type
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), signature, "whsec_wrong")
