"""Managing subscriptions (issue 12): per role, against the sandbox and both stores.

A Billing Manager (and the Owner) previews a price or quantity change and confirms it, pauses and
resumes collection, cancels at the period end or now and withdraws a pending cancellation; the
store shows each at once. A Billing Clerk and Read Only are refused every one of them, through the
service and through forged dashboard events, and each refusal is audited. One idempotency key is
one change at Stripe; what the preview said is what Stripe invoices.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import select

from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.state.subscription_actions import SubscriptionActionsState
from services import identity, stripe_keys
from services import subscription_changes as changes
from services.db import session_scope
from services.errors import (
    NotFound,
    PermissionDenied,
    StripeKeyMissingPermission,
    StripeUnreachable,
    ValidationFailed,
)
from services.models import AuditEntry, StripeConnection, StripeSubscription, StripeSubscriptionItem
from services.permissions import Actor
from services.stripe_gateway import StripeGateway
from tests.conftest import StripePeer, member_actor
from tests.reflex_events import event_pipeline
from tests.stripe_helpers import sync_lists

DAY = 86_400
MEMBER_PASSWORD = "another-long-password"  # `member_actor`'s


def key() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class World:
    subscription: str
    customer: str
    prices: dict[str, str]
    peer: StripePeer
    sandbox: Any

    @property
    def client(self) -> Any:
        return self.peer.secret_client()


@pytest.fixture
def world(any_store, any_store_owner: Actor, stripe_peer: StripePeer, sandbox: Any) -> World:  # type: ignore[no-untyped-def]
    """A customer ten days into a $49/month subscription, with other Team prices to move to."""
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    client = stripe_peer.secret_client()
    team = client.v1.products.create(params={"name": "Team"})

    def price(amount: int, interval: str = "month", currency: str = "usd") -> str:
        recurring = {"interval": interval}
        params = {"product": team.id, "unit_amount": amount, "currency": currency, "recurring": recurring}
        return str(client.v1.prices.create(params=params).id)

    prices = {
        "basic": price(4900),
        "plus": price(9900),
        "yearly": price(49000, "year"),
        "euro": price(4500, currency="eur"),
        "old": price(2900),
    }
    client.v1.prices.update(prices["old"], params={"active": False})
    customer = client.v1.customers.create(params={"name": "Jane Smith", "source": "tok_visa"})
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": prices["basic"]}]})
    sandbox.backdate(sub.id, int(time.time()) - 10 * DAY)
    sync_lists()
    return World(str(sub.id), str(customer.id), prices, stripe_peer, sandbox)


@pytest.fixture
def manager(any_store_owner: Actor) -> Actor:
    return member_actor("billing_manager", "manager@example.com")


def _stored(subscription_id: str) -> tuple[StripeSubscription, list[StripeSubscriptionItem]]:
    with session_scope() as s:
        row = s.get(StripeSubscription, subscription_id)
        assert row is not None
        items = s.exec(select(StripeSubscriptionItem).where(StripeSubscriptionItem.subscription_id == row.id)).all()
        return row, list(items)


def _audit() -> list[AuditEntry]:
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action.startswith("subscriptions."))).all()
        return sorted(rows, key=lambda r: r.id or 0)


def _updates(world: World) -> list[Any]:
    """Stripe's `customer.subscription.updated` events for the subscription, oldest first."""
    events = world.client.v1.events.list(params={"type": "customer.subscription.updated", "limit": 100}).data
    return [e for e in reversed(events) if e.data.object["id"] == world.subscription]


def _in_stripe(world: World) -> Any:
    return world.client.v1.subscriptions.retrieve(world.subscription)


# --- a manager's writes -------------------------------------------------------------------------


def test_a_previewed_change_is_what_stripe_makes_and_invoices(world: World, manager: Actor) -> None:
    preview = changes.preview_subscription_change(manager, world.subscription, world.prices["plus"], 2)
    assert (preview.price_id, preview.quantity, preview.currency, preview.due_now) == (
        world.prices["plus"],
        2,
        "usd",
        0,
    )
    prorations = [line for line in preview.lines if line.proration]
    assert len(prorations) == 2 and prorations[0].amount < 0 < prorations[1].amount
    assert prorations[0].description.startswith("Unused time on Team")
    assert preview.proration_total == sum(line.amount for line in prorations)
    assert preview.next_invoice_total == preview.proration_total + 2 * 9900
    assert "Nothing is charged now" in preview.summary and "$" in preview.summary
    assert _stored(world.subscription)[1][0].price_id == world.prices["basic"]  # a preview changes nothing

    done = changes.change_subscription(
        manager, world.subscription, preview.price_id, preview.quantity, preview.proration_date, key()
    )
    assert done.stored and not done.replayed and "Nothing is charged now" in done.done
    row, items = _stored(world.subscription)  # the store shows it at once
    assert [(i.price_id, i.quantity) for i in items] == [(world.prices["plus"], 2)]
    assert row.mrr == 2 * 9900
    (audit,) = _audit()
    assert (audit.action, audit.outcome, audit.target_ids, audit.actor_email) == (
        "subscriptions.change",
        "ok",
        [world.subscription],
        "manager@example.com",
    )
    assert audit.details["price"] == world.prices["plus"] and audit.details["previous_quantity"] == 1

    upcoming = world.client.v1.invoices.create_preview(params={"subscription": world.subscription})
    assert upcoming.total == preview.next_invoice_total
    world.sandbox.backdate(world.subscription, int(time.time()) - 40 * DAY)  # the renewal comes
    invoices = world.client.v1.invoices.list(params={"subscription": world.subscription}).data
    renewal = next(i for i in invoices if i.billing_reason == "subscription_cycle")
    assert renewal.total == preview.next_invoice_total and renewal.status == "paid"


def test_pause_resume_cancel_and_reactivate_show_in_the_store_at_once(
    world: World, manager: Actor, any_store_owner: Actor
) -> None:
    paused = changes.pause_collection(manager, world.subscription, "void", None, key())
    assert "Void invoices" in paused.done and paused.status == "active"
    assert _stored(world.subscription)[0].raw["pause_collection"]["behavior"] == "void"
    assert changes.subscription_options(manager, world.subscription).resume_blocked == ""

    changes.resume_collection(manager, world.subscription, key())
    assert _stored(world.subscription)[0].raw["pause_collection"] is None

    ending = changes.cancel_subscription(manager, world.subscription, True, key())
    row = _stored(world.subscription)[0]
    assert row.cancel_at_period_end and row.status == "active" and "reactivate" in ending.done
    assert changes.subscription_options(manager, world.subscription).ends_at == row.current_period_end

    changes.reactivate_subscription(manager, world.subscription, key())
    assert not _stored(world.subscription)[0].cancel_at_period_end
    assert _in_stripe(world).cancel_at_period_end is False

    ended = changes.cancel_subscription(any_store_owner, world.subscription, False, key())
    assert ended.status == "canceled" == _stored(world.subscription)[0].status
    assert _in_stripe(world).status == "canceled"
    assert [(r.action, r.outcome, r.actor_email) for r in _audit()] == [
        ("subscriptions.pause", "ok", "manager@example.com"),
        ("subscriptions.resume", "ok", "manager@example.com"),
        ("subscriptions.cancel", "ok", "manager@example.com"),
        ("subscriptions.reactivate", "ok", "manager@example.com"),
        ("subscriptions.cancel", "ok", "owner@example.com"),
    ]
    assert [r.details.get("at_period_end") for r in _audit() if r.action == "subscriptions.cancel"] == [True, False]


# --- refused roles ------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "label"), [("billing_clerk", "Billing Clerk"), ("read_only", "Read Only")])
def test_clerks_and_read_only_are_refused_every_action_and_audited(world: World, role: str, label: str) -> None:
    member = member_actor(role, f"{role}@example.com")
    refused = re.escape(f"Your role ({label}) cannot change, pause or cancel subscriptions")
    sub, plus = world.subscription, world.prices["plus"]
    attempts = [
        lambda: changes.subscription_options(member, sub),
        lambda: changes.preview_subscription_change(member, sub, plus, 2),
        lambda: changes.change_subscription(member, sub, plus, 2, int(time.time()), key()),
        lambda: changes.pause_collection(member, sub, "void", None, key()),
        lambda: changes.resume_collection(member, sub, key()),
        lambda: changes.cancel_subscription(member, sub, False, key()),
        lambda: changes.reactivate_subscription(member, sub, key()),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied, match=refused):
            attempt()
    assert not changes.manage_control(member).shown
    assert _updates(world) == [] and _in_stripe(world).status == "active"
    assert [(r.action, r.outcome, r.target_ids) for r in _audit()] == [
        ("subscriptions.preview_change", "denied", [sub]),
        ("subscriptions.preview_change", "denied", [sub]),
        ("subscriptions.change", "denied", [sub]),
        ("subscriptions.pause", "denied", [sub]),
        ("subscriptions.resume", "denied", [sub]),
        ("subscriptions.cancel", "denied", [sub]),
        ("subscriptions.reactivate", "denied", [sub]),
    ]


# --- one key, one change ----------------------------------------------------------------------


def test_the_same_key_twice_makes_one_change(world: World, manager: Actor) -> None:
    preview = changes.preview_subscription_change(manager, world.subscription, world.prices["plus"], 3)
    k = key()
    args = (manager, world.subscription, preview.price_id, 3, preview.proration_date, k)
    first, second = changes.change_subscription(*args), changes.change_subscription(*args)
    assert (first.replayed, second.replayed) == (False, True)
    pause_key = key()
    changes.pause_collection(manager, world.subscription, "keep_as_draft", None, pause_key)
    again = changes.pause_collection(manager, world.subscription, "keep_as_draft", None, pause_key)
    assert again.replayed and "Keep invoices as drafts" in again.done
    assert len(_updates(world)) == 2  # one change, one pause
    pending = world.client.v1.invoice_items.list(params={"customer": world.customer, "pending": True}).data
    assert len(pending) == 2  # the prorations of one change, not two
    cancel_key = key()
    changes.cancel_subscription(manager, world.subscription, False, cancel_key)
    retried = changes.cancel_subscription(manager, world.subscription, False, cancel_key)
    assert retried.replayed and retried.status == "canceled"
    assert [(r.outcome, r.details.get("replay", False)) for r in _audit()] == [
        ("ok", False),
        ("ok", True),
        ("ok", False),
        ("ok", True),
        ("ok", False),
        ("ok", True),
    ]


def test_a_lost_answer_retried_with_its_key_makes_one_change(world: World, manager: Actor) -> None:
    class LostAnswer(StripeGateway):
        def write(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            super().write(*args, **kwargs)
            raise StripeUnreachable("Billy could not reach Stripe.", outcome_unknown=True)

    k = key()
    with pytest.raises(StripeUnreachable):
        changes.pause_collection(manager, world.subscription, "void", None, k, gateway=LostAnswer())
    assert _stored(world.subscription)[0].raw["pause_collection"] is None  # the store has not heard yet
    retried = changes.pause_collection(manager, world.subscription, "void", None, k)
    assert retried.replayed and _stored(world.subscription)[0].raw["pause_collection"]["behavior"] == "void"
    assert len(_updates(world)) == 1


# --- the key's permissions ----------------------------------------------------------------------


def test_a_key_without_subscriptions_write_gets_the_plain_message(world: World, manager: Actor) -> None:
    limited = world.peer.restricted_key(profile="billy", without=["rak_subscription_write"])
    with pytest.raises(StripeKeyMissingPermission, match=r"“Subscriptions” to “Write”"):
        changes.pause_collection(
            manager, world.subscription, "void", None, key(), gateway=StripeGateway(lambda: limited)
        )
    with session_scope() as s:
        connection = s.exec(select(StripeConnection)).one()
        connection.permissions = {**connection.permissions, "rak_subscription_write": False}
        s.add(connection)
    for attempt in (
        lambda: changes.preview_subscription_change(manager, world.subscription, world.prices["plus"], 2),
        lambda: changes.cancel_subscription(manager, world.subscription, True, key()),
    ):
        with pytest.raises(StripeKeyMissingPermission, match="Stripe Dashboard"):
            attempt()
    control = changes.manage_control(manager)
    assert control.shown and "Subscriptions" in control.blocked_by
    assert _updates(world) == [] and _in_stripe(world).pause_collection is None
    assert [r.outcome for r in _audit()] == ["failed", "failed"]  # a preview is a read: not logged


# --- bad inputs ---------------------------------------------------------------------------------


def test_bad_changes_are_refused_in_words_and_nothing_changes(world: World, manager: Actor) -> None:
    p = world.prices
    now = int(time.time())
    cases: list[tuple[str, int | Any, Any, str]] = [
        ("price_nothing", 2, now, "does not know that price"),
        (p["euro"], 1, now, "in EUR and this subscription bills in USD"),
        (p["yearly"], 1, now, "bills every year and this subscription every month"),
        (p["old"], 1, now, "archived"),
        (p["plus"], 0, now, "between 1 and 10,000"),
        (p["plus"], 10_001, now, "between 1 and 10,000"),
        (p["plus"], "3", now, "whole number"),
        (p["plus"], True, now, "whole number"),
        (p["basic"], 1, now, "already its price and quantity"),
        (p["plus"], 2, now - 2 * 3600, "preview the change again"),
        (p["plus"], 2, None, "Preview the change first"),
    ]
    for price, quantity, moment, message in cases:
        with pytest.raises(ValidationFailed, match=message):
            changes.change_subscription(manager, world.subscription, price, quantity, moment, key())
    with pytest.raises(ValidationFailed, match="in EUR"):
        changes.preview_subscription_change(manager, world.subscription, p["euro"], 1)
    with pytest.raises(ValidationFailed, match="not a Stripe subscription id"):
        changes.change_subscription(manager, "cus_123", p["plus"], 2, now, key())
    with pytest.raises(NotFound):
        changes.change_subscription(manager, "sub_nothing", p["plus"], 2, now, key())
    with pytest.raises(ValidationFailed, match="idempotency key"):
        changes.change_subscription(manager, world.subscription, p["plus"], 2, now, "short")
    assert _updates(world) == []
    assert {r.outcome for r in _audit()} == {"failed"}


def test_what_stripe_would_refuse_is_refused_in_words(world: World, manager: Actor) -> None:
    sub = world.subscription
    with pytest.raises(ValidationFailed, match="not paused, so there is nothing to resume"):
        changes.resume_collection(manager, sub, key())
    with pytest.raises(ValidationFailed, match="not set to end, so there is no cancellation to withdraw"):
        changes.reactivate_subscription(manager, sub, key())
    with pytest.raises(ValidationFailed, match="Choose what happens to invoices"):
        changes.pause_collection(manager, sub, "sleep", None, key())
    with pytest.raises(ValidationFailed, match="resume date in the future"):
        changes.pause_collection(manager, sub, "void", int(time.time()) - 60, key())
    with pytest.raises(ValidationFailed, match="Choose when it ends"):
        changes.cancel_subscription(manager, sub, "yes", key())  # type: ignore[arg-type]
    changes.pause_collection(manager, sub, "mark_uncollectible", None, key())
    with pytest.raises(ValidationFailed, match="already paused \\(mark invoices uncollectible\\)"):
        changes.pause_collection(manager, sub, "void", None, key())
    changes.cancel_subscription(manager, sub, True, key())
    with pytest.raises(ValidationFailed, match="already set to end on"):
        changes.cancel_subscription(manager, sub, True, key())
    with pytest.raises(ValidationFailed, match="reactivate it first"):
        changes.preview_subscription_change(manager, sub, world.prices["plus"], 2)
    world.client.v1.subscriptions.cancel(sub)  # ended in Stripe; the store has not heard yet
    with pytest.raises(ValidationFailed, match="already ended in Stripe"):
        changes.reactivate_subscription(manager, sub, key())
    sync_lists()
    with pytest.raises(ValidationFailed, match="has already ended"):
        changes.cancel_subscription(manager, sub, False, key())


def test_the_dialog_offers_prices_of_the_same_currency_and_interval(world: World, manager: Actor) -> None:
    options = changes.subscription_options(manager, world.subscription)
    assert [(p.id, p.current) for p in options.prices] == [(world.prices["basic"], True), (world.prices["plus"], False)]
    assert options.prices[1].label == "Team · $99.00 / month"
    assert (options.status, options.quantity, options.price_id) == ("active", 1, world.prices["basic"])
    assert options.change_blocked == options.pause_blocked == options.cancel_blocked == ""
    assert options.resume_blocked and options.reactivate_blocked


# --- the dashboard's events ---------------------------------------------------------------------


def test_a_manager_previews_and_confirms_through_the_dialog(world: World, manager: Actor) -> None:
    tokens = identity.login(manager.email, MEMBER_PASSWORD, "127.0.0.1", "pytest-tab")
    with event_pipeline() as pipeline:
        tab = pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path="/subscriptions")
        assert '"can_manage": true' in tab.send(SubscriptionActionsState, "load_control").text.replace("_rx_state_", "")
        opened = tab.send(SubscriptionActionsState, "open_for", {"subscription_id": world.subscription})
        assert world.prices["plus"] in opened.text
        tab.send(SubscriptionActionsState, "set_price", {"price_id": world.prices["plus"]})
        tab.send(SubscriptionActionsState, "set_quantity", {"text": "2"})
        previewed = tab.send(SubscriptionActionsState, "preview_change")
        assert "Unused time on Team" in previewed.text and "Nothing is charged now" in previewed.text
        confirmed = tab.send(SubscriptionActionsState, "confirm_change")
        assert any("Changed to Team" in toast for toast in confirmed.toasts())
    assert [(i.price_id, i.quantity) for i in _stored(world.subscription)[1]] == [(world.prices["plus"], 2)]


def test_forged_events_from_a_clerk_are_refused_and_audited(world: World, any_store_owner: Actor) -> None:
    """The Clerk never sees the control; a client that sends its events anyway is refused by the
    services, each refusal audited, and the subscription is unchanged."""
    clerk = member_actor("billing_clerk", "clerk@example.com")
    tokens = identity.login(clerk.email, MEMBER_PASSWORD, "127.0.0.1", "pytest-tab")
    refused = "cannot change, pause or cancel subscriptions"
    with event_pipeline() as pipeline:
        tab = pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path=f"/customers/{world.customer}")
        control = tab.send(SubscriptionActionsState, "load_control")
        assert "can_manage" not in control.text or '"can_manage": true' not in control.text
        assert refused in tab.send(SubscriptionActionsState, "open_for", {"subscription_id": world.subscription}).text
        for handler in ("preview_change", "confirm_change", "pause", "resume", "cancel", "reactivate"):
            assert refused in tab.send(SubscriptionActionsState, handler).text, handler
    assert _updates(world) == [] and _in_stripe(world).status == "active"
    assert [(r.action, r.outcome, r.actor_email) for r in _audit()] == [
        ("subscriptions.preview_change", "denied", "clerk@example.com"),
        ("subscriptions.preview_change", "denied", "clerk@example.com"),
        ("subscriptions.change", "denied", "clerk@example.com"),
        ("subscriptions.pause", "denied", "clerk@example.com"),
        ("subscriptions.resume", "denied", "clerk@example.com"),
        ("subscriptions.cancel", "denied", "clerk@example.com"),
        ("subscriptions.reactivate", "denied", "clerk@example.com"),
    ]
