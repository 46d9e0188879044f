"""`/invoices`: every invoice, filtered by status (overdue included), dates and customer."""

from __future__ import annotations

from typing import Any

from billy_app.state.list_page import ANY, ListPage
from billy_app.state.live import LiveState
from billy_app.state.session import SessionState
from billy_app.state.view import iso
from services import reports, timezones
from services.permissions import Actor
from services.reports import InvoiceFilters, InvoiceListRow, Page

STATUS_CHOICES = [(ANY, "Any status"), *reports.INVOICE_STATUSES.items()]
TEXT_FIELDS = {"from": 10, "to": 10, "customer": reports.MAX_TEXT}


def invoice_row_view(r: InvoiceListRow) -> dict[str, str]:
    return {
        "id": r.id,
        "number": r.number or r.id,
        "customer_id": r.customer.id,
        "customer": r.customer.label if (r.customer.id or r.customer.email) else "—",
        "email": r.customer.email if r.customer.name else "",
        "status": r.status,
        "state": r.status_label,
        "total": r.total.text,
        "remaining": r.remaining.text if r.remaining.amount else "",
        "due": iso(r.due_date) if r.due_date else "",
        "created": iso(r.created),
    }


class InvoicesState(ListPage, LiveState, SessionState):
    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"invoice", "customer"})

    async def _live_refresh(self) -> None:
        await self._read(self._cursors[-1])

    def _text_fields(self) -> dict[str, int]:
        return TEXT_FIELDS

    def _choice_fields(self) -> dict[str, list[tuple[str, str]]]:
        return {"status": STATUS_CHOICES}

    def _page(self, actor: Actor, applied: dict[str, str], sort: str, cursor: str | None, zone: str) -> Page[Any]:
        date_from, date_to = timezones.day_range(applied.get("from", ""), applied.get("to", ""), zone)
        filters = InvoiceFilters(
            status=applied.get("status", ""), date_from=date_from, date_to=date_to, customer=applied.get("customer", "")
        )
        return reports.search_invoices(actor, filters, sort, cursor)

    def _view(self, row: Any) -> dict[str, str]:
        return invoice_row_view(row)
