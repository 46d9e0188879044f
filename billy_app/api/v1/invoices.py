"""Invoices: list, one, and the Billing Manager's work (create, send, remind, void, write off)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from billy_app.api.v1.calls import CurrentActor, WriteRequest
from billy_app.api.v1.errors import READ_ERRORS, WRITE_ERRORS
from billy_app.api.v1.models import CURSOR_MAX, ID_PATTERNS, PLAIN_TEXT, InvoiceCreate, Page, Reminders, page
from services import agent_reads, invoice_changes, reports
from services.agent_reads import InvoiceDetail
from services.invoice_changes import InvoiceChange, InvoiceCreated, ReminderResult
from services.reports import InvoiceFilters, InvoiceListRow

router = APIRouter(prefix="/invoices", tags=["invoices"])
InvoicePath = Annotated[str, Path(pattern=ID_PATTERNS["invoice"], description="A Stripe invoice id (in_…).")]
Status = Literal["draft", "open", "overdue", "paid", "uncollectible", "void"]


@dataclass(frozen=True)
class RemindersSent:
    """One result per invoice (sent, or why not): one failure never hides the others."""

    sent: int
    results: list[ReminderResult]


def invoice_filters(
    status: Annotated[Status | None, Query(description="`overdue`: open and past its due date.")] = None,
    date_from: Annotated[AwareDatetime | None, Query(description="Created at or after (with a time zone).")] = None,
    date_to: Annotated[AwareDatetime | None, Query(description="Created before (with a time zone).")] = None,
    customer: Annotated[
        str | None, Query(max_length=200, pattern=PLAIN_TEXT, description="cus_… or the start of an email or name.")
    ] = None,
) -> InvoiceFilters:
    return InvoiceFilters(status=status or "", date_from=date_from, date_to=date_to, customer=customer or "")


InvoiceQuery = Annotated[InvoiceFilters, Depends(invoice_filters)]


@router.get("", response_model=Page[InvoiceListRow], responses=READ_ERRORS, summary="List invoices")
def list_invoices(
    actor: CurrentActor,
    filters: InvoiceQuery,
    sort: Literal["newest", "oldest", "amount_desc", "amount_asc"] = "newest",
    cursor: Annotated[str | None, Query(max_length=CURSOR_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=reports.MAX_PAGE_SIZE)] = reports.PAGE_SIZE,
) -> Page[InvoiceListRow]:
    found = reports.search_invoices(actor, filters, sort, cursor, limit)
    return page(found.items, found.next_cursor, found.total or reports.count_invoices(actor, filters))


@router.get("/{invoice_id}", response_model=InvoiceDetail, responses=READ_ERRORS, summary="Get an invoice")
def get_invoice(actor: CurrentActor, invoice_id: InvoicePath) -> InvoiceDetail:
    return agent_reads.invoice_detail(actor, invoice_id)


@router.post(
    "",
    status_code=201,
    response_model=InvoiceCreated,
    responses=WRITE_ERRORS,
    summary="Create a draft invoice",
    description=(
        "Each line is a one-time price or a custom amount. Emailed for payment once sent (POST /invoices/{id}/send)."
    ),
)
def create_invoice(write: WriteRequest, body: InvoiceCreate) -> JSONResponse:
    lines = [line.model_dump() for line in body.lines]
    return write.run(
        body,
        lambda key: invoice_changes.create_invoice(write.actor, body.customer_id, lines, body.due_date, key, body.memo),
        status_code=201,
    )


@router.post(
    "/reminders", response_model=RemindersSent, responses=WRITE_ERRORS, summary="Email payment reminders (bulk)"
)
def send_reminders(write: WriteRequest, body: Reminders) -> JSONResponse:
    return write.run(body, lambda key: _reminded(write, list(body.invoice_ids), key))


@router.post("/{invoice_id}/remind", response_model=RemindersSent, responses=WRITE_ERRORS, summary="Remind one")
def remind(write: WriteRequest, invoice_id: InvoicePath) -> JSONResponse:
    return write.run(None, lambda key: _reminded(write, [invoice_id], key))


def _reminded(write: WriteRequest, invoice_ids: list[str], key: str) -> RemindersSent:
    results = invoice_changes.send_reminders(write.actor, invoice_ids, key)
    return RemindersSent(sum(1 for r in results if r.sent), results)


@router.post("/{invoice_id}/send", response_model=InvoiceChange, responses=WRITE_ERRORS, summary="Finalize and send")
def send(write: WriteRequest, invoice_id: InvoicePath) -> JSONResponse:
    return write.run(None, lambda key: invoice_changes.send_invoice(write.actor, invoice_id, key))


@router.post("/{invoice_id}/void", response_model=InvoiceChange, responses=WRITE_ERRORS, summary="Void")
def void(write: WriteRequest, invoice_id: InvoicePath) -> JSONResponse:
    return write.run(None, lambda key: invoice_changes.void_invoice(write.actor, invoice_id, key))


@router.post(
    "/{invoice_id}/mark-uncollectible",
    response_model=InvoiceChange,
    responses=WRITE_ERRORS,
    summary="Write off as uncollectible",
)
def mark_uncollectible(write: WriteRequest, invoice_id: InvoicePath) -> JSONResponse:
    return write.run(None, lambda key: invoice_changes.mark_uncollectible(write.actor, invoice_id, key))
