"""The MCP endpoint: the official SDK's server over Streamable HTTP at `/mcp`, and its OAuth 2.1
authorization server (see oauth.py) for clients that connect by URL.

Every HTTP request must carry `Authorization: Bearer <agent token or access JWT>`. The SDK asks
`BillyTokenVerifier` about it on every request; one that is missing, unknown, revoked or expired
gets the SDK's 401 with `WWW-Authenticate: Bearer … resource_metadata=…`, pointing at the
protected-resource metadata served at `/.well-known/oauth-protected-resource/mcp`. A tool then
builds its Actor again from the same credential (`calls.actor_for_call`), so what it may do is
decided by the service layer at that moment.

`McpEndpoint.transformer` wraps the Reflex backend: `/mcp` and the metadata go to the MCP app,
everything else on. Its session manager runs in the app's lifespan (`McpEndpoint.lifespan`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from mcp.server.auth import routes as sdk_auth_routes
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import AUTHORIZATION_PATH, REGISTRATION_PATH, REVOCATION_PATH, TOKEN_PATH
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billy_app.api.bearer import actor_from_token, bearer_token
from billy_app.mcp import calls, tools, writes
from billy_app.mcp.oauth import BillyOAuthProvider
from services.config import get_settings
from services.errors import NotAuthenticated
from services.permissions import Source

# The SDK announces its session manager starting and stopping at INFO: noise in Billy's start log
# (one line per component). Its warnings and errors still show.
logging.getLogger("mcp.server.streamable_http_manager").setLevel(logging.WARNING)

PATH = "/mcp"
AUTH_ERROR = -32001  # a JSON-RPC server error code: the request's credential was refused
METADATA_PREFIX = "/.well-known/oauth-protected-resource"
# The authorization server's endpoints the SDK serves beside the MCP endpoint (RFC 8414 metadata too).
AUTH_PATHS = frozenset(
    {AUTHORIZATION_PATH, TOKEN_PATH, REGISTRATION_PATH, REVOCATION_PATH, "/.well-known/oauth-authorization-server"}
)
INSTRUCTIONS = """\
Agent Billy gives you one Billy member's access to their team's Stripe account, within that member's
role, refund limit and this token's scope. Reads (customers, charges, failed payments, overdue
invoices, subscriptions, invoices) are safe to call. Every change is two steps: call preview_<write>,
tell the person what it will do (amount, customer, card, whether it is within their limit), and only
after they agree call confirm_<write> with exactly the confirm_arguments the preview returned. A
confirmation token works once, for 5 minutes, for exactly that change. Over the refund limit, offer
preview_refund_request instead. Amounts are in minor units (cents) unless shown as text.
"""


class BillyTokenVerifier:
    """The SDK's `TokenVerifier`: a Billy agent token (`billy_at_…`) or a 1-hour access JWT whose
    member can still sign in. The answer names the token (or member) as the client, so the SDK
    keeps one MCP session to one credential."""

    async def verify_token(self, token: str) -> AccessToken | None:
        noted = calls.caller.get() or calls.Caller()
        try:
            actor = await anyio.to_thread.run_sync(
                actor_from_token, token, Source.AGENT, noted.address, noted.user_agent
            )
        except NotAuthenticated as exc:
            noted.refusal = exc.message
            return None
        return AccessToken(
            token=token,
            client_id=actor.token_id or f"member-{actor.user_id}",
            scopes=[],
            subject=str(actor.user_id),
        )


def transport_security(public_url: str) -> TransportSecuritySettings:
    """Only Billy's own address (and loopback, for a local agent) may be named in Host and Origin."""
    parts = urlsplit(public_url)
    host = parts.netloc
    origin = f"{parts.scheme}://{parts.netloc}"
    loopback = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[host, *loopback],
        allowed_origins=[origin, "http://127.0.0.1:*", "http://localhost:*"],
    )


_sdk_validate_issuer_url = sdk_auth_routes.validate_issuer_url


def _validate_issuer_url(url: Any) -> None:
    """The SDK's issuer check, also letting plain HTTP through on `{org}.localhost`.

    RFC 8414 wants an HTTPS issuer; the SDK allows HTTP on `localhost` and the loopback addresses
    only. Every `*.localhost` name is loopback too (RFC 6761, 6.3), and the local provisioner
    serves each organisation at `http://{org}.localhost:<port>` (controlplane/local.py), so those
    get the same allowance; every other HTTP issuer is still refused by the SDK's own check."""
    if url.scheme == "http" and (url.host or "").endswith(".localhost"):
        url = type(url)("https://" + str(url).removeprefix("http://"))  # the rest of the SDK's checks still apply
    _sdk_validate_issuer_url(url)


sdk_auth_routes.validate_issuer_url = _validate_issuer_url


def build_server(public_url: str) -> MCPServer:
    """The MCP server with every tool: the reads, then each write's preview and confirm."""
    base = public_url.rstrip("/")
    server: MCPServer = MCPServer(
        "agent-billy",
        title="Agent Billy",
        instructions=INSTRUCTIONS,
        website_url=base,
        # Billy is its own authorization server (OAuth 2.1 + PKCE, dynamic client registration):
        # a client connecting by URL sends the member to Billy's approval page (see oauth.py).
        auth_server_provider=BillyOAuthProvider(BillyTokenVerifier(), base),
        auth=AuthSettings(
            issuer_url=base,  # type: ignore[arg-type]
            resource_server_url=f"{base}{PATH}",  # type: ignore[arg-type]
            validate_token_resource=False,  # Billy's tokens are Billy's own; the verifier checks them
            client_registration_options=ClientRegistrationOptions(enabled=True),
            revocation_options=RevocationOptions(enabled=True),
        ),
        middleware=[calls.plain_tool_errors],
        log_level="WARNING",  # Billy's logging is set up already; the SDK need not configure it
    )
    tools.register(server)
    writes.register(server)
    return server


def explained_401(send: Send, noted: calls.Caller) -> Send:
    """The SDK's 401 keeps its status and `WWW-Authenticate` (what an OAuth client acts on), and its
    body becomes a JSON-RPC error saying why in Billy's words ("This agent token was revoked…"),
    which the MCP client shows instead of "Server returned an error response"."""
    refusing = False

    async def sending(message: Message) -> None:
        nonlocal refusing
        if message["type"] == "http.response.start" and message["status"] == 401:
            refusing = True
            body = _auth_error(noted.refusal)
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**message, "headers": headers})
            return
        if refusing and message["type"] == "http.response.body":
            if not message.get("more_body"):
                await send({"type": "http.response.body", "body": _auth_error(noted.refusal)})
            return
        await send(message)

    return sending


def _auth_error(refusal: str) -> bytes:
    why = refusal
    if not why:
        try:
            bearer_token({})
        except NotAuthenticated as exc:
            why = exc.message
    error = {"jsonrpc": "2.0", "id": None, "error": {"code": AUTH_ERROR, "message": why}}
    return json.dumps(error).encode()


class McpEndpoint:
    """The MCP app and how it sits in front of the rest of the backend."""

    def __init__(self, public_url: str | None = None) -> None:
        url = public_url or get_settings().public_url
        self.server = build_server(url)
        # Stateless: each request stands alone (the tools never call back to the client), so any of
        # several workers behind one address can answer any request of a conversation.
        self.app = self.server.streamable_http_app(
            streamable_http_path=PATH, transport_security=transport_security(url), stateless_http=True
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The MCP app alone (tests serve just this), with the caller noted for the verifier."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        noted, reset = calls.remember_caller(Request(scope))
        try:
            await self.app(scope, receive, explained_401(send, noted))
        finally:
            calls.caller.reset(reset)

    def transformer(self, inner: ASGIApp) -> ASGIApp:
        """Reflex's `api_transformer`: `/mcp`, its metadata and the OAuth endpoints here, everything else
        to `inner`."""

        async def route(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "") if scope["type"] == "http" else ""
            if path == PATH or path.startswith((PATH + "/", METADATA_PREFIX)) or path in AUTH_PATHS:
                await self(scope, receive, send)
            else:
                await inner(scope, receive, send)

        return route

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """The SDK's session manager, for as long as the app runs."""
        async with self.server.session_manager.run():
            yield
