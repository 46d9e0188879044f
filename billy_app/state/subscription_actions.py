"""The "Manage" dialog of a subscription (issue 12): change its price or quantity after a preview
of the prorations, pause or resume collection, cancel it at the period end or now, or withdraw a
pending cancellation.

One dialog opening is one intent per action: each action gets its own idempotency key (kept
server-side) when the dialog opens, reused if the member tries again after a failure, so a
double click or a resent event makes one change. A change confirms exactly what was previewed
(the previewed price, quantity and proration date), whatever the inputs show since. Every
argument is untrusted and every handler calls the service, which decides (a refused role is
refused there and audited).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.customer_overview import SUBSCRIPTION_WORDS
from billy_app.state.session import SessionState, guarded
from billy_app.state.view import iso
from services import subscription_changes as changes
from services.errors import BillyError, ValidationFailed
from services.money import format_money

ACTIONS = ("change", "pause", "resume", "cancel", "reactivate")
CANCEL_CHOICES = ("period_end", "now")
MAX_QUANTITY_TEXT = 12


@dataclass(frozen=True, kw_only=True)
class PriceOption:
    id: str
    label: str


@dataclass(frozen=True, kw_only=True)
class PreviewRow:
    """One line of the previewed next invoice, in words."""

    description: str
    amount: str
    proration: bool


class SubscriptionActionsState(SessionState):
    problem_var: ClassVar[str] = "problem"

    # The per-row control: hidden unless the role may manage subscriptions; disabled with a reason.
    can_manage: bool = False
    blocked_by: str = ""

    # The dialog.
    open: bool = False
    subscription_id: str = ""
    plan: str = ""
    status: str = ""
    period_end: str = ""  # ISO UTC, "" when unknown
    ends_at: str = ""  # a pending cancellation's end, ISO UTC
    paused: str = ""  # how collection is paused, in words; "" when it is not
    prices: list[PriceOption] = []
    price_id: str = ""
    quantity_text: str = "1"
    preview_rows: list[PreviewRow] = []
    preview_summary: str = ""
    previewed: bool = False
    pause_behavior: str = "keep_as_draft"
    cancel_when: str = "period_end"
    change_blocked: str = ""
    pause_blocked: str = ""
    resume_blocked: str = ""
    cancel_blocked: str = ""
    end_of_period_blocked: str = ""
    reactivate_blocked: str = ""
    problem: str = ""
    busy: bool = False
    _keys: dict[str, str] = {}
    _preview_price: str = ""
    _preview_quantity: int = 0
    _proration_date: int = 0

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """In the dialog while it is open, else as a toast."""
        if self.open:
            return super()._show_problem(problem)
        return rx.toast.error(problem.message, id="billy-problem")

    def _key(self, action: str) -> str:
        """This opening's key for `action` ("" when no dialog was opened: the service says so)."""
        return self._keys.get(action, "")

    def _forget_preview(self) -> None:
        self.preview_rows, self.preview_summary, self.previewed = [], "", False
        self._preview_price, self._preview_quantity, self._proration_date = "", 0, 0

    @rx.event
    @guarded
    async def load_control(self):
        """Whenever a page of subscriptions mounts: whether this member sees the Manage control, and
        whether it is blocked (asked afresh, so a role changed since shows at the next page)."""
        control = await self._call(changes.manage_control)
        self.can_manage, self.blocked_by = control.shown, control.blocked_by

    @rx.event
    @guarded
    async def open_for(self, subscription_id: str):
        """Open the dialog for one subscription (the service checks the id and the role)."""
        self.open, self.problem = False, ""
        options = await self._call(changes.subscription_options, subscription_id[:255])
        control = await self._call(changes.manage_control)
        self.can_manage, self.blocked_by = control.shown, control.blocked_by
        self.subscription_id, self.plan = options.id, options.plan
        self.status = SUBSCRIPTION_WORDS.get(options.status, options.status.replace("_", " ").capitalize())
        self.period_end = iso(options.current_period_end) if options.current_period_end else ""
        self.ends_at = iso(options.ends_at) if options.ends_at else ""
        self.paused = changes.PAUSE_BEHAVIORS.get(options.pause_behavior, "") if options.pause_behavior else ""
        self.prices = [
            PriceOption(id=p.id, label=p.label + (" (current)" if p.current else "")) for p in options.prices
        ]
        self.price_id, self.quantity_text = options.price_id, str(options.quantity or 1)
        blocked = control.blocked_by
        self.change_blocked = blocked or options.change_blocked
        self.pause_blocked = blocked or options.pause_blocked
        self.resume_blocked = blocked or options.resume_blocked
        self.cancel_blocked = blocked or options.cancel_blocked
        self.end_of_period_blocked = blocked or options.end_of_period_blocked
        self.reactivate_blocked = blocked or options.reactivate_blocked
        self.cancel_when = "now" if options.end_of_period_blocked else "period_end"
        self.pause_behavior = "keep_as_draft"
        self._forget_preview()
        self._keys = {action: secrets.token_urlsafe(24) for action in ACTIONS}
        self.busy, self.open = False, True

    @rx.event
    def set_open(self, value: bool):
        if not value:
            self._close()

    @rx.event
    def close(self):
        self._close()

    def _close(self) -> None:
        """Closing ends the intents: a reopened dialog gets new keys."""
        self.open, self._keys, self.problem = False, {}, ""
        self._forget_preview()

    @rx.event
    def set_price(self, price_id: str):
        self.price_id = price_id[:255]
        self._forget_preview()

    @rx.event
    def set_quantity(self, text: str):
        self.quantity_text = text[:MAX_QUANTITY_TEXT]
        self._forget_preview()

    @rx.event
    def set_pause_behavior(self, behavior: str):
        """One of the three behaviours (anything else keeps the current choice)."""
        if behavior in changes.PAUSE_BEHAVIORS:
            self.pause_behavior = behavior

    @rx.event
    def set_cancel_when(self, when: str):
        if when in CANCEL_CHOICES:
            self.cancel_when = when

    def _quantity(self) -> int:
        text = self.quantity_text.strip()
        if not text.isdigit():
            raise ValidationFailed("Enter the quantity as a whole number, e.g. 3.")
        return int(text)

    @rx.event
    @guarded
    async def preview_change(self):
        """What the change would cost, from Stripe's preview; Confirm then makes exactly this."""
        self._forget_preview()
        self.problem = ""
        quantity = self._quantity()
        preview = await self._call(changes.preview_subscription_change, self.subscription_id, self.price_id, quantity)
        self.preview_rows = [
            PreviewRow(
                description=line.description or "Next period",
                amount=format_money(line.amount, preview.currency),
                proration=line.proration,
            )
            for line in preview.lines
        ]
        self.preview_summary = preview.summary
        self._preview_price, self._preview_quantity = preview.price_id, preview.quantity
        self._proration_date, self.previewed = preview.proration_date, True

    async def _write(self, write: Callable[..., changes.SubscriptionWrite], *args: object):
        """One write from the dialog: busy while it runs (shown at once), then the dialog closes and
        says what happened; the row updates from the store's notice. A refusal stays in the dialog."""
        if self.busy:
            return
        self.busy, self.problem = True, ""
        yield
        try:
            result = await self._call(write, self.subscription_id, *args)
        finally:
            self.busy = False
        self._close()
        note = "" if result.stored else " Billy shows it after the next sync."
        yield rx.toast.success(result.done + note)

    @rx.event
    @guarded
    async def confirm_change(self):
        async for update in self._write(
            changes.change_subscription,
            self._preview_price,
            self._preview_quantity,
            self._proration_date,
            self._key("change"),
        ):
            yield update

    @rx.event
    @guarded
    async def pause(self):
        async for update in self._write(changes.pause_collection, self.pause_behavior, None, self._key("pause")):
            yield update

    @rx.event
    @guarded
    async def resume(self):
        async for update in self._write(changes.resume_collection, self._key("resume")):
            yield update

    @rx.event
    @guarded
    async def cancel(self):
        async for update in self._write(
            changes.cancel_subscription, self.cancel_when == "period_end", self._key("cancel")
        ):
            yield update

    @rx.event
    @guarded
    async def reactivate(self):
        async for update in self._write(changes.reactivate_subscription, self._key("reactivate")):
            yield update
