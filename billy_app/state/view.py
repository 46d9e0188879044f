"""Turning service results into the plain values Reflex sends to the page."""

from __future__ import annotations

from datetime import UTC, datetime

from services.billing import ChargeRow, CustomerRow
from services.money import format_money

STATUS_LABELS = {"succeeded": "Succeeded", "failed": "Failed", "pending": "Pending"}


def iso(ts: int) -> str:
    """Unix time → ISO 8601 UTC; the page formats it in the viewer's own time zone."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def customer_view(row: CustomerRow) -> dict[str, str]:
    return {"id": row.id, "name": row.name or "(no name)", "email": row.email, "created": iso(row.created)}


def charge_view(row: ChargeRow) -> dict[str, str]:
    if row.status == "succeeded" and row.amount_refunded >= row.amount:
        state = "Refunded"
    elif row.status == "succeeded" and row.amount_refunded:
        state = f"Partly refunded ({format_money(row.amount_refunded, row.currency)})"
    else:
        state = STATUS_LABELS.get(row.status, row.status.title())
    return {
        "id": row.id,
        "customer_id": row.customer_id or "",
        "amount": format_money(row.amount, row.currency),
        "state": state,
        "status": row.status,
        "description": row.description,
        "order_number": row.order_number,
        "card": row.card,
        "failure": row.failure_message or row.failure_code,
        "created": iso(row.created),
        "refundable": "yes" if row.refundable > 0 else "",
        "refunds": ", ".join(
            f"{format_money(r.amount, r.currency)} ({r.reason.replace('_', ' ') or 'no reason'})" for r in row.refunds
        ),
    }
