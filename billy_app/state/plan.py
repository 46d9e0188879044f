"""Settings → Plan: which plan the organisation is on, and where the Owner changes it (here on a
first-run-signup instance, the control plane's account page on a provisioned one)."""

from __future__ import annotations

from typing import ClassVar

import reflex as rx

from billy_app.state.session import SessionState, guarded, off_loop
from services import organization
from services.config import get_settings
from services.permissions import control
from services.plans import trial_ended_message


class PlanState(SessionState):
    problem_var: ClassVar[str] = "message"

    plan: str = ""
    plan_label: str = ""
    trial_ends: str = ""
    trial_notice: str = ""  # why Billy is read-only and where to go, once the trial has ended
    plan_chosen: bool = False  # else the organisation is still on its trial's plan
    account_url: str = ""  # the control plane's account page: the plan is managed there, not here
    can_manage: bool = False  # the role may change the plan (the Owner), wherever that is done
    can_choose: bool = False  # ...and may do it on this page now
    message: str = ""
    message_kind: str = "info"

    async def _load(self) -> None:
        actor = await self.actor()
        org = await off_loop(organization.get_organization)
        if org is None:
            return
        self.plan, self.plan_label = org.plan, org.plan_label
        self.trial_ends = org.trial_ends_at.strftime("%d %B %Y")
        self.trial_notice = trial_ended_message(actor.trial_ended_on) if actor.trial_ended_on else ""
        self.plan_chosen = org.plan_chosen
        self.account_url = get_settings().account_url
        choosing = control(actor, "billy.choose_plan")
        self.can_manage = choosing.shown
        # The buttons only where the service would take them (it refuses on a provisioned instance).
        self.can_choose = choosing.usable and not self.account_url

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
