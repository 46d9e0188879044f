"""Reports (failed payments over a period, overdue invoices) and CSV exports of every list.

Exports need the Pro or Business plan (the service refuses on Starter, 403 `plan_limit_reached`).
A file is streamed a keyset page at a time; a refusal or a bad filter is answered with its status
before the first byte, since the stream's first chunk is read before the answer starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from billy_app.api.v1.calls import CurrentActor
from billy_app.api.v1.charges import ChargeQuery
from billy_app.api.v1.errors import DOWNLOAD_ERRORS, READ_ERRORS
from billy_app.api.v1.invoices import InvoiceQuery
from billy_app.api.v1.models import CURSOR_MAX, PLAIN_TEXT, Page, page
from billy_app.api.v1.subscriptions import Status as SubscriptionStatus
from billy_app.blocking import in_thread
from services import agent_api, exports, failed_payments, reports
from services.errors import ValidationFailed
from services.exports import CustomerFilters, NoFilters, PeriodFilters
from services.failed_payments import FailedPaymentsReport, Period
from services.permissions import Actor
from services.reports import InvoiceListRow, InvoiceTotals, SubscriptionFilters

router = APIRouter(tags=["reports and exports"])
Preset = Literal["last_7_days", "last_30_days", "this_month", "last_month"]
Sort = Literal["newest", "oldest", "amount_desc", "amount_asc"]


def period(
    preset: Annotated[Preset | None, Query(description="A preset period (default: the last 7 days).")] = None,
    first_day: Annotated[date | None, Query(description="Or whole days: the first (in `zone`)…")] = None,
    last_day: Annotated[date | None, Query(description="…and the last, both included (at most 366 days).")] = None,
    zone: Annotated[str, Query(max_length=64, description="An IANA time zone, e.g. Europe/Paris.")] = "UTC",
) -> Period:
    if first_day is None and last_day is None:
        return failed_payments.preset_period(preset or "last_7_days", zone)
    if preset is not None:
        raise ValidationFailed("Choose a preset period or the first and last day, not both.")
    return failed_payments.custom_period(
        first_day.isoformat() if first_day else None, last_day.isoformat() if last_day else None, zone
    )


PeriodQuery = Annotated[Period, Depends(period)]


@dataclass(frozen=True)
class OverdueInvoice:
    invoice: InvoiceListRow
    days_overdue: int | None  # whole days past the due date (0: it passed today)


@dataclass(frozen=True)
class OverdueInvoices:
    """Open invoices past their due date, most recent first, with what is owed per currency."""

    totals: list[InvoiceTotals]
    page: Page[OverdueInvoice]


@router.get(
    "/reports/failed-payments",
    response_model=FailedPaymentsReport,
    responses=READ_ERRORS,
    summary="Failed payments of a period, by reason, with repeat customers",
)
def failed_payments_report(actor: CurrentActor, chosen: PeriodQuery) -> FailedPaymentsReport:
    return failed_payments.failed_payments_report(actor, chosen.start, chosen.end, chosen.zone)


@router.get(
    "/reports/overdue-invoices",
    response_model=OverdueInvoices,
    responses=READ_ERRORS,
    summary="Overdue invoices with days overdue",
)
def overdue_invoices(
    actor: CurrentActor,
    sort: Sort = "newest",
    cursor: Annotated[str | None, Query(max_length=CURSOR_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=reports.MAX_PAGE_SIZE)] = reports.PAGE_SIZE,
) -> OverdueInvoices:
    found = reports.search_invoices(actor, reports.InvoiceFilters(status="overdue"), sort, cursor, limit)
    items = [OverdueInvoice(row, agent_api.overdue_days(row)) for row in found.items]
    totals = reports.dashboard(actor).invoices
    return OverdueInvoices(totals, page(items, found.next_cursor, found.total))


# --- exports ---------------------------------------------------------------------------------------

CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The CSV file (UTF-8; amounts as decimals with a currency column; times ISO 8601 UTC).",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    **DOWNLOAD_ERRORS,
}


class CsvResponse(StreamingResponse):
    media_type = "text/csv"


def _start(actor: Actor, kind: str, filters: object, sort: str) -> tuple[str, Generator[str, None, None]]:
    chunks = exports.stream(actor, kind, filters, sort)
    return next(chunks), chunks


async def _rest(first: str, chunks: Generator[str, None, None]) -> AsyncIterator[str]:
    """Each chunk read in a worker thread (the walk queries the store); the stream is closed
    however the answer ends, so its audit row is written (shielded: a disconnect cancels us)."""
    try:
        yield first
        while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(chunks.close)


async def _csv(actor: Actor, kind: str, filters: object, sort: str = "newest") -> CsvResponse:
    first, chunks = await in_thread(_start, actor, kind, filters, sort)
    headers = {
        "Content-Disposition": f'attachment; filename="{exports.filename(kind)}"',
        "Cache-Control": "no-store",
    }
    return CsvResponse(_rest(first, chunks), media_type="text/csv; charset=utf-8", headers=headers)


def _export(path: str, summary: str) -> Any:
    return router.get(path, response_class=CsvResponse, responses=CSV_RESPONSES, summary=summary)


@_export("/exports/customers.csv", "Export customers")
async def export_customers(
    actor: CurrentActor,
    q: Annotated[str, Query(max_length=200, pattern=PLAIN_TEXT, description="As GET /customers.")] = "",
) -> CsvResponse:
    return await _csv(actor, "customers", CustomerFilters(query=q))


@_export("/exports/charges.csv", "Export charges (the list's filters and sort)")
async def export_charges(actor: CurrentActor, filters: ChargeQuery, sort: Sort = "newest") -> CsvResponse:
    return await _csv(actor, "charges", filters, sort)


@_export("/exports/subscriptions.csv", "Export subscriptions")
async def export_subscriptions(
    actor: CurrentActor,
    status: SubscriptionStatus | None = None,
    customer: Annotated[
        str | None, Query(max_length=200, pattern=PLAIN_TEXT, description="As GET /subscriptions.")
    ] = None,
    sort: Sort = "newest",
) -> CsvResponse:
    return await _csv(actor, "subscriptions", SubscriptionFilters(status=status or "", customer=customer or ""), sort)


@_export("/exports/invoices.csv", "Export invoices (the list's filters and sort)")
async def export_invoices(actor: CurrentActor, filters: InvoiceQuery, sort: Sort = "newest") -> CsvResponse:
    return await _csv(actor, "invoices", filters, sort)


@_export("/exports/failed-payments.csv", "Export failed payments of a period")
async def export_failed_payments(actor: CurrentActor, chosen: PeriodQuery) -> CsvResponse:
    return await _csv(actor, "failed-payments-period", PeriodFilters(date_from=chosen.start, date_to=chosen.end))


@_export("/exports/overdue-invoices.csv", "Export overdue invoices")
async def export_overdue(actor: CurrentActor) -> CsvResponse:
    return await _csv(actor, "overdue-invoices", NoFilters())
