"""Preview → confirm for writes through a programmatic door (DESIGN, Programmatic doors: MCP).

`issue` gives a preview its confirmation token, bound to exactly that preview's action and
parameters (their digest), the member and the agent token, valid for `TTL` and single use.
`redeem` spends it: one conditional UPDATE, so two confirms of one preview cannot both win. Any
attempt that names a known confirmation spends it, right or wrong (an edited amount does not get
a second try), and every refusal is audited as `agents.confirm` with the reason.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from services import audit
from services.db import session_scope
from services.errors import PermissionDenied
from services.models import AgentConfirmation, table_of, utcnow
from services.permissions import Actor
from services.signing import digest

TTL = timedelta(minutes=5)
PREFIX = "billy_cf_"
CONFIRM_ACTION = "agents.confirm"
_table = table_of(AgentConfirmation)


class ConfirmationRefused(PermissionDenied):
    code = "confirmation_refused"


def params_digest(action: str, params: Mapping[str, Any]) -> str:
    """The digest a confirmation is bound to: the action and every parameter, canonically."""
    body = {"action": action, "params": dict(params)}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def issue(actor: Actor, action: str, params: Mapping[str, Any]) -> tuple[str, datetime]:
    """A confirmation token for this preview; returns it with its expiry."""
    if actor.user_id is None:
        raise PermissionDenied("Only a member can confirm a change.")
    token = PREFIX + secrets.token_urlsafe(24)
    now = utcnow()
    with session_scope() as session:
        session.add(
            AgentConfirmation(
                token_hash=digest(token),
                member_id=actor.user_id,
                agent_token_id=actor.token_id,
                action=action,
                params_digest=params_digest(action, params),
                created_at=now,
                expires_at=now + TTL,
            )
        )
    return token, now + TTL


def redeem(actor: Actor, action: str, params: Mapping[str, Any], token: object) -> None:
    """Spend the confirmation for exactly this action and these parameters, or refuse (audited)."""
    text = token if isinstance(token, str) else ""
    hashed = digest(text) if text.startswith(PREFIX) and len(text) <= 80 else ""
    now = utcnow()
    with session_scope() as session:
        row = session.get(AgentConfirmation, hashed) if hashed else None
        reason = _refusal(row, actor, action, params, now)
        if row is not None:
            spent = session.execute(
                sa.update(_table)
                .where(col(AgentConfirmation.token_hash) == hashed, col(AgentConfirmation.used_at).is_(None))
                .values(used_at=now)
            )
            if not reason and getattr(spent, "rowcount", 0) != 1:
                reason = "This confirmation was already used: preview the change again."
    if reason:
        draft = audit.AuditDraft(details={"for": action[:60]})
        audit.record(actor, CONFIRM_ACTION, "denied", draft, reason)
        raise ConfirmationRefused(reason)


def _refusal(row: AgentConfirmation | None, actor: Actor, action: str, params: Mapping[str, Any], now: datetime) -> str:
    if row is None:
        return "This confirmation is not known: preview the change first, then confirm with the token it gives."
    if row.used_at is not None:
        return "This confirmation was already used: preview the change again."
    if row.member_id != actor.user_id or row.agent_token_id != actor.token_id:
        return "This confirmation belongs to another member or agent: preview the change yourself."
    if row.expires_at <= now:
        return "This confirmation has expired (they last 5 minutes): preview the change again."
    if row.action != action or row.params_digest != params_digest(action, params):
        return (
            "This confirmation was given for a different change (another amount, target or action): "
            "preview exactly the change you want, then confirm that."
        )
    return ""
