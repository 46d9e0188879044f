"""The Owner's freezes (issue 15): a member, one agent token, or every billing change.

Actors are built fresh from the store for every call, as each door builds them, so a freeze
takes effect at the frozen member's next request, whatever the door.
"""

from __future__ import annotations

import secrets

import pytest
from sqlmodel import select

from services import agent_tokens, billing, identity, spend, stripe_keys
from services.agent_tokens import ScopeRequest
from services.db import session_scope
from services.errors import PermissionDenied, ValidationFailed, WritesFrozen
from services.models import AuditEntry
from services.permissions import Actor, Source, control
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD, member_actor
from tests.stripe_helpers import make_charge, sync_lists

CLERK_EMAIL = "clerk@example.com"
MEMBER_PASSWORD = "another-long-password"  # `member_actor`'s


def key() -> str:
    return secrets.token_urlsafe(24)


def signed_in(email: str, password: str = MEMBER_PASSWORD) -> Actor:
    """The dashboard's Actor, as its websocket builds it for each event: from the access token."""
    tokens = identity.login(email, password, "127.0.0.1", "pytest")
    return identity.verify_access(tokens.access, Source.DASHBOARD, "127.0.0.1", "pytest")


@pytest.fixture
def charges(any_store, any_store_owner, stripe_peer) -> list[str]:  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    made = [make_charge(stripe_peer, 20_00)["id"] for _ in range(4)]
    sync_lists()
    return made


def test_a_frozen_member_reads_but_every_change_is_refused_through_every_door(  # type: ignore[no-untyped-def]
    charges, any_store_owner
) -> None:
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    secret = agent_tokens.issue_token(clerk, "Claude", ScopeRequest()).secret
    spend.set_freeze(any_store_owner, f"member:{clerk.user_id or 0}")
    dashboard, agent = signed_in(CLERK_EMAIL), agent_tokens.actor_for_token(secret, Source.AGENT)
    for door in (dashboard, agent):
        with pytest.raises(WritesFrozen, match="The Owner has frozen your changes"):
            billing.issue_refund(door, charges[0], None, None, key())
        assert billing.get_charge(door, charges[0]).refundable == 20_00  # reading goes on
    assert control(dashboard, "charges.refund").blocked_by.startswith("The Owner has frozen your changes")
    spend.set_freeze(any_store_owner, f"member:{clerk.user_id or 0}", frozen=False)
    billing.issue_refund(agent_tokens.actor_for_token(secret, Source.AGENT), charges[0], None, None, key())
    with session_scope() as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.action.in_(["spend.freeze", "spend.unfreeze"]))).all()  # type: ignore[attr-defined]
    assert [(r.action, r.outcome, r.details.get("member")) for r in rows] == [
        ("spend.freeze", "ok", CLERK_EMAIL),
        ("spend.unfreeze", "ok", CLERK_EMAIL),
    ]


def test_a_frozen_token_stops_while_its_member_goes_on_in_the_dashboard(charges, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    issued = agent_tokens.issue_token(clerk, "Looping agent", ScopeRequest())
    spend.set_freeze(any_store_owner, f"token:{issued.id}")
    with pytest.raises(WritesFrozen, match="frozen this agent token"):
        billing.issue_refund(agent_tokens.actor_for_token(issued.secret, Source.AGENT), charges[0], None, None, key())
    billing.issue_refund(signed_in(CLERK_EMAIL), charges[1], None, None, key())


def test_freezing_all_writes_stops_everyone_in_stripe_but_leaves_the_owner_the_controls(  # type: ignore[no-untyped-def]
    charges, any_store_owner
) -> None:
    manager = member_actor("billing_manager", "manager@example.com")
    spend.set_freeze(any_store_owner, spend.ALL_WRITES)
    owner = signed_in(OWNER_EMAIL, OWNER_PASSWORD)
    for who in (owner, signed_in("manager@example.com")):
        with pytest.raises(WritesFrozen, match="frozen all billing changes"):
            billing.issue_refund(who, charges[0], None, None, key())
    with pytest.raises(PermissionDenied):  # only the Owner holds the freezes
        spend.set_freeze(manager, spend.ALL_WRITES, frozen=False)
    with pytest.raises(ValidationFailed, match="The Owner cannot be frozen"):
        spend.set_freeze(owner, f"member:{owner.user_id or 0}")
    spend.set_freeze(owner, spend.ALL_WRITES, frozen=False)
    billing.issue_refund(signed_in(OWNER_EMAIL, OWNER_PASSWORD), charges[0], None, None, key())
