"""Dashboard home: sync progress while a sync runs, then MRR, 30 days of revenue, this week's
failed payments, open and overdue invoices and the latest refunds, all from the store.

`refresh()` reloads just the report (not the sync progress); store-change notices call it.
While a sync runs, the progress watcher also reloads the report every few seconds, and once
more when the sync ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import reflex as rx

from billy_app.state.list_page import export_download
from billy_app.state.live import LiveState
from billy_app.state.session import guarded, off_loop
from billy_app.state.sync_progress import SyncProgressState
from billy_app.state.view import iso
from services import exports, organization, reports
from services.errors import BillyError, PermissionDenied
from services.money import exponent
from services.reports import Dashboard

RELOAD_WHILE_SYNCING = 3.0  # seconds between report reloads while a sync runs
REPORTS = ("failed-payments", "overdue-invoices")  # the dashboard's sections that export as CSV
REFUND_STATUS = {"succeeded": "Refunded", "pending": "Pending", "failed": "Failed", "canceled": "Canceled"}


def _joined(texts: list[str], empty: str) -> str:
    return " · ".join(texts) if texts else empty


def _major(amount: int, currency: str) -> float:
    """For the chart's axis only; every number people read is formatted by format_money."""
    return float(Decimal(amount).scaleb(-exponent(currency)))


@dataclass(frozen=True, kw_only=True)
class FailedCustomerRow:
    """A customer whose payments failed this week, as the failed-payments card lists them."""

    id: str
    customer: str
    email: str
    failures: str  # failed payments this week
    repeat: bool  # two or more failed payments this week: shown with a "Repeat" badge
    reasons: str  # each failure reason, with its count when more than one


def _failed_customers(board: Dashboard) -> list[FailedCustomerRow]:
    """Each customer once, with every reason their payments failed; most failures first."""
    reasons: dict[str, list[str]] = {}
    first_seen: dict[str, reports.FailedCustomer] = {}
    for group in board.failed:
        for failed in group.customers:
            first_seen.setdefault(failed.customer.id, failed)
            reasons.setdefault(failed.customer.id, []).append(
                group.label if failed.failures == 1 else f"{group.label} × {failed.failures}"
            )
    rows = [
        FailedCustomerRow(
            id=customer_id,
            customer=failed.customer.label,
            email=failed.customer.email if failed.customer.name else "",
            failures=str(failed.week_failures),
            repeat=failed.repeat,
            reasons=", ".join(reasons[customer_id]),
        )
        for customer_id, failed in first_seen.items()
        if customer_id
    ]
    return sorted(rows, key=lambda row: (-int(row.failures), row.customer.lower()))


def report_view(board: Dashboard) -> dict[str, Any]:
    """The service's report → the plain values the page shows."""
    charts = {
        s.currency: [
            {"day": d.day.strftime("%d %b"), "net": _major(d.net, s.currency), "label": d.net_text} for d in s.days
        ]
        for s in board.revenue
    }
    return {
        "mrr": [
            {
                "currency": m.currency.upper(),
                "amount": m.text,
                "subscriptions": str(m.subscriptions),
                "past_due": f"{m.past_due} past due ({m.past_due_text})" if m.past_due else "",
            }
            for m in board.mrr
        ],
        "mrr_text": _joined([m.text for m in board.mrr], "—"),
        "revenue": [
            {
                "currency": s.currency,
                "code": s.currency.upper(),
                "gross": s.gross.text,
                "refunded": s.refunded.text,
                "net": s.net.text,
            }
            for s in board.revenue
        ],
        "charts": charts,
        "revenue_since": board.revenue_since.strftime("%d %B %Y"),
        "failed_groups": [
            {
                "reason": g.reason,
                "label": g.label,
                "count": str(g.count),
                "totals": _joined([m.text for m in g.totals], ""),
            }
            for g in board.failed
        ],
        "failed_count": str(board.failed_count),
        "failed_customers": _failed_customers(board),
        "repeat_count": str(len(board.repeat_customers)),
        "invoices": [
            {
                "currency": t.currency.upper(),
                "open_count": str(t.open_count),
                "open": t.open.text,
                "overdue_count": str(t.overdue_count),
                "overdue": t.overdue.text,
                "not_due_count": str(t.not_due_count),
                "not_due": t.not_due.text,
            }
            for t in board.invoices
        ],
        "open_text": _joined([t.open.text for t in board.invoices], "—"),
        "overdue_text": _joined([t.overdue.text for t in board.invoices if t.overdue_count], "—"),
        "overdue_count": str(sum(t.overdue_count for t in board.invoices)),
        "refunds": [
            {
                "id": r.id,
                "charge_id": r.charge_id,
                "customer_id": r.customer.id,
                "customer": r.customer.label if r.customer.id else "—",
                "amount": r.amount.text,
                "status": REFUND_STATUS.get(r.status, r.status.capitalize()),
                "reason": r.reason.replace("_", " "),
                "created": iso(r.created),
            }
            for r in board.recent_refunds
        ],
    }


class DashboardState(LiveState, SyncProgressState):
    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"charge", "refund", "subscription", "invoice", "customer", "sync"})

    async def _live_refresh(self) -> None:
        await SyncProgressState._refresh(self)
        await self._load_report()

    report_error: str = ""
    mrr: list[dict[str, str]] = []
    mrr_text: str = "—"
    revenue: list[dict[str, str]] = []
    revenue_since: str = ""
    chart_currency: str = ""
    chart: list[dict[str, Any]] = []
    failed_groups: list[dict[str, str]] = []
    failed_count: str = "0"
    failed_customers: list[FailedCustomerRow] = []
    repeat_count: str = "0"
    invoices: list[dict[str, str]] = []
    open_text: str = "—"
    overdue_text: str = "—"
    overdue_count: str = "0"
    refunds: list[dict[str, str]] = []
    updated_at: str = ""
    export_shown: bool = False  # the Export buttons (see `components.list_page.export_button`)
    export_blocked: str = ""
    exporting: bool = False
    exporting_report: str = ""  # which of REPORTS is being prepared
    _charts: dict[str, list[dict[str, Any]]] = {}
    _report_loaded: float = 0.0

    async def _load_report(self) -> None:
        """Read the report from the store; a refusal empties it and says why."""
        try:
            board = await self._call(reports.dashboard)
        except PermissionDenied as exc:
            self.report_error, self.mrr, self.revenue, self.chart, self.refunds = exc.message, [], [], [], []
            self.failed_groups, self.failed_customers, self.invoices = [], [], []
            return
        view = report_view(board)
        self.report_error = ""
        self.mrr, self.mrr_text = view["mrr"], view["mrr_text"]
        self.revenue, self.revenue_since, self._charts = view["revenue"], view["revenue_since"], view["charts"]
        if self.chart_currency not in self._charts:
            self.chart_currency = board.revenue[0].currency if board.revenue else ""
        self.chart = self._charts.get(self.chart_currency, [])
        self.failed_groups, self.failed_count = view["failed_groups"], view["failed_count"]
        self.failed_customers, self.repeat_count = view["failed_customers"], view["repeat_count"]
        self.invoices, self.open_text = view["invoices"], view["open_text"]
        self.overdue_text, self.overdue_count = view["overdue_text"], view["overdue_count"]
        self.refunds = view["refunds"]
        self.updated_at = datetime.now(UTC).isoformat()
        self._report_loaded = time.monotonic()

    async def _refresh(self) -> None:
        """The sync watcher's tick: progress always, the report every few seconds and at the end."""
        await super()._refresh()
        if not self.running or time.monotonic() - self._report_loaded >= RELOAD_WHILE_SYNCING:
            await self._load_report()

    @rx.event
    @guarded
    async def refresh(self):
        """Reload the report only (for store-change notices)."""
        try:
            await self._load_report()
        except BillyError as exc:
            self.report_error = exc.message

    @rx.event
    def choose_chart_currency(self, currency: str):
        if isinstance(currency, str) and currency in self._charts:
            self.chart_currency = currency
            self.chart = self._charts[currency]

    @rx.var
    def revenue_shown(self) -> dict[str, str]:
        """The chart's currency totals."""
        for r in self.revenue:
            if r["currency"] == self.chart_currency:
                return r
        return {"gross": "—", "refunded": "—", "net": "—", "code": ""}

    @rx.event
    @guarded
    async def load(self):
        await self.actor()
        if not await off_loop(organization.onboarding_done):
            return rx.redirect("/onboarding", replace=True)
        try:
            await SyncProgressState._refresh(self)
            await self._load_report()
        except BillyError as exc:
            self.error = exc.message
        button = await self._call(exports.button_for)
        self.export_shown, self.export_blocked = button.shown, button.blocked
        return DashboardState.watch

    @rx.event
    @guarded
    async def export_report(self, report: str):
        """Export CSV of one section: failed payments of the last 7 days, or overdue invoices."""
        if self.exporting or report not in REPORTS:
            return
        self.exporting, self.exporting_report = True, report
        yield
        try:
            answer = await export_download(self, report, exports.NoFilters)
        finally:
            self.exporting, self.exporting_report = False, ""
        yield answer
