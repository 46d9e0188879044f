"""`/failed-payments`: the failed-payments report for a chosen period, and the payment-update
emails dialog (services/failed_payments.py decides everything; this only shows it).

The period in force lives server-side (`_start`, `_end`), so what a send covers is what the page
showed, whatever a client sends. One dialog opening is one intent: it gets an idempotency key
(kept server-side) that goes to the service, so a double click or a resent event sends nobody
twice. A send event arriving without an open dialog is still passed to the service with a fresh
key: the service refuses and audits whoever may not send, whatever this page showed them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.list_page import ZONE_SCRIPT, export_download
from billy_app.state.live import LiveState
from billy_app.state.session import SessionState, guarded
from billy_app.state.view import iso
from services import exports, failed_payments, timezones
from services.errors import BillyError
from services.failed_payments import FailedPaymentsReport, Period
from services.payment_update_mail import DEFAULT_BODY, DEFAULT_SUBJECT, PLACEHOLDERS
from services.permissions import control

DEFAULT_PRESET = "last_7_days"
EXPORT_KIND = "failed-payments-period"


@dataclass(frozen=True, kw_only=True)
class GroupView:
    reason: str
    label: str
    count: str
    totals: str  # "$120.00 · €30.00", or "" when none failed
    more: str  # "and 12 more customers", or ""


@dataclass(frozen=True, kw_only=True)
class CustomerView:
    """One customer in one reason's group."""

    key: str  # reason:customer id, unique on the page
    reason: str
    id: str
    name: str
    email: str  # "" when none is on file
    count: str  # this reason's failures in the period
    period_failures: str  # every reason
    totals: str
    failures: str  # "Visa •••• 0069 · $45.00, …": the failures listed
    last_failed: str  # ISO UTC of the newest
    repeat: bool


@dataclass(frozen=True, kw_only=True)
class RecipientView:
    id: str
    name: str
    email: str
    card: str
    amount: str
    link: str
    problem: str  # "" when the email can be sent


@dataclass(frozen=True, kw_only=True)
class ResultView:
    id: str
    name: str
    sent: bool
    message: str


def _joined(texts: list[str]) -> str:
    return " · ".join(texts)


def report_view(report: FailedPaymentsReport) -> tuple[list[GroupView], list[CustomerView]]:
    """The service's report → the plain values the page shows."""
    groups, customers = [], []
    for g in report.groups:
        groups.append(
            GroupView(
                reason=g.reason,
                label=g.label,
                count=str(g.count),
                totals=_joined([m.text for m in g.totals]),
                more=f"and {g.more_customers:,} more customers" if g.more_customers else "",
            )
        )
        for c in g.customers:
            listed = [f"{f.card} · {f.amount.text}" if f.card else f.amount.text for f in c.failures]
            more = f" and {c.count - len(listed)} more" if c.count > len(listed) else ""
            customers.append(
                CustomerView(
                    key=f"{g.reason}:{c.customer.id}",
                    reason=g.reason,
                    id=c.customer.id,
                    name=c.customer.name or c.customer.email or c.customer.id,
                    email=c.customer.email,
                    count=str(c.count),
                    period_failures=str(c.period_failures),
                    totals=_joined([m.text for m in c.totals]),
                    failures=", ".join(listed) + more,
                    last_failed=iso(c.failures[0].created) if c.failures else "",
                    repeat=c.repeat,
                )
            )
    return groups, customers


class FailedPaymentsState(LiveState, SessionState):
    problem_var: ClassVar[str] = "error"

    error: str = ""
    zone: str = "UTC"
    preset: str = DEFAULT_PRESET  # a PRESETS key, or "custom"
    first_day: str = ""  # the custom period as picked (YYYY-MM-DD)
    last_day: str = ""
    period_label: str = ""
    groups: list[GroupView] = []
    customers: list[CustomerView] = []
    total_count: str = "0"
    total_text: str = ""
    customer_count: str = "0"
    repeat_count: str = "0"
    no_email_count: str = "0"
    selected: list[str] = []  # chosen customer ids
    # "Email selected customers…": hidden for roles that can never send; disabled with the reason.
    email_shown: bool = False
    email_blocked: str = ""
    export_shown: bool = False
    export_blocked: str = ""
    exporting: bool = False
    # The dialog.
    dialog_open: bool = False
    subject: str = DEFAULT_SUBJECT
    body: str = DEFAULT_BODY
    recipients: list[RecipientView] = []
    results: list[ResultView] = []
    dialog_problem: str = ""
    sending: bool = False
    _start: str = ""  # the period in force, ISO UTC
    _end: str = ""
    _idempotency_key: str = ""

    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"charge", "customer", "invoice"})

    @rx.var
    def reason_chart(self) -> list[dict[str, Any]]:
        """The bar chart's data: failures per reason, in the report's order."""
        return [{"reason": g.label, "failures": int(g.count)} for g in self.groups]

    @rx.var
    def reason_chart_label(self) -> str:
        """What the bar chart shows, in words, for screen readers."""
        counts = ", ".join(f"{g.label.lower()} {g.count}" for g in self.groups)
        return f"Failed payments by reason, {self.period_label}: {counts}."

    async def _live_refresh(self) -> None:
        await self._read()

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """In the dialog while it is open, else above the report."""
        if self.dialog_open:
            self.dialog_problem = problem.message
            return None
        return super()._show_problem(problem)

    def _period(self) -> tuple[datetime, datetime]:
        if not self._start or not self._end:
            period = failed_payments.preset_period(DEFAULT_PRESET, self.zone)
            self._use(period)
        return datetime.fromisoformat(self._start), datetime.fromisoformat(self._end)

    def _use(self, period: Period) -> None:
        self._start, self._end = period.start.isoformat(), period.end.isoformat()
        self.period_label = period.label

    async def _read(self) -> None:
        start, end = self._period()
        report = await self._call(failed_payments.failed_payments_report, start, end, self.zone)
        self.groups, self.customers = report_view(report)
        self.total_count, self.total_text = str(report.count), _joined([m.text for m in report.totals])
        self.customer_count, self.repeat_count = str(report.customers), str(report.repeat_customers)
        self.no_email_count = str(report.customers_without_email)
        shown = {c.id for c in self.customers}
        self.selected = [i for i in self.selected if i in shown]
        self.error = ""

    @rx.event
    @guarded
    async def load(self):
        actor = await self.actor()
        email = control(actor, "payments.update_email")
        self.email_shown, self.email_blocked = email.shown, email.blocked_by
        button = await self._call(exports.button_for)
        self.export_shown, self.export_blocked = button.shown, button.blocked
        self.preset, self.first_day, self.last_day, self.selected = DEFAULT_PRESET, "", "", []
        self.dialog_open, self.results = False, []
        self._use(failed_payments.preset_period(DEFAULT_PRESET, self.zone))
        await self._read()
        return rx.call_script(ZONE_SCRIPT, callback=FailedPaymentsState.set_zone)

    @rx.event
    @guarded
    async def set_zone(self, zone: str):
        """The browser's zone: presets and picked days are read in it."""
        self.zone = timezones.viewer_zone(zone)
        if self.preset != failed_payments.CUSTOM:
            self._use(failed_payments.preset_period(self.preset, self.zone))
        await self._read()

    @rx.event
    @guarded
    async def choose_preset(self, preset: str):
        if preset == failed_payments.CUSTOM:
            self.preset = preset  # the day pickers show; the report changes when they are applied
            return
        self._use(failed_payments.preset_period(preset[:40], self.zone))
        self.preset = preset
        await self._read()

    @rx.event
    @guarded
    async def apply_days(self, form_data: dict[str, Any]):
        """The custom period's first and last day (whole days in the viewer's zone)."""
        first, last = str(form_data.get("first_day", ""))[:40], str(form_data.get("last_day", ""))[:40]
        self.first_day, self.last_day = first, last
        self._use(failed_payments.custom_period(first, last, self.zone))
        self.preset = failed_payments.CUSTOM
        await self._read()

    @rx.event
    @guarded
    async def refresh(self):
        await self._read()

    @rx.event
    def toggle(self, customer_id: str, checked: bool):
        """Choose or un-choose a customer (the service checks every id again when sending)."""
        chosen = [i for i in self.selected if i != customer_id]
        if checked and len(chosen) < failed_payments.MAX_RECIPIENTS:
            chosen.append(customer_id[:255])
        self.selected = chosen

    @rx.event
    def clear_selection(self):
        self.selected = []

    @rx.event
    @guarded
    async def open_email(self):
        """Billy's pre-filled email for each chosen customer, in an editable dialog."""
        start, end = self._period()
        self.dialog_problem, self.results = "", []
        drafts = await self._call(
            failed_payments.draft_payment_update_emails, list(self.selected), start, end, self.zone
        )
        self.recipients = [
            RecipientView(
                id=d.customer_id,
                name=d.name,
                email=d.email,
                card=d.card,
                amount=d.amount,
                link=d.link,
                problem=d.problem,
            )
            for d in drafts
        ]
        self.subject, self.body = DEFAULT_SUBJECT, DEFAULT_BODY
        self._idempotency_key = secrets.token_urlsafe(24)
        self.sending, self.dialog_open = False, True

    @rx.event
    def set_dialog_open(self, value: bool):
        if not value:
            self._end_intent()

    @rx.event
    def close_dialog(self):
        self._end_intent()

    def _end_intent(self) -> None:
        """Closing ends the intent: a reopened dialog gets a new idempotency key."""
        self.dialog_open, self._idempotency_key, self.dialog_problem = False, "", ""

    @rx.event
    @guarded
    async def send_emails(self, form_data: dict[str, Any]):
        """Send the edited subject and body to the chosen customers; show each one's outcome. The
        form's values are read by name: a browser's submit also carries its controls by id, some
        of them not text (the event gate still bounds every value's size)."""
        if self.sending:
            return
        subject = str(form_data.get("subject", ""))[:2000]  # the service judges them
        body = str(form_data.get("body", ""))[:20_000]
        self.subject, self.body = subject, body
        key = self._idempotency_key or secrets.token_urlsafe(24)
        self._idempotency_key = key
        start, end = self._period()
        self.sending, self.dialog_problem = True, ""
        yield
        try:
            results = await self._call(
                failed_payments.send_payment_update_emails,
                list(self.selected),
                subject,
                body,
                start,
                end,
                self.zone,
                key,
            )
        finally:
            self.sending = False
        names = {r.id: r.name for r in self.recipients}
        self.results = [
            ResultView(id=r.customer_id, name=names.get(r.customer_id, r.customer_id), sent=r.sent, message=r.message)
            for r in results
        ]
        sent = sum(1 for r in results if r.sent)
        yield rx.toast.success(f"Sent {sent} of {len(results)} payment-update emails.", id="payment-emails-sent")

    @rx.event
    @guarded
    async def export(self):
        """Export CSV of the period's failed charges (Pro and Business)."""
        if self.exporting:
            return
        start, end = self._period()
        self.exporting = True
        yield
        try:
            answer = await export_download(self, EXPORT_KIND, lambda: exports.PeriodFilters(start, end))
        finally:
            self.exporting = False
        yield answer


PLACEHOLDER_HELP = ", ".join(f"{{{name}}} ({words})" for name, words in PLACEHOLDERS.items())
PERIOD_CHOICES = [*failed_payments.PRESETS.items(), (failed_payments.CUSTOM, "Pick days")]
