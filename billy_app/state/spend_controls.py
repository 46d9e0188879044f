"""Settings → Spend controls (issue 15): daily refund budgets, and the Owner's freezes.

The page only shows and asks; `services.spend` checks every value and refuses anyone but the
Owner (with an audit row), whatever an event carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import reflex as rx

from billy_app.state.live import LiveState
from billy_app.state.session import SessionState, guarded, off_loop
from services import spend, spend_alerts
from services.errors import PermissionDenied, ValidationFailed
from services.money import format_amount, format_money, parse_money
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


@dataclass(frozen=True, kw_only=True)
class AlertLine:
    """One alert a velocity rule raised."""

    id: int
    at: str  # ISO 8601 UTC, shown in the viewer's zone
    summary: str
    member_id: int  # 0 when no member (then no Freeze)
    member_frozen: bool
    audit_ids: str  # "#12, #13": the audit rows behind it
    audit_link: str  # the audit viewer showing just those rows


@dataclass(frozen=True, kw_only=True)
class RuleLine:
    """One velocity rule, as the Owner tunes it."""

    kind: str
    words: str
    threshold: str  # as typed: a count, or dollars for the amount rule
    enabled: bool
    is_default: bool


AMOUNT_RULES = frozenset({"amount_per_hour"})  # thresholds in USD minor units, typed in dollars


def _rule_line(rule: spend_alerts.RuleView) -> RuleLine:
    shown = format_amount(rule.threshold, "usd") if rule.kind in AMOUNT_RULES else str(rule.threshold)
    return RuleLine(kind=rule.kind, words=rule.words, threshold=shown, enabled=rule.enabled, is_default=rule.is_default)


def _alert_line(alert: spend_alerts.AlertView) -> AlertLine:
    return AlertLine(
        id=alert.id,
        at=alert.at.isoformat(),
        summary=alert.summary,
        member_id=alert.member_id or 0,
        member_frozen=alert.member_frozen,
        audit_ids=", ".join(f"#{i}" for i in alert.audit_ids[:10]) + (" …" if len(alert.audit_ids) > 10 else ""),
        audit_link=spend_alerts.audit_rows_path(alert.audit_ids),
    )


def _budget_line(row: spend.BudgetRow) -> BudgetLine:
    amount = "no budget" if row.amount is None else format_money(row.amount, row.currency)
    return BudgetLine(scope=row.scope, label=row.label, currency=row.currency, amount=amount, is_default=row.is_default)


def _member_line(m: spend.MemberStanding) -> MemberLine:
    return MemberLine(
        id=m.id, email=m.email, role=m.role_label, spent=m.spent or "—", frozen=m.frozen, is_owner=m.is_owner
    )


class SpendControlsState(LiveState, SessionState):
    problem_var: ClassVar[str] = "message"

    alerts: list[AlertLine] = []
    rules: list[RuleLine] = []
    budgets: list[BudgetLine] = []
    members: list[MemberLine] = []
    writes_frozen: bool = False
    org_zone: str = "UTC"  # working hours (09:00–18:00 on weekdays) are read in this zone
    focus_alert: int = 0  # the alert an email's link named (`?alert=12`): picked out in the table
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
        actor = await self.actor()
        view = await off_loop(spend.overview, actor)
        self.budgets = [_budget_line(row) for row in view.budgets]
        self.members = [_member_line(m) for m in view.members]
        self.writes_frozen = view.writes_frozen
        self.alerts = [_alert_line(a) for a in await off_loop(spend_alerts.recent_alerts, actor)]
        self.rules = [_rule_line(r) for r in await off_loop(spend_alerts.list_rules, actor)]
        self.org_zone = await off_loop(spend_alerts.time_zone, actor)

    def _live_kinds(self) -> frozenset[str]:
        return frozenset({spend_alerts.NOTICE_KIND})

    async def _live_refresh(self) -> None:
        await self._reload()

    async def _run(self, change: Callable[[Actor], object], done: str) -> None:
        self.message = ""
        await self._call(change)
        self.message, self.message_kind = done, "info"
        await self._reload()

    @rx.event
    @guarded
    async def load(self):
        self.refused, self.error, self.message = False, "", ""
        asked = str(self.router.url.query_parameters.get("alert", ""))[:12]
        self.focus_alert = int(asked) if asked.isdigit() else 0
        try:
            await self._reload()
        except PermissionDenied as exc:
            self.refused, self.error, self.budgets, self.members = True, exc.message, [], []

    @rx.event
    @guarded
    async def save_rule(self, form: dict):
        """One rule's row: its threshold (a count; dollars for the amount rule) and on/off."""
        kind = str(form.get("kind", ""))[:30]
        text = str(form.get("threshold", "")).strip()[:MAX_TEXT]
        enabled = form.get("enabled") in (True, "on", "true")
        try:
            threshold = parse_money(text, "usd") if kind in AMOUNT_RULES else int(text)
        except ValueError:
            raise ValidationFailed("A rule's threshold is a whole number (dollars for the amount rule).") from None
        await self._run(lambda actor: spend_alerts.set_rule(actor, kind, threshold, enabled), "Rule saved.")

    @rx.event
    @guarded
    async def save_zone(self, form: dict):
        zone = str(form.get("zone", ""))[:64]
        await self._run(
            lambda actor: spend_alerts.set_time_zone(actor, zone),
            f"Working hours are now 09:00–18:00 on weekdays in {zone}.",
        )

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
