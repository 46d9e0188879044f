"""Seats: the one count every member-limit gate uses (invites, accepting one, choosing a plan).

DESIGN, Tenancy: a seat is held by everyone who can sign in, the Owner included, and by every
pending invite. Counting them in one place keeps a plan change from slipping past invites.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from services.magic_links import Purpose
from services.models import MagicLink, Member


def pending_invites(now: datetime) -> SelectOfScalar[MagicLink]:
    """Unused, unwithdrawn, unexpired invites: they hold a seat."""
    return select(MagicLink).where(
        MagicLink.purpose == str(Purpose.INVITE),
        col(MagicLink.used_at).is_(None),
        col(MagicLink.revoked_at).is_(None),
        MagicLink.expires_at > now,
    )


def seats_used(session: Session, now: datetime, excluding_email: str = "") -> int:
    """Active members plus pending invites (an invite being replaced for `excluding_email` not counted)."""
    members = session.exec(select(sa.func.count()).select_from(Member).where(col(Member.active).is_(True))).one()
    pending = {i.email for i in session.exec(pending_invites(now))} - {excluding_email}
    return int(members) + len(pending)
