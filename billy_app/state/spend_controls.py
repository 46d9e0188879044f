"""Settings → Spend controls (issue 15): daily refund budgets, and the Owner's freezes.

The page only shows and asks; `services.spend` checks every value and refuses anyone but the
Owner (with an audit row), whatever an event carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import reflex as rx

from billy_app.state.session import SessionState, guarded, off_loop
from services import spend
from services.errors import PermissionDenied, ValidationFailed
from services.money import format_money, parse_money
from services.permissions import Actor

MAX_TEXT = 20


@dataclass(frozen=True, kw_only=True)
class BudgetLine:
    """One budget in the table."""

    scope: str
    label: str
    currency: str  # "usd"
    amount: str  # "$500.00", or "no budget"
    is_default: bool


@dataclass(frozen=True, kw_only=True)
class MemberLine:
    """One member: their role, what they refunded in 24 hours, and whether they are frozen."""

    id: int
    email: str
    role: str
    spent: str
    frozen: bool
    is_owner: bool


def _budget_line(row: spend.BudgetRow) -> BudgetLine:
    amount = "no budget" if row.amount is None else format_money(row.amount, row.currency)
    return BudgetLine(scope=row.scope, label=row.label, currency=row.currency, amount=amount, is_default=row.is_default)


def _member_line(m: spend.MemberStanding) -> MemberLine:
    return MemberLine(
        id=m.id, email=m.email, role=m.role_label, spent=m.spent or "—", frozen=m.frozen, is_owner=m.is_owner
    )


class SpendControlsState(SessionState):
    problem_var: ClassVar[str] = "message"

    budgets: list[BudgetLine] = []
    members: list[MemberLine] = []
    writes_frozen: bool = False
    refused: bool = False
    error: str = ""
    message: str = ""
    message_kind: str = "info"
    # The "set a budget" form: whose (a role or a member), the currency, the amount.
    form_scope: str = "role:billing_clerk"
    form_currency: str = "USD"
    form_amount: str = ""

    @rx.var
    def scope_choices(self) -> list[list[str]]:
        """[scope, label] for the form's select: each role in the table, then each member."""
        seen: dict[str, str] = {}
        for line in self.budgets:
            if line.scope.startswith("role:"):
                seen.setdefault(line.scope, line.label)
        for member in self.members:
            if not member.is_owner:
                seen.setdefault(f"member:{member.id}", member.email)
        return [[scope, label] for scope, label in seen.items()]

    async def _reload(self) -> None:
        view = await off_loop(spend.overview, await self.actor())
        self.budgets = [_budget_line(row) for row in view.budgets]
        self.members = [_member_line(m) for m in view.members]
        self.writes_frozen = view.writes_frozen

    async def _run(self, change: Callable[[Actor], object], done: str) -> None:
        self.message = ""
        await self._call(change)
        self.message, self.message_kind = done, "info"
        await self._reload()

    @rx.event
    @guarded
    async def load(self):
        self.refused, self.error, self.message = False, "", ""
        try:
            await self._reload()
        except PermissionDenied as exc:
            self.refused, self.error, self.budgets, self.members = True, exc.message, [], []

    @rx.event
    def set_form_scope(self, value: str):
        self.form_scope = str(value)[:60]

    @rx.event
    def set_form_currency(self, value: str):
        self.form_currency = str(value)[:3].upper()

    @rx.event
    def set_form_amount(self, value: str):
        self.form_amount = str(value)[:MAX_TEXT]

    @rx.event
    @guarded
    async def save_budget(self):
        """Set the form's budget; an empty amount means "no budget" in that currency."""
        scope, currency, text = self.form_scope, self.form_currency.lower(), self.form_amount.strip()
        try:
            amount = parse_money(text, currency) if text else None
        except ValueError as exc:
            raise ValidationFailed(f"The budget: {exc}") from None
        words = "no budget" if amount is None else f"{format_money(amount, currency)} a day"
        await self._run(lambda actor: spend.set_budget(actor, scope, currency, amount), f"Saved: {words}.")
        self.form_amount = ""

    @rx.event
    @guarded
    async def reset_budget(self, scope: str, currency: str):
        await self._run(lambda actor: spend.reset_budget(actor, scope, currency), "Back to the default.")

    @rx.event
    @guarded
    async def freeze_member(self, member_id: int, frozen: bool):
        email = next((m.email for m in self.members if m.id == member_id), "The member")
        done = (
            f"{email} is frozen: they can still look, and every change they or their agents ask for is refused."
            if frozen
            else f"{email} can make changes again."
        )
        await self._run(lambda actor: spend.set_freeze(actor, f"member:{int(member_id)}", bool(frozen)), done)

    @rx.event
    @guarded
    async def freeze_all(self, frozen: bool):
        done = (
            "All billing changes are frozen, yours included. Lift the freeze here when the incident is over."
            if frozen
            else "Billing changes are open again."
        )
        await self._run(lambda actor: spend.set_freeze(actor, spend.ALL_WRITES, bool(frozen)), done)
