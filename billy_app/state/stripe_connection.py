"""Settings → Stripe connection (Owner; issue 17): which key is connected, its permissions, re-check,
rotate and disconnect.

A new key is pasted into a native form posted to `/api/settings/stripe-key` (CSRF-checked), never
an event here: no key is ever a var of this state, which is sent to the browser. The route answers
with a redirect back here and a signed flash, which `load` shows. `services.stripe_keys` refuses
anyone but the Owner (with an audit row), whatever an event carries."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import reflex as rx

from billy_app.api import flash
from billy_app.state.session import SessionState, guarded
from services import stripe_keys
from services.errors import PermissionDenied, StripeKeyRejected


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def _rows(granted: dict[str, bool] | None) -> list[dict[str, str]]:
    return [{k: str(v) for k, v in row.items()} for row in stripe_keys.checklist(granted)]


class StripeConnectionState(SessionState):
    problem_var: ClassVar[str] = "message"

    refused: bool = False  # not the Owner: the service's words replace the page
    error: str = ""
    message: str = ""
    message_kind: str = "info"
    connected: bool = False
    ever_connected: bool = False  # a key was connected once (disconnected now, or still)
    mode: str = ""
    key_hint: str = ""
    connected_at: str = ""  # ISO 8601 UTC, shown in the viewer's zone
    connected_by: str = ""
    rotated_at: str = ""
    rotated_by: str = ""
    checked_at: str = ""
    rejected: bool = False
    disconnected_at: str = ""
    disconnected_by: str = ""
    checklist: list[dict[str, str]] = []
    # The pasted key's own checklist, when it was refused for missing permissions (from the flash).
    pasted_checklist: list[dict[str, str]] = []
    checking: bool = False

    def _show(self, view: stripe_keys.ConnectionView) -> None:
        self.connected, self.ever_connected = view.connected, bool(view.mode)
        self.mode, self.key_hint = view.mode, view.key_hint
        self.connected_at, self.connected_by = _iso(view.connected_at), view.connected_by
        self.rotated_at, self.rotated_by = _iso(view.rotated_at), view.rotated_by
        self.checked_at = _iso(view.checked_at)
        self.rejected = view.rejected_at is not None and view.connected
        self.disconnected_at, self.disconnected_by = _iso(view.disconnected_at), view.disconnected_by
        self.checklist = _rows(view.permissions if view.permissions else None)

    async def _reload(self) -> None:
        self._show(await self._call(stripe_keys.connection_overview))

    @rx.event
    @guarded
    async def load(self):
        data = flash.unpack(self.router.url.query_parameters.get("flash"))
        self.message = str(data.get("message", ""))
        self.message_kind = str(data.get("kind", "error"))
        granted = data.get("granted")
        self.pasted_checklist = _rows(granted) if isinstance(granted, dict) else []
        self.refused, self.error, self.checking = False, "", False
        try:
            await self._reload()
        except PermissionDenied as exc:
            self.refused, self.error, self.checklist, self.pasted_checklist = True, exc.message, [], []
        if self.message and self.message_kind == "error" and self.connected:
            self.message += f" Billy still uses the key ending {self.key_hint}."

    @rx.event
    @guarded
    async def recheck(self):
        """ "Check again": the server probes the stored key's six permissions and keeps the answer."""
        self.checking, self.message, self.pasted_checklist = True, "", []
        yield
        try:
            view = await self._call(stripe_keys.recheck_permissions)
        except StripeKeyRejected as exc:  # e.g. Stripe no longer knows the key: the page shows it so
            self.message, self.message_kind = exc.message, "error"
            await self._reload()
            return
        finally:
            self.checking = False
        self._show(view)
        missing = [row["resource"] for row in self.checklist if row["state"] != "ok"]
        if missing:
            self.message = (
                f"Checked just now: the key is missing {', '.join(missing)}. Edit the key in the Stripe Dashboard "
                "to enable them, then check again."
            )
            self.message_kind = "error"
        else:
            self.message, self.message_kind = "Checked just now: the key has all six permissions.", "info"

    @rx.event
    @guarded
    async def disconnect(self):
        """After the confirm dialog: the key leaves the secret store and syncing stops."""
        self.message, self.pasted_checklist = "", []
        await self._call(stripe_keys.disconnect_stripe)
        self.message, self.message_kind = (
            "Stripe is disconnected: the key is deleted from Billy's secret store and syncing has stopped. "
            "Everything already synced stays readable. Revoke the key in the Stripe Dashboard too if you no "
            "longer trust it.",
            "info",
        )
        await self._reload()
