"""HTTP routes of `agent-billy login` (see services/agent_login.py for the flow).

- POST /api/agent/connect: the approval page's form (a signed-in member, CSRF-checked, a native
  form post so the decision never travels as a Reflex event); answers with a redirect to the CLI's
  loopback listener carrying a one-time code, or back to the page with what went wrong.
- POST /api/agent/token: the CLI exchanges the code and its PKCE verifier for the token (JSON, no
  cookies: nothing ambient is used, so nothing to forge across sites).
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from billy_app.api import flash
from billy_app.api.http import client_address, request_actor, same_origin, user_agent
from billy_app.blocking import in_thread
from services import agent_login, agent_tokens
from services.errors import BillyError, NotAuthenticated, ValidationFailed
from services.permissions import Actor, role_label

NO_STORE = {"Cache-Control": "no-store"}
REQUEST_FIELDS = agent_login.REQUEST_FIELDS


def _page(form: dict[str, str], message: str = "") -> RedirectResponse:
    """Back to the approval page with the same request (and a message, signed)."""
    params = {k: form.get(k, "") for k in REQUEST_FIELDS if form.get(k)}
    if message:
        params["flash"] = flash.pack(message)
    return RedirectResponse("/connect-agent?" + urlencode(params), status_code=303, headers=NO_STORE)


def _scope(actor: Actor, form: dict[str, str], groups: list[str]) -> agent_tokens.ScopeRequest:
    days = form.get("expires_in_days", "90")
    return agent_tokens.ScopeRequest(
        read_only=form.get("access") == "read_only",
        refund_caps=agent_tokens.parse_form_amount(form.get("refund_cap", "")),
        daily_budgets=agent_tokens.parse_form_amount(form.get("daily_budget", "")),
        actions=agent_tokens.actions_for_groups(actor, groups) if form.get("access") == "some" else None,
        expires_in_days=None if days == "never" else int(days) if days.isdigit() else -1,
    )


def _approve(actor: Actor, form: dict[str, str], groups: list[str]) -> str:
    request = agent_login.check_request(*(form.get(k) for k in REQUEST_FIELDS))
    if form.get("decision") != "approve":
        return agent_login.deny(request)
    if form.get("access") == "some" and not groups:
        raise ValidationFailed("Tick at least one kind of change, or choose “What my role allows”.")
    return agent_login.approve(actor, request, _scope(actor, form, groups))


async def connect_agent(request: Request) -> Response:
    if not same_origin(request):
        return JSONResponse({"error": {"code": "cross_site", "message": "Sent from another site."}}, status_code=403)
    data = await request.form()
    form = {k: v for k, v in data.items() if isinstance(v, str)}
    groups = [g for g in data.getlist("group") if isinstance(g, str)][: len(agent_tokens.ACTION_GROUPS)]
    try:
        actor = await in_thread(request_actor, request)
    except NotAuthenticated:
        here = "/connect-agent?" + urlencode({k: form[k] for k in REQUEST_FIELDS if form.get(k)})
        return RedirectResponse("/login?" + urlencode({"next": here}), status_code=303)
    try:
        target = await in_thread(_approve, actor, form, groups)
    except BillyError as exc:
        return _page(form, exc.message)
    return RedirectResponse(target, status_code=303, headers=NO_STORE)


def _error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=NO_STORE)


async def exchange_code(request: Request) -> Response:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return _error("invalid_request", "Send JSON: code, code_verifier and redirect_uri.", 400)
    if not isinstance(body, dict):
        return _error("invalid_request", "Send JSON: code, code_verifier and redirect_uri.", 400)
    try:
        issued, actor = await in_thread(
            agent_login.exchange,
            body.get("code"),
            body.get("code_verifier"),
            body.get("redirect_uri"),
            client_address(request),
            user_agent(request),
        )
    except NotAuthenticated as exc:
        return _error(exc.code, exc.message, 401)
    except BillyError as exc:
        return _error(exc.code, exc.message, 400)
    return JSONResponse(
        {
            "token": issued.secret,
            "token_id": issued.id,
            "client_name": issued.client_name,
            "member_email": actor.email,
            "role_label": role_label(actor),
            "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
        },
        headers=NO_STORE,
    )
