"""Settings → Stripe sync: each resource's backfill, the event stream's lag, webhook set-up.

Live: the page re-reads the overview whenever the store changes. The webhook signing secret
is pasted into a native form posted to `/api/settings/webhook-secret`, never an event here."""

from __future__ import annotations

from typing import ClassVar

import reflex as rx

from billy_app.api import flash
from billy_app.state.live import LiveState
from billy_app.state.session import SessionState, guarded, off_loop
from billy_app.state.sync_progress import progress_text
from billy_app.state.view import iso, resource_label
from services import mirror, stripe_events, sync
from services.errors import PermissionDenied
from services.permissions import control

SYNC_NOTES = ("A full sync has started.", "A sync is already running.")


def _ago(seconds: int | None) -> str:
    if seconds is None:
        return "no events yet"
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


class SyncSettingsState(LiveState, SessionState):
    problem_var: ClassVar[str] = "message"  # `error` is the refusal that replaces the page

    rows: list[dict[str, str]] = []
    last_event: str = ""
    lag: str = ""
    events_status: str = ""
    events_note: str = ""
    webhooks: bool = False
    how_current: str = ""
    endpoint_url: str = ""
    can_manage: bool = False
    message: str = ""
    message_kind: str = "info"
    error: str = ""

    def _live_kinds(self) -> frozenset[str]:
        return frozenset({*mirror.KINDS, "sync"})

    async def _live_refresh(self) -> None:
        await self._reload()

    async def _reload(self) -> None:
        actor = await self.actor()
        view = await off_loop(stripe_events.overview, actor)
        self.rows = [
            {
                "resource": resource_label(r.resource),
                "status": r.status,
                "dom_id": f"sync-progress-{r.resource}",
                "count": progress_text(r),
                "throttled": f"slowed {r.throttled_count}× by Stripe's rate limit" if r.throttled_count else "",
                "finished": r.finished_at.isoformat() if r.finished_at else "",
                "note": r.last_error or "",
                "kind": "required" if r.required else "recommended",
            }
            for r in view.resources
        ]
        self.last_event = iso(view.last_event_created) if view.last_event_created else ""
        self.lag = _ago(view.lag_seconds)
        self.events_status, self.events_note = view.events_status, view.events_note or ""
        self.webhooks, self.endpoint_url = view.webhook_configured, view.endpoint_url
        self.how_current = (
            "Webhooks: Stripe sends each change as it happens (events are also read every minute as a safety net)."
            if view.webhook_configured
            else (
                f"Reading Stripe's events every {view.poll_seconds:g} s. Set up a webhook below for instant updates."
                if view.poll_seconds > 0
                else "Event polling is off and no webhook is set up: only a manual sync updates the store."
            )
        )
        self.can_manage = control(actor, "stripe.connect").usable
        running = sync.background_sync.running or any(r.status == "running" for r in view.resources)
        if self.message in SYNC_NOTES and not running:
            self.message = ""  # "A full sync has started." is news only while it runs

    @rx.event
    @guarded
    async def load(self):
        data = flash.unpack(self.router.url.query_parameters.get("flash"))
        self.message = str(data.get("message", ""))
        self.message_kind = str(data.get("kind", "error"))
        self.error = ""
        try:
            await self._reload()
        except PermissionDenied as exc:
            self.error, self.rows = exc.message, []

    @rx.event
    @guarded
    async def sync_now(self):
        started = await self._call(sync.start_sync)
        self.message = SYNC_NOTES[0] if started else SYNC_NOTES[1]
        self.message_kind = "info"
        await self._reload()
