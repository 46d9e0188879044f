"""Dashboard home: sync progress while the first sync runs, then the headline numbers."""

from __future__ import annotations

import asyncio

import reflex as rx

from billy_app.state.session import SessionState
from billy_app.state.sync_progress import SyncProgressState
from billy_app.state.view import charge_view
from services import billing, organization
from services.errors import BillyError, NotAuthenticated
from services.money import format_money


class DashboardState(SyncProgressState):
    customers: int = 0
    charges: int = 0
    failed_charges: int = 0
    refunds: int = 0
    refunded_total: str = ""
    recent: list[dict[str, str]] = []

    async def _refresh(self) -> None:
        await super()._refresh()
        summary = await asyncio.to_thread(billing.dashboard_summary, await self.actor())
        self.customers, self.charges = summary.customers, summary.charges
        self.failed_charges, self.refunds = summary.failed_charges, summary.refunds
        self.refunded_total = format_money(summary.refunded_total, "usd")
        self.recent = [charge_view(c) for c in summary.recent_charges]

    @rx.event
    async def load(self):
        try:
            await self.actor()
        except NotAuthenticated:
            return SessionState.recover
        if not await asyncio.to_thread(organization.onboarding_done):
            return rx.redirect("/onboarding", replace=True)
        try:
            await self._refresh()
        except BillyError as exc:
            self.error = exc.message
        return DashboardState.watch
