"""Billy's own billing in Billy's Stripe account (the sandbox): signed webhooks as the sandbox
delivers them, the cancel path when Stripe ends a subscription, failed payments, idempotent writes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from controlplane.billing import BillingFailed, BillyStripe
from controlplane.config import ControlPlaneSettings
from controlplane.store import OrgState
from sandbox.events import signature_header
from services.errors import WebhookSignatureInvalid
from tests.controlplane_fixtures import (  # noqa: F401 - fixtures
    STRIPE_KEY,
    WEBHOOK_SECRET,
    Delivery,
    Plane,
    cp_store,
    plane,
    real_now,
    webhook_inbox,
)
from tests.waiting import eventually


def _delivery(inbox: list[Delivery], kind: str, about: str = "") -> Delivery:
    """The first delivery of `kind` (whose payload mentions `about`), once the sandbox has made it."""
    found = eventually(lambda: next((d for d in inbox if d.type == kind and about.encode() in d.payload), None), 15.0)
    assert found, f"no {kind} delivery arrived"
    return found


def _card(stripe: Any, customer: str, card: str) -> None:
    """The customer saves `card` (one of Stripe's test cards) as the one Billy's invoices are paid with."""
    method = stripe.v1.payment_methods.attach(card, params={"customer": customer})
    stripe.v1.customers.update(customer, params={"invoice_settings": {"default_payment_method": method.id}})


def test_a_delivery_that_is_not_stripes_is_refused_and_changes_nothing(plane: Plane, webhook_inbox) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    sub = plane.store.org("acme").stripe_subscription_id
    plane.stripe().v1.subscriptions.cancel(sub)
    real = _delivery(webhook_inbox, "customer.subscription.deleted")
    now = real_now()

    tampered = real.payload.replace(sub.encode(), b"sub_someoneelse")
    forged = signature_header("whsec_notoursecret", real.payload, int(now.timestamp()))
    for payload, header, words in [
        (tampered, real.signature, "does not match"),
        (real.payload, forged, "does not match"),
        (real.payload, "", "does not match"),
        (real.payload, real.signature.replace("v1=", "v0="), "does not match"),
    ]:
        with pytest.raises(WebhookSignatureInvalid, match=words):
            plane.cp.handle_webhook(payload, header, now)
    with pytest.raises(WebhookSignatureInvalid, match="s old, past the 300 s"):
        plane.cp.handle_webhook(real.payload, real.signature, now + timedelta(minutes=10))
    unconfigured = BillyStripe(ControlPlaneSettings(stripe_secret_key=STRIPE_KEY, stripe_webhook_secret=""))
    with pytest.raises(WebhookSignatureInvalid, match="STRIPE_WEBHOOK_SECRET is not set"):
        unconfigured.verify_event(real.payload, real.signature, now)

    assert plane.store.org("acme").state == OrgState.TRIALING
    assert "suspend" not in plane.provisioner.methods()


def test_a_subscription_ended_in_stripe_takes_the_cancel_path(plane: Plane, webhook_inbox) -> None:  # noqa: F811
    plane.sign_up()
    sub = plane.store.org("acme").stripe_subscription_id
    plane.stripe().v1.subscriptions.cancel(sub)  # e.g. ended in Stripe's dashboard, or unpaid after retries
    delivery = _delivery(webhook_inbox, "customer.subscription.deleted")
    now = real_now()

    assert plane.cp.handle_webhook(delivery.payload, delivery.signature, now) == "cancelled acme"
    org = plane.store.org("acme")
    assert plane.provisioner.methods() == ["provision", "seed", "suspend"]
    assert (org.state, org.delete_after, org.subscription_cancelled_at) == (
        OrgState.CANCELLED,
        now + 30 * timedelta(days=1),
        now,
    )
    cancelled = [e for e in plane.store.events("acme") if e.kind == "cancelled"]
    assert cancelled[0].detail["reason"] == "subscription ended in Stripe"
    # Stripe delivers at least once: the same event again does nothing more.
    assert plane.cp.handle_webhook(delivery.payload, delivery.signature, now).startswith("already handled evt_")
    assert plane.provisioner.named("suspend") == [("suspend", "acme")]
    assert plane.cp.tick(now + timedelta(days=30)).deleted == ["acme"]


def test_the_echo_of_our_own_cancel_and_an_old_subscriptions_end_change_nothing(plane: Plane, webhook_inbox) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    old = plane.store.org("acme").stripe_subscription_id
    plane.cp.cancel("acme", start)
    echo = _delivery(webhook_inbox, "customer.subscription.deleted", old)
    assert plane.cp.handle_webhook(echo.payload, echo.signature, real_now()) == "acme was already cancelled"

    plane.cp.reactivate("acme", start + timedelta(days=1))
    assert plane.store.org("acme").stripe_subscription_id != old
    # The same old event delivered again under another id (as a replay from Stripe's dashboard would be).
    replay = echo.payload.replace(b'"id": "evt_', b'"id": "evt_replay')
    header = signature_header(WEBHOOK_SECRET, replay, int(real_now().timestamp()))
    outcome = plane.cp.handle_webhook(replay, header, real_now())
    assert outcome == f"ignored: {old} is no organisation's current subscription"
    assert plane.store.org("acme").state == OrgState.TRIALING
    assert plane.provisioner.named("suspend") == [("suspend", "acme")]


def test_a_failed_payment_makes_a_paying_organisation_past_due(plane: Plane, webhook_inbox) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    plane.cp.change_plan("acme", "pro", start)
    org = plane.store.org("acme")
    stripe = plane.stripe()
    _card(stripe, org.stripe_customer_id, "pm_card_chargeCustomerFail")
    stripe.v1.subscriptions.update(org.stripe_subscription_id, params={"trial_end": "now"})  # billed now: declined

    failed = _delivery(webhook_inbox, "invoice.payment_failed", org.stripe_customer_id)
    assert plane.cp.handle_webhook(failed.payload, failed.signature, real_now()) == "acme is past due"
    assert plane.store.org("acme").state == OrgState.PAST_DUE
    event = [e for e in plane.store.events("acme") if e.kind == "billing.payment_failed"][-1]
    assert event.detail["invoice"].startswith("in_") and event.detail["state"] == "past_due"

    # Paid with another card: the subscription's update brings the organisation back.
    _card(stripe, org.stripe_customer_id, "pm_card_visa")
    (invoice,) = [
        i for i in stripe.v1.invoices.list(params={"customer": org.stripe_customer_id}).data if i.status == "open"
    ]
    stripe.v1.invoices.pay(invoice.id)
    updated = eventually(
        lambda: [
            d for d in webhook_inbox if d.type == "customer.subscription.updated" and b'"status": "active"' in d.payload
        ],
        15.0,
    )
    assert updated, "no update to active arrived"
    assert plane.cp.handle_webhook(updated[-1].payload, updated[-1].signature, real_now()) == "acme is active again"
    assert plane.store.org("acme").state == OrgState.ACTIVE


def test_a_trial_without_a_plan_is_not_made_past_due_by_a_failed_payment(plane: Plane, webhook_inbox) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    org = plane.store.org("acme")
    _card(plane.stripe(), org.stripe_customer_id, "pm_card_chargeCustomerFail")
    plane.stripe().v1.subscriptions.update(org.stripe_subscription_id, params={"trial_end": "now"})
    failed = _delivery(webhook_inbox, "invoice.payment_failed", org.stripe_customer_id)
    assert plane.cp.handle_webhook(failed.payload, failed.signature, real_now()) == "acme: payment failed, on record"
    assert plane.store.org("acme").state == OrgState.TRIALING  # its own clock makes it read-only, not Stripe


def test_events_about_other_things_are_acknowledged_and_ignored(plane: Plane) -> None:  # noqa: F811
    now = real_now()
    payload = b'{"id": "evt_1", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}'
    header = signature_header(WEBHOOK_SECRET, payload, int(now.timestamp()))
    assert plane.cp.handle_webhook(payload, header, now) == "ignored customer.created"


def test_a_lost_answer_is_asked_again_with_the_same_key_and_makes_one_customer(plane: Plane) -> None:  # noqa: F811
    # The customer is made, then the connection drops before the answer: only the key saves a second one.
    plane.sandbox.set_faults(
        [
            {"path": "/v1/customers", "method": "POST", "kind": "after_write_reset", "count": 1},
            {"path": "/v1/subscriptions", "method": "POST", "kind": "after_write_reset", "count": 1},
        ]
    )
    plane.sign_up()
    fired = plane.sandbox.faults()["fired"]
    assert [f["path"] for f in fired] == ["/v1/customers", "/v1/subscriptions"]
    org = plane.store.org("acme")
    created = f"{org.created_at:%Y%m%dT%H%M%S%f}"
    assert [f["idempotency_key"] for f in fired] == [
        f"billy-cp-acme-{created}-customer",
        f"billy-cp-acme-{created}-subscription",
    ]
    customers = plane.stripe().v1.customers.list().data
    assert [c.id for c in customers] == [org.stripe_customer_id]
    subs = plane.stripe().v1.subscriptions.list(params={"customer": org.stripe_customer_id, "status": "all"}).data
    assert [s.id for s in subs] == [org.stripe_subscription_id]


def test_a_missing_price_is_named_for_the_operator(plane: Plane) -> None:  # noqa: F811
    settings = plane.billing.settings.model_copy(update={"price_lookup_prefix": "nothing_here_"})
    with pytest.raises(BillingFailed, match="no active price with lookup key 'nothing_here_pro'"):
        BillyStripe(settings).price_id("pro")


def test_the_plan_prices_shown_are_the_ones_in_billys_stripe_account(plane: Plane) -> None:  # noqa: F811
    assert plane.billing.monthly_amounts() == {
        "starter": (2900, "usd"),
        "pro": (7900, "usd"),
        "business": (19900, "usd"),
    }
    stripe = plane.stripe()
    old = plane.billing.price_id("pro")
    stripe.v1.prices.update(old, params={"active": False, "lookup_key": ""})
    stripe.v1.prices.create(
        params={
            "product_data": {"name": "Agent Billy Pro"},
            "unit_amount": 9900,
            "currency": "eur",
            "recurring": {"interval": "month"},
            "lookup_key": "agent_billy_pro",
        }
    )
    assert plane.billing.monthly_amounts()["pro"] == (9900, "eur")
    plane.sign_up(plan="pro")  # the next signup pays the new price
    (sub,) = stripe.v1.subscriptions.list(params={"customer": plane.store.org("acme").stripe_customer_id}).data
    assert sub["items"]["data"][0]["price"]["unit_amount"] == 9900
