"""The signed-in member, re-derived on every event from the httpOnly access cookie.

The websocket handshake carries the browser's cookies; Reflex keeps them server-side
(`router.headers.cookie` is never sent to the page). Each handler asks `actor()` afresh:
the JWT's signature and expiry, then the store's word on the member and the session.

Staying signed in all day: a hidden timer ticks every minute; when the access token has
less than ten minutes left, the page calls the refresh route over HTTP (which sets new
cookies), and the server then closes this websocket so the client's next event reopens
it with a handshake that carries the new cookie. No token is ever in state or in script.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from http.cookies import CookieError, SimpleCookie

import reflex as rx

from services import identity, organization
from services.errors import NotAuthenticated
from services.models import utcnow
from services.permissions import Actor, Source, can, role_label


def _refresh_ahead() -> timedelta:
    """Refresh with 10 minutes to spare (or half the lifetime, for short test lifetimes)."""
    return min(timedelta(minutes=10), identity.access_ttl() / 2)


def _tick_ms() -> int:
    """Every minute, or often enough to catch a short lifetime's refresh window."""
    return int(min(timedelta(minutes=1), identity.access_ttl() / 4).total_seconds() * 1000)


# Refresh once across tabs (Web Locks), retry once if another tab spent the token first.
REFRESH_SCRIPT = """
(async () => {
  const attempt = () => fetch('/api/auth/refresh', {method: 'POST', credentials: 'same-origin'}).then(r => r.ok);
  const run = async () => (await attempt()) || (await new Promise(r => setTimeout(r, 1000)), await attempt());
  return navigator.locks ? navigator.locks.request('billy-refresh', run) : run();
})()
"""


def cookie_value(cookie_header: str, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header or "")
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


class SessionState(rx.State):
    """Display data about the caller (not secrets) and the one way handlers learn who calls."""

    user_email: str = ""
    user_role_label: str = ""
    org_name: str = ""
    signed_in: bool = False
    is_owner: bool = False
    read_only_notice: str = ""  # set while an ended trial keeps Billy read-only
    # Member, sign-in and role that filled this tab's state (`billy_app.event_gate` keeps it true).
    _bound_session: str = ""

    def _cookie(self, name: str) -> str | None:
        return cookie_value(self.router.headers.cookie, name)

    def _resolve_actor(self) -> Actor:
        return identity.verify_access(
            self._cookie(identity.ACCESS_COOKIE),
            Source.DASHBOARD,
            self.router.session.client_ip,
            self.router.headers.user_agent,
        )

    async def actor(self) -> Actor:
        """The verified caller; raises `NotAuthenticated` when the session is gone or stale."""
        return await asyncio.to_thread(self._resolve_actor)

    @rx.event
    async def require_member(self):
        """on_load of every signed-in page: fill the header, or recover / send to sign-in."""
        try:
            actor = await self.actor()
        except NotAuthenticated:
            self.signed_in = False
            return SessionState.recover
        org = await asyncio.to_thread(organization.get_organization)
        self.user_email = actor.email
        self.user_role_label = role_label(actor)
        self.is_owner = can(actor, "team.view")
        self.read_only_notice = (
            f"Your free trial ended on {actor.trial_ended_on:%d %B %Y}: Billy is read-only until the Owner "
            "chooses a plan in Settings → Plan."
            if actor.trial_ended_on
            else ""
        )
        self.org_name = org.name if org else ""
        self.signed_in = True
        return None

    @rx.event
    def recover(self):
        """The access token is missing or stale: try the refresh cookie, else sign in."""
        return rx.call_script(REFRESH_SCRIPT, callback=SessionState.after_recovery)

    @rx.event
    def after_recovery(self, ok: bool):
        if ok is True:
            return rx.call_script("window.location.reload()")
        path = self.router.url.path or "/"
        return rx.redirect(f"/login?next={path}", replace=True)

    @rx.event
    def keep_alive(self, _tick: str = ""):
        """Every minute: refresh ahead of expiry so a long day never meets a sign-in page."""
        expires = identity.access_expires_at(self._cookie(identity.ACCESS_COOKIE))
        if expires is None or expires - utcnow() > _refresh_ahead():
            return None
        return rx.call_script(REFRESH_SCRIPT, callback=SessionState.after_refresh)

    @rx.event
    async def after_refresh(self, ok: bool):
        if ok is not True:
            return rx.redirect(f"/login?next={self.router.url.path or '/'}", replace=True)
        # The new cookie reaches this server only with a new handshake: close this socket;
        # the client's next event (the next tick at the latest) opens a fresh one.
        from reflex.utils import prerequisites

        namespace = prerequisites.get_and_validate_app().app.event_namespace
        if namespace is not None:
            asyncio.get_running_loop().call_later(
                0.2, lambda: asyncio.ensure_future(namespace.disconnect(self.router.session.session_id))
            )
        return None


def keep_alive_timer() -> rx.Component:
    """Invisible: fires `keep_alive` every minute on signed-in pages."""
    return rx.moment(interval=_tick_ms(), on_change=SessionState.keep_alive, display="none")
