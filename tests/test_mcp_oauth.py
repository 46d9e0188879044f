"""Remote MCP clients connect by URL with OAuth 2.1 + PKCE (issue 13), run by the `mcp` SDK's own
OAuth client against Billy served on a real port: discovery (protected-resource and
authorization-server metadata), dynamic client registration, /authorize sending the member to
Billy's approval page, the member's approval (the form post the page makes), the code exchange at
/token, then tool calls with the token it got. The token is an ordinary agent token: listed,
scoped as approved, revocable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from sqlmodel import select
from starlette.applications import Starlette
from starlette.routing import Mount

from billy_app.api.routes import build_api
from billy_app.mcp.server import McpEndpoint
from controlplane.local_http import local_http
from services import agent_tokens, identity, oauth_clients
from services.config import get_settings
from services.db import session_scope
from services.health import AddressLimit
from services.models import OAuthClient
from services.permissions import Actor
from tests.conftest import member_actor
from tests.mcp_helpers import data, serve_app

CALLBACK = "http://127.0.0.1:33418/oauth/callback"  # the client's own listener (never reached here)


class MemoryStorage:
    """The SDK's `TokenStorage`, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@pytest.fixture
def billy(any_store) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Billy's HTTP routes with the MCP endpoint and its authorization server in front, on a port."""

    def make(base: str) -> Starlette:
        endpoint = McpEndpoint(base)  # as billy_app.billy_app wires it: in front, with its lifespan
        return Starlette(
            routes=[Mount("", app=endpoint.transformer(build_api()))], lifespan=lambda _: endpoint.lifespan()
        )

    with serve_app(make) as base:
        yield base


class Member:
    """The member at the browser: signed in, approving on Billy's page (its form post)."""

    def __init__(self, base: str, actor: Actor, **choices: str) -> None:
        self.base, self.choices, self.pages = base, choices, []
        self.cookie = identity.start_session(actor.user_id or 0, "127.0.0.1", "pytest").access
        self.code: AuthorizationCodeResult | None = None

    async def open(self, authorization_url: str) -> None:
        """The SDK's redirect handler: where a browser would go."""
        async with httpx2.AsyncClient(follow_redirects=False) as web:
            to_page = await web.get(authorization_url)
        assert to_page.status_code in (302, 303, 307), to_page.text
        page = to_page.headers["location"]
        self.pages.append(page)
        assert page.startswith(self.base + "/connect-agent?")  # Billy's own page, signed in as usual
        request = {k: v[0] for k, v in parse_qs(urlsplit(page).query).items()}
        form = {**request, "decision": "approve", "access": "role", "expires_in_days": "30", **self.choices}
        origin = get_settings().public_url.rstrip("/")
        async with httpx2.AsyncClient(follow_redirects=False, cookies={identity.ACCESS_COOKIE: self.cookie}) as web:
            approved = await web.post(f"{self.base}/api/agent/connect", data=form, headers={"origin": origin})
        assert approved.status_code == 303, approved.text
        back = approved.headers["location"]
        assert back.startswith(CALLBACK + "?"), back
        query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
        self.code = AuthorizationCodeResult(code=query["code"], state=query.get("state"))

    async def callback(self) -> AuthorizationCodeResult:
        """The SDK's callback handler: what the client's listener would have received."""
        assert self.code is not None
        return self.code


def _oauth(base: str, member: Member, storage: MemoryStorage) -> OAuthClientProvider:
    metadata = OAuthClientMetadata(
        client_name="Remote agent",
        redirect_uris=[CALLBACK],  # type: ignore[list-item]
        grant_types=["authorization_code"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    return OAuthClientProvider(f"{base}/mcp", metadata, storage, member.open, member.callback)


async def _whoami(base: str, auth: OAuthClientProvider) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(auth=auth, timeout=30) as http,
        streamable_http_client(f"{base}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return data(await session.call_tool("whoami", {}))


def test_an_mcp_client_connects_by_url_and_the_member_approves_a_scoped_token(billy: str, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", "clerk@example.com")
    member, storage = Member(billy, clerk, refund_cap="25.00"), MemoryStorage()

    who = anyio.run(_whoami, billy, _oauth(billy, member, storage))
    assert who["email"] == "clerk@example.com"
    assert storage.client is not None and storage.client.client_id  # registered itself
    assert storage.tokens is not None and storage.tokens.access_token.startswith("billy_at_")
    assert len(member.pages) == 1  # one approval

    (token,) = agent_tokens.list_tokens(clerk)
    assert token.client_name == "Remote agent" and "refunds ≤ $25.00" in token.scope_words
    agent_tokens.revoke_token(clerk, token.id)
    answer = local_http().post(
        f"{billy}/mcp",
        headers={"Authorization": f"Bearer {storage.tokens.access_token}", "Accept": "application/json"},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert answer.status_code == 401 and "revoked" in answer.text


def test_the_server_advertises_what_an_mcp_client_needs_to_start(billy: str) -> None:
    resource = local_http().get(f"{billy}/.well-known/oauth-protected-resource/mcp").json()
    assert (resource["resource"] == f"{billy}/mcp" and resource["authorization_servers"] == [f"{billy}/"]) or [billy]
    server = local_http().get(f"{billy}/.well-known/oauth-authorization-server").json()
    assert server["code_challenge_methods_supported"] == ["S256"]
    assert server["registration_endpoint"] == f"{billy}/register"
    refused = local_http().post(
        f"{billy}/register", json={"redirect_uris": ["http://evil.example/cb"], "client_name": "x"}
    )
    assert refused.status_code == 400 and "HTTPS" in refused.text


def test_a_code_for_one_client_cannot_be_spent_by_another(billy: str, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    member, storage = Member(billy, any_store_owner), MemoryStorage()
    anyio.run(_whoami, billy, _oauth(billy, member, storage))
    assert member.code is not None and storage.client is not None
    other = local_http().post(
        f"{billy}/register", json={"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}
    )
    other_id = other.json()["client_id"]
    stolen = local_http().post(
        f"{billy}/token",
        data={
            "grant_type": "authorization_code",
            "code": member.code.code,
            "redirect_uri": CALLBACK,
            "client_id": other_id,
            "code_verifier": "x" * 50,
        },
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"


def test_registrations_are_limited_per_address(billy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registration is open (the MCP specification expects it), so one address cannot fill the
    instance's list of clients: past the limit it is refused, in words, and nothing is kept."""
    monkeypatch.setattr(oauth_clients, "registration_limit", AddressLimit("3/hour", "oauth-register-test"))
    body = {"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", "client_name": "Flood"}
    answers = [local_http().post(f"{billy}/register", json=body) for _ in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 201, 400]
    assert "Too many agent registrations" in answers[-1].text
    with session_scope() as s:
        assert len(s.exec(select(OAuthClient)).all()) == 3


@pytest.mark.parametrize(
    ("public_url", "accepted"),
    [
        ("http://acme.localhost:8000", True),  # a local organisation behind the local provisioner's Caddy
        ("https://acme.agentbilly.ai", True),
        ("http://acme.agentbilly.ai", False),  # plain HTTP anywhere but loopback names stays refused
        ("http://localhost.evil.example", False),
    ],
)
def test_an_instance_at_an_org_localhost_address_is_its_own_oauth_issuer(public_url: str, accepted: bool) -> None:
    """An instance the local provisioner starts at http://{org}.localhost:<port> must start (the SDK
    once refused it and the app died at import), and publish that address as its issuer."""
    from billy_app.mcp.server import build_server

    if not accepted:
        with pytest.raises(ValueError, match="HTTPS"):
            build_server(public_url).streamable_http_app()
        return
    app = build_server(public_url).streamable_http_app()
    from starlette.testclient import TestClient

    with TestClient(app, base_url=public_url) as client:
        metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"].rstrip("/") == public_url
    assert metadata["token_endpoint"] == f"{public_url}/token"
