"""The team: invites by magic link, members, roles, plan limits and the one Owner.

Only the Owner manages the team (`Permission.MANAGE_TEAM`); the check is here, so a page,
an API route or an agent all meet it. Each change is one transaction and one audit row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from services import audit, magic_links, roles
from services.config import get_settings
from services.db import session_scope, transaction
from services.errors import NotFound, PermissionDenied, PlanLimitReached, ValidationFailed
from services.identity import (
    check_password_policy,
    hash_password,
    normalize_email,
    password_context,
    revoke_all_sessions,
)
from services.magic_links import LinkGrant, Purpose
from services.mail_templates import invite_mail, password_reset_mail
from services.mailer import get_mailer
from services.models import MagicLink, Member, Organization, stored_id, utcnow
from services.permissions import OWNER, Actor, Source, authorize
from services.plans import PLANS
from services.seats import pending_invites, seats_used

NEXT_PLAN = {"starter": "Pro (up to 10 members)", "pro": "Business (unlimited members)"}


@dataclass(frozen=True)
class MemberView:
    id: int
    name: str
    email: str
    role: str
    role_label: str
    last_active_at: datetime | None
    is_owner: bool
    frozen: bool = False  # the Owner froze their changes (services.spend)


@dataclass(frozen=True)
class InviteView:
    id: int
    email: str
    role: str
    role_label: str
    expires_at: datetime


@dataclass(frozen=True)
class TeamView:
    members: list[MemberView]
    invites: list[InviteView]
    plan_label: str
    member_limit: int | None
    seats_used: int
    assignable: list[tuple[str, str]]  # (role key, label) a member can be given now


@dataclass(frozen=True)
class InviteOutcome:
    email: str
    role: str
    ok: bool
    message: str


def _link_url(purpose: Purpose, signed: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}/api/links/{purpose}?token={signed}"


def _check_member_limit(session: Session, now: datetime, email: str) -> None:
    org = session.get(Organization, 1)
    plan = PLANS[org.plan] if org else PLANS["starter"]
    if plan.member_limit is None:
        return
    used = seats_used(session, now, excluding_email=email)
    if used + 1 > plan.member_limit:
        upgrade = NEXT_PLAN.get(plan.key, "a larger plan")
        raise PlanLimitReached(
            f"Your {plan.label} plan allows {plan.member_limit} members, counting you and pending invites, "
            f"and {used} are in use. Withdraw an invite, remove a member, or move to {upgrade} in Settings."
        )


def _org_name(session: Session) -> str:
    org = session.get(Organization, 1)
    return org.name if org else "your organisation"


def _send_invite(actor: Actor, email: str, role: str, now: datetime) -> None:
    """Create the link, then send the mail; if the mail cannot go, the link is withdrawn,
    so a failed send leaves no invite behind (and no transaction waits on the mail server)."""
    with session_scope() as session:
        if session.exec(select(Member).where(Member.email == email, col(Member.active).is_(True))).first():
            raise ValidationFailed(f"{email} is already a member of this team.")
        roles.check_assignable(session, role)
        _check_member_limit(session, now, email)
        magic_links.revoke_pending(session, Purpose.INVITE, email)
        signed, row = magic_links.create(session, Purpose.INVITE, email, role, actor.user_id)
        link_id, expires_at, org_name = row.id, row.expires_at, _org_name(session)
        role_label = roles.labels(session)[role]
    mail = invite_mail(
        to=email,
        org_name=org_name,
        inviter_email=actor.email,
        role_label=role_label,
        link=_link_url(Purpose.INVITE, signed),
        expires_at=expires_at,
    )
    try:
        get_mailer().send(mail)
    except Exception:
        with session_scope() as session:
            withdrawn = session.get(MagicLink, link_id)
            if withdrawn is not None:
                withdrawn.revoked_at = utcnow()
        raise


def invite_members(actor: Actor, rows: list[tuple[str, str]]) -> list[InviteOutcome]:
    """Invite several people at once; each row succeeds or fails on its own, with a reason."""
    now = utcnow()
    outcomes: list[InviteOutcome] = []
    seen: set[str] = set()
    for raw_email, role in rows:
        try:
            with audit.audited(actor, "team.invite") as draft:
                authorize(actor, "team.invite")
                email = normalize_email(raw_email)
                draft.details.update(email=email, role=role)
                with session_scope() as session:
                    roles.check_assignable(session, role)
                if email in seen:
                    raise ValidationFailed(f"{email} appears twice in this list.")
                seen.add(email)
                _send_invite(actor, email, role, now)
            outcomes.append(InviteOutcome(email, role, True, f"Invite sent to {email}."))
        except PlanLimitReached as exc:  # this row does not fit; the caller may still be the Owner
            outcomes.append(InviteOutcome(raw_email.strip(), role, False, exc.message))
        except PermissionDenied:
            raise
        except Exception as exc:  # noqa: BLE001 - every row reports its own outcome
            outcomes.append(InviteOutcome(raw_email.strip(), role, False, str(exc)))
    return outcomes


def _invite_row(session: Session, invite_id: int, now: datetime) -> MagicLink:
    row = session.exec(pending_invites(now).where(MagicLink.id == invite_id)).first()
    if row is None:
        raise NotFound("That invite is no longer pending.")
    return row


def resend_invite(actor: Actor, invite_id: int) -> None:
    """A fresh link (the old one stops working), a fresh 48 hours."""
    now = utcnow()
    with audit.audited(actor, "team.invite_resend", str(invite_id)) as draft:
        authorize(actor, "team.invite")
        with session_scope() as session:
            row = _invite_row(session, invite_id, now)
            email, role = row.email, row.role
        draft.details.update(email=email, role=role)
        _send_invite(actor, email, role, now)


def revoke_invite(actor: Actor, invite_id: int, *, session: Session | None = None) -> None:
    now = utcnow()
    with audit.audited(actor, "team.invite_revoke", str(invite_id), session=session) as draft:
        authorize(actor, "team.manage")
        with transaction(session) as tx:
            row = _invite_row(tx, invite_id, now)
            row.revoked_at = now
            draft.details.update(email=row.email)


def list_team(actor: Actor) -> TeamView:
    now = utcnow()
    audit.authorize_read(actor, "team.view")
    with session_scope() as session:
        members = session.exec(select(Member).where(col(Member.active).is_(True)).order_by(col(Member.id))).all()
        invites = session.exec(pending_invites(now).order_by(col(MagicLink.id))).all()
        org = session.get(Organization, 1)
        plan = PLANS[org.plan] if org else PLANS["starter"]
        used = seats_used(session, now)
        label_of = roles.labels(session)
        assignable = roles.assignable_roles(session)
    return TeamView(
        members=[
            MemberView(
                stored_id(m),
                m.name,
                m.email,
                m.role,
                label_of.get(m.role, m.role),
                m.last_active_at,
                m.role == OWNER,
                m.frozen_at is not None,
            )
            for m in members
        ],
        invites=[
            InviteView(stored_id(i), i.email, i.role, label_of.get(i.role, i.role), i.expires_at) for i in invites
        ],
        plan_label=plan.label,
        member_limit=plan.member_limit,
        seats_used=used,
        assignable=assignable,
    )


def _other_member(session: Session, actor: Actor, member_id: int) -> Member:
    member = session.get(Member, member_id)
    if member is None or not member.active:
        raise NotFound("That person is not a member of this team.")
    if member.role == OWNER:
        raise PermissionDenied("The Owner cannot be removed or given another role. Transfer ownership first.")
    return member


def change_role(actor: Actor, member_id: int, role: str, *, session: Session | None = None) -> None:
    """Takes effect on the member's next action: every request reads the stored role."""
    with audit.audited(actor, "team.change_role", str(member_id), session=session) as draft:
        authorize(actor, "team.manage")
        with transaction(session) as tx:
            roles.check_assignable(tx, role)
            member = _other_member(tx, actor, member_id)
            draft.details.update(email=member.email, old_role=member.role, new_role=role)
            member.role = role


def remove_member(actor: Actor, member_id: int, *, session: Session | None = None) -> None:
    """The member's tokens die at once: their token version moves and their sessions end."""
    with audit.audited(actor, "team.remove", str(member_id), session=session) as draft:
        authorize(actor, "team.manage")
        with transaction(session) as tx:
            member = _other_member(tx, actor, member_id)
            draft.details.update(email=member.email, role=member.role)
            member.active = False
            member.token_version += 1
            revoke_all_sessions(tx, stored_id(member), "removed")


def transfer_ownership(actor: Actor, member_id: int, password: str, *, session: Session | None = None) -> None:
    """Move ownership after the Owner confirms their password; the old Owner becomes Billing Manager."""
    with audit.audited(actor, "team.transfer_ownership", str(member_id), session=session) as draft:
        authorize(actor, "team.transfer_ownership")
        with transaction(session) as tx:
            owner = tx.get(Member, actor.user_id)
            if owner is None or owner.role != OWNER or not password_context.verify(password, owner.password_hash):
                raise PermissionDenied("That password is not right, so ownership stays with you.")
            target = _other_member(tx, actor, member_id)
            draft.details.update(new_owner=target.email)
            owner.role, target.role = "billing_manager", OWNER
            for person in (owner, target):
                person.token_version += 1  # both sign in again under their new roles
                revoke_all_sessions(tx, stored_id(person), "ownership_transferred")


# --- accepting an invite, resetting a password (the link is the credential) ---------------


@dataclass(frozen=True)
class InviteDetails:
    email: str
    role_label: str
    org_name: str
    inviter_email: str
    expires_at: datetime


def invite_details(signed: str) -> InviteDetails:
    with session_scope() as session:
        grant = magic_links.peek(session, Purpose.INVITE, signed)
        inviter = session.get(Member, grant.created_by) if grant.created_by else None
        return InviteDetails(
            grant.email,
            roles.labels(session).get(grant.role, grant.role),
            _org_name(session),
            inviter.email if inviter else "",
            grant.expires_at,
        )


def reset_link_email(signed: str) -> str:
    """Whom a reset link is for, if it still works (to show the reset page)."""
    with session_scope() as session:
        return magic_links.peek(session, Purpose.RESET, signed).email


def accept_invite(signed: str, name: str, password: str, client_address: str = "", user_agent: str = "") -> int:
    """Create (or re-activate) the member with the invited email and role; returns their id."""
    now = utcnow()
    clean_name = " ".join(name.split())[:120]
    if not clean_name:
        raise ValidationFailed("Enter your name so your team knows who did what.")
    with session_scope() as session:
        grant: LinkGrant = magic_links.peek(session, Purpose.INVITE, signed)
        check_password_policy(password, related=[grant.email, clean_name])
        grant = magic_links.consume(session, Purpose.INVITE, signed)
        member = session.exec(select(Member).where(Member.email == grant.email)).first()
        if member is not None and member.active:
            raise ValidationFailed(f"{grant.email} is already a member: sign in instead.")
        if member is None:
            member = Member(email=grant.email, password_hash="", role=grant.role, created_at=now)
            session.add(member)
        member.name, member.password_hash, member.role, member.active = (
            clean_name,
            hash_password(password),
            grant.role,
            True,
        )
        member.last_active_at = now
        session.flush()
        member_id, email, role = stored_id(member), member.email, member.role
    audit.record(
        Actor(member_id, email, role, Source.DASHBOARD, client_address, user_agent),
        "team.accept_invite",
        "ok",
        audit.AuditDraft(details={"role": role}),
    )
    return member_id


def request_password_reset(email: str, client_address: str = "") -> None:
    """Send a reset link if the address belongs to a member. The caller says the same thing
    either way, so the answer does not reveal who has an account."""
    try:
        address = normalize_email(email)
    except ValidationFailed:
        return
    with session_scope() as session:
        member = session.exec(select(Member).where(Member.email == address, col(Member.active).is_(True))).first()
        if member is None:
            return
        magic_links.revoke_pending(session, Purpose.RESET, address)
        signed, row = magic_links.create(session, Purpose.RESET, address, "", None)
        get_mailer().send(
            password_reset_mail(to=address, link=_link_url(Purpose.RESET, signed), expires_at=row.expires_at)
        )


def reset_password(signed: str, password: str, client_address: str = "", user_agent: str = "") -> None:
    """Set a new password from a reset link; every existing session of the member ends."""
    with session_scope() as session:
        grant = magic_links.peek(session, Purpose.RESET, signed)
        check_password_policy(password, related=[grant.email])
        grant = magic_links.consume(session, Purpose.RESET, signed)
        member = session.exec(select(Member).where(Member.email == grant.email, col(Member.active).is_(True))).first()
        if member is None:
            raise NotFound("This account no longer exists.")
        member.password_hash = hash_password(password)
        member.token_version += 1
        revoke_all_sessions(session, stored_id(member), "password_reset")
        actor = Actor(member.id, member.email, member.role, Source.DASHBOARD, client_address, user_agent)
    audit.record(actor, "auth.password_reset", "ok")
