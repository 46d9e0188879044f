"""/connect-agent: a member approves `agent-billy login` (see services/agent_login.py).

The page only shows the request and the member's limits; the decision is a native form post to
`/api/agent/connect`, which checks everything again. Nothing here is secret: the code is made by
the route and goes to the CLI's loopback listener, never into this state."""

from __future__ import annotations

import reflex as rx

from billy_app.api import flash
from billy_app.state.session import SessionState, guarded, off_loop
from services import agent_login, agent_tokens
from services.errors import ValidationFailed
from services.money import format_money
from services.permissions import refund_caps, role_label


class ConnectAgentState(SessionState):
    client_name: str = ""
    redirect_uri: str = ""
    request_state: str = ""
    code_challenge: str = ""
    code_challenge_method: str = ""
    client_id: str = ""  # an MCP client registered by OAuth ("" for `agent-billy login`)
    resource: str = ""
    problem: str = ""  # the request cannot be approved at all (not from a local CLI)
    message: str = ""  # the last decision was refused (e.g. a cap above the role's)
    who: str = ""
    cap_hint: str = ""
    budget_hint: str = ""
    listener: str = ""  # "127.0.0.1:53682": where the code will go
    groups: list[list[str]] = []  # [value, words]: the kinds of change the role may make

    @rx.event
    @guarded
    async def load(self):
        params = self.router.url.query_parameters
        values = [str(params.get(k, ""))[:300] for k in agent_login.REQUEST_FIELDS]
        self.message = str(flash.unpack(params.get("flash")).get("message", ""))
        actor = await self.actor()
        self.who = f"{actor.email} ({role_label(actor)})"
        self.groups = [[g, agent_tokens.GROUP_WORDS[g]] for g in agent_tokens.groups_for(actor)]
        caps = refund_caps(actor)
        if caps is None:
            self.cap_hint = "Your role has no refund cap; leave empty for none, or set one for this agent."
        elif caps:
            limits = ", ".join(format_money(v, c) for c, v in sorted(caps.items()))
            self.cap_hint = f"At most your role's cap ({limits} per charge). Leave empty to use it."
        else:
            self.cap_hint = "Your role cannot refund, so neither can this agent."
        self.budget_hint = _budget_hint(
            await off_loop(agent_tokens.budget_ceiling, actor), can_refund=bool(caps) or caps is None
        )
        try:
            request = await off_loop(agent_login.check_request, *values)
        except ValidationFailed as exc:
            self.problem = exc.message
            self.client_name = self.redirect_uri = self.request_state = self.code_challenge = ""
            self.client_id = self.resource = ""
            return
        self.problem = ""
        self.client_name, self.redirect_uri = request.client_name, request.redirect_uri
        self.request_state, self.code_challenge = request.state, request.code_challenge
        self.code_challenge_method = "S256"
        self.client_id, self.resource = request.client_id, request.resource
        self.listener = request.redirect_uri.split("/")[2]


def _budget_hint(ceiling: dict[str, int | None] | None, can_refund: bool) -> str:
    if not can_refund:
        return "Your role cannot refund, so neither can this agent."
    bounded = {c: v for c, v in (ceiling or {}).items() if v is not None}
    if not bounded:
        return "You have no daily refund budget; leave empty for none, or set one for this agent."
    limits = ", ".join(format_money(v, c) for c, v in sorted(bounded.items()))
    return (
        f"At most your own ({limits} in any 24 hours). Leave empty to share yours; "
        "either way its refunds count against yours too."
    )
