"""Refunds through the service layer: Stripe first, the store at once, one audit row each."""

from __future__ import annotations

import secrets
import threading

import pytest
from sqlmodel import select

from services import billing, stripe_keys
from services.db import session_scope
from services.errors import PermissionDenied, RefundCapExceeded, StripeRequestFailed, ValidationFailed
from services.models import AuditEntry, StripeCharge
from services.stripe_gateway import StripeGateway
from tests.conftest import member_actor
from tests.stripe_helpers import make_charge, sync_lists


def key() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def charge(any_store, any_store_owner, stripe_peer):  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    created = make_charge(stripe_peer, 4599, description="Order #5678")
    sync_lists()
    return created


def _audit(action: str = "charges.refund") -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_partial_then_full_refund_updates_stripe_and_store(charge, any_store_owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    first = billing.issue_refund(any_store_owner, charge["id"], 1000, "requested_by_customer", key())
    assert (first.amount, first.charge.amount_refunded, first.charge.status) == (1000, 1000, "succeeded")
    rest = billing.issue_refund(any_store_owner, charge["id"], None, None, key())  # omitted amount = the rest
    assert rest.amount == 3599 and rest.charge.amount_refunded == 4599 and rest.charge.refundable == 0
    assert sorted(r.amount for r in rest.charge.refunds) == [1000, 3599]
    in_stripe = stripe_peer.secret_client().v1.charges.retrieve(charge["id"])
    assert (in_stripe.amount_refunded, in_stripe.refunded) == (4599, True)
    with session_scope() as s:
        stored = s.get(StripeCharge, charge["id"])
    assert stored is not None and stored.refunded and stored.amount_refunded == 4599
    rows = _audit()
    assert [(r.outcome, r.amount, r.currency, r.actor_email, r.source) for r in rows] == [
        ("ok", 1000, "usd", "owner@example.com", "dashboard"),
        ("ok", 3599, "usd", "owner@example.com", "dashboard"),
    ]
    assert rows[0].target_ids == [charge["id"], first.refund_id]


def test_same_idempotency_key_makes_one_refund_even_concurrently(charge, any_store_owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    k = key()
    results: list[billing.RefundResult] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(billing.issue_refund(any_store_owner, charge["id"], 500, "duplicate", k))
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.refund_id for r in results}) == 1 and sorted(r.replayed for r in results) == [False, True, True]
    refunds = stripe_peer.secret_client().v1.refunds.list(params={"charge": charge["id"]}).data
    assert [r.amount for r in refunds] == [500]


def test_a_refund_whose_answer_was_lost_is_retried_with_its_key_and_made_once(  # type: ignore[no-untyped-def]
    charge, any_store_owner, stripe_peer
) -> None:
    """The intent is stored before Stripe is called: Stripe made the refund but the answer was
    lost; the retry with the same key gets Stripe's first refund back, and the store catches up."""
    from services.errors import StripeUnreachable

    class LostAnswer(StripeGateway):
        def create_refund(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().create_refund(*args, **kwargs)
            raise StripeUnreachable("Billy could not reach Stripe.", outcome_unknown=True)

    k = key()
    with pytest.raises(StripeUnreachable):
        billing.issue_refund(any_store_owner, charge["id"], 1000, None, k, gateway=LostAnswer())
    retried = billing.issue_refund(any_store_owner, charge["id"], 1000, None, k)
    again = billing.issue_refund(any_store_owner, charge["id"], 1000, None, k)
    refunds = stripe_peer.secret_client().v1.refunds.list(params={"charge": charge["id"]}).data
    assert [r.amount for r in refunds] == [1000] and retried.refund_id == again.refund_id == refunds[0].id
    assert (retried.replayed, again.replayed) == (False, True)
    assert retried.charge.amount_refunded == 1000
    assert [(r.outcome, r.details.get("retry", False)) for r in _audit()] == [
        ("failed", False),
        ("ok", True),
        ("ok", False),
    ]


def test_over_refund_is_refused_with_a_clear_message_and_nothing_changes(charge, any_store_owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    billing.issue_refund(any_store_owner, charge["id"], 4000, None, key())
    with pytest.raises(ValidationFailed, match=r"at most \$5.99"):
        billing.issue_refund(any_store_owner, charge["id"], 600, None, key())
    billing.issue_refund(any_store_owner, charge["id"], None, None, key())
    with pytest.raises(ValidationFailed, match="already been refunded in full"):
        billing.issue_refund(any_store_owner, charge["id"], None, None, key())
    assert [r.outcome for r in _audit()] == ["ok", "failed", "ok", "failed"]
    assert stripe_peer.secret_client().v1.charges.retrieve(charge["id"]).amount_refunded == 4599


def test_stripe_refusing_an_over_refund_reaches_the_user_in_stripes_words(charge, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    """If Stripe's state moved past Billy's checks, Stripe's own refusal is what the user reads."""
    with pytest.raises(StripeRequestFailed) as refused:
        StripeGateway().create_refund(charge["id"], 10_000, None, key())
    assert "greater than" in refused.value.message and refused.value.code == "amount_too_large"
    assert refused.value.message.startswith("That is more than is left to refund on this charge")  # plain words first


@pytest.mark.parametrize(
    ("amount", "message"),
    [(0, "greater than zero"), (-100, "greater than zero"), (12.5, "whole number"), (True, "whole number")],
)
def test_bad_amounts_are_refused(charge, any_store_owner, amount, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed, match=message):
        billing.issue_refund(any_store_owner, charge["id"], amount, None, key())


def test_bad_reason_and_missing_idempotency_key_are_refused(charge, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed, match="Choose a reason"):
        billing.issue_refund(any_store_owner, charge["id"], 100, "because", key())
    with pytest.raises(ValidationFailed, match="idempotency key"):
        billing.issue_refund(any_store_owner, charge["id"], 100, None, "")


def test_read_only_cannot_refund_and_is_audited_as_denied(charge) -> None:  # type: ignore[no-untyped-def]
    viewer = member_actor("read_only", "support@example.com")
    with pytest.raises(PermissionDenied):
        billing.issue_refund(viewer, charge["id"], 100, None, key())
    assert [(r.outcome, r.actor_email) for r in _audit()] == [("denied", "support@example.com")]


def test_clerk_cap_is_on_the_total_refunded_so_it_cannot_be_split(any_store, any_store_owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    big = make_charge(stripe_peer, 50_000, description="Order #9001")
    sync_lists()
    clerk = member_actor("billing_clerk", "clerk@example.com")
    with pytest.raises(RefundCapExceeded, match=r"over your Billing Clerk limit of \$100.00"):
        billing.issue_refund(clerk, big["id"], None, None, key())  # a full refund is checked as $500
    billing.issue_refund(clerk, big["id"], 6000, None, key())
    with pytest.raises(RefundCapExceeded, match=r"to \$110.00"):
        billing.issue_refund(clerk, big["id"], 5000, None, key())  # $60 + $50 is over $100
    billing.issue_refund(clerk, big["id"], 4000, None, key())  # exactly $100 in total
    assert stripe_peer.secret_client().v1.charges.retrieve(big["id"]).amount_refunded == 10_000
    assert [r.outcome for r in _audit()] == ["denied", "ok", "denied", "ok"]


def test_preview_describes_the_refund_and_the_cap(charge, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    preview = billing.preview_refund(any_store_owner, charge["id"], 1000)
    assert preview.allowed and preview.remaining_after == 3599
    assert "Refund $10.00 of $45.99" in preview.summary and "$35.99 left" in preview.summary
    clerk = member_actor("billing_clerk", "clerk@example.com")
    assert billing.preview_refund(clerk, charge["id"], None).allowed  # $45.99 ≤ $100


def test_search_customers_by_email_and_name_prefix_with_pages(any_store, any_store_owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    from sandbox.seed import seed

    seed(stripe_peer.url, customers=30)
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    sync_lists()
    found = billing.search_customers(any_store_owner, "jane.smith@")
    assert [c.name for c in found.items] == ["Jane Smith"]
    assert "Jane Smith" in [c.name for c in billing.search_customers(any_store_owner, "SMITH").items]
    assert billing.search_customers(any_store_owner, "%").items == []  # wildcards are literal
    seen: list[str] = []
    page = billing.search_customers(any_store_owner, "", limit=7)
    while True:
        seen += [c.id for c in page.items]
        if not page.next_cursor:
            break
        page = billing.search_customers(any_store_owner, "", page.next_cursor, limit=7)
    assert len(seen) == len(set(seen)) == 30


def test_the_charge_lock_holds_across_workers_on_postgresql(any_store) -> None:  # type: ignore[no-untyped-def]
    """Another worker (its own engine) cannot take a charge's lock while a refund holds it."""
    import sqlalchemy as sa

    from services.db import make_engine

    if any_store.kind != "postgresql":
        pytest.skip("SQLite instances run one worker; the in-process lock is the whole story there")
    other_worker = make_engine(any_store.database_url)
    probe = sa.text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))")
    key = {"k": billing.charge_lock_key("ch_locked")}
    try:
        with billing.charge_lock("ch_locked"), other_worker.connect() as conn:
            assert conn.execute(probe, key).scalar() is False
        with other_worker.connect() as conn:
            assert conn.execute(probe, key).scalar() is True  # released after the refund
    finally:
        other_worker.dispose()
