"""Updating a customer (issue 12): per role, against the sandbox and both stores.

A Billing Manager changes every field Billy edits, a Billing Clerk only email and address, Read
Only nothing; the server refuses a field the role may not change whatever the client sends, and
each attempt leaves one audit row. One idempotency key is one change at Stripe, even when the
first answer was lost. The last test forges the dashboard's save event as a Clerk.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from datetime import date
from typing import Any

import pytest
from sqlmodel import select

from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.state.customer import CustomerState
from services import customers, identity, stripe_keys
from services.db import session_scope
from services.errors import (
    PermissionDenied,
    PlanLimitReached,
    StripeKeyMissingPermission,
    StripeRequestFailed,
    StripeUnreachable,
    ValidationFailed,
)
from services.models import AuditEntry, IdempotencyRecord, StripeConnection, StripeCustomer
from services.permissions import Actor
from services.stripe_gateway import StripeGateway
from tests.conftest import StripePeer, member_actor
from tests.reflex_events import event_pipeline
from tests.stripe_helpers import sync_lists

ADDRESS = {
    "line1": "1 Infinite Loop",
    "line2": "Suite 2",
    "city": "Cupertino",
    "state": "CA",
    "postal_code": "95014",
    "country": "US",
}
MEMBER_PASSWORD = "another-long-password"  # `member_actor`'s


def key() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def customer_id(any_store, any_store_owner, stripe_peer: StripePeer) -> str:  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    created = stripe_peer.secret_client().v1.customers.create(
        params={
            "name": "Jane Smith",
            "email": "jane@example.com",
            "phone": "+1 555 0100",
            "description": "Old account",
            "address": {"line1": "9 Old Rd", "city": "Springfield", "country": "US"},
            "metadata": {"tier": "silver", "legacy": "yes"},
        }
    )
    sync_lists()
    return str(created.id)


@pytest.fixture
def manager(any_store_owner: Actor) -> Actor:
    return member_actor("billing_manager", "manager@example.com")


@pytest.fixture
def clerk(any_store_owner: Actor) -> Actor:
    return member_actor("billing_clerk", "clerk@example.com")


def _in_stripe(peer: StripePeer, customer_id: str) -> Any:
    return peer.secret_client().v1.customers.retrieve(customer_id)


def _updated_events(peer: StripePeer, customer_id: str) -> int:
    events = peer.secret_client().v1.events.list(params={"type": "customer.updated", "limit": 100}).data
    return sum(1 for e in events if e.data.object["id"] == customer_id)


def _audit() -> list[AuditEntry]:
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action.startswith("customers.update"))).all()
        return sorted(rows, key=lambda r: r.id or 0)


def _stored(customer_id: str) -> StripeCustomer:
    with session_scope() as s:
        row = s.get(StripeCustomer, customer_id)
        assert row is not None
        return row


def test_a_manager_changes_every_field_in_stripe_and_the_store_with_one_audit_row(
    customer_id: str, manager: Actor, stripe_peer: StripePeer
) -> None:
    changes = {
        "name": "Jane Doe",
        "email": "Jane.Doe@Example.org",
        "phone": "+44 20 7946 0958",
        "description": "Moved to the enterprise plan",
        "address": ADDRESS,
        "metadata": {"tier": "gold", "legacy": "", "region": "emea"},  # "" removes a key
    }
    result = customers.update_customer(manager, customer_id, changes, key())
    assert not result.replayed and result.fields == tuple(sorted(changes))

    in_stripe = _in_stripe(stripe_peer, customer_id)
    assert (in_stripe.name, in_stripe.email, in_stripe.phone, in_stripe.description) == (
        "Jane Doe",
        "Jane.Doe@example.org",  # the domain normalised, the mailbox kept as typed
        "+44 20 7946 0958",
        "Moved to the enterprise plan",
    )
    assert in_stripe.address.to_dict() == ADDRESS
    assert in_stripe.metadata.to_dict() == {"tier": "gold", "region": "emea"}

    view = result.customer  # what the page shows at once, read back from the store
    assert (view.name, view.email, view.phone, view.description) == (
        "Jane Doe",
        "Jane.Doe@example.org",
        "+44 20 7946 0958",
        "Moved to the enterprise plan",
    )
    assert view.address == ADDRESS and view.metadata == {"tier": "gold", "region": "emea"}
    stored = _stored(customer_id)
    assert (stored.name, stored.email_lower, stored.phone) == ("Jane Doe", "jane.doe@example.org", "+44 20 7946 0958")

    (row,) = _audit()
    assert (row.action, row.outcome, row.actor_email, row.target_ids) == (
        "customers.update",
        "ok",
        "manager@example.com",
        [customer_id],
    )
    assert row.details["fields"] == sorted(changes)
    assert row.details["metadata_keys"] == ["legacy", "region", "tier"]
    assert "jane" not in str(row.details).lower()  # names of fields only: customer data stays erasable


def test_a_clerk_changes_email_and_address(customer_id: str, clerk: Actor, stripe_peer: StripePeer) -> None:
    result = customers.update_customer(clerk, customer_id, {"email": "new@example.com", "address": ADDRESS}, key())
    assert result.customer.email == "new@example.com" and result.customer.address == ADDRESS
    in_stripe = _in_stripe(stripe_peer, customer_id)
    assert in_stripe.email == "new@example.com" and in_stripe.name == "Jane Smith"
    (row,) = _audit()
    assert (row.action, row.outcome, row.details["fields"]) == ("customers.update_contact", "ok", ["address", "email"])
    assert row.details["address_parts"] == ["line1", "line2", "city", "state", "postal_code"]


def test_a_clerk_sending_a_name_is_refused_by_field_audited_and_nothing_changes(
    customer_id: str, clerk: Actor, stripe_peer: StripePeer
) -> None:
    with pytest.raises(
        PermissionDenied, match=r"Billing Clerk\) may change a customer's address and email .*not their name"
    ):
        customers.update_customer(clerk, customer_id, {"email": "sneaky@example.com", "name": "Mallory"}, key())
    in_stripe = _in_stripe(stripe_peer, customer_id)
    assert (in_stripe.name, in_stripe.email) == ("Jane Smith", "jane@example.com")
    assert _updated_events(stripe_peer, customer_id) == 0
    (row,) = _audit()
    assert (row.action, row.outcome, row.target_ids) == ("customers.update", "denied", [customer_id])
    assert "not their name" in (row.error or "") and row.details["fields"] == ["email", "name"]


def test_read_only_changes_nothing(customer_id: str, any_store_owner: Actor, stripe_peer: StripePeer) -> None:
    viewer = member_actor("read_only", "viewer@example.com")
    assert customers.editable_customer_fields(viewer) == frozenset()
    with pytest.raises(PermissionDenied, match=r"Read Only\) cannot change a customer's email or address"):
        customers.update_customer(viewer, customer_id, {"email": "x@example.com"}, key())
    with pytest.raises(PermissionDenied):
        customers.update_customer(viewer, customer_id, {"anything": "x"}, key())  # no hint about fields
    assert _in_stripe(stripe_peer, customer_id).email == "jane@example.com"
    assert [(r.action, r.outcome) for r in _audit()] == [
        ("customers.update_contact", "denied"),
        ("customers.update", "denied"),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"balance": "100"}, "cannot change a customer's 'balance'"),
        ({}, "Nothing to change"),
        ({"email": "not-an-email"}, "email address does not look right"),
        ({"email": 42}, "email address must be text"),
        ({"address": {**ADDRESS, "country": "USA"}}, "two-letter code"),
        ({"address": {**ADDRESS, "country": ""}}, "country"),
        ({"address": {**ADDRESS, "planet": "Mars"}}, "no part 'planet'"),
        ({"name": "x" * 257}, "at most 256 characters"),
        ({"phone": "call me"}, "phone number with digits"),
        ({"description": "bad\x00byte"}, "cannot be saved"),
        ({"metadata": {"k" * 41: "v"}}, "1–40 characters"),
        ({"metadata": {"a[b]": "v"}}, "without square brackets"),
        ({"metadata": {"note": "v" * 501}}, "at most 500 characters"),
        ({"metadata": {f"k{i}": "v" for i in range(49)}}, "at most 50 metadata keys; remove some"),
    ],
)
def test_bad_values_are_refused_in_words_and_nothing_changes(
    customer_id: str, manager: Actor, stripe_peer: StripePeer, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        customers.update_customer(manager, customer_id, changes, key())
    assert _updated_events(stripe_peer, customer_id) == 0
    assert _in_stripe(stripe_peer, customer_id).email == "jane@example.com"
    assert [r.outcome for r in _audit()] == ["failed"]


def test_the_same_key_twice_makes_one_change_and_returns_the_same_result(
    customer_id: str, manager: Actor, stripe_peer: StripePeer
) -> None:
    k = key()
    first = customers.update_customer(manager, customer_id, {"name": "Once Only", "email": "once@example.com"}, k)
    stripe_peer.secret_client().v1.customers.update(customer_id, params={"phone": "+1 555 0199"})  # someone else, later
    second = customers.update_customer(manager, customer_id, {"name": "Once Only", "email": "once@example.com"}, k)
    assert second.replayed and not first.replayed
    assert (second.customer.name, second.customer.email) == (first.customer.name, first.customer.email)
    assert second.customer.phone == "+1 555 0199"  # the replay stored a fresh read, not Stripe's old answer
    assert _updated_events(stripe_peer, customer_id) == 2  # ours once, and the other change
    with session_scope() as s:
        intent = s.get(IdempotencyRecord, k)
        assert intent is not None and (intent.action, intent.result_id) == ("customers.update", customer_id)
    assert [(r.outcome, r.details.get("replay", False)) for r in _audit()] == [("ok", False), ("ok", True)]


def test_the_same_key_with_other_changes_is_refused_in_words(customer_id: str, manager: Actor) -> None:
    k = key()
    customers.update_customer(manager, customer_id, {"name": "First"}, k)
    with pytest.raises(ValidationFailed, match="already saved other changes"):
        customers.update_customer(manager, customer_id, {"name": "Second"}, k)
    with pytest.raises(ValidationFailed, match="used for something else"):
        customers.update_customer(
            member_actor("billing_manager", "other@example.com"), customer_id, {"name": "First"}, k
        )


def test_a_lost_answer_retried_with_its_key_makes_one_change(
    customer_id: str, manager: Actor, stripe_peer: StripePeer
) -> None:
    """The intent is stored before Stripe is called: Stripe did the change but the answer was
    lost; the retry with the same key gets Stripe's record, and the store catches up."""

    class LostAnswer(StripeGateway):
        def write(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            super().write(*args, **kwargs)
            raise StripeUnreachable("Billy could not reach Stripe.", outcome_unknown=True)

    k = key()
    with pytest.raises(StripeUnreachable):
        customers.update_customer(manager, customer_id, {"name": "After Timeout"}, k, gateway=LostAnswer())
    assert _stored(customer_id).name == "Jane Smith"  # the store has not heard yet
    retried = customers.update_customer(manager, customer_id, {"name": "After Timeout"}, k)
    assert retried.replayed and retried.customer.name == "After Timeout" == _stored(customer_id).name
    assert _updated_events(stripe_peer, customer_id) == 1


def test_a_double_submit_at_once_makes_one_change(customer_id: str, clerk: Actor, stripe_peer: StripePeer) -> None:
    k = key()
    results: list[customers.CustomerUpdate] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                customers.update_customer(clerk, customer_id, {"email": "dbl@example.com"}, k)
            )
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.replayed for r in results) == [False, True, True]
    assert {r.customer.email for r in results} == {"dbl@example.com"}
    assert _updated_events(stripe_peer, customer_id) == 1


def test_an_ended_trial_is_read_only(customer_id: str, manager: Actor, stripe_peer: StripePeer) -> None:
    ended = dataclasses.replace(manager, trial_ended_on=date(2026, 1, 31))
    assert customers.editable_customer_fields(ended) == frozenset()
    with pytest.raises(PlanLimitReached, match="trial ended on 31 January 2026"):
        customers.update_customer(ended, customer_id, {"name": "Nope"}, key())
    assert _in_stripe(stripe_peer, customer_id).name == "Jane Smith"
    assert [r.outcome for r in _audit()] == ["denied"]


def test_editable_fields_follow_the_role(any_store_owner: Actor) -> None:
    manager = member_actor("billing_manager", "m@example.com")
    clerk = member_actor("billing_clerk", "c@example.com")
    assert customers.editable_customer_fields(any_store_owner) == customers.ALL_FIELDS
    assert customers.editable_customer_fields(manager) == customers.ALL_FIELDS
    assert customers.editable_customer_fields(clerk) == frozenset({"email", "address"})


def test_a_key_without_customers_write_is_refused_with_what_to_enable(
    customer_id: str, manager: Actor, stripe_peer: StripePeer
) -> None:
    """Stripe's 403 (the key was edited after Billy probed it) and the probe's own record."""
    limited = stripe_peer.restricted_key(profile="billy", without=["rak_customer_write"])
    with pytest.raises(StripeKeyMissingPermission, match=r"“Customers” to “Write”"):
        customers.update_customer(manager, customer_id, {"name": "X"}, key(), gateway=StripeGateway(lambda: limited))
    with session_scope() as s:
        connection = s.exec(select(StripeConnection)).one()
        connection.permissions = {**connection.permissions, "rak_customer_write": False}
        s.add(connection)
    with pytest.raises(StripeKeyMissingPermission, match="Stripe Dashboard"):
        customers.update_customer(manager, customer_id, {"name": "X"}, key())
    assert _in_stripe(stripe_peer, customer_id).name == "Jane Smith"
    assert [r.outcome for r in _audit()] == ["failed", "failed"]


def test_stripe_refusing_reaches_the_member_in_words(customer_id: str, manager: Actor, stripe_peer: StripePeer) -> None:
    stripe_peer.secret_client().v1.customers.delete(customer_id)  # gone in Stripe, not yet in the store
    with pytest.raises(StripeRequestFailed, match="no longer exists in Stripe"):
        customers.update_customer(manager, customer_id, {"name": "Ghost"}, key())


# --- the dashboard's save event, forged ------------------------------------------------------


def test_a_forged_save_event_with_a_name_from_a_clerk_is_refused_and_audited(
    customer_id: str, clerk: Actor, stripe_peer: StripePeer
) -> None:
    """The Clerk's form offers email and address only; a client that adds `name` to the save
    event anyway is refused by the service and audited, and the customer is unchanged."""
    tokens = identity.login(clerk.email, MEMBER_PASSWORD, "127.0.0.1", "pytest-tab")
    with event_pipeline() as pipeline:
        tab = pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path=f"/customers/{customer_id}")
        tab.send(CustomerState, "load")
        opened = tab.send(CustomerState, "start_edit")
        assert "edit_open" in opened.text
        sent = tab.send(
            CustomerState,
            "save_edit",
            {"form": {"email": "clerk-set@example.com", "name": "Forged Name"}},
        )
    assert "not their name" in sent.text
    in_stripe = _in_stripe(stripe_peer, customer_id)
    assert (in_stripe.name, in_stripe.email) == ("Jane Smith", "jane@example.com")
    assert _stored(customer_id).name == "Jane Smith"
    rows = _audit()
    assert [(r.action, r.outcome, r.actor_email) for r in rows] == [("customers.update", "denied", "clerk@example.com")]


def test_the_edit_dialog_opens_only_for_the_customer_the_address_names(
    customer_id: str, manager: Actor, stripe_peer: StripePeer
) -> None:
    """Moving on to another customer's page, the tab still holds the previous customer until the new
    page has loaded; "Edit" in that moment must not open (and then save) the previous customer."""
    other = stripe_peer.secret_client().v1.customers.create(params={"email": "other@example.com"}).id
    tokens = identity.login(manager.email, MEMBER_PASSWORD, "127.0.0.1", "pytest-tab")
    with event_pipeline() as pipeline:
        tab = pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path=f"/customers/{customer_id}")
        tab.send(CustomerState, "load")
        tab.path = f"/customers/{other}"  # the address moved on; its page has not loaded yet
        stale = tab.send(CustomerState, "start_edit")
        assert "still opening its customer" in stale.text and '"edit_open_rx_state_": true' not in stale.text
        tab.path = f"/customers/{customer_id}"
        assert '"edit_open_rx_state_": true' in tab.send(CustomerState, "start_edit").text
