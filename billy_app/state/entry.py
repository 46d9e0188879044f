"""Signup and sign-in pages: what to show, and where a visitor should go first."""

from __future__ import annotations

import reflex as rx

from billy_app.api import flash
from billy_app.api.http import LINK_COOKIES
from billy_app.state.session import SessionExpired, SessionState, cookie_value, off_loop
from services import organization, team
from services.errors import BillyError
from services.plans import PLANS


class EntryState(rx.State):
    """Form pages are posted natively; this state only renders their messages. Its pages are
    public, so it is not a `SessionState` and not `guarded`: it handles the Billy errors its links
    can meet, and Reflex's `backend_exception_handler` logs anything else under an error id."""

    message: str = ""
    message_kind: str = "error"
    # The address the message was read on: the tab keeps this state from page to page, and one
    # page's message (sign-out's "You are signed out.") must not stand on the next one while it loads.
    message_path: str = ""
    org_name: str = ""
    plan: str = "pro"
    email: str = ""
    name: str = ""
    next_path: str = "/"
    # What an emailed link opened (never the link's token: that stays in an httpOnly cookie).
    link_ok: bool = False
    invite_role: str = ""
    invite_inviter: str = ""

    @rx.var
    def page_message(self) -> str:
        """The message of the page on screen, and no other page's."""
        return self.message if self.message_path == self.router.url.path else ""

    def _read_flash(self) -> None:
        params = self.router.url.query_parameters
        self.message_path = self.router.url.path
        data = flash.unpack(params.get("flash"))
        self.message = str(data.get("message", ""))
        self.message_kind = str(data.get("kind", "error"))
        self.org_name = str(data.get("org_name", ""))
        self.plan = str(data.get("plan", "")) if data.get("plan") in PLANS else "pro"
        self.email = str(data.get("email", ""))
        self.name = str(data.get("name", ""))
        nxt = params.get("next", "/")
        self.next_path = nxt if nxt.startswith("/") and not nxt.startswith("//") else "/"

    @rx.event
    async def route_visitor(self):
        """`/`: signup while the instance is new, else sign-in, set-up or the dashboard."""
        if await off_loop(organization.signup_open):
            return rx.redirect("/signup", replace=True)
        session = await self.get_state(SessionState)
        try:
            await session.actor()
        except SessionExpired:
            return rx.redirect("/login", replace=True)
        done = await off_loop(organization.onboarding_done)
        return rx.redirect("/dashboard" if done else "/onboarding", replace=True)

    @rx.event
    async def load_signup(self):
        if not await off_loop(organization.signup_open):
            return rx.redirect("/login", replace=True)
        self._read_flash()
        return None

    @rx.event
    async def load_login(self):
        if await off_loop(organization.signup_open):
            return rx.redirect("/signup", replace=True)
        self._read_flash()
        return None

    def _link_cookie(self, purpose: str) -> str:
        return cookie_value(self.router.headers.cookie, LINK_COOKIES[purpose]) or ""

    @rx.event
    async def load_invite(self):
        """`/invite`: who invited whom, as what; or why the link no longer works."""
        self._read_flash()
        self.link_ok = False
        signed = self._link_cookie("invite")
        if not signed:
            self.message = self.message or "Open the invite link from your email to join your team."
            return
        try:
            details = await off_loop(team.invite_details, signed)
        except BillyError as exc:
            self.message, self.message_kind = exc.message, "error"
            return
        self.link_ok = True
        self.email, self.invite_role, self.invite_inviter = details.email, details.role_label, details.inviter_email
        self.org_name = details.org_name

    @rx.event
    async def load_reset(self):
        self._read_flash()
        signed = self._link_cookie("reset")
        self.link_ok = False
        if not signed:
            self.message = self.message or "Open the reset link from your email to choose a new password."
            return
        try:
            await off_loop(team.reset_link_email, signed)
        except BillyError as exc:
            self.message, self.message_kind = exc.message, "error"
            return
        self.link_ok = True

    @rx.event
    def load_forgot(self):
        self._read_flash()
