"""Settings → Agents: every member's own agent tokens (the Owner: everyone's), and revoking them.

Tokens are made by `agent-billy login` (approved on /connect-agent), so no secret ever passes
through this state: the list shows ids, clients, scopes and use, never a token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import reflex as rx

from billy_app.state.session import SessionState, guarded
from services import agent_tokens, spend
from services.permissions import Permission, role_of


@dataclass
class TokenRow:
    id: str
    member: str
    client: str
    scope: str
    created: str
    expires: str
    last_used: str
    last_used_from: str
    status: str  # "Active" | "Frozen" | "Revoked" | "Expired"


def token_row(view: agent_tokens.TokenView) -> TokenRow:
    status = "Revoked" if view.revoked_at else ("Expired" if not view.active else "Frozen" if view.frozen else "Active")
    return TokenRow(
        id=view.id,
        member=view.member_email,
        client=view.client_name,
        scope=view.scope_words,
        created=view.created_at.isoformat(),
        expires=view.expires_at.isoformat() if view.expires_at else "",
        last_used=view.last_used_at.isoformat() if view.last_used_at else "",
        last_used_from=view.last_used_from,
        status=status,
    )


class AgentsState(SessionState):
    problem_var: ClassVar[str] = "message"

    rows: list[TokenRow] = []
    everyone: bool = False  # the Owner sees every member's tokens
    instance_url: str = ""
    message: str = ""
    message_kind: str = "info"

    async def _reload(self) -> None:
        views = await self._call(agent_tokens.list_tokens)
        self.rows = [token_row(v) for v in views]
        actor = await self.actor()
        self.everyone = Permission.MANAGE_TEAM in role_of(actor).permissions

    @rx.event
    @guarded
    async def load(self):
        self.message = ""
        self.instance_url = self.router.url.origin
        await self._reload()

    @rx.event
    @guarded
    async def freeze(self, token_id: str, frozen: bool):
        """The Owner's freeze of one token (issue 15): it reads on, and every change is refused."""
        await self._call(spend.set_freeze, f"token:{str(token_id)[:40]}", bool(frozen))
        self.message = (
            "Frozen: the agent can still read; every change it asks for is refused until you lift it."
            if frozen
            else "The freeze is lifted: the agent can make changes again."
        )
        self.message_kind = "info"
        await self._reload()

    @rx.event
    @guarded
    async def revoke(self, token_id: str):
        await self._call(agent_tokens.revoke_token, str(token_id)[:40])
        self.message, self.message_kind = "Revoked: its next call is refused.", "info"
        await self._reload()
