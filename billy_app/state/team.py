"""Settings → Team, and the wizard's invite step: invites, roles, removal.

Only the Owner may manage the team; that is checked in `services.team` on every call,
whatever this state shows. Transferring ownership asks for the Owner's password, so it is
a native form post (`/api/team/transfer-ownership`), not an event here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import reflex as rx

from billy_app.api import flash
from billy_app.state.session import SessionState, guarded
from services import spend, team
from services.errors import BillyError, PermissionDenied
from services.permissions import BUILT_IN_ORDER, ROLES

# Until the team is read (the wizard's step 3 does not read it), the built-in roles below the Owner.
BUILT_IN_CHOICES = [{"key": key, "label": ROLES[key].label} for key in reversed(BUILT_IN_ORDER) if key != "owner"]
MAX_ROWS = 20


def _blank_row() -> dict[str, str]:
    return {"email": "", "role": "billing_clerk"}


@dataclass(frozen=True, kw_only=True)
class MemberRow:
    """One member in the team table."""

    id: str
    name: str
    email: str
    role: str  # the role key (the select's value)
    role_label: str
    last_active: str  # ISO 8601, or "" for never
    is_owner: bool  # the Owner's row: no role select, no Remove
    frozen: bool = False  # the Owner froze their changes: "Lift the freeze" instead of "Freeze"


@dataclass(frozen=True, kw_only=True)
class InviteResult:
    """What became of one invite sent (or why none was)."""

    email: str  # "" when no invite was sent at all
    sent: bool
    message: str


class TeamState(SessionState):
    problem_var: ClassVar[str] = "message"

    members: list[MemberRow] = []
    invites: list[dict[str, str]] = []
    plan_label: str = ""
    seats: str = ""
    error: str = ""
    refused: bool = False
    message: str = ""
    message_kind: str = "info"
    role_choices: list[dict[str, str]] = BUILT_IN_CHOICES
    invite_rows: list[dict[str, str]] = [_blank_row()]
    invite_results: list[InviteResult] = []
    sending: bool = False

    async def _reload(self) -> None:
        view = await self._call(team.list_team)
        self.members = [
            MemberRow(
                id=str(member.id),
                name=member.name or "—",
                email=member.email,
                role=member.role,
                role_label=member.role_label,
                last_active=member.last_active_at.isoformat() if member.last_active_at else "",
                is_owner=member.is_owner,
                frozen=member.frozen,
            )
            for member in view.members
        ]
        self.invites = [
            {
                "id": str(invite.id),
                "email": invite.email,
                "role_label": invite.role_label,
                "expires": invite.expires_at.isoformat(),
            }
            for invite in view.invites
        ]
        self.plan_label = view.plan_label
        self.role_choices = [{"key": key, "label": label} for key, label in view.assignable]
        limit = "unlimited" if view.member_limit is None else str(view.member_limit)
        self.seats = f"{view.seats_used} of {limit} seats used (members and pending invites)"

    async def _change(self, given_id: str, service: Callable[..., object], *more: str) -> None:
        """Change one member or invite, then re-read the list (a refusal shows in `message`)."""
        self.message = ""
        try:
            target = int(given_id)
        except ValueError:  # a forged event with an id that is not a number
            self.message, self.message_kind = "That member or invite does not exist.", "error"
            return
        await self._call(service, target, *more)
        await self._reload()

    @rx.event
    @guarded
    async def load(self):
        self.error, self.refused = "", False
        self.invite_results = []  # outcomes of an earlier visit's sends are not news on this one
        data = flash.unpack(self.router.url.query_parameters.get("flash"))
        self.message, self.message_kind = str(data.get("message", "")), "error"
        try:
            await self._reload()
        except PermissionDenied as exc:
            self.refused, self.error, self.members, self.invites = True, exc.message, [], []

    # --- invite rows (the wizard's step 3 and the Invite Member dialog) ---
    @rx.event
    def add_row(self):
        if len(self.invite_rows) < MAX_ROWS:
            self.invite_rows = [*self.invite_rows, _blank_row()]

    @rx.event
    def remove_row(self, index: int):
        rows = list(self.invite_rows)
        if isinstance(index, int) and 0 <= index < len(rows) and len(rows) > 1:
            rows.pop(index)
            self.invite_rows = rows

    @rx.event
    def set_row_email(self, index: int, email: str):
        if isinstance(index, int) and 0 <= index < len(self.invite_rows):
            rows = [dict(row) for row in self.invite_rows]
            rows[index]["email"] = str(email)[:254]
            self.invite_rows = rows

    @rx.event
    def set_row_role(self, index: int, role: str):
        known = {choice["key"] for choice in self.role_choices}
        if isinstance(index, int) and 0 <= index < len(self.invite_rows) and role in known:
            rows = [dict(row) for row in self.invite_rows]
            rows[index]["role"] = role
            self.invite_rows = rows

    @rx.event
    @guarded(toast=True)  # the wizard's step 3 shows no team page around the rows
    async def send_invites(self):
        rows = [(row["email"], row["role"]) for row in self.invite_rows if row["email"].strip()]
        if not rows:
            self.invite_results = [InviteResult(email="", sent=False, message="Enter at least one email address.")]
            return
        self.sending = True
        yield
        try:
            outcomes = await self._call(team.invite_members, rows)
        except BillyError as exc:
            self.invite_results = [InviteResult(email="", sent=False, message=exc.message)]
            return
        finally:
            self.sending = False
        self.invite_results = [
            InviteResult(email=outcome.email, sent=outcome.ok, message=outcome.message) for outcome in outcomes
        ]
        failed = {outcome.email for outcome in outcomes if not outcome.ok}
        self.invite_rows = [row for row in self.invite_rows if row["email"].strip() in failed] or [_blank_row()]
        with contextlib.suppress(BillyError):  # a list the caller may not see is not news here
            await self._reload()

    # --- changes to members and invites ---
    @rx.event
    @guarded
    async def resend(self, invite_id: str):
        await self._change(invite_id, team.resend_invite)

    @rx.event
    @guarded
    async def revoke(self, invite_id: str):
        await self._change(invite_id, team.revoke_invite)

    @rx.event
    @guarded
    async def change_role(self, member_id: str, role: str):
        await self._change(member_id, team.change_role, role)

    @rx.event
    @guarded
    async def remove(self, member_id: str):
        await self._change(member_id, team.remove_member)

    @rx.event
    @guarded
    async def freeze(self, member_id: str, frozen: bool):
        """Freeze a member's changes (they read on), or lift it: `services.spend.set_freeze`."""
        await self._change(member_id, lambda actor, target: spend.set_freeze(actor, f"member:{target}", bool(frozen)))

    @rx.var
    def invited_someone(self) -> bool:
        """An invite went out on this visit: the wizard's way on is "Finish", not "invite later"."""
        return any(result.sent for result in self.invite_results)

    @rx.var
    def transferable(self) -> list[MemberRow]:
        return [member for member in self.members if not member.is_owner]
