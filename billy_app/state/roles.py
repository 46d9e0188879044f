"""Settings → Roles: every role and what it may do; the custom role builder on Business.

The builder's choices are only a convenience: `services.roles` validates what is saved and
`services.permissions` bounds every custom role again on each use, so a forged event that
ticks an Owner power or types a huge cap is refused there, with an audit row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.session import SessionState, guarded, off_loop
from services import roles
from services.errors import BillyError, PermissionDenied
from services.money import format_amount, format_money, parse_money
from services.permissions import PERMISSION_WORDS, Actor, Permission
from services.plans import PLANS

CAP_CURRENCY = "usd"
CHOICES = [{"key": p.value, "words": PERMISSION_WORDS[p].capitalize()} for p in roles.CHOOSABLE_PERMISSIONS]


def _caps_text(caps: dict[str, int] | None) -> str:
    if caps is None:
        return "no limit"
    return ", ".join(f"{format_money(v, c)} per charge" for c, v in caps.items()) or "—"


@dataclass(frozen=True, kw_only=True)
class RoleRow:
    """One role in the roles table."""

    key: str
    label: str
    built_in: bool  # a built-in role: shown with a badge, cannot be changed or deleted
    permissions: str  # what it may do, in words
    cap: str  # its refund limit, in words
    members: str  # how many members hold it


def _row(view: roles.RoleView) -> RoleRow:
    can_refund = Permission.REFUND in view.permissions
    return RoleRow(
        key=view.key,
        label=view.label,
        built_in=view.built_in,
        permissions="; ".join(PERMISSION_WORDS[permission] for permission in view.permissions),
        cap=_caps_text(view.refund_caps) if can_refund else "cannot refund",
        members=str(view.members),
    )


class RolesState(SessionState):
    problem_var: ClassVar[str] = "message"

    rows: list[RoleRow] = []
    custom_allowed: bool = False
    refused: bool = False
    error: str = ""
    message: str = ""
    message_kind: str = "info"
    # The builder (one dialog for a new role and for changing one).
    editor_open: bool = False
    editing_key: str = ""
    form_label: str = ""
    form_permissions: list[str] = []
    form_cap: str = ""
    form_error: str = ""
    # What each custom role holds, to fill the builder when changing one.
    _saved: dict[str, dict[str, object]] = {}

    @rx.var
    def choices(self) -> list[dict[str, str]]:
        return CHOICES

    @rx.var
    def refund_ticked(self) -> bool:
        return Permission.REFUND.value in self.form_permissions

    async def _reload(self) -> None:
        actor = await self.actor()
        views = await off_loop(roles.list_roles, actor)
        self.rows = [_row(view) for view in views]
        self._saved = {
            v.key: {"label": v.label, "permissions": [p.value for p in v.permissions], "caps": v.refund_caps or {}}
            for v in views
            if not v.built_in
        }
        plan = PLANS.get(actor.plan)
        self.custom_allowed = bool(plan and plan.custom_roles)

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """In the builder while it is open (what was typed stays), else above the table."""
        if self.editor_open:
            self.form_error = problem.message
            return None
        return super()._show_problem(problem)

    async def _run(self, change: Callable[[Actor], object], done: str) -> None:
        """Run one change; success closes the builder, a refusal keeps what was typed."""
        self.message, self.form_error = "", ""
        await self._call(change)
        self.editor_open = False
        self.message, self.message_kind = done, "info"
        await self._reload()

    @rx.event
    @guarded
    async def load(self):
        self.refused, self.error, self.message, self.editor_open = False, "", "", False
        try:
            await self._reload()
        except PermissionDenied as exc:
            self.refused, self.error, self.rows = True, exc.message, []

    @rx.event
    def open_new(self):
        self.editing_key, self.form_label, self.form_permissions, self.form_cap = "", "", [], ""
        self.form_error, self.editor_open = "", True

    @rx.event
    def open_edit(self, key: str):
        saved = self._saved.get(str(key))
        if saved is None:
            self.message, self.message_kind = "That role no longer exists.", "error"
            return
        caps = saved["caps"]
        cap = caps.get(CAP_CURRENCY) if isinstance(caps, dict) else None
        self.editing_key, self.form_label = str(key), str(saved["label"])
        self.form_permissions = [p for p in saved["permissions"] if p != Permission.VIEW.value]  # type: ignore[attr-defined]
        self.form_cap = format_amount(cap, CAP_CURRENCY) if cap else ""
        self.form_error, self.editor_open = "", True

    @rx.event
    def set_editor_open(self, is_open: bool):
        self.editor_open = bool(is_open)

    @rx.event
    def set_form_label(self, value: str):
        self.form_label = str(value)[:80]

    @rx.event
    def set_form_cap(self, value: str):
        self.form_cap = str(value)[:20]

    @rx.event
    def toggle_permission(self, key: str, ticked: bool):
        chosen = [p for p in self.form_permissions if p != key]
        self.form_permissions = [*chosen, str(key)] if ticked else chosen

    @rx.event
    @guarded
    async def save(self):
        caps: dict[str, int] = {}
        if Permission.REFUND.value in self.form_permissions and self.form_cap.strip():
            try:
                caps[CAP_CURRENCY] = parse_money(self.form_cap, CAP_CURRENCY)
            except ValueError as exc:
                self.form_error = str(exc)  # the typed cap, in words for the person who typed it
                return
        label, permissions, key = self.form_label, list(self.form_permissions), self.editing_key
        if key:
            await self._run(
                lambda actor: roles.update_custom_role(actor, key, label, permissions, caps),
                f"“{' '.join(label.split())}” saved. Its members act under it from their next click.",
            )
            return
        await self._run(
            lambda actor: roles.create_custom_role(actor, label, permissions, caps),
            f"“{' '.join(label.split())}” created. Give it to members in Settings → Team.",
        )

    @rx.event
    @guarded
    async def delete(self, key: str):
        label = str(self._saved.get(str(key), {}).get("label", "The role"))
        await self._run(lambda actor: roles.delete_custom_role(actor, str(key)), f"“{label}” deleted.")
