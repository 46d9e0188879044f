"""Invoice work from the dashboard (issue 12): per-invoice Send / Remind / Void / Mark
uncollectible behind a confirmation that says what happens, reminders to many overdue invoices
at once with each one's result, and the customer page's "New invoice" dialog.

Every handler is a public endpoint: arguments are untrusted and go to one service function,
which authorizes and checks them (`services.invoice_changes`). The controls' visibility comes
from `stripe_writes.write_control`: hidden for a role that can never use them, disabled with
the reason when the plan or the Stripe key blocks them. One dialog opening is one intent, with
its idempotency key kept server-side and reused if the member confirms again after a failure.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.customer import STILL_OPENING, CustomerState, customer_in_address
from billy_app.state.invoices import InvoicesState
from billy_app.state.session import SessionState, guarded
from services import clock, invoice_changes, stripe_writes, timezones
from services.errors import BillyError, ValidationFailed
from services.invoice_mail import format_day, lateness
from services.money import format_money, parse_money
from services.permissions import control
from services.stripe_writes import INVOICE_WRITE

# What each per-invoice control does, in the confirmation's words (title, button).
ACTIONS: dict[str, tuple[str, str]] = {
    "send": ("Send this invoice?", "Send invoice"),
    "remind": ("Remind the customer?", "Send reminder"),
    "void": ("Void this invoice?", "Void invoice"),
    "mark_uncollectible": ("Mark this invoice uncollectible?", "Mark uncollectible"),
}
SERVICE_ACTIONS = {
    "send": "invoices.send",
    "remind": "invoices.remind",
    "void": "invoices.void",
    "mark_uncollectible": "invoices.mark_uncollectible",
}


@dataclass(frozen=True, kw_only=True)
class ReminderRow:
    """One invoice's result in a reminder run, as the dialog lists it."""

    invoice: str  # number, or id
    outcome: str  # the outcome key (colours the badge)
    message: str


def confirmation_text(action: str, facts: invoice_changes.InvoiceFacts) -> str:
    """What happens if the member confirms, in plain words."""
    number, amount = facts.number, facts.total_label
    if action == "send":
        if facts.status == "draft":
            return (
                f"Stripe finalizes invoice {number}: it gets its number, can no longer be edited, and becomes "
                f"payable. Then Stripe emails it to the customer, asking for {amount}."
            )
        return f"Stripe emails invoice {number} to the customer again, asking for {amount}."
    if action == "remind":
        late = lateness(facts.days_overdue)
        due = f", {late}" if late else (f", due on {_day(facts.due)}" if facts.due else "")
        return (
            f"Billy emails the customer a reminder of invoice {number} ({amount} still due{due}) with the link "
            "to pay it online."
        )
    if action == "void":
        return (
            f"Invoice {number} can no longer be paid ({amount} will not be collected). It stays on record as "
            "void. This cannot be undone."
        )
    return (
        f"Invoice {number} is written off as bad debt ({amount}). Stripe stops asking for payment; the "
        "customer can still pay it, and it can still be voided."
    )


def _day(due: int | None) -> str:
    return format_day(datetime.fromtimestamp(due, UTC)) if due else ""


def done_text(action: str, change: invoice_changes.InvoiceChange) -> str:
    words = {
        "send": f"Invoice {change.number} was sent to the customer.",
        "void": f"Invoice {change.number} is void.",
        "mark_uncollectible": f"Invoice {change.number} is marked uncollectible.",
    }[action]
    return words if change.stored else f"{words} Billy will show it after the next sync."


def reminder_rows(results: list[invoice_changes.ReminderResult]) -> list[ReminderRow]:
    return [ReminderRow(invoice=r.number or r.invoice_id, outcome=r.outcome, message=r.message) for r in results]


def reminder_summary(results: list[invoice_changes.ReminderResult]) -> str:
    sent = sum(1 for r in results if r.sent)
    rest = len(results) - sent
    return f"{sent} reminder{'' if sent == 1 else 's'} sent" + (f", {rest} not sent (see why below)." if rest else ".")


class InvoiceActionsState(SessionState):
    """The per-invoice controls and their confirmation, and the bulk reminder run."""

    problem_var: ClassVar[str] = "problem"

    # Which controls show (hidden: the role can never), and why one is disabled ("" when usable).
    send_shown: bool = False
    send_blocked: str = ""
    remind_shown: bool = False
    remind_blocked: str = ""
    void_shown: bool = False
    void_blocked: str = ""
    mark_shown: bool = False
    mark_blocked: str = ""
    create_shown: bool = False
    create_blocked: str = ""

    # The confirmation of one invoice's action.
    confirm_open: bool = False
    action: str = ""
    invoice_label: str = ""
    confirm_title: str = ""
    confirm_text: str = ""
    confirm_button: str = ""
    submitting: bool = False
    problem: str = ""
    _invoice_id: str = ""
    _key: str = ""

    # Reminders to many invoices at once.
    bulk_open: bool = False
    bulk_count: int = 0
    bulk_sending: bool = False
    bulk_done: bool = False
    bulk_summary: str = ""
    bulk_results: list[ReminderRow] = []
    _bulk_ids: list[str] = []
    _bulk_key: str = ""

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """In the open dialog, else as a toast."""
        if self.confirm_open or self.bulk_open:
            self.problem = problem.message
            return None
        return rx.toast.error(problem.message, id="billy-problem")

    @rx.event
    @guarded
    async def load_controls(self):
        """Which invoice controls this member sees (on the invoices list and the customer page)."""
        for name, action in (
            ("send", "invoices.send"),
            ("remind", "invoices.remind"),
            ("void", "invoices.void"),
            ("mark", "invoices.mark_uncollectible"),
            ("create", "invoices.create"),
        ):
            state = await self._call(stripe_writes.write_control, action, INVOICE_WRITE)
            if action == "invoices.remind" and state.shown:  # a reminder is Billy's mail: the key does not matter
                state = await self._call(control, action)
            setattr(self, f"{name}_shown", state.shown)
            setattr(self, f"{name}_blocked", state.blocked_by)

    @rx.event
    @guarded
    async def ask(self, action: str, invoice_id: str):
        """Open the confirmation for one invoice (the service checks the id and the role)."""
        if action not in ACTIONS:
            raise ValidationFailed("Billy does not know that invoice action.")
        facts = await self._call(invoice_changes.invoice_facts, invoice_id[:255], SERVICE_ACTIONS[action])
        self.action, self._invoice_id = action, facts.id
        self.invoice_label = f"Invoice {facts.number} · {facts.total_label}"
        self.confirm_title, self.confirm_button = ACTIONS[action]
        self.confirm_text = confirmation_text(action, facts)
        self._key = secrets.token_urlsafe(24)
        self.problem, self.submitting, self.confirm_open = "", False, True

    @rx.event
    def close(self):
        self._end()

    @rx.event
    def set_confirm_open(self, value: bool):
        if not value:
            self._end()

    def _end(self) -> None:
        """Closing ends the intent: the next opening gets a new idempotency key."""
        self.confirm_open, self._key, self._invoice_id, self.problem = False, "", "", ""

    async def _refresh_page(self) -> None:
        """Re-read the page the member is on, so it shows the change at once."""
        path = self.router.url.path or ""
        page: Any = await self.get_state(CustomerState if path.startswith("/customers/") else InvoicesState)
        with contextlib.suppress(BillyError):  # the page shows its own problem on its next read
            await page._live_refresh()

    @rx.event
    @guarded
    async def confirm(self):
        """Do the confirmed action, under this opening's key."""
        if self.submitting or not self._key or self.action not in ACTIONS:
            return  # a second click while the first is in flight, or after the dialog closed
        self.problem, self.submitting = "", True
        yield
        try:
            if self.action == "remind":
                results = await self._call(invoice_changes.send_reminders, [self._invoice_id], self._key)
            else:
                operation = {
                    "send": invoice_changes.send_invoice,
                    "void": invoice_changes.void_invoice,
                    "mark_uncollectible": invoice_changes.mark_uncollectible,
                }[self.action]
                change = await self._call(operation, self._invoice_id, self._key)
        finally:
            self.submitting = False
        if self.action == "remind":
            (result,) = results
            if not result.sent and result.outcome != "already_sent":
                self.problem = result.message  # the dialog stays open with the reason
                return
            self._end()
            yield rx.toast.success(result.message)
            return
        action = self.action
        self._end()
        await self._refresh_page()
        yield rx.toast.success(done_text(action, change))

    # --- many reminders at once --------------------------------------------------------------------

    @rx.event
    @guarded
    async def ask_bulk(self):
        """Open the reminder run for the overdue invoices the list shows now (read server-side)."""
        invoices = await self.get_state(InvoicesState)
        overdue = [row.id for row in invoices.rows if row.status == "overdue"]
        if not overdue:
            raise ValidationFailed("No overdue invoices are shown: filter the list by “Overdue” first.")
        self._bulk_ids = await self._call(invoice_changes.plan_reminders, overdue)
        self.bulk_count = len(self._bulk_ids)
        self._bulk_key = secrets.token_urlsafe(24)
        self.bulk_results, self.bulk_summary, self.bulk_done, self.problem = [], "", False, ""
        self.bulk_sending, self.bulk_open = False, True

    @rx.event
    @guarded
    async def send_bulk(self):
        """Remind every invoice of the run; each gets its own result. Confirming again after a
        failure retries with the same key: what was sent is not sent twice."""
        if self.bulk_sending or not self._bulk_key:
            return
        self.problem, self.bulk_sending = "", True
        yield
        try:
            results = await self._call(invoice_changes.send_reminders, self._bulk_ids, self._bulk_key)
        finally:
            self.bulk_sending = False
        self.bulk_results, self.bulk_summary, self.bulk_done = reminder_rows(results), reminder_summary(results), True

    @rx.event
    def close_bulk(self):
        self.bulk_open, self._bulk_key, self._bulk_ids, self.problem = False, "", [], ""

    @rx.event
    def set_bulk_open(self, value: bool):
        if not value:
            self.bulk_open, self._bulk_key, self._bulk_ids, self.problem = False, "", [], ""


# --- the "New invoice" dialog ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PriceOption:
    id: str
    label: str


@dataclass(frozen=True, kw_only=True)
class DraftLine:
    """A line of the invoice being made, as the dialog lists it."""

    label: str
    amount: str


MAX_DESCRIPTION_INPUT = invoice_changes.DESCRIPTION_MAX + 100
CURRENCY_CHOICES = ("usd", "eur", "gbp", "cad", "aud", "jpy")  # a custom line's currency
ZONE_SCRIPT = "Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'"


def today_in(zone: str) -> date:
    """Today in the member's zone (a due date is picked as a day there)."""
    return clock.now().astimezone(ZoneInfo(timezones.viewer_zone(zone))).date()


class NewInvoiceState(SessionState):
    problem_var: ClassVar[str] = "problem"

    open: bool = False
    prices: list[PriceOption] = []
    lines: list[DraftLine] = []
    total: str = ""  # the preview's total, e.g. "$545.00"
    currency: str = "usd"  # the custom line's currency (a price brings its own)
    due: str = ""  # YYYY-MM-DD, a day in the viewer's zone
    memo: str = ""
    zone: str = "UTC"
    problem: str = ""
    saving: bool = False
    _customer_id: str = ""
    _lines: list[dict[str, Any]] = []
    _key: str = ""

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        if self.open:
            self.problem = problem.message
            return None
        return rx.toast.error(problem.message, id="billy-problem")

    @rx.event
    @guarded
    async def start(self, customer_id: str):
        """Open the dialog for a customer (the service checks the id and the role).

        Only for the customer the tab's address names now: right after a move from one customer's
        page to another's, the page still shows the previous customer until it has loaded, and a
        click then must not start an invoice for someone the address no longer shows."""
        if customer_id != customer_in_address(self.router.url.path or ""):
            raise ValidationFailed(STILL_OPENING)
        choices = await self._call(invoice_changes.invoice_price_choices)
        self.prices = [PriceOption(id=c.id, label=c.label) for c in choices]
        self._customer_id = customer_id[:255]
        self._lines, self.lines, self.total, self.memo, self.problem = [], [], "", "", ""
        self.due = (today_in(self.zone) + timedelta(days=30)).isoformat()
        self._key = secrets.token_urlsafe(24)
        self.saving, self.open = False, True
        return rx.call_script(ZONE_SCRIPT, callback=NewInvoiceState.set_zone)

    @rx.event
    def set_zone(self, zone: str):
        self.zone = timezones.viewer_zone(zone)

    async def _preview(self) -> None:
        self.problem = ""
        if not self._lines:
            self.lines, self.total = [], ""
            return
        preview = await self._call(invoice_changes.preview_invoice, self._customer_id, self._lines)
        self.lines = [
            DraftLine(label=line.label, amount=format_money(line.amount, line.currency)) for line in preview.lines
        ]
        self.total = preview.total_label

    async def _add(self, line: dict[str, Any]) -> None:
        """Add a line if the preview accepts it; a refused line is left out, with the reason shown."""
        before = list(self._lines)
        self._lines = [*before, line]
        self._key = secrets.token_urlsafe(24)  # other lines: another intent
        try:
            await self._preview()
        except BillyError:
            self._lines = before
            raise

    @rx.event
    @guarded
    async def add_price_line(self, form: dict):
        """A price and a quantity from the dialog's form."""
        price_id = form.get("price_id") if isinstance(form, dict) else None
        quantity_text = form.get("quantity", "1") if isinstance(form, dict) else "1"
        if not isinstance(price_id, str) or not price_id:
            raise ValidationFailed("Pick a price first.")
        try:
            quantity = int(str(quantity_text).strip()[:8])
        except ValueError:
            raise ValidationFailed("Type the quantity as a whole number, like 2.") from None
        await self._add({"price_id": price_id[:255], "quantity": quantity})

    @rx.event
    @guarded
    async def add_custom_line(self, form: dict):
        """A description, an amount as typed, and a currency from the dialog's form."""
        if not isinstance(form, dict):
            raise ValidationFailed("Give the line a description and an amount.")
        currency = str(form.get("currency") or self.currency)[:3].lower()
        try:
            amount = parse_money(form.get("amount", ""), currency)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        description = form.get("description", "")
        description = description[:MAX_DESCRIPTION_INPUT] if isinstance(description, str) else ""
        self.currency = currency
        await self._add({"description": description, "amount": amount, "currency": currency})

    @rx.event
    @guarded
    async def remove_line(self, index: int):
        if 0 <= index < len(self._lines):
            self._lines = [line for n, line in enumerate(self._lines) if n != index]
            self._key = secrets.token_urlsafe(24)
            await self._preview()

    @rx.event
    def set_currency(self, currency: str):
        self.currency = currency if currency in CURRENCY_CHOICES else "usd"

    @rx.event
    def set_due(self, text: str):
        self.due = str(text)[:10]

    @rx.event
    def set_memo(self, text: str):
        self.memo = str(text)[: invoice_changes.MEMO_MAX + 100]

    @rx.event
    def close(self):
        self._end()

    @rx.event
    def set_open(self, value: bool):
        if not value:
            self._end()

    def _end(self) -> None:
        self.open, self._key, self._lines, self.lines, self.total, self.problem = False, "", [], [], "", ""

    @rx.event
    @guarded
    async def create(self):
        """Make the draft in Stripe; it is then sent from its row (Send), once checked."""
        if self.saving or not self._key:
            return
        _, end = timezones.day_range(self.due, self.due, self.zone)
        if end is None:
            raise ValidationFailed("Pick the day the invoice is due.")
        self.problem, self.saving = "", True
        yield
        try:
            made = await self._call(
                invoice_changes.create_invoice,
                self._customer_id,
                self._lines,
                end - timedelta(seconds=1),  # the end of the chosen day in the member's zone
                self._key,
                memo=self.memo,
            )
        finally:
            self.saving = False
        self._end()
        customer = await self.get_state(CustomerState)
        await customer._reload()
        note = "" if made.stored else " Billy will show it after the next sync."
        yield rx.toast.success(
            f"Draft invoice for {format_money(made.total, made.currency)} created. Check it, then Send it from "
            f"its row.{note}"
        )
