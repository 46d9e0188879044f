"""The refund dialog: amount and reason in, a preview of what will happen, then one refund.

One dialog opening is one intent: it gets an idempotency key (kept server-side) that
goes to `issue_refund` and on to Stripe, so a double click or a resent event makes
one refund. Every argument is untrusted; amounts and permissions are checked in
`services.billing`, not here.

A refund over the caller's cap is offered as a request for approval instead (`over_cap`,
`request_approval`); `services.refund_requests` decides whether it may be asked.

A direct refund may carry a note (audit row and Stripe metadata) and send the customer a
confirmation email; the checkbox is offered only when the store has an address for them.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import ClassVar

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.customer import CustomerState
from billy_app.state.session import SessionState, guarded, off_loop
from services import billing, refund_requests
from services.errors import BillyError, ValidationFailed
from services.money import format_amount, format_money, parse_money
from services.permissions import control


class RefundMode(StrEnum):
    """Refund the whole remaining amount, or the amount typed in the dialog."""

    FULL = "full"
    PARTIAL = "partial"


class RefundState(SessionState):
    problem_var: ClassVar[str] = "problem"

    open: bool = False
    charge_id: str = ""
    charge_label: str = ""
    currency: str = "usd"
    mode: RefundMode = RefundMode.FULL
    amount_text: str = ""
    reason: str = "requested_by_customer"
    summary: str = ""
    allowed: bool = False
    problem: str = ""
    submitting: bool = False
    over_cap: bool = False  # refused only by the caller's cap: offer "Request approval"
    note: str = ""  # the refunder's note, kept in the audit log and on the refund in Stripe
    email_customer: bool = False  # send the customer a confirmation once refunded
    customer_email: str = ""  # where it would go ("" when nowhere)
    no_email_reason: str = ""  # why the checkbox is disabled
    budget_left: str = ""  # what is left of the daily refund budget(s) before this refund
    _idempotency_key: str = ""
    _remaining: int = 0

    def _amount(self) -> int | None:
        """None asks for a full refund; a typed amount must parse exactly (or is refused in words)."""
        if self.mode == RefundMode.FULL:
            return None
        try:
            return parse_money(self.amount_text, self.currency)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """In the dialog while it is open, else as a toast."""
        if self.open:
            return super()._show_problem(problem)
        return rx.toast.error(problem.message, id="billy-problem")

    async def _preview(self) -> None:
        """What the refund would do; a problem shows in the dialog (`guarded`)."""
        self.summary, self.problem, self.allowed, self.over_cap = "", "", False, False
        self.budget_left = ""
        amount = self._amount()
        actor = await self.actor()
        preview = await off_loop(billing.preview_refund, actor, self.charge_id, amount)
        self.summary, self.allowed, self.problem = preview.summary, preview.allowed, preview.refusal
        self.customer_email, self.no_email_reason = preview.customer_email, preview.no_email_reason
        self.budget_left = preview.budget_left
        self.email_customer = self.email_customer and bool(preview.customer_email)
        # A caller who may ask for approval is refused a valid amount only by their cap.
        self.over_cap = not preview.allowed and control(actor, "refunds.request").usable

    @rx.event
    @guarded
    async def start(self, charge_id: str):
        """Open the dialog for a charge (any id a client sends is checked by the service)."""
        charge = await self._call(billing.get_charge, charge_id[:255])
        self.charge_id, self.currency, self._remaining = charge.id, charge.currency, charge.refundable
        label = charge.description or charge.id
        self.charge_label = f"{label} · {format_money(charge.amount, charge.currency)}"
        self.mode, self.reason = RefundMode.FULL, "requested_by_customer"
        self.note, self.email_customer = "", False
        self.amount_text = format_amount(charge.refundable, charge.currency)
        self._idempotency_key = secrets.token_urlsafe(24)
        self.submitting, self.open = False, True
        await self._preview()

    @rx.event
    @guarded
    async def set_mode(self, mode: RefundMode):
        """The dialog's full / partial switch (the gate refuses any other value)."""
        self.mode = mode
        await self._preview()

    @rx.event
    @guarded
    async def set_amount(self, text: str):
        self.amount_text = str(text)[:32]
        await self._preview()

    @rx.event
    def set_reason(self, reason: str):
        self.reason = reason if reason in billing.REFUND_REASONS else "requested_by_customer"

    @rx.event
    def set_note(self, text: str):
        """The note as typed (sent on blur, so it arrives before the Confirm click); the service judges it."""
        self.note = str(text)[: billing.NOTE_MAX + 200]

    @rx.event
    def set_email_customer(self, value: bool):
        """Only offered with an address; the service checks again and says so if there is none."""
        self.email_customer = bool(value) and self.customer_email != ""

    @rx.event
    def close(self):
        self._end_intent()

    @rx.event
    def set_open(self, value: bool):
        if not value:
            self._end_intent()

    def _end_intent(self) -> None:
        """Closing ends the intent: a reopened dialog gets a new idempotency key."""
        self.open, self._idempotency_key, self.charge_id = False, "", ""

    @rx.event
    @guarded
    async def confirm(self):
        if self.submitting or not self._idempotency_key:
            return  # a second click while the first is in flight, or after it finished
        self.submitting = True
        yield
        try:
            result = await self._call(
                billing.issue_refund,
                self.charge_id,
                self._amount(),
                self.reason,
                self._idempotency_key,
                note=self.note,
                email_customer=self.email_customer,
            )
        finally:
            self.submitting = False
        self.open, self._idempotency_key = False, ""
        customer = await self.get_state(CustomerState)
        await customer._reload()
        done = f"Refunded {format_money(result.amount, result.currency)}. The customer sees it in 5–10 business days."
        if result.email_outcome and not result.email_sent:
            yield rx.toast.success(done)
            yield rx.toast.warning(result.email_outcome, id="refund-email-outcome")
        else:
            yield rx.toast.success(f"{done} {result.email_outcome}".strip())

    @rx.event
    @guarded
    async def request_approval(self, form_data: dict):
        """Send an over-cap refund to the approval queue, with the note for the approver."""
        if self.submitting or not self.charge_id:
            return
        note = form_data.get("note") if isinstance(form_data, dict) else None
        note = note[: refund_requests.NOTE_MAX + 200] if isinstance(note, str) else ""  # the service judges it
        self.submitting = True
        yield
        try:
            asked = await self._call(refund_requests.submit_request, self.charge_id, self._amount(), self.reason, note)
        finally:
            self.submitting = False
        self.open, self._idempotency_key = False, ""
        yield rx.toast.success(
            f"Asked for approval of a {asked.amount_label} refund. Follow it under Refund requests.",
        )
