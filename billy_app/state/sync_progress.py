"""Sync progress on screen: a background task re-reads it from the store while a sync runs."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import reflex as rx

from billy_app.state.session import SessionExpired, SessionState, guarded
from billy_app.state.view import resource_label
from services import sync
from services.errors import BillyError
from services.permissions import control

POLL_SECONDS = 0.5


def time_left(seconds: int) -> str:
    """A time-left estimate in words a person reads at a glance."""
    if seconds < 90:
        return f"about {seconds} s left"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min left"
    return f"about {round(seconds / 3600)} h left"


def progress_text(r: sync.ResourceProgress) -> str:
    """A resource's count: how far a running sync is ("40 of about 405 · 9% · about 12 s left",
    or "40 so far" with nothing to compare with), else the objects it synced."""
    if r.status != "running":
        return f"{r.synced_count:,}"
    if r.expected is None:
        return f"{r.synced_count:,} so far"
    parts = [f"{r.synced_count:,} of about {r.expected:,}"]
    if r.percent is not None:
        parts.append(f"{r.percent}%")
    if r.eta_seconds is not None:
        parts.append(time_left(r.eta_seconds))
    return " · ".join(parts)


class SyncProgressState(SessionState):
    problem_var: ClassVar[str] = "error"

    resources: list[dict[str, str]] = []
    running: bool = False
    failed: bool = False
    error: str = ""
    # "Sync now": hidden for a role that can never start a sync, disabled with the reason when blocked.
    sync_shown: bool = False
    sync_blocked: str = ""
    _watching: bool = False

    async def _refresh(self) -> None:
        rows = await self._call(sync.progress)
        sync_control = control(await self.actor(), "sync.run")
        self.sync_shown, self.sync_blocked = sync_control.shown, sync_control.blocked_by
        self.resources = [
            {
                "resource": resource_label(r.resource),
                "dom_id": f"sync-progress-{r.resource}",
                "status": r.status,
                "count": progress_text(r),
                "stored": str(r.stored),
                "error": r.last_error or "",
            }
            for r in rows
        ]
        self.running = sync.background_sync.running or any(r.status == "running" for r in rows)
        self.failed = any(r.status == "failed" for r in rows)

    @rx.event(background=True)
    async def watch(self):
        """Started on page load; keeps the progress table current until the sync ends. Not `guarded`:
        a background task changes state only inside `async with self`, so it answers there."""
        async with self:
            if self._watching:
                return
            self._watching = True
        try:
            while True:
                async with self:
                    try:
                        await self._refresh()
                    except SessionExpired:
                        return SessionState.recover
                    except BillyError as exc:
                        self.error = exc.message
                        return
                    if not self.running:
                        return
                await asyncio.sleep(POLL_SECONDS)
        finally:
            async with self:
                self._watching = False

    @rx.event
    @guarded
    async def sync_now(self):
        """Owner's "Sync now" button."""
        await self._call(sync.start_sync)
        return SyncProgressState.watch

    @rx.var
    def total_stored(self) -> int:
        """Objects in the store: the last complete picture while a re-sync runs, never its partial count."""
        return sum(int(r["stored"]) for r in self.resources)
