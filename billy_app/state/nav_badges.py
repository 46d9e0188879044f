"""Counts the navigation shows next to its entries: refund requests waiting on the viewer, and
(the Owner's Settings entry) spend alerts raised in the last 24 hours.

Loaded when the signed-in shell mounts (so on every page, once the header knows the member) and
kept live like a page: a follower re-reads the count when a refund request changes (submitted,
decided, withdrawn) or a charge does (a cap may now cover a request, or no longer). The count is
`refund_requests.pending_count_for`, read as the viewer: 0 for anyone who cannot approve.
"""

from __future__ import annotations

from typing import ClassVar

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.live import LiveState
from billy_app.state.session import SessionState, guarded
from billy_app.state.view import set_changed
from services import refund_requests, spend_alerts
from services.errors import BillyError

LIVE_KINDS = frozenset({refund_requests.NOTICE_KIND, "charge", spend_alerts.NOTICE_KIND})


class NavBadgesState(LiveState, SessionState):
    pending_approvals: int = 0
    spend_alerts: int = 0  # the Owner's: spend alerts raised in the last 24 hours
    follows_one_page: ClassVar[bool] = False  # the shell's badges stay live on every page

    def _live_kinds(self) -> frozenset[str]:
        return LIVE_KINDS

    async def _live_refresh(self) -> None:
        # A burst of charges refreshes the badges a few times a second (bench/burst): only a
        # count that moved is sent.
        set_changed(
            self,
            pending_approvals=await self._call(refund_requests.pending_count_for),
            spend_alerts=await self._call(spend_alerts.alerts_today),
        )

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """A badge that cannot be read keeps its last count: the page itself says what went wrong."""
        return None

    @rx.event
    @guarded
    async def load(self):
        """Read the count now, then keep it current: one event from the page, the follower chained
        on the server (each navigation used to send both)."""
        await self._live_refresh()
        return NavBadgesState.follow
