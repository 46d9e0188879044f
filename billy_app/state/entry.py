"""Signup and sign-in pages: what to show, and where a visitor should go first."""

from __future__ import annotations

import asyncio

import reflex as rx

from billy_app.api import flash
from billy_app.state.session import SessionState
from services import organization
from services.errors import NotAuthenticated
from services.plans import PLANS


class EntryState(rx.State):
    """Form pages are posted natively; this state only renders their messages."""

    message: str = ""
    message_kind: str = "error"
    org_name: str = ""
    plan: str = "pro"
    email: str = ""
    next_path: str = "/"

    def _read_flash(self) -> None:
        params = self.router.url.query_parameters
        data = flash.unpack(params.get("flash"))
        self.message = str(data.get("message", ""))
        self.message_kind = str(data.get("kind", "error"))
        self.org_name = str(data.get("org_name", ""))
        self.plan = str(data.get("plan", "")) if data.get("plan") in PLANS else "pro"
        self.email = str(data.get("email", ""))
        nxt = params.get("next", "/")
        self.next_path = nxt if nxt.startswith("/") and not nxt.startswith("//") else "/"

    @rx.event
    async def route_visitor(self):
        """`/`: signup while the instance is new, else sign-in, set-up or the dashboard."""
        if await asyncio.to_thread(organization.signup_open):
            return rx.redirect("/signup", replace=True)
        session = await self.get_state(SessionState)
        try:
            await session.actor()
        except NotAuthenticated:
            return rx.redirect("/login", replace=True)
        done = await asyncio.to_thread(organization.onboarding_done)
        return rx.redirect("/dashboard" if done else "/onboarding", replace=True)

    @rx.event
    async def load_signup(self):
        if not await asyncio.to_thread(organization.signup_open):
            return rx.redirect("/login", replace=True)
        self._read_flash()
        return None

    @rx.event
    async def load_login(self):
        if await asyncio.to_thread(organization.signup_open):
            return rx.redirect("/signup", replace=True)
        self._read_flash()
        return None
