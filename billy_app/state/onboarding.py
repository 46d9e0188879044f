"""The onboarding wizard: 1 account (signup), 2 connect Stripe, 3 invite the team (later).

Step 2's key is posted natively to `/api/onboarding/stripe-key`, and in sandbox mode the
demo key is connected server-side by a post to `/api/onboarding/demo-key`; this state only
shows the result they send back (a signed flash) and the permission checklist. No key, the
sandbox's demo key included, is ever a state var: state is sent to the browser."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import reflex as rx

from billy_app.api import flash
from billy_app.state.session import SessionState, guarded, off_loop
from services import organization, stripe_keys
from services.config import get_settings
from services.permissions import control


class OnboardingState(SessionState):
    problem_var: ClassVar[str] = "message"

    step: int = 2
    trial_ends: str = ""
    plan_label: str = ""
    message: str = ""
    message_kind: str = "error"
    error_code: str = ""
    checklist: list[dict[str, str]] = []
    connected_hint: str = ""
    connected_mode: str = ""
    demo_key_offered: bool = False  # sandbox mode, the Owner, nothing connected yet
    is_owner: bool = False

    @rx.event
    @guarded
    async def load(self):
        actor = await self.actor()
        self.is_owner = control(actor, "stripe.connect").shown
        org, connection = await asyncio.gather(
            off_loop(organization.get_organization), off_loop(stripe_keys.connection)
        )
        if org:
            self.plan_label, self.org_name = org.plan_label, org.name
            self.trial_ends = org.trial_ends_at.strftime("%d %B %Y")
        self.user_email = actor.email
        data = flash.unpack(self.router.url.query_parameters.get("flash"))
        self.message = str(data.get("message", ""))
        self.message_kind = str(data.get("kind", "error"))
        self.error_code = str(data.get("code", ""))
        granted = data.get("granted") if isinstance(data.get("granted"), dict) else None
        if connection:
            self.connected_hint, self.connected_mode = connection.key_hint, connection.mode
            granted = granted or connection.permissions
        self.checklist = [{k: str(v) for k, v in row.items()} for row in stripe_keys.checklist(granted)]
        self.step = 3 if connection and self.error_code in ("", "connected") else 2
        settings = get_settings()
        self.demo_key_offered = (
            settings.sandbox and bool(settings.sandbox_demo_key) and self.is_owner and connection is None
        )
        return None

    @rx.event
    def change_key(self):
        """Go back to step 2 to paste another key."""
        self.step, self.message, self.error_code = 2, "", ""

    @rx.event
    @guarded
    async def finish(self):
        """Step 3's "invite later": mark set-up done and open the dashboard."""
        await self._call(stripe_keys.finish_onboarding)
        return rx.redirect("/dashboard")
