"""The signed-in member, re-derived from the httpOnly session cookie on every event.

The websocket handshake carries the browser's cookies; Reflex keeps them server-side
(`router.headers.cookie` is never sent to the frontend). Nothing here trusts a value
the client could have sent or steered: each handler asks `actor()` afresh, which
re-reads the session from the store, so a revoked session stops working at once.
"""

from __future__ import annotations

import asyncio
from http.cookies import CookieError, SimpleCookie

import reflex as rx

from services import identity, organization
from services.errors import NotAuthenticated
from services.permissions import ROLES, Actor, Source


def session_token_from(cookie_header: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header or "")
    except CookieError:
        return None
    morsel = jar.get(identity.SESSION_COOKIE)
    return morsel.value if morsel else None


class SessionState(rx.State):
    """Display data about the caller (not secrets) and the one way handlers learn who calls."""

    user_email: str = ""
    user_role_label: str = ""
    org_name: str = ""
    signed_in: bool = False

    def _resolve_actor(self) -> Actor:
        return identity.resolve_session(
            session_token_from(self.router.headers.cookie),
            Source.DASHBOARD,
            self.router.session.client_ip,
            self.router.headers.user_agent,
        )

    async def actor(self) -> Actor:
        """The verified caller; raises `NotAuthenticated` when the session is gone."""
        return await asyncio.to_thread(self._resolve_actor)

    @rx.event
    async def require_member(self):
        """on_load of every signed-in page: send strangers to the sign-in page."""
        try:
            actor = await self.actor()
        except NotAuthenticated:
            self.signed_in = False
            return rx.redirect(f"/login?next={self.router.url.path or '/'}", replace=True)
        org = await asyncio.to_thread(organization.get_organization)
        self.user_email = actor.email
        self.user_role_label = ROLES[actor.role].label if actor.role in ROLES else actor.role
        self.org_name = org.name if org else ""
        self.signed_in = True
        return None
