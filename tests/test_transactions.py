"""Services own their transaction boundaries: an action runs in its caller's transaction when
given one, so several actions land together or not at all, and the audit log tells which."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from services import audit, organization, team
from services.db import session_scope
from services.errors import ValidationFailed
from services.models import AuditEntry, Organization
from services.permissions import Actor
from tests.conftest import member_actor


def _team_of_five(owner: Actor) -> list[int]:
    """A Pro team: the Owner, two members and two pending invites (5 seats; Starter has 3)."""
    organization.choose_plan(owner, "pro")
    member_actor("billing_clerk", "clerk@example.com")
    member_actor("read_only", "viewer@example.com")
    outcomes = team.invite_members(owner, [("a@example.com", "read_only"), ("b@example.com", "read_only")])
    assert all(o.ok for o in outcomes)
    return [invite.id for invite in team.list_team(owner).invites]


def _audit_since(first_id: int) -> list[tuple[str, str, str | None]]:
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(col(AuditEntry.id) > first_id).order_by(col(AuditEntry.id))).all()
        return [(r.action, r.outcome, r.error) for r in rows]


def _newest_audit_id() -> int:
    with session_scope() as s:
        return max(s.exec(select(AuditEntry.id)).all(), default=0) or 0


def test_actions_in_one_transaction_land_together(any_store_owner: Actor, smtp_catcher: object) -> None:
    """Withdraw both invites and move to Starter as one step: the plan check inside the same
    transaction already sees the invites gone."""
    invites = _team_of_five(any_store_owner)
    member_actor("billing_manager", "third@example.com")  # 6 seats: one invite withdrawn is not enough
    mark = _newest_audit_id()
    with pytest.raises(ValidationFailed):
        organization.choose_plan(any_store_owner, "starter")
    with session_scope() as session:
        for invite_id in invites:
            team.revoke_invite(any_store_owner, invite_id, session=session)
        third = next(m for m in team.list_team(any_store_owner).members if m.email == "third@example.com")
        team.remove_member(any_store_owner, third.id, session=session)
        organization.choose_plan(any_store_owner, "starter", session=session)
    assert team.list_team(any_store_owner).invites == []
    with session_scope() as s:
        assert s.get(Organization, 1).plan == "starter"  # type: ignore[union-attr]
    assert _audit_since(mark)[-4:] == [
        ("team.invite_revoke", "ok", None),
        ("team.invite_revoke", "ok", None),
        ("team.remove", "ok", None),
        ("billy.choose_plan", "ok", None),
    ]
    assert audit.verify().ok


def test_a_failing_action_rolls_back_the_ones_before_it(any_store_owner: Actor, smtp_catcher: object) -> None:
    """One invite withdrawn still leaves 4 seats, so the move to Starter fails, and the
    withdrawal made in the same transaction is undone: nothing is half done, and the audit log
    says the withdrawal did not last rather than that it succeeded."""
    invites = _team_of_five(any_store_owner)
    mark = _newest_audit_id()
    with pytest.raises(ValidationFailed, match="this team uses 4"), session_scope() as session:
        team.revoke_invite(any_store_owner, invites[0], session=session)
        organization.choose_plan(any_store_owner, "starter", session=session)
    assert [i.id for i in team.list_team(any_store_owner).invites] == invites
    with session_scope() as s:
        assert s.get(Organization, 1).plan == "pro"  # type: ignore[union-attr]
    (withdrawal, plan_change) = _audit_since(mark)
    assert withdrawal == ("team.invite_revoke", "failed", audit.ROLLED_BACK)
    assert plan_change[:2] == ("billy.choose_plan", "failed") and "this team uses 4" in (plan_change[2] or "")
    assert audit.verify().ok


def test_a_refusal_inside_a_transaction_is_audited_as_denied(any_store_owner: Actor, smtp_catcher: object) -> None:
    """A member who may not change plans is refused, the earlier action in the same
    transaction is undone, and both rows still reach the log once the transaction has ended."""
    invites = _team_of_five(any_store_owner)
    manager = member_actor("billing_manager", "manager@example.com")
    mark = _newest_audit_id()
    with pytest.raises(Exception, match="Owner"), session_scope() as session:
        team.revoke_invite(any_store_owner, invites[0], session=session)
        organization.choose_plan(manager, "business", session=session)
    assert len(team.list_team(any_store_owner).invites) == 2
    rows = _audit_since(mark)
    assert [(a, o) for a, o, _ in rows] == [("team.invite_revoke", "failed"), ("billy.choose_plan", "denied")]


def test_an_action_alone_still_commits_on_its_own(any_store_owner: Actor, smtp_catcher: object) -> None:
    invites = _team_of_five(any_store_owner)
    team.revoke_invite(any_store_owner, invites[0])
    assert [i.id for i in team.list_team(any_store_owner).invites] == invites[1:]
