"""OAuth 2.1 for remote MCP clients (the MCP specification's authorization), on the `mcp` SDK.

The SDK serves the standard endpoints (authorization-server metadata, dynamic client
registration, /authorize, /token, /revoke) and calls this provider. Billy is both the
authorization server and the resource: /authorize sends the member to Billy's own approval page
(/connect-agent, the same page `agent-billy login` uses, signed in as usual); the code made there
is exchanged here for an agent token, so an OAuth-connected client is an agent token like any
other: scoped, listed in Settings → Agents, revocable, audited. The SDK checks PKCE and the
redirect; `services.agent_login` checks the code and spends it once.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    RegistrationError,
    TokenError,
    TokenVerifier,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from billy_app.api.bearer import actor_from_token
from billy_app.blocking import in_thread
from billy_app.mcp import calls
from services import agent_login, agent_tokens, oauth_clients
from services.errors import BillyError, NotAuthenticated
from services.permissions import Source

CODE_LIFETIME = agent_login.CODE_SECONDS


class BillyOAuthProvider:
    """`OAuthAuthorizationServerProvider` over Billy's approval page and agent tokens. Bearer
    tokens are checked by `verifier` (the endpoint's own, which also notes why one was refused)."""

    def __init__(self, verifier: TokenVerifier, public_url: str) -> None:
        self.verifier = verifier
        self.base = public_url.rstrip("/")  # where members open Billy (its approval page)

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        info = await in_thread(oauth_clients.get, client_id)
        return OAuthClientInformationFull.model_validate(info) if info else None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        info = client_info.model_dump(mode="json", exclude_none=True)
        try:
            noted = calls.caller.get()  # the request's client address, noted by the endpoint
            await in_thread(
                oauth_clients.register,
                str(client_info.client_id),
                client_info.client_name or "",
                info,
                noted.address if noted else "",
            )
        except BillyError as exc:
            raise RegistrationError("invalid_client_metadata", exc.message) from exc

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        """Where the member approves: Billy's own page, which asks them to sign in first if needed."""
        query = {
            "client_id": str(client.client_id),
            "redirect_uri": str(params.redirect_uri),
            "state": params.state or "",
            "code_challenge": params.code_challenge,
            "code_challenge_method": "S256",
            "resource": params.resource or "",
        }
        try:
            await in_thread(
                agent_login.check_request,
                "",
                query["redirect_uri"],
                query["state"],
                query["code_challenge"],
                "S256",
                query["client_id"],
                query["resource"],
            )
        except BillyError as exc:
            raise AuthorizeError("invalid_request", exc.message) from exc
        return f"{self.base}/connect-agent?" + urlencode({k: v for k, v in query.items() if v})

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        try:
            payload = await in_thread(agent_login.read_code, authorization_code)
        except BillyError:
            return None
        if payload.get("cl") != client.client_id:
            return None
        return AuthorizationCode(
            code=authorization_code,
            scopes=[],
            expires_at=time.time() + CODE_LIFETIME,  # the signature's own age check is the real limit
            client_id=str(client.client_id),
            code_challenge=str(payload.get("c")),
            redirect_uri=str(payload.get("r")),
            redirect_uri_provided_explicitly=True,
            resource=payload.get("res") or None,
            subject=str(payload.get("m")),
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        try:
            payload = await in_thread(agent_login.read_code, authorization_code.code)
            issued, _ = await in_thread(agent_login.redeem_code, payload)
        except BillyError as exc:
            raise TokenError("invalid_grant", exc.message) from exc
        expires_in = int(issued.expires_at.timestamp() - time.time()) if issued.expires_at else None
        return OAuthToken(access_token=issued.secret, expires_in=expires_in)

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> RefreshToken | None:
        return None  # Billy's agent tokens are long-lived and revocable: no refresh tokens

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        raise TokenError("invalid_grant", "Billy issues no refresh tokens: connect the agent again.")

    async def load_access_token(self, token: str) -> AccessToken | None:
        """Any bearer Billy accepts (agent token or access JWT); the tool call re-reads the member."""
        return await self.verifier.verify_token(token)

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        try:
            actor = await in_thread(actor_from_token, token.token, Source.AGENT)
        except NotAuthenticated:
            return  # already unusable: revocation succeeds (RFC 7009)
        if actor.token_id:
            await in_thread(agent_tokens.revoke_own_token, actor)

    async def exchange_identity_assertion(self, client: OAuthClientInformationFull, params: Any) -> OAuthToken:
        raise TokenError("unsupported_grant_type", "Billy does not accept identity assertions.")
