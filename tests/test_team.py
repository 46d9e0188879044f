"""The team: invites by magic link, plan limits, one Owner, password resets (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from itsdangerous import URLSafeSerializer
from sqlmodel import select

from services import clock, identity, team
from services.db import session_scope
from services.errors import NotAuthenticated, PermissionDenied, ValidationFailed
from services.magic_links import LinkInvalid
from services.models import AuditEntry, MagicLink, Member, Organization
from services.signing import instance_key
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD, member_actor

CLERK = "clerk@example.com"
NEW_PASSWORD = "violet-harbour-lantern-42"


def _token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def _invite(owner, catcher, email: str = CLERK, role: str = "billing_clerk") -> str:  # type: ignore[no-untyped-def]
    (outcome,) = team.invite_members(owner, [(email, role)])
    assert outcome.ok, outcome.message
    return _token(catcher.links(to=email)[0])


def test_invite_mail_accept_and_sign_in(any_store_owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    signed = _invite(any_store_owner, smtp_catcher)
    (mail,) = smtp_catcher.messages()
    assert mail.to == CLERK and "Acme Ltd" in mail.subject + mail.text and "Billing Clerk" in mail.text
    details = team.invite_details(signed)
    assert (details.email, details.role_label, details.inviter_email) == (CLERK, "Billing Clerk", OWNER_EMAIL)
    view = team.list_team(any_store_owner)
    assert [i.email for i in view.invites] == [CLERK] and view.seats_used == 2
    member_id = team.accept_invite(signed, "Casey Clerk", NEW_PASSWORD)
    tokens = identity.login(CLERK, NEW_PASSWORD)
    actor = identity.verify_access(tokens.access)
    assert (actor.user_id, actor.role) == (member_id, "billing_clerk")
    view = team.list_team(any_store_owner)
    assert view.invites == [] and [(m.email, m.role) for m in view.members] == [
        (OWNER_EMAIL, "owner"),
        (CLERK, "billing_clerk"),
    ]


def test_a_link_works_once(owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    signed = _invite(owner, smtp_catcher)
    team.accept_invite(signed, "Casey", NEW_PASSWORD)
    with pytest.raises(LinkInvalid, match=r"already been used.*resend"):
        team.accept_invite(signed, "Mallory", NEW_PASSWORD)


def test_an_expired_link_is_refused(owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    signed = _invite(owner, smtp_catcher)
    with clock.travel(timedelta(hours=47)):
        team.invite_details(signed)
    with clock.travel(timedelta(hours=48, seconds=1)), pytest.raises(LinkInvalid, match="expired"):
        team.accept_invite(signed, "Casey", NEW_PASSWORD)


def test_a_link_with_a_changed_role_is_refused(owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    signed = _invite(owner, smtp_catcher)
    payload = URLSafeSerializer(instance_key(), salt="billy:magic:invite").loads(signed)
    # Edited without the key: the signature fails.
    forged = URLSafeSerializer("guessed-key", salt="billy:magic:invite").dumps({**payload, "r": "billing_manager"})
    with pytest.raises(LinkInvalid, match="not valid"):
        team.accept_invite(forged, "Casey", NEW_PASSWORD)
    # Even re-signed with the real key, the stored role does not match the edited one.
    resigned = URLSafeSerializer(instance_key(), salt="billy:magic:invite").dumps({**payload, "r": "billing_manager"})
    with pytest.raises(LinkInvalid, match="not valid"):
        team.accept_invite(resigned, "Casey", NEW_PASSWORD)


def test_a_link_for_another_email_is_refused(owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    signed = _invite(owner, smtp_catcher)
    payload = URLSafeSerializer(instance_key(), salt="billy:magic:invite").loads(signed)
    other = URLSafeSerializer(instance_key(), salt="billy:magic:invite").dumps({**payload, "e": "mallory@example.com"})
    with pytest.raises(LinkInvalid, match="not valid"):
        team.accept_invite(other, "Mallory", NEW_PASSWORD)
    # A reset link is not an invite link either.
    with pytest.raises(LinkInvalid):
        team.reset_password(signed, NEW_PASSWORD)


def test_resending_kills_the_old_link_and_revoking_kills_it_too(owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    first = _invite(owner, smtp_catcher)
    (invite,) = team.list_team(owner).invites
    team.resend_invite(owner, invite.id)
    second = _token(smtp_catcher.links(to=CLERK)[0])
    assert second != first
    with pytest.raises(LinkInvalid, match="replaced"):
        team.invite_details(first)
    (invite,) = team.list_team(owner).invites
    team.revoke_invite(owner, invite.id)
    with pytest.raises(LinkInvalid):
        team.invite_details(second)
    assert team.list_team(owner).invites == []


def test_only_the_owner_manages_the_team(owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    manager = member_actor("billing_manager", "manager@example.com")
    for call in (
        lambda: team.list_team(manager),
        lambda: team.invite_members(manager, [(CLERK, "read_only")]),
        lambda: team.remove_member(manager, owner.user_id),
        lambda: team.change_role(manager, 1, "read_only"),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert smtp_catcher.messages() == []
    with session_scope() as s:
        denied = s.exec(select(AuditEntry).where(AuditEntry.outcome == "denied")).all()
    assert {d.action for d in denied} == {"team.view", "team.invite", "team.remove", "team.change_role"}


def test_plan_limit_counts_owner_members_and_pending_invites(any_store_owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        s.get(Organization, 1).plan = "starter"  # type: ignore[union-attr]
    outcomes = team.invite_members(
        any_store_owner,
        [("a@example.com", "read_only"), ("b@example.com", "read_only"), ("c@example.com", "read_only")],
    )
    assert [o.ok for o in outcomes] == [True, True, False]
    assert "Starter plan allows 3 members" in outcomes[2].message and "Pro" in outcomes[2].message
    assert len(smtp_catcher.messages()) == 2  # the refused invite sent nothing
    with session_scope() as s:
        s.get(Organization, 1).plan = "pro"  # type: ignore[union-attr]
    assert team.invite_members(any_store_owner, [("c@example.com", "read_only")])[0].ok  # the larger plan lifts it
    with session_scope() as s:
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "team.invite")).all()
    assert [a.outcome for a in audit] == ["ok", "ok", "denied", "ok"]


def test_invite_rows_report_each_problem(owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    outcomes = team.invite_members(
        owner,
        [
            ("not-an-email", "read_only"),
            (OWNER_EMAIL, "read_only"),
            (CLERK, "owner"),
            (CLERK, "billing_clerk"),
            (CLERK.upper(), "read_only"),
        ],
    )
    assert [o.ok for o in outcomes] == [False, False, False, True, False]
    assert "does not look right" in outcomes[0].message
    assert "already a member" in outcomes[1].message
    assert "Choose a role" in outcomes[2].message
    assert "appears twice" in outcomes[4].message


def test_the_owner_cannot_be_removed_or_demoted(owner) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionDenied, match="Transfer ownership"):
        team.remove_member(owner, owner.user_id)
    with pytest.raises(PermissionDenied):
        team.change_role(owner, owner.user_id, "read_only")
    with pytest.raises(ValidationFailed):
        clerk = member_actor("billing_clerk", CLERK)
        team.change_role(owner, clerk.user_id, "owner")  # ownership moves only by transfer


def test_role_change_takes_effect_on_the_next_action(owner) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", CLERK)
    with session_scope() as s:
        s.get(Member, clerk.user_id).password_hash = identity.hash_password(NEW_PASSWORD)  # type: ignore[union-attr]
    tokens = identity.login(CLERK, NEW_PASSWORD)
    team.change_role(owner, clerk.user_id, "read_only")
    assert identity.verify_access(tokens.access).role == "read_only"  # same token, new role


def test_removed_member_is_signed_out_everywhere(owner) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", CLERK)
    with session_scope() as s:
        s.get(Member, clerk.user_id).password_hash = identity.hash_password(NEW_PASSWORD)  # type: ignore[union-attr]
    tokens = identity.login(CLERK, NEW_PASSWORD)
    team.remove_member(owner, clerk.user_id)
    with pytest.raises(NotAuthenticated):
        identity.verify_access(tokens.access)
    with pytest.raises(NotAuthenticated):
        identity.refresh(tokens.refresh)
    with pytest.raises(identity.InvalidCredentials):
        identity.login(CLERK, NEW_PASSWORD)


def test_transfer_ownership_needs_the_password_and_keeps_one_owner(any_store_owner) -> None:  # type: ignore[no-untyped-def]
    manager = member_actor("billing_manager", "manager@example.com")
    with pytest.raises(PermissionDenied, match="password"):
        team.transfer_ownership(any_store_owner, manager.user_id, "not-my-password")
    team.transfer_ownership(any_store_owner, manager.user_id, OWNER_PASSWORD)
    with session_scope() as s:
        roles = {m.email: m.role for m in s.exec(select(Member))}
    assert roles == {OWNER_EMAIL: "billing_manager", "manager@example.com": "owner"}


def test_password_reset_by_link_revokes_every_session(any_store_owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    before = identity.login(OWNER_EMAIL, OWNER_PASSWORD)
    team.request_password_reset("nobody@example.com")  # no account: nothing is sent, nothing said
    assert smtp_catcher.messages() == []
    team.request_password_reset(OWNER_EMAIL)
    signed = _token(smtp_catcher.links(to=OWNER_EMAIL)[0])
    with clock.travel(timedelta(hours=1, seconds=1)), pytest.raises(LinkInvalid, match="expired"):
        team.reset_password(signed, NEW_PASSWORD)
    with pytest.raises(ValidationFailed, match="common"):
        team.reset_password(signed, "password1234")
    team.reset_password(signed, NEW_PASSWORD)
    with pytest.raises(NotAuthenticated):
        identity.verify_access(before.access)
    with pytest.raises(NotAuthenticated):
        identity.refresh(before.refresh)
    assert identity.login(OWNER_EMAIL, NEW_PASSWORD).access
    with pytest.raises(LinkInvalid, match="already been used"):
        team.reset_password(signed, "another-fine-passphrase-9")
    with session_scope() as s:
        assert s.exec(select(MagicLink).where(MagicLink.purpose == "reset")).one().used_at is not None
