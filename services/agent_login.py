"""`agent-billy login`: a member connects an agent from the browser, and the token reaches the CLI
over a loopback redirect (OAuth 2.0 for native apps, RFC 8252, with PKCE, RFC 7636).

1. The CLI opens `/connect-agent?client_name&redirect_uri&state&code_challenge&code_challenge_method`
   (`check_request` refuses anything but a loopback `http://127.0.0.1|localhost:<port>/…` redirect
   and an S256 challenge).
2. The signed-in member chooses a scope (never above their role) and approves: `approve` returns
   the redirect carrying a short-lived signed code. The code holds no secret, only what the token
   will be; it is useless without the CLI's PKCE verifier.
3. The CLI posts the code, its verifier and the same redirect to `/api/agent/token`: `exchange`
   checks them, spends the code (single use: its id goes into the confirmations ledger) and issues
   the token as that member, read fresh from the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from services import agent_tokens, identity, oauth_clients, signing
from services.agent_tokens import IssuedToken, ScopeRequest
from services.db import insert_on_conflict, session_scope
from services.errors import BillyError, NotAuthenticated, ValidationFailed
from services.models import AgentConfirmation, Member, table_of, utcnow
from services.permissions import Actor, Source, authorize

CODE_PURPOSE = "agent-login-code"
CODE_SECONDS = 120
_CHALLENGE = re.compile(r"^[A-Za-z0-9_\-]{43,128}$")
_STATE = re.compile(r"^[A-Za-z0-9_\-.~]{8,200}$")
# What a connect request carries, in `check_request`'s order (the page, its form post and the
# sign-in detour all pass these on); `client_id` and `resource` for OAuth-registered clients.
REQUEST_FIELDS = (
    "client_name",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "client_id",
    "resource",
)


class LoginRefused(BillyError):
    code = "invalid_grant"


@dataclass(frozen=True)
class ConnectRequest:
    """A checked request to connect an agent, as the approval page shows it. `client_id`: an MCP
    client registered by OAuth (its redirect must be one it registered); "": `agent-billy login`."""

    client_name: str
    redirect_uri: str
    state: str
    code_challenge: str
    client_id: str = ""
    resource: str = ""


def check_request(
    client_name: object,
    redirect_uri: object,
    state: object,
    code_challenge: object,
    method: object,
    client_id: object = "",
    resource: object = "",
) -> ConnectRequest:
    """Refuse, in words, any request the approval page must not act on: a code goes only to the
    CLI's own loopback listener, or to an address the registered OAuth client gave at registration."""
    uri = str(redirect_uri or "")
    if client_id:
        return _check_registered(str(client_id), uri, state, code_challenge, method, str(resource or ""))
    parts = urlsplit(uri)
    if parts.scheme != "http" or parts.hostname not in oauth_clients.LOOPBACK or "@" in parts.netloc:
        raise ValidationFailed(
            "This link does not come from `agent-billy login` on your computer (its return address is not "
            "local), so Billy will not connect it. Run `npx agent-billy login` again."
        )
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or parts.fragment or len(uri) > 300:
        raise ValidationFailed("This link's return address is incomplete. Run `npx agent-billy login` again.")
    if str(method or "") != "S256" or not _CHALLENGE.match(str(code_challenge or "")):
        raise ValidationFailed("This link lacks its proof key (PKCE, S256). Run `npx agent-billy login` again.")
    if not _STATE.match(str(state or "")):
        raise ValidationFailed("This link lacks its state. Run `npx agent-billy login` again.")
    name = agent_tokens.clean_client_name(client_name or "agent-billy")
    return ConnectRequest(name, uri, str(state), str(code_challenge))


def _check_registered(
    client_id: str, uri: str, state: object, code_challenge: object, method: object, resource: str
) -> ConnectRequest:
    info = oauth_clients.get(client_id)
    if info is None:
        raise ValidationFailed("This agent is not registered with Billy. Connect it again from the agent.")
    if uri not in [str(u) for u in info.get("redirect_uris") or []]:
        raise ValidationFailed("This agent asked to be answered at an address it did not register. Connect it again.")
    if str(method or "S256") != "S256" or not _CHALLENGE.match(str(code_challenge or "")):
        raise ValidationFailed("This request lacks its proof key (PKCE, S256). Connect the agent again.")
    if state and not _STATE.match(str(state)):
        raise ValidationFailed("This request's state is not valid. Connect the agent again.")
    name = agent_tokens.clean_client_name(info.get("client_name") or "MCP client")
    return ConnectRequest(name, uri, str(state or ""), str(code_challenge), client_id, resource[:300])


def _back(request: ConnectRequest, **params: str) -> str:
    joiner = "&" if "?" in request.redirect_uri else "?"
    state = {"state": request.state} if request.state else {}
    return request.redirect_uri + joiner + urlencode({**params, **state})


def approve(actor: Actor, request: ConnectRequest, scope: ScopeRequest) -> str:
    """The member approved: where to send the browser (the CLI's listener, with a one-time code)."""
    authorize(actor, "agents.issue")
    if actor.token_id:
        raise ValidationFailed("An agent token cannot connect another agent: sign in to Billy.")
    agent_tokens.check_scope(actor, scope)  # refuse now, on the page, what the exchange would refuse
    code = signing.sign(
        CODE_PURPOSE,
        {
            "m": actor.user_id,
            "n": request.client_name,
            "r": request.redirect_uri,
            "c": request.code_challenge,
            "ro": scope.read_only,
            "cap": scope.refund_caps,
            "db": scope.daily_budgets,
            "a": list(scope.actions) if scope.actions is not None else None,
            "d": scope.expires_in_days,
            "cl": request.client_id,
            "res": request.resource,
            "j": secrets.token_urlsafe(16),
        },
    )
    return _back(request, code=code)


def deny(request: ConnectRequest) -> str:
    return _back(request, error="access_denied")


def _verifier_matches(verifier: str, challenge: str) -> bool:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(expected, challenge)


def read_code(code: object) -> dict[str, Any]:
    """A code's payload, if it is Billy's, unaltered and under two minutes old."""
    payload = signing.unsign(CODE_PURPOSE, code, CODE_SECONDS) if isinstance(code, str) else None
    if payload is None:
        raise LoginRefused(
            "This sign-in code is not valid or took too long (2 minutes). Run `agent-billy login` again."
        )
    return payload


def exchange(
    code: object, verifier: object, redirect_uri: object, client_address: str = "", user_agent: str = ""
) -> tuple[IssuedToken, Actor]:
    """The CLI's code → the member's new token (and who they are), or `LoginRefused` in words."""
    payload = read_code(code)
    if payload.get("cl"):
        raise LoginRefused("This code belongs to a registered agent: it exchanges it at /token.")
    if not isinstance(verifier, str) or not _verifier_matches(verifier, str(payload.get("c"))):
        raise LoginRefused("The proof key does not match this sign-in. Run `agent-billy login` again.")
    if redirect_uri != payload.get("r"):
        raise LoginRefused("This code was given to another listener. Run `agent-billy login` again.")
    return redeem_code(payload, client_address, user_agent)


def redeem_code(payload: dict[str, Any], client_address: str = "", user_agent: str = "") -> tuple[IssuedToken, Actor]:
    """Spend a checked code (once) and issue its token as the approving member, read fresh."""
    now = utcnow()
    with session_scope() as session:
        member = session.get(Member, int(payload.get("m") or 0))
        if member is None or not member.active:
            raise NotAuthenticated("The member who approved this can no longer sign in.")
        ledger = table_of(AgentConfirmation)
        insert = insert_on_conflict(session.get_bind().dialect.name, ledger)
        spent = session.execute(
            insert.values(
                token_hash=signing.digest(f"login:{payload.get('j')}"),
                member_id=member.id,
                agent_token_id="",
                action="agents.login_code",
                params_digest="",
                created_at=now,
                expires_at=now + timedelta(seconds=CODE_SECONDS),
                used_at=now,
            )
            .on_conflict_do_nothing(index_elements=["token_hash"])
            .returning(ledger.c.token_hash)
        ).first()
        actor = identity.member_actor(session, member, Source.API, client_address, user_agent, now=now)
    if spent is None:
        raise LoginRefused("This sign-in code was already used. Run `agent-billy login` again.")
    caps, budgets = payload.get("cap"), payload.get("db")
    actions = payload.get("a")
    scope = ScopeRequest(
        read_only=bool(payload.get("ro")),
        refund_caps={str(k): int(v) for k, v in caps.items()} if isinstance(caps, dict) else None,
        actions=tuple(str(a) for a in actions) if isinstance(actions, list) else None,
        expires_in_days=payload.get("d") if isinstance(payload.get("d"), int) else None,
        daily_budgets={str(k): int(v) for k, v in budgets.items()} if isinstance(budgets, dict) else None,
    )
    issued = agent_tokens.issue_token(actor, str(payload.get("n")), scope)
    return issued, actor
