"""Plan gates in the permission step: an ended trial is read-only until the Owner picks a plan."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services import billing, identity, organization, team
from services.db import session_scope
from services.errors import PlanLimitReached, ValidationFailed
from services.models import Organization, utcnow
from services.permissions import Actor, Permission, Source, _check_plan_gates, authorize
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD


def test_an_ended_trial_turns_the_organisation_read_only(any_store_owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        s.get(Organization, 1).trial_ends_at = utcnow() - timedelta(minutes=1)  # type: ignore[union-attr]
    owner = identity.verify_access(identity.login(OWNER_EMAIL, OWNER_PASSWORD).access)
    assert owner.trial_ended_on is not None
    billing.search_customers(owner, "")  # reading still works, the audit log included
    authorize(owner, "audit.view")
    authorize(owner, "audit.verify")
    (refused,) = team.invite_members(owner, [("clerk@example.com", "billing_clerk")])
    assert not refused.ok and "read-only until the Owner chooses a plan" in refused.message
    assert smtp_catcher.messages() == []
    with pytest.raises(PlanLimitReached):
        authorize(owner, "charges.refund", refund_total=100, currency="usd")
    organization.choose_plan(owner, "pro")
    owner = identity.verify_access(identity.login(OWNER_EMAIL, OWNER_PASSWORD).access)
    assert owner.trial_ended_on is None and owner.plan == "pro"
    assert team.invite_members(owner, [("clerk@example.com", "billing_clerk")])[0].ok


def test_a_running_trial_is_not_gated(owner) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        s.get(Organization, 1).trial_ends_at = utcnow() + timedelta(minutes=5)  # type: ignore[union-attr]
    actor = identity.verify_access(identity.login(OWNER_EMAIL, OWNER_PASSWORD).access)
    assert actor.trial_ended_on is None
    authorize(actor, "team.invite")


@pytest.mark.parametrize(("plan", "allowed"), [("starter", False), ("pro", True), ("business", True)])
def test_exports_need_pro_or_business(plan: str, allowed: bool) -> None:
    actor = Actor(1, "viewer@example.com", "read_only", Source.API, plan=plan)
    if allowed:
        _check_plan_gates(actor, "customers.export", Permission.EXPORT)
    else:
        with pytest.raises(PlanLimitReached, match="Exports come with the Pro and Business plans"):
            _check_plan_gates(actor, "customers.export", Permission.EXPORT)


def test_choosing_a_plan_is_owner_only_and_checked(owner) -> None:  # type: ignore[no-untyped-def]
    from services.errors import PermissionDenied
    from tests.conftest import member_actor

    with pytest.raises(PermissionDenied):
        organization.choose_plan(member_actor("billing_manager", "m@example.com"), "business")
    with pytest.raises(ValidationFailed, match="Choose a plan"):
        organization.choose_plan(owner, "platinum")
    summary = organization.choose_plan(owner, "business")
    assert summary.plan == "business"


def test_moving_to_a_smaller_plan_counts_pending_invites_as_seats(any_store_owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    """Issue 11: a Pro team of 3 members with 2 pending invites could move to Starter (3 seats),
    because the plan change counted members only while invites counted invites too."""
    from tests.conftest import member_actor

    organization.choose_plan(any_store_owner, "pro")
    member_actor("billing_clerk", "clerk@example.com")
    member_actor("read_only", "viewer@example.com")
    outcomes = team.invite_members(any_store_owner, [("a@example.com", "read_only"), ("b@example.com", "read_only")])
    assert all(o.ok for o in outcomes)
    with pytest.raises(ValidationFailed, match="allows 3 members, counting pending invites, and this team uses 5"):
        organization.choose_plan(any_store_owner, "starter")
    with session_scope() as s:
        assert s.get(Organization, 1).plan == "pro"  # type: ignore[union-attr]
    for invite in team.list_team(any_store_owner).invites:
        team.revoke_invite(any_store_owner, invite.id)
    assert organization.choose_plan(any_store_owner, "starter").plan == "starter"
