"""MCP clients registered by OAuth 2.0 Dynamic Client Registration (RFC 7591).

The MCP specification's authorization for remote servers lets a client that connects to `/mcp`
by URL register itself, then send the member to Billy's approval page. Registration is open (as
the specification expects), so it is bounded: a capped number of clients, a capped size, and
redirect addresses that are HTTPS or this machine's loopback only. A registration grants nothing
by itself; only a member's approval on /connect-agent makes a token.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import col, func, select

from services.db import session_scope
from services.errors import ValidationFailed
from services.health import AddressLimit
from services.models import OAuthClient

MAX_CLIENTS = 500
MAX_INFO_BYTES = 8_000
REGISTRATIONS_PER_ADDRESS = "20/hour"  # an MCP client registers once; a flood from one address stops here
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def acceptable_redirect(uri: str) -> bool:
    """HTTPS anywhere, or plain HTTP to this machine's loopback (RFC 8252 native apps)."""
    parts = urlsplit(uri)
    if parts.fragment or "@" in parts.netloc or not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)


# One per process (tests swap it for one with their own limit).
registration_limit = AddressLimit(REGISTRATIONS_PER_ADDRESS, "oauth-register")


def register(client_id: str, client_name: str, info: dict[str, Any], address: str = "") -> None:
    """Keep a registration (open, as the MCP specification expects, so bounded: per address, in
    size, in number, and to HTTPS or loopback redirects)."""
    if address and (wait := registration_limit.retry_after(address)) is not None:
        raise ValidationFailed(f"Too many agent registrations from this address; try again in {wait} seconds.")
    uris = [str(u) for u in info.get("redirect_uris") or []]
    if not uris or not all(acceptable_redirect(u) for u in uris):
        raise ValidationFailed("Redirect addresses must be HTTPS, or HTTP to 127.0.0.1 / localhost.")
    if len(json.dumps(info, default=str)) > MAX_INFO_BYTES:
        raise ValidationFailed("This registration is too large.")
    with session_scope() as session:
        count = session.exec(select(func.count()).select_from(OAuthClient)).one()
        if count >= MAX_CLIENTS:
            raise ValidationFailed("This Billy has too many registered agent clients; ask its Owner.")
        session.add(OAuthClient(client_id=client_id[:64], client_name=client_name[:80], info=info))


def get(client_id: str) -> dict[str, Any] | None:
    with session_scope() as session:
        row = session.exec(select(OAuthClient).where(col(OAuthClient.client_id) == client_id[:64])).first()
        return dict(row.info) if row else None
