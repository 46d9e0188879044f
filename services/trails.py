"""What Billy did to an object: the audit rows that name a customer, a charge or a refund.

The customer and charge pages show them to every role as a readable trail (who, what, when,
from where, and how it ended). They are read through `audit_target`, the index the audit log
keeps beside itself (migration 0012), so a trail is a key lookup however long the log grows.
The functions here take a session from a reader that has already authorized its caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from services.models import AuditEntry, AuditTarget, table_of
from services.money import format_money
from services.permissions import Source

TRAIL_LIMIT = 100  # the newest rows a page shows

# What an action did, as the trail says it after the person's email.
_DONE: dict[str, str] = {
    "charges.refund": "refunded",
    "refunds.request": "asked for approval of a refund",
    "refunds.approve": "approved a refund",
    "refunds.decline": "declined a refund request",
    "refunds.withdraw": "withdrew a refund request",
    "refunds.confirmation_email": "emailed the customer a refund confirmation",
    "customers.update": "changed the customer's details",
    "customers.update_contact": "changed the customer's email or address",
    "subscriptions.change": "changed a subscription's price or quantity",
    "subscriptions.pause": "paused payment collection on a subscription",
    "subscriptions.resume": "resumed payment collection on a subscription",
    "subscriptions.cancel": "cancelled a subscription",
    "subscriptions.reactivate": "withdrew a subscription's cancellation",
    "invoices.create": "created an invoice",
    "invoices.send": "sent an invoice",
    "invoices.remind": "emailed the customer a payment reminder",
    "invoices.void": "voided an invoice",
    "invoices.mark_uncollectible": "marked an invoice uncollectible",
    "payments.update_email": "emailed the customer to update their payment details",
}
_TRIED: dict[str, str] = {
    "charges.refund": "tried to refund",
    "refunds.request": "tried to ask for a refund",
    "refunds.approve": "tried to approve a refund",
    "refunds.decline": "tried to decline a refund request",
    "customers.update": "tried to change the customer's details",
    "customers.update_contact": "tried to change the customer's email or address",
    "subscriptions.change": "tried to change a subscription's price or quantity",
    "subscriptions.pause": "tried to pause payment collection on a subscription",
    "subscriptions.resume": "tried to resume payment collection on a subscription",
    "subscriptions.cancel": "tried to cancel a subscription",
    "subscriptions.reactivate": "tried to withdraw a subscription's cancellation",
    "invoices.create": "tried to create an invoice",
    "invoices.send": "tried to send an invoice",
    "invoices.remind": "tried to email the customer a payment reminder",
    "invoices.void": "tried to void an invoice",
    "invoices.mark_uncollectible": "tried to mark an invoice uncollectible",
    "payments.update_email": "tried to email the customer to update their payment details",
    "refunds.withdraw": "tried to withdraw a refund request",
    "refunds.confirmation_email": "tried to email the customer a refund confirmation",
}

_log = table_of(AuditEntry)
_targets = table_of(AuditTarget)


@dataclass(frozen=True)
class TrailEntry:
    audit_id: int
    at: datetime
    actor_email: str
    source: Source
    action: str
    outcome: str  # as the audit log records it: ok, denied or failed
    amount_label: str
    sentence: str  # the row as a person reads it: "alice@acme.test refunded $25.00"
    error: str


def _sentence(action: str, outcome: str, who: str, amount_label: str, error: str) -> str:
    amount = f" {amount_label}" if amount_label else ""
    if outcome == "ok":
        return f"{who} {_DONE.get(action, action)}{amount}"
    verb = _TRIED.get(action, f"tried {action}")
    ending = "was refused" if outcome == "denied" else "failed"
    return f"{who} {verb}{amount}: {ending}" + (f" ({error})" if error else "")


def trail(session: Session, target_ids: Iterable[str], limit: int = TRAIL_LIMIT) -> list[TrailEntry]:
    """The newest audit rows naming any of `target_ids`, newest first, each once."""
    wanted = sorted({t for t in target_ids if t})
    if not wanted:
        return []
    ids = (
        sa.select(_targets.c.audit_id)
        .where(_targets.c.target_id.in_(wanted))
        .distinct()
        .order_by(_targets.c.audit_id.desc())
        .limit(limit)
        .scalar_subquery()
    )
    rows = session.connection().execute(sa.select(_log).where(_log.c.id.in_(ids)).order_by(_log.c.id.desc())).mappings()
    entries = []
    for row in rows:
        currency = row["currency"]
        amount_label = format_money(row["amount"], currency) if row["amount"] is not None and currency else ""
        who = row["actor_email"] or "Billy"
        error = row["error"] or ""
        entries.append(
            TrailEntry(
                audit_id=row["id"],
                at=row["at"],
                actor_email=who,
                source=Source(row["source"]),
                action=row["action"],
                outcome=row["outcome"],
                amount_label=amount_label,
                sentence=_sentence(row["action"], row["outcome"], who, amount_label, error),
                error=error,
            )
        )
    return entries
