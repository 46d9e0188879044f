"""The main lists, read into a tab while its first page idles, so a first click paints at once.

A list page's rows come from the server after its on_load; on a first visit that round trip
(and the page's mount) is what a person waits for. Once per tab session, shortly after the
first signed-in page has loaded, this reads the first page of each main list the member's role
may search into that list's own state, exactly as its page would (through the services, as
that member). A later click on the list then shows those rows at once, dimmed and marked busy
while the page's own on_load reads them again (`layout.shell`), as a revisit does.

A list the role may not search is skipped, not tried: a refused read is audited as `denied`,
and opening a tab is no attempt at anything. A list the tab has already read (the page it
landed on) is left as it is.
"""

from __future__ import annotations

import asyncio

import reflex as rx

from billy_app.error_handlers import log_unexpected
from billy_app.state.charges import ChargesState
from billy_app.state.customers import CustomersState
from billy_app.state.invoices import InvoicesState
from billy_app.state.session import SessionExpired, SessionState
from billy_app.state.subscriptions import SubscriptionsState
from services.errors import BillyError
from services.permissions import control

AFTER_SECONDS = 0.4  # after the landing page's own loads, which go first
# Each list, with the action its page's reads need: the sidebar's order.
WARMED = (
    (CustomersState, "customers.search"),
    (ChargesState, "charges.search"),
    (SubscriptionsState, "subscriptions.search"),
    (InvoicesState, "invoices.search"),
)


class ListWarmupState(SessionState):
    _started: bool = False  # reset with every Billy state when the tab's session changes

    @rx.event(background=True)
    async def warm(self):
        """Started by `SessionState.require_member` once per tab session. Not `guarded`: a
        background task changes state only inside `async with self`, and answers nothing."""
        async with self:
            if self._started:
                return
            self._started = True
            bound_to = (await self.get_state(SessionState))._bound_session
        await asyncio.sleep(AFTER_SECONDS)
        for state_class, action in WARMED:
            async with self:
                session = await self.get_state(SessionState)
                if session._bound_session != bound_to or not bound_to:
                    return  # the tab now belongs to another session (or none)
                target = await self.get_state(state_class)
                if target._filled:
                    continue
                try:
                    if control(await self.actor(), action).shown:
                        await target._prefill()
                except SessionExpired:
                    return  # the page's next event sends the person to sign in
                except BillyError:
                    continue  # that list's own page will say what is wrong
                except Exception as exc:  # noqa: BLE001 - logged with an id; the pages read for themselves
                    log_unexpected(exc, "the list warm-up")
                    return
