"""Who is calling through a programmatic door: a bearer agent token or a 1-hour access JWT.

The REST API and the MCP endpoint both build their Actor here, from the `Authorization` header
only (never from a cookie: a browser's ambient credentials must not reach these doors, so they
need no CSRF defence). An agent token carries its scope into the Actor; a JWT acts as the member.
"""

from __future__ import annotations

from collections.abc import Mapping

from services import agent_tokens, identity
from services.errors import NotAuthenticated
from services.permissions import Actor, Source

BEARER = "bearer "


def bearer_token(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization", "")
    if not value.lower().startswith(BEARER):
        raise NotAuthenticated(
            "Send `Authorization: Bearer <token>`: an agent token from Settings → Agents (or `agent-billy "
            "login`), or an access token."
        )
    return value[len(BEARER) :].strip()


def actor_from_token(token: str, source: Source, client_address: str = "", user_agent: str = "") -> Actor:
    """The Actor behind a bearer credential; `NotAuthenticated` when it is not (or no longer) good."""
    if token.startswith(agent_tokens.SECRET_PREFIX):
        return agent_tokens.actor_for_token(token, source, client_address, user_agent)
    return identity.verify_access(token, source, client_address, user_agent)
