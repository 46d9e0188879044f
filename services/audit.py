"""The audit log: one row per action attempt, written in its own transaction.

Issue 4 adds the append-only triggers and the hash chain; rows written now already
have the final shape (who, what, when, from where, outcome).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from services.db import session_scope
from services.errors import BillyError, PermissionDenied
from services.models import AuditEntry
from services.permissions import Actor

log = logging.getLogger(__name__)


@dataclass
class AuditDraft:
    """What the action fills in as it learns it (the amount of a full refund, the new id)."""

    targets: list[str] = field(default_factory=list)
    amount: int | None = None
    currency: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def record(actor: Actor, action: str, outcome: str, draft: AuditDraft | None = None, error: str | None = None) -> None:
    draft = draft or AuditDraft()
    entry = AuditEntry(
        actor_id=actor.user_id,
        actor_email=actor.email,
        actor_role=actor.role,
        source=str(actor.source),
        client_address=actor.client_address[:64],
        user_agent=actor.user_agent[:400],
        action=action,
        target_ids=[t for t in draft.targets if t],
        amount=draft.amount,
        currency=draft.currency,
        outcome=outcome,
        error=error[:1000] if error else None,
        details=draft.details,
    )
    with session_scope() as session:
        session.add(entry)


@contextmanager
def audited(actor: Actor, action: str, *targets: str) -> Iterator[AuditDraft]:
    """Run an action and record how it ended: ok, denied (a permission refusal) or failed."""
    draft = AuditDraft(targets=list(targets))
    try:
        yield draft
    except PermissionDenied as exc:
        record(actor, action, "denied", draft, exc.message)
        raise
    except BillyError as exc:
        record(actor, action, "failed", draft, exc.message)
        raise
    except Exception as exc:
        record(actor, action, "failed", draft, f"internal error ({type(exc).__name__})")
        raise
    else:
        record(actor, action, "ok", draft)


def recent(limit: int = 50) -> list[AuditEntry]:
    with session_scope() as session:
        return list(session.exec(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))  # type: ignore[union-attr]
