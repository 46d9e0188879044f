"""`/invoices`: every invoice, filtered by status (overdue included), dates and customer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from billy_app.state.list_page import ANY, ListPage
from billy_app.state.live import LiveState
from billy_app.state.session import SessionState
from billy_app.state.view import iso
from services import clock, reports, timezones
from services.invoice_changes import days_overdue
from services.invoice_mail import lateness
from services.permissions import Actor
from services.reports import InvoiceFilters, InvoiceListRow, ListTotal, Page

STATUS_CHOICES = [(ANY, "Any status"), *reports.INVOICE_STATUSES.items()]
TEXT_FIELDS = {"from": 10, "to": 10, "customer": reports.MAX_TEXT}


@dataclass(frozen=True, kw_only=True)
class InvoiceTableRow:
    """One row of the invoices table, as the page shows it."""

    id: str
    number: str
    customer_id: str  # "" when the invoice has no customer (no link then)
    customer: str
    email: str
    status: str  # the status key (colours the badge), e.g. "overdue"
    state: str  # the status in words
    total: str
    remaining: str  # "" when nothing is left to pay
    due: str  # ISO 8601 UTC, or "" when the invoice has no due date
    created: str  # ISO 8601 UTC
    overdue: str = ""  # "5 days overdue", "due today", or "" when not overdue


def invoice_row_view(invoice: InvoiceListRow) -> InvoiceTableRow:
    customer = invoice.customer
    return InvoiceTableRow(
        id=invoice.id,
        number=invoice.number or invoice.id,
        customer_id=customer.id,
        customer=customer.label if (customer.id or customer.email) else "—",
        email=customer.email if customer.name else "",
        status=invoice.status,
        state=invoice.status_label,
        total=invoice.total.text,
        remaining=invoice.remaining.text if invoice.remaining.amount else "",
        due=iso(invoice.due_date) if invoice.due_date else "",
        created=iso(invoice.created),
        overdue=lateness(days_overdue(invoice.due_date, clock.now())) if invoice.overdue else "",
    )


class InvoicesState(ListPage, LiveState, SessionState):
    rows: list[InvoiceTableRow] = []

    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"invoice", "customer"})

    def _text_fields(self) -> dict[str, int]:
        return TEXT_FIELDS

    def _choice_fields(self) -> dict[str, list[tuple[str, str]]]:
        return {"status": STATUS_CHOICES}

    export_kind: ClassVar[str] = "invoices"

    def _filters(self, applied: dict[str, str], zone: str) -> InvoiceFilters:
        date_from, date_to = timezones.day_range(applied.get("from", ""), applied.get("to", ""), zone)
        return InvoiceFilters(
            status=applied.get("status", ""), date_from=date_from, date_to=date_to, customer=applied.get("customer", "")
        )

    def _page(
        self, actor: Actor, applied: dict[str, str], sort: str, cursor: str | None, zone: str, limit: int
    ) -> Page[Any]:
        return reports.search_invoices(actor, self._filters(applied, zone), sort, cursor, limit)

    def _count_for(self, actor: Actor, applied: dict[str, str], zone: str) -> ListTotal | None:
        return reports.count_invoices(actor, self._filters(applied, zone))

    @staticmethod
    def _view(row: Any) -> InvoiceTableRow:
        return invoice_row_view(row)
