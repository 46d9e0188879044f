"""The charge page's data: everything about one charge and one timeline of Stripe's events and
Billy's own actions, for every role, read through the audit log's target index (issue 12)."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from services import billing, stripe_keys
from services.charge_detail import charge_detail
from services.db import get_engine
from services.errors import NotFound, PermissionDenied
from tests.conftest import member_actor
from tests.stripe_helpers import make_charge, sync_lists


@pytest.fixture
def charge(any_store, any_store_owner, stripe_peer):  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    created = make_charge(stripe_peer, 4599, description="Order #5678")
    sync_lists()
    return created


def test_every_role_sees_the_charge_with_card_order_and_refundable_amount(charge) -> None:  # type: ignore[no-untyped-def]
    viewer = member_actor("read_only", "viewer@example.com")
    detail = charge_detail(viewer, charge["id"])
    assert (detail.amount, detail.currency, detail.status, detail.order_number) == (4599, "usd", "succeeded", "5678")
    assert detail.card == "Visa •••• 4242" and detail.card_expiry.count("/") == 1
    assert detail.refundable == 4599 and detail.customer_id == charge["customer"]
    assert [e.what for e in detail.timeline] == ["Payment of $45.99 succeeded"]


def test_the_timeline_puts_refunds_and_billys_actions_newest_first(charge, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    viewer = member_actor("read_only", "viewer@example.com")
    done = billing.issue_refund(any_store_owner, charge["id"], 1000, None, secrets.token_urlsafe(24))
    with pytest.raises(PermissionDenied):
        billing.issue_refund(viewer, charge["id"], 3500, None, secrets.token_urlsafe(24))
    detail = charge_detail(viewer, charge["id"])
    assert [(r.id, r.amount) for r in detail.refunds] == [(done.refund_id, 1000)]
    assert detail.refundable == 3599
    billy = [e for e in detail.timeline if e.by.startswith("Billy")]
    assert [e.what for e in billy] == [
        "viewer@example.com tried to refund: was refused (" + billy[0].what.split("(", 1)[1],
        "owner@example.com refunded $10.00",
    ]
    stripe_side = [e.what for e in detail.timeline if e.by == "Stripe"]
    assert "Refund of $10.00" in stripe_side and "Payment of $45.99 succeeded" in stripe_side
    assert [e.at for e in detail.timeline] == sorted((e.at for e in detail.timeline), reverse=True)


def test_a_failed_payment_says_why(any_store, any_store_owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    with pytest.raises(Exception):  # noqa: B017 - Stripe declines the card (CardError)
        make_charge(stripe_peer, 1200, card="tok_chargeDeclinedInsufficientFunds")
    sync_lists()
    with get_engine().connect() as conn:
        failed_id = conn.execute(sa.text("SELECT id FROM stripe_charge WHERE status = 'failed'")).scalar_one()
    detail = charge_detail(any_store_owner, failed_id)
    assert detail.status == "failed" and detail.refundable == 0
    assert detail.decline_reason == "insufficient_funds" or "insufficient" in detail.failure_message.lower()
    assert detail.timeline[0].what.startswith("Payment of $12.00 failed: ") and detail.timeline[0].tone == "bad"


def test_an_unknown_charge_is_not_found(any_store, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound):
        charge_detail(any_store_owner, "ch_does_not_exist")


def test_the_trail_index_holds_every_target_of_every_audit_row(charge, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    """Every target of every row is indexed, and nothing else: the index is the log's own
    content, so a trail can neither miss a row nor invent one."""
    billing.issue_refund(any_store_owner, charge["id"], 500, None, secrets.token_urlsafe(24))
    with get_engine().connect() as conn:
        logged = {
            (str(t), row_id)
            for row_id, targets in conn.execute(sa.text("SELECT id, target_ids FROM audit_log"))
            for t in (targets if isinstance(targets, list) else __import__("json").loads(targets or "[]"))
            if t
        }
        indexed = set(conn.execute(sa.text("SELECT target_id, audit_id FROM audit_target")).all())
    assert logged and {(t, int(a)) for t, a in indexed} == logged


@pytest.mark.parametrize(
    ("role", "plan", "trial_ended", "shown", "blocked"),
    [
        ("read_only", "pro", False, False, ""),  # can never refund: no control at all
        ("billing_clerk", "pro", False, True, ""),
        ("billing_clerk", "pro", True, True, "read-only until the Owner chooses a plan"),
        ("owner", "starter", False, True, ""),
    ],
)
def test_a_refund_control_is_hidden_or_disabled_with_the_reason(
    role: str, plan: str, trial_ended: bool, shown: bool, blocked: str
) -> None:
    from datetime import date

    from services.permissions import Actor, Source, control

    actor = Actor(
        1, "a@example.com", role, Source.DASHBOARD, plan=plan, trial_ended_on=date(2026, 1, 1) if trial_ended else None
    )
    state = control(actor, "charges.refund")
    assert state.shown is shown and (blocked in state.blocked_by if blocked else state.blocked_by == "")
    assert state.usable is (shown and not blocked)
