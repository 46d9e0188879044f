"""One customer: details and their charges, each refundable from a dialog."""

from __future__ import annotations

import asyncio

import reflex as rx

from billy_app.state.live import LiveState
from billy_app.state.session import SessionState
from billy_app.state.view import charge_view, customer_view
from services import billing
from services.errors import BillyError, NotAuthenticated


class CustomerState(LiveState, SessionState):
    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"customer", "charge", "refund"})

    async def _live_refresh(self) -> None:
        await self.reload()

    customer: dict[str, str] = {}
    address: str = ""
    phone: str = ""
    charges: list[dict[str, str]] = []
    error: str = ""
    _customer_id: str = ""

    async def reload(self) -> bool:
        try:
            actor = await self.actor()
            detail = await asyncio.to_thread(billing.get_customer, actor, self._customer_id)
        except NotAuthenticated:
            return False
        except BillyError as exc:
            self.error, self.customer, self.charges = exc.message, {}, []
            return True
        self.error = ""
        self.customer = customer_view(detail.customer)
        parts = [detail.address.get(k) for k in ("line1", "line2", "city", "state", "postal_code", "country")]
        self.address = ", ".join(p for p in parts if p)
        self.phone = detail.phone
        self.charges = [charge_view(c) for c in detail.charges]
        return True

    @rx.event
    async def load(self):
        path = self.router.url.path or ""
        self._customer_id = path.rstrip("/").rsplit("/", 1)[-1]
        if not await self.reload():
            return SessionState.recover
        return None
