"""What the REST API needs beyond the pages' (and `services.agent_reads`') service functions:
how many days an invoice of a list is overdue, said as a number for a program."""

from __future__ import annotations

from services import clock
from services.invoice_changes import days_overdue
from services.reports import InvoiceListRow


def overdue_days(row: InvoiceListRow) -> int | None:
    """Whole days an invoice of a list is past due (None when it is not overdue)."""
    return days_overdue(row.due_date, clock.now()) if row.overdue else None
