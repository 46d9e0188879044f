"""Billy's clock and Stripe's disagree by minutes (issue 16): no event is lost or reordered.

The sandbox's clock is moved one way (`POST /_config/clock`: objects' and events' `created`, its
`Date` header, its webhook signatures) and Billy's injectable clock the other, two minutes each,
four in all. A customer is made in Stripe after the first sync (so Billy learns of it from
events), changed by Billy, then changed twice more in Stripe within a second. Its events arrive
as webhooks out of order, signed by Stripe's clock, and by polling. Every event is recorded once,
polling applies them in Stripe's order, and the store ends equal to Stripe."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from billy_app.api.routes import build_api
from controlplane.local_http import local_http
from sandbox.events import signature_header
from services import clock, customers, stripe_events, stripe_keys
from services.db import session_scope
from services.models import StripeCustomer, StripeEvent
from tests.conftest import StripePeer
from tests.stripe_helpers import sync_lists

SECRET = "whsec_" + "s" * 32
SKEW = 120  # seconds, each way


@pytest.fixture(params=["stripe behind", "stripe ahead"])
def skewed(request: pytest.FixtureRequest, sandbox: Any, stripe_peer: StripePeer) -> Iterator[int]:
    """The sandbox's clock SKEW seconds behind (or ahead of) the machine's, Billy's the other way."""
    stripe_offset = -SKEW if request.param == "stripe behind" else SKEW
    sandbox.set_clock_offset(stripe_offset)
    try:
        with clock.travel(timedelta(seconds=-stripe_offset)):
            yield stripe_offset
    finally:
        sandbox.set_clock_offset(0)


def _stripe_now(peer: StripePeer) -> int:
    return int(local_http().get(f"{peer.url}/_config/clock", timeout=10).json()["now"])


def _customer_events(peer: StripePeer, customer: str) -> list[dict[str, Any]]:
    """Stripe's events about the customer, as Stripe lists them (newest first)."""
    listed = [e.to_dict() for e in peer.secret_client().v1.events.list(params={"limit": 100}).data]
    return [e for e in listed if e["data"]["object"].get("id") == customer]


def _recorded() -> list[str]:
    with session_scope() as s:
        return sorted(e.id for e in s.exec(select(StripeEvent)))


def test_events_made_during_a_skew_are_all_applied_once_in_stripes_order(  # type: ignore[no-untyped-def]
    any_store, any_store_owner, stripe_peer: StripePeer, skewed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    sync_lists()
    stripe_events.set_webhook_secret(any_store_owner, SECRET)
    client = stripe_peer.secret_client()

    customer = client.v1.customers.create(params={"name": "Skew", "email": "skew@example.com"}).id
    assert stripe_events.poll_events().get("applied") == 1  # known to Billy from its event alone
    customers.update_customer(any_store_owner, customer, {"email": "billy@example.com"}, secrets.token_urlsafe(24))
    for name in ("Second", "Third"):  # two changes in Stripe, a moment after Billy's
        client.v1.customers.update(customer, params={"name": name})

    webhooks = TestClient(build_api(), base_url="http://localhost:3000")
    events = _customer_events(stripe_peer, customer)
    for event in events:  # delivered newest first: the wrong order; signed by Stripe's clock
        body = json.dumps(event).encode()
        signed = signature_header(SECRET, body, _stripe_now(stripe_peer))
        answer = webhooks.post("/api/stripe/webhook", content=body, headers={"stripe-signature": signed})
        assert answer.status_code == 200, answer.text

    applied: list[str] = []
    real_apply = stripe_events.apply_event
    monkeypatch.setattr(
        stripe_events, "apply_event", lambda e, *a, **k: (applied.append(e["id"]), real_apply(e, *a, **k))[1]
    )
    assert set(stripe_events.poll_events()) <= {"duplicate"}  # every one already recorded: nothing twice
    mine = [e for e in applied if e in {ev["id"] for ev in events}]
    assert mine == [e["id"] for e in reversed(events)]  # polled in Stripe's order, oldest first

    for name in ("Fourth", "Fifth"):  # two more in one breath, known only by polling
        client.v1.customers.update(customer, params={"name": name})
    applied.clear()
    assert stripe_events.poll_events().get("duplicate", 0) >= len(events)
    newest = _customer_events(stripe_peer, customer)
    assert [e for e in applied if e in {ev["id"] for ev in newest[:2]}] == [newest[1]["id"], newest[0]["id"]]

    in_stripe = client.v1.customers.retrieve(customer)
    with session_scope() as s:
        stored = s.get(StripeCustomer, customer)
    assert stored is not None and (stored.name, stored.email) == (in_stripe.name, in_stripe.email)
    assert (stored.name, stored.email) == ("Fifth", "billy@example.com")
    every = [e["id"] for e in newest]
    assert sorted(set(every) & set(_recorded())) == sorted(every)  # each of them, once (ids are unique)


def test_a_change_made_in_stripe_just_after_the_backfill_read_it_is_applied(  # type: ignore[no-untyped-def]
    any_store, any_store_owner, stripe_peer: StripePeer, skewed: int
) -> None:
    """What the backfill stores is stamped with Stripe's clock, not the machine's: with Stripe's
    clock two minutes behind, a stamp from the machine would be two minutes ahead of the next
    change's event, which would then look older than the stored copy and be dropped."""
    client = stripe_peer.secret_client()
    customer = client.v1.customers.create(params={"name": "Synced", "email": "synced@example.com"}).id
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    sync_lists()
    client.v1.customers.update(customer, params={"name": "Renamed after the sync"})
    assert stripe_events.poll_events().get("applied", 0) >= 1
    with session_scope() as s:
        stored = s.get(StripeCustomer, customer)
        assert stored is not None and stored.name == "Renamed after the sync"
        assert stored.version_at <= _stripe_now(stripe_peer)  # never ahead of Stripe's clock
