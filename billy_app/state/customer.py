"""One customer: details and their charges, each refundable from a dialog."""

from __future__ import annotations

from typing import ClassVar

import reflex as rx

from billy_app.state.live import LiveState
from billy_app.state.session import SessionState, guarded
from billy_app.state.view import CustomerChargeRow, charge_view, customer_view
from services import billing
from services.errors import BillyError


class CustomerState(LiveState, SessionState):
    problem_var: ClassVar[str] = "error"

    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"customer", "charge", "refund"})

    async def _live_refresh(self) -> None:
        await self._reload()

    customer: dict[str, str] = {}
    address: str = ""
    phone: str = ""
    charges: list[CustomerChargeRow] = []
    error: str = ""
    _customer_id: str = ""

    async def _reload(self) -> None:
        """Re-read the customer and their charges; a refusal empties the page and says why."""
        try:
            detail = await self._call(billing.get_customer, self._customer_id)
        except BillyError as exc:
            self.error, self.customer, self.charges = exc.message, {}, []
            return
        self.error = ""
        self.customer = customer_view(detail.customer)
        parts = [detail.address.get(k) for k in ("line1", "line2", "city", "state", "postal_code", "country")]
        self.address = ", ".join(p for p in parts if p)
        self.phone = detail.phone
        self.charges = [charge_view(charge) for charge in detail.charges]

    @rx.event
    @guarded
    async def reload(self):
        await self._reload()

    @rx.event
    @guarded
    async def load(self):
        path = self.router.url.path or ""
        self._customer_id = path.rstrip("/").rsplit("/", 1)[-1]
        await self._reload()
