"""The Owner's hand-over sign-in: from the control plane's signup straight into their new instance.

Provisioning runs `billy handover` (or `provision-org`) inside the instance, which issues a
single-use link for the current Owner that lives 60 seconds (`magic_links.Purpose.HANDOVER`);
the control plane redirects the browser to `/api/auth/handover?token=…` and the instance signs
the Owner in there. The control plane never holds a session of the instance, only this link,
and the link is dead long before anyone could find it in a browser's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from services import audit, identity, magic_links
from services.db import session_scope
from services.errors import ValidationFailed
from services.identity import IssuedTokens
from services.magic_links import LinkInvalid, Purpose
from services.models import Member, stored_id
from services.permissions import OWNER, Actor, Source

ACTION = "auth.handover"


@dataclass(frozen=True)
class HandoverLink:
    """A hand-over token as the control plane receives it: the signed value and when it dies."""

    token: str
    expires_at: datetime


def _current_owner(session: Session) -> Member | None:
    return session.exec(select(Member).where(Member.role == OWNER, col(Member.active).is_(True))).first()


def issue_handover() -> HandoverLink:
    """A fresh hand-over token for the current Owner; any earlier one stops working, so only the
    newest address the control plane handed out can sign anyone in."""
    with session_scope() as session:
        owner = _current_owner(session)
        if owner is None:
            raise ValidationFailed("This instance has no Owner yet: run provision-org first.")
        magic_links.revoke_pending(session, Purpose.HANDOVER, owner.email)
        signed, row = magic_links.create(session, Purpose.HANDOVER, owner.email, OWNER)
        owner_id, email, expires_at = stored_id(owner), owner.email, row.expires_at
    draft = audit.AuditDraft(targets=[str(owner_id)], details={"for": email, "by": "control plane"})
    audit.record(Actor.system(), "auth.handover_issued", "ok", draft)
    return HandoverLink(signed, expires_at)


def redeem_handover(signed: str, client_address: str = "", user_agent: str = "") -> IssuedTokens:
    """Spend a hand-over token and sign its Owner in, as a password sign-in would.

    Raises `LinkInvalid` for a forged, used, replaced or expired token, and for one whose member
    is no longer the Owner (ownership moved since it was issued); a genuine token refused is
    recorded against its member, so a replayed address shows in the audit log."""
    try:
        with session_scope() as session:
            grant = magic_links.consume(session, Purpose.HANDOVER, signed)
            member = session.exec(select(Member).where(Member.email == grant.email)).first()
            if member is None or not member.active or member.role != OWNER:
                raise LinkInvalid(Purpose.HANDOVER, "This sign-in link was made for the Owner, who has changed since.")
            member_id = stored_id(member)
            actor = Actor(member_id, member.email, OWNER, Source.DASHBOARD, client_address, user_agent)
    except LinkInvalid as exc:
        _record_refusal(signed, exc, client_address, user_agent)
        raise
    audit.record(actor, ACTION, "ok")
    return identity.start_session(member_id, client_address, user_agent)


def _record_refusal(signed: str, exc: LinkInvalid, client_address: str, user_agent: str) -> None:
    """A refused token that Billy did sign (a replay, a late click) is the member's audit row;
    a forged one names nobody and is not recorded (anyone can send garbage)."""
    email = magic_links.signed_email(Purpose.HANDOVER, signed)
    if not email:
        return
    with session_scope() as session:
        member = session.exec(select(Member).where(Member.email == email)).first()
        member_id, role = (stored_id(member), member.role) if member is not None else (None, "")
    actor = Actor(member_id, email, role, Source.DASHBOARD, client_address, user_agent)
    audit.record(actor, ACTION, "denied", audit.AuditDraft(), exc.message)
