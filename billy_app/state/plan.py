"""Settings → Plan: the Owner chooses Billy's plan (payment arrives with the control plane)."""

from __future__ import annotations

from typing import ClassVar

import reflex as rx

from billy_app.state.session import SessionState, guarded, off_loop
from services import organization
from services.permissions import control


class PlanState(SessionState):
    problem_var: ClassVar[str] = "message"

    plan: str = ""
    plan_label: str = ""
    trial_ends: str = ""
    trial_over: bool = False
    plan_chosen: bool = False  # else the organisation is still on its trial's plan
    can_choose: bool = False
    message: str = ""
    message_kind: str = "info"

    async def _load(self) -> None:
        actor = await self.actor()
        org = await off_loop(organization.get_organization)
        if org is None:
            return
        self.plan, self.plan_label = org.plan, org.plan_label
        self.trial_ends = org.trial_ends_at.strftime("%d %B %Y")
        self.trial_over = actor.trial_ended_on is not None
        self.plan_chosen = org.plan_chosen
        self.can_choose = control(actor, "billy.choose_plan").usable

    @rx.event
    @guarded
    async def load(self):
        self.message = ""
        await self._load()

    @rx.event
    @guarded
    async def choose(self, plan: str):
        summary = await self._call(organization.choose_plan, plan)
        await self._load()
        self.message, self.message_kind = f"You are on the {summary.plan_label} plan.", "info"
