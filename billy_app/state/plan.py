"""Settings → Plan: the Owner chooses Billy's plan (payment arrives with the control plane)."""

from __future__ import annotations

import asyncio

import reflex as rx

from billy_app.state.session import SessionState
from services import organization
from services.errors import BillyError, NotAuthenticated
from services.permissions import can


class PlanState(SessionState):
    plan: str = ""
    plan_label: str = ""
    trial_ends: str = ""
    trial_over: bool = False
    can_choose: bool = False
    message: str = ""
    message_kind: str = "info"

    async def _load(self) -> None:
        actor = await self.actor()
        org = await asyncio.to_thread(organization.get_organization)
        if org is None:
            return
        self.plan, self.plan_label = org.plan, org.plan_label
        self.trial_ends = org.trial_ends_at.strftime("%d %B %Y")
        self.trial_over = actor.trial_ended_on is not None
        self.can_choose = can(actor, "billy.choose_plan")

    @rx.event
    async def load(self):
        self.message = ""
        try:
            await self._load()
        except NotAuthenticated:
            return SessionState.recover
        return None

    @rx.event
    async def choose(self, plan: str):
        try:
            summary = await asyncio.to_thread(organization.choose_plan, await self.actor(), str(plan))
            await self._load()
        except NotAuthenticated:
            return SessionState.recover
        except BillyError as exc:
            self.message, self.message_kind = exc.message, "error"
            return None
        self.message, self.message_kind = f"You are on the {summary.plan_label} plan.", "info"
        return None
