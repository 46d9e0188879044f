"""What the REST API needs beyond the pages' (and `services.agent_reads`') service functions.

- How many days an invoice of a list is overdue.
- An export streamed for the caller as the API built it: `exports.stream` rebuilds the member
  from the store (right for a download ticket minted a minute earlier), which drops an agent
  token's scope and id. Here the Actor was built from the bearer credential for this very
  request, so the role and plan are already fresh, and the token's scope and audit id are kept.
"""

from __future__ import annotations

from collections.abc import Generator

from services import audit, clock, exports, reports
from services.errors import ValidationFailed
from services.invoice_changes import days_overdue
from services.permissions import Actor
from services.reports import InvoiceListRow


def overdue_days(row: InvoiceListRow) -> int | None:
    """Whole days an invoice of a list is past due (None when it is not overdue)."""
    return days_overdue(row.due_date, clock.now()) if row.overdue else None


def stream_export(
    actor: Actor, kind_name: str, filters: object | None = None, sort: str = "newest"
) -> Generator[str, None, None]:
    """`exports.stream` for an Actor built from a bearer credential for this request: the same
    kinds, columns, checks and audit row (with the agent token's id), the token's scope applied.

    A generator: authorized when the first chunk is asked for; the audit row is written when the
    stream ends (`failed`, "interrupted", when the reader stops early)."""
    kind = exports.kind_of(kind_name)
    with audit.audited(actor, kind.action) as draft:
        kind.authorize(actor)
        draft.details.update(kind=kind.name)
        if filters is None:
            filters = kind.filters_type()
        if not isinstance(filters, kind.filters_type):
            raise ValidationFailed("Those filters are not ones this list understands.")
        if not kind.sorts:
            sort = "newest"
        if sort not in reports.SORTS:
            raise ValidationFailed("Sort by newest, oldest, or amount (highest or lowest first).")
        draft.details.update(filters=exports.describe(filters), sort=sort)
        query = kind.query(filters, sort)
        header = [name for name, _ in kind.columns]
        cells = [cell for _, cell in kind.columns]
        rows = ([cell(r) for cell in cells] for r in reports.walk(query, exports.PAGE_ROWS))
        counter = [0]
        try:
            for chunk in exports.csv_chunks(header, rows, counter):
                draft.details["rows"] = counter[0]
                yield chunk
        except GeneratorExit:
            # `audited` lets GeneratorExit (not an Exception) pass unrecorded: say it here.
            draft.details.update(rows=counter[0], interrupted=True)
            audit.record(actor, kind.action, "failed", draft, f"Interrupted after {counter[0]:,} rows.")
            raise
        draft.details["rows"] = counter[0]
