"""The first sync: the store holds what the sandbox holds, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from services import stripe_keys, sync
from services.db import session_scope
from services.models import StripeCharge, StripeCustomer, StripeRefund, SyncState
from services.stripe_gateway import StripeGateway


def _all(client, resource: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return [o.to_dict() for o in getattr(client.v1, resource).list(params={"limit": 100}).auto_paging_iter()]


@pytest.fixture
def seeded(any_store, any_store_owner, stripe_peer):  # type: ignore[no-untyped-def]
    from sandbox.seed import seed

    seed(stripe_peer.url, customers=12)
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    return stripe_peer


def test_backfill_copies_customers_charges_and_refunds(seeded) -> None:  # type: ignore[no-untyped-def]
    assert sync.backfill() == {"customers": "done", "charges": "done", "refunds": "done"}
    client = seeded.secret_client()
    expected = {name: _all(client, name) for name in ("customers", "charges", "refunds")}
    with session_scope() as s:
        customers = {c.id: c for c in s.exec(select(StripeCustomer))}
        charges = {c.id: c for c in s.exec(select(StripeCharge))}
        refunds = {r.id: r for r in s.exec(select(StripeRefund))}
        states = {st.resource: st for st in s.exec(select(SyncState))}
    assert len(expected["customers"]) == 12 and expected["refunds"]
    assert set(customers) == {c["id"] for c in expected["customers"]}
    assert set(charges) == {c["id"] for c in expected["charges"]}
    assert set(refunds) == {r["id"] for r in expected["refunds"]}
    for c in expected["customers"]:
        assert (customers[c["id"]].email, customers[c["id"]].name) == (c["email"], c["name"])
    for c in expected["charges"]:
        row = charges[c["id"]]
        assert (row.amount, row.amount_refunded, row.status, row.customer_id, row.failure_code) == (
            c["amount"],
            c["amount_refunded"],
            c["status"],
            c["customer"],
            c.get("failure_code"),
        )
    assert {k: (v.status, v.synced_count) for k, v in states.items()} == {
        name: ("done", len(objs)) for name, objs in expected.items()
    }


def test_failed_charges_keep_their_decline_reason(seeded) -> None:  # type: ignore[no-untyped-def]
    sync.backfill()
    with session_scope() as s:
        failed = list(s.exec(select(StripeCharge).where(StripeCharge.status == "failed")))
        jane = s.exec(select(StripeCharge).where(StripeCharge.order_number == "5678")).one()
    # Stripe files an insufficient-funds decline under failure_code card_declined; the
    # reason users care about is the issuer's decline code, kept apart.
    assert {"expired_card", "insufficient_funds"} <= {c.decline_reason for c in failed}
    assert {"expired_card", "card_declined"} <= {c.failure_code for c in failed}
    assert "blocked" in {c.outcome_type for c in failed}  # the Radar fraud block
    assert (jane.amount, jane.currency, jane.status) == (4599, "usd", "succeeded")


def test_second_backfill_changes_nothing_and_counts_stay_equal(seeded) -> None:  # type: ignore[no-untyped-def]
    sync.backfill()
    with session_scope() as s:
        before = sorted((c.id, c.amount_refunded) for c in s.exec(select(StripeCharge)))
    sync.backfill()
    with session_scope() as s:
        after = sorted((c.id, c.amount_refunded) for c in s.exec(select(StripeCharge)))
    assert before == after


def test_a_resource_the_key_cannot_read_fails_visibly_and_the_rest_syncs(seeded) -> None:  # type: ignore[no-untyped-def]
    key = seeded.restricted_key(profile="billy", without=["rak_charge_read"])
    outcome = sync.backfill(StripeGateway(lambda: key))
    assert outcome == {"customers": "done", "charges": "failed", "refunds": "done"}
    with session_scope() as s:
        state = s.get(SyncState, "charges")
        assert state is not None and "rak_charge_read" in (state.last_error or "")
        assert s.exec(select(StripeCustomer)).first() is not None


def test_backfill_resumes_after_the_saved_cursor(seeded) -> None:  # type: ignore[no-untyped-def]
    """A run killed after its first page continues from there instead of starting over."""
    gateway = StripeGateway()
    first_page, _ = gateway.list_page("customers", limit=5)
    with session_scope() as s:
        sync.store_objects(s, "customers", first_page)
        s.add(SyncState(resource="customers", status="running", cursor=first_page[-1]["id"], synced_count=5))
    seen: list[str | None] = []
    original = gateway.list_page

    def spy(resource: str, starting_after: str | None = None, limit: int = 100):  # type: ignore[no-untyped-def]
        seen.append(starting_after)
        return original(resource, starting_after, limit)

    gateway.list_page = spy  # type: ignore[method-assign]
    sync.backfill_resource(gateway, "customers")
    assert seen[0] == first_page[-1]["id"]
    with session_scope() as s:
        assert len(s.exec(select(StripeCustomer)).all()) == 12
        assert s.get(SyncState, "customers").synced_count == 12  # type: ignore[union-attr]
