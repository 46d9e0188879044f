"""Dashboard home: sync progress while a sync runs, then MRR, revenue over a chosen period
against the period before, this week's failed payments, open and overdue invoices and the latest
refunds, all from the store.

`refresh()` reloads just the report (not the sync progress); store-change notices call it.
While a sync runs, the progress watcher also reloads the report every few seconds, and once
more when the sync ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
from services.reports import Dashboard, RevenueComparison

RELOAD_WHILE_SYNCING = 3.0  # seconds between report reloads while a sync runs
REPORTS = ("failed-payments", "overdue-invoices")  # the dashboard's sections that export as CSV
# The revenue card's periods as its control names them: "7 days", …, "Month to date".
REVENUE_PERIOD_CHOICES = [(key, label.removeprefix("Last ")) for key, label in reports.REVENUE_PERIODS.items()]
REFUND_STATUS = {"succeeded": "Refunded", "pending": "Pending", "failed": "Failed", "canceled": "Canceled"}


def _joined(texts: list[str], empty: str) -> str:
    return " · ".join(texts) if texts else empty


CHART_DAY_LABELS = 8  # day labels on the revenue chart's axis, at most


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


def _chart_points(series: reports.RevenueComparisonSeries) -> list[dict[str, Any]]:
    """A point per day of the period with the same day of the period before beside it (by
    position: day 1 with day 1). The tooltip reads the `_text` values, formatted by the service."""
    currency, before = series.currency, series.previous.days
    points: list[dict[str, Any]] = []
    for i, d in enumerate(series.current.days):
        point = {"day": f"{d.day.day} {d.day:%b}", "net": _major(d.net, currency), "net_text": d.net_text}
        if i < len(before):  # month to date: the month before may be shorter
            p = before[i]
            point |= {
                "previous": _major(p.net, currency),
                "previous_text": p.net_text,
                "previous_day": f"{p.day.day} {p.day:%b}",
            }
        points.append(point)
    return points


def _day_text(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def revenue_view(comparison: RevenueComparison) -> dict[str, Any]:
    """The service's revenue comparison → the plain values the revenue card shows."""
    period = comparison.period
    return {
        "revenue": [
            {
                "currency": s.currency,
                "code": s.currency.upper(),
                "gross": s.current.gross.text,
                "refunded": s.current.refunded.text,
                "net": s.current.net.text,
                "previous": s.previous.net.text,
                "change": s.change_text,
                "trend": "none" if s.change is None else ("up" if s.change >= 0 else "down"),
            }
            for s in comparison.series
        ],
        "charts": {s.currency: _chart_points(s) for s in comparison.series},
        "period_label": period.label,
        "previous_label": period.previous_label,
        "since": f"{_day_text(period.first)} – {_day_text(period.last)}",
    }


def report_view(board: Dashboard) -> dict[str, Any]:
    """The service's report → the plain values the page shows (revenue: `revenue_view`)."""
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
    # The revenue card's period (a reports.REVENUE_PERIODS key), kept for this tab's session.
    revenue_period: str = reports.DEFAULT_REVENUE_PERIOD
    revenue_period_label: str = reports.REVENUE_PERIODS[reports.DEFAULT_REVENUE_PERIOD]
    revenue_previous_label: str = ""
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
        await self._load_revenue()
        self.failed_groups, self.failed_count = view["failed_groups"], view["failed_count"]
        self.failed_customers, self.repeat_count = view["failed_customers"], view["repeat_count"]
        self.invoices, self.open_text = view["invoices"], view["open_text"]
        self.overdue_text, self.overdue_count = view["overdue_text"], view["overdue_count"]
        self.refunds = view["refunds"]
        self.updated_at = datetime.now(UTC).isoformat()
        self._report_loaded = time.monotonic()

    async def _load_revenue(self) -> None:
        """The revenue card for the chosen period, against the period before."""
        view = revenue_view(await self._call(reports.revenue_comparison, self.revenue_period))
        self.revenue, self._charts = view["revenue"], view["charts"]
        self.revenue_period_label, self.revenue_previous_label = view["period_label"], view["previous_label"]
        self.revenue_since = view["since"]
        if self.chart_currency not in self._charts:
            self.chart_currency = self.revenue[0]["currency"] if self.revenue else ""
        self.chart = self._charts.get(self.chart_currency, [])

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
    @guarded
    async def choose_revenue_period(self, period: str):
        """Show revenue over another period (kept for this tab's session)."""
        if period not in reports.REVENUE_PERIODS:
            return
        self.revenue_period = period
        await self._load_revenue()

    @rx.event
    def choose_chart_currency(self, currency: str):
        if isinstance(currency, str) and currency in self._charts:
            self.chart_currency = currency
            self.chart = self._charts[currency]

    @rx.var
    def chart_day_step(self) -> int:
        """Label every n-th day on the chart's axis (about eight labels, whatever the period): a
        fixed step, so Recharts need not measure every label's width to drop the ones that
        collide, which forced a layout per label while the dashboard was first painted."""
        return max(0, -(-len(self.chart) // CHART_DAY_LABELS) - 1)

    @rx.var
    def revenue_shown(self) -> dict[str, str]:
        """The chart's currency totals."""
        for r in self.revenue:
            if r["currency"] == self.chart_currency:
                return r
        return {"gross": "—", "refunded": "—", "net": "—", "code": "", "previous": "—", "change": "", "trend": "none"}

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
