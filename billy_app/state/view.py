"""Turning service results into the plain values Reflex sends to the page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.billing import ChargeRow, CustomerRow
from services.money import format_money

STATUS_LABELS = {"succeeded": "Succeeded", "failed": "Failed", "pending": "Pending"}


# Stripe's resource names as people read them ("Payment methods", not "Payment_Methods").
RESOURCE_LABELS = {"payment_methods": "Payment methods", "payment_intents": "Payment intents"}


def resource_label(name: str) -> str:
    return RESOURCE_LABELS.get(name, name.replace("_", " ").capitalize())


def set_changed(state: object, **values: object) -> None:
    """Assign to `state` only the values that differ: Reflex sends every var assigned to the tab,
    where the page renders again, so a live refresh that found nothing new sends nothing (a list
    re-read to the same page, a badge count that did not move)."""
    for name, value in values.items():
        if getattr(state, name) != value:
            setattr(state, name, value)


def iso(ts: int) -> str:
    """Unix time → ISO 8601 UTC; the page formats it in the viewer's own time zone."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def customer_view(row: CustomerRow) -> dict[str, str]:
    return {"id": row.id, "name": row.name or "(no name)", "email": row.email, "created": iso(row.created)}


@dataclass(frozen=True, kw_only=True)
class CustomerChargeRow:
    """One charge in a customer's charges table, as the page shows it."""

    id: str
    customer_id: str
    amount: str
    state: str  # in words, e.g. "Partly refunded ($5.00)"
    status: str  # Stripe's status key
    description: str
    order_number: str
    card: str
    failure: str
    created: str  # ISO 8601 UTC, shown in the viewer's zone
    refundable: bool  # something is left to refund: the row offers "Refund"
    refunds: str  # the refunds made so far, in words


def charge_view(row: ChargeRow) -> CustomerChargeRow:
    if row.status == "succeeded" and row.amount_refunded >= row.amount:
        state = "Refunded"
    elif row.status == "succeeded" and row.amount_refunded:
        state = f"Partly refunded ({format_money(row.amount_refunded, row.currency)})"
    else:
        state = STATUS_LABELS.get(row.status, row.status.title())
    return CustomerChargeRow(
        id=row.id,
        customer_id=row.customer_id or "",
        amount=format_money(row.amount, row.currency),
        state=state,
        status=row.status,
        description=row.description,
        order_number=row.order_number,
        card=row.card,
        failure=row.failure_message or row.failure_code,
        created=iso(row.created),
        refundable=row.refundable > 0,
        refunds=", ".join(
            f"{format_money(refund.amount, refund.currency)} ({refund.reason.replace('_', ' ') or 'no reason'})"
            for refund in row.refunds
        ),
    )
