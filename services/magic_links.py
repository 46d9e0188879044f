"""Single-use links: team invites (48 hours), password resets (1 hour) and the Owner's hand-over
sign-in from the control plane after provisioning (60 seconds, `services.handover`).

A link carries a random token plus the email and role it was made for, signed with the
instance key; the store keeps only the token's hash next to that email and role. A link
is honoured only if the signature holds, the row exists, and the row's email and role
are the ones in the link: an edited role or a link re-used for another address fails.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from itsdangerous import BadSignature, URLSafeSerializer
from sqlmodel import Session, col, select

from services.db import session_scope
from services.errors import BillyError
from services.models import MagicLink, stored_id, table_of, utcnow
from services.signing import digest, instance_key


class Purpose(StrEnum):
    INVITE = "invite"
    RESET = "reset"
    HANDOVER = "handover"


LIFETIMES = {
    Purpose.INVITE: timedelta(hours=48),
    Purpose.RESET: timedelta(hours=1),
    # Only long enough for the browser to follow the control plane's redirect: the address passes
    # through the browser's history, so a copy found there later must be dead.
    Purpose.HANDOVER: timedelta(seconds=60),
}

_ADVICE = {
    Purpose.INVITE: "Ask your Owner to resend the invite.",
    Purpose.RESET: "Ask for a new reset link from the sign-in page.",
    Purpose.HANDOVER: "Sign in with your email address and the password you chose at signup.",
}


class LinkInvalid(BillyError):
    code = "link_invalid"

    def __init__(self, purpose: Purpose, problem: str) -> None:
        super().__init__(f"{problem} {_ADVICE[purpose]}")
        self.purpose = purpose


@dataclass(frozen=True)
class LinkGrant:
    """What a valid link grants: who it is for and (invites) with which role."""

    link_id: int
    email: str
    role: str
    created_by: int | None
    expires_at: datetime


def _serializer(purpose: Purpose) -> URLSafeSerializer:
    return URLSafeSerializer(instance_key(), salt=f"billy:magic:{purpose}")


def create(
    session: Session,
    purpose: Purpose,
    email: str,
    role: str = "",
    created_by: int | None = None,
) -> tuple[str, MagicLink]:
    """A new link (inside the caller's transaction). Returns the signed value for the URL."""
    now = utcnow()
    token = secrets.token_urlsafe(32)
    row = MagicLink(
        purpose=str(purpose),
        token_hash=digest(token),
        email=email,
        role=role,
        created_by=created_by,
        created_at=now,
        expires_at=now + LIFETIMES[purpose],
    )
    session.add(row)
    session.flush()
    return _serializer(purpose).dumps({"t": token, "e": email, "r": role}), row


def _find(session: Session, purpose: Purpose, signed: str, now: datetime) -> MagicLink:
    try:
        payload = _serializer(purpose).loads(signed)
    except BadSignature:
        raise LinkInvalid(purpose, "This link is not valid (it may have been cut short or changed).") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("t"), str):
        raise LinkInvalid(purpose, "This link is not valid.")
    row = session.exec(
        select(MagicLink).where(MagicLink.token_hash == digest(payload["t"]), MagicLink.purpose == str(purpose))
    ).first()
    if row is None or row.email != payload.get("e") or row.role != payload.get("r"):
        raise LinkInvalid(purpose, "This link is not valid.")
    if row.used_at is not None:
        raise LinkInvalid(purpose, "This link has already been used.")
    if row.revoked_at is not None:
        raise LinkInvalid(purpose, "This link was replaced by a newer one or withdrawn.")
    if row.expires_at <= now:
        raise LinkInvalid(purpose, "This link has expired.")
    return row


def signed_email(purpose: Purpose, signed: str) -> str:
    """The address a genuinely signed link was made for, used or not ("" for a forged one): lets a
    refused use be recorded against its member without trusting anything unsigned."""
    try:
        payload = _serializer(purpose).loads(signed)
    except BadSignature:
        return ""
    email = payload.get("e") if isinstance(payload, dict) else None
    return email if isinstance(email, str) else ""


def peek(session: Session, purpose: Purpose, signed: str) -> LinkGrant:
    """Check a link without spending it (to show the page it opens)."""
    row = _find(session, purpose, signed, utcnow())
    return LinkGrant(stored_id(row), row.email, row.role, row.created_by, row.expires_at)


def seconds_left(purpose: Purpose, signed: str) -> float:
    """How long a link stays valid, for the cookie that carries it to its page (raises
    `LinkInvalid` when it is not valid)."""
    with session_scope() as session:
        grant = peek(session, purpose, signed)
    return (grant.expires_at - utcnow()).total_seconds()


def mark_used(session: Session, link_id: int | None, now: datetime) -> bool:
    """Mark a link used in the caller's transaction: False when another use marked it first (of
    two racing uses, only one gets True)."""
    spent = session.exec(
        table_of(MagicLink)
        .update()
        .where(col(MagicLink.id) == link_id, col(MagicLink.used_at).is_(None))
        .values(used_at=now)
    ).rowcount
    return spent == 1


def consume(session: Session, purpose: Purpose, signed: str) -> LinkGrant:
    """Spend a link inside the caller's transaction; of two racing uses, only one succeeds."""
    now = utcnow()
    row = _find(session, purpose, signed, now)
    if not mark_used(session, row.id, now):
        raise LinkInvalid(purpose, "This link has already been used.")
    return LinkGrant(stored_id(row), row.email, row.role, row.created_by, row.expires_at)


def revoke_pending(session: Session, purpose: Purpose, email: str) -> int:
    """Withdraw every unused link of a kind for an address (a resend kills the old link)."""
    now = utcnow()
    rows = session.exec(
        select(MagicLink).where(
            MagicLink.purpose == str(purpose),
            MagicLink.email == email,
            col(MagicLink.used_at).is_(None),
            col(MagicLink.revoked_at).is_(None),
        )
    ).all()
    for row in rows:
        row.revoked_at = now
    return len(rows)
