"""Live pages: a background task per open page re-reads its data when the store changes.

Notices (`services.notices`) say only which kind of rows changed; the page re-reads what it
shows through the service layer, as its viewer, so a notice can never leak a row the
viewer may not see. Notices arriving close together are handled as one refresh, and a page
refreshes at most every `MIN_REFRESH_GAP` seconds: under a burst of Stripe events (hundreds a
second) each open page re-reads a few times a second, not once per event, which kept the server
and every browser rendering the same rows over and over (bench/burst). Refreshes fall on a beat
shared by every page of the process (`TICK_SECONDS`), and each reads as of the notices it heard
(`notices.reading_as_of`), so open pages showing the same rows share one read of them. The task
ends when its tab disconnects or navigates to another page.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import reflex as rx
from redis.exceptions import RedisError

from billy_app.error_handlers import explained
from billy_app.state.session import SessionExpired
from services import notices
from services.errors import BillyError, NotAuthenticated

BATCH_SECONDS = 0.05  # notices within this window make one refresh
MIN_REFRESH_GAP = 0.3  # seconds from one refresh of a page to its next, whatever arrives meanwhile
TICK_SECONDS = 0.05  # every page of a process refreshes on this shared beat
IDLE_CHECK_SECONDS = 20.0  # how often an idle task checks that its tab is still there
REDIS_RETRY_SECONDS = 1.0  # how long a task waits before looking for its state again while Redis is away

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """Notices answered by one refresh, and the store generation once they had all arrived: a
    read begun at it or later shows all they announced (`notices.reading_as_of`)."""

    notices: list[notices.Notice]
    heard: int


def _on_beat(moment: float) -> float:
    """The first beat (a multiple of TICK_SECONDS on the loop's clock) at or after `moment`.
    Pages that hear the same notices then refresh in the same instant and share one read of
    their rows (`reports.SharedReads`): fifty open charges lists read them once per refresh, not
    fifty times, which under a burst of Stripe events was half the server's work (bench/burst)."""
    return math.ceil(round(moment / TICK_SECONDS, 6)) * TICK_SECONDS


_namespace: list[Any] = []  # the running app's event namespace, once found


def _tab_connected(token: str) -> bool:
    """Whether this worker still has a websocket for the tab (unknown: assume yes). The namespace
    is looked up once: finding the app on every refresh of every open page was 2 % of the
    server's samples under a burst (py-spy, bench.burst)."""
    if not _namespace:
        try:
            from reflex.utils import prerequisites

            namespace = prerequisites.get_and_validate_app().app.event_namespace
        except Exception:  # noqa: BLE001 - outside a running app (tests compiling pages)
            return True
        if namespace is None:
            return True  # not serving yet: asked again next time
        _namespace.append(namespace)
    return token in _namespace[0].token_to_sid


def _any_notice(_: notices.Notice) -> bool:
    return True


async def _next_batch(
    sub: notices.Subscription, not_before: float = 0.0, wanted: Callable[[notices.Notice], bool] = _any_notice
) -> tuple[Batch, float] | None:
    """The next group of `wanted` notices, gathered for `BATCH_SECONDS` after the first and at
    least until the loop's clock reads `not_before`, closed on a beat; with that beat. None after
    an idle spell (counted from the call: unwanted notices do not prolong it), so the caller can
    check on its tab. Unwanted notices are dropped here: a page is not woken, nor its next
    refresh held back, by changes to rows it does not show."""
    loop = asyncio.get_running_loop()
    idle_until = loop.time() + IDLE_CHECK_SECONDS
    while True:
        first = await sub.next(max(0.0, idle_until - loop.time()))
        if first is None:
            return None
        if wanted(first):
            break
    batch = [first]
    deadline = _on_beat(max(loop.time() + BATCH_SECONDS, not_before))
    while (left := deadline - loop.time()) > 0:
        more = await sub.next(left)
        if more is None:
            break
        if wanted(more):
            batch.append(more)
    return Batch(batch, sub.heard()), deadline


async def paced_batches(
    sub: notices.Subscription, wanted: Callable[[notices.Notice], bool] = _any_notice
) -> AsyncIterator[Batch | None]:
    """The subscription's `wanted` notices in groups, one group per refresh: at least
    `MIN_REFRESH_GAP` apart, on the shared beat, so a burst makes a few refreshes a second; None
    after each idle spell."""
    not_before = 0.0
    while True:
        closed = await _next_batch(sub, not_before, wanted)
        if closed is None:
            yield None
            continue
        batch, beat = closed
        # Counted from the beat, not from when this task woke: pages that refreshed together
        # stay together.
        not_before = beat + MIN_REFRESH_GAP
        yield batch


class LiveState(rx.State, mixin=True):
    """Mix into a page state; it names the kinds it shows and how to re-read them."""

    # Each on_load starts a new follower; an older one (same tab, earlier page) sees a newer
    # generation at its next wake-up and ends.
    _follow_generation: int = 0
    # A page's follower ends when its tab moves to another page. The navigation's badges follow
    # the tab across pages instead: their follower is started on mount, which can run before the
    # router knows the new page's path, so a path check would end them at the first navigation.
    follows_one_page: ClassVar[bool] = True

    async def _bound_session_now(self) -> str:
        from billy_app.state.session import SessionState

        return (await self.get_state(SessionState))._bound_session

    async def _refreshed(self) -> bool:
        """Re-read the page; False when following should stop. A session that ended stops it (the
        page's next event sends the person to sign in); a refusal or a Stripe hiccup keeps the page
        as it was; anything unexpected is logged with an id, never swallowed."""
        try:
            await self._live_refresh()
        except (SessionExpired, NotAuthenticated):
            return False
        except BillyError:
            return True
        except Exception as exc:  # noqa: BLE001 - logged (with an id, unless the store is away); the page keeps what it shows
            explained(exc, f"a live refresh of {type(self).__name__}")
        return True

    def _live_kinds(self) -> frozenset[str]:
        raise NotImplementedError

    async def _live_refresh(self) -> None:
        """Re-read the page's data (called while holding the state)."""
        raise NotImplementedError

    def _left_for_later(self) -> bool:
        """Whether the refresh just made left work for `_after_live_refresh` (asked while
        holding the state: taking it again only to find nothing to do cost every refresh)."""
        return False

    async def _after_live_refresh(self) -> None:
        """What a refresh left for later, done without holding the state (a list's total)."""
        return None

    @rx.event(background=True)
    async def follow(self):
        """Started by the page's on_load: re-read the page when rows of its kinds change."""
        async with self:
            self._follow_generation += 1
            mine = self._follow_generation
            token, path = self.router.session.client_token, self.router.url.path
            kinds = self._live_kinds()
            bound_to = await self._bound_session_now()

        def shown_here(notice: notices.Notice) -> bool:
            return notice.kind in kinds or notice.kind == "*"

        async with notices.subscription() as sub:
            # Only notices of the kinds shown here wake the page (under a burst of Stripe events,
            # a charges list was woken, and its tab's state taken, by every customer rename too).
            async for batch in paced_batches(sub, shown_here):
                if not _tab_connected(token):
                    return
                relevant = batch is not None
                heard = batch.heard if batch is not None else notices.generation()
                try:
                    with notices.reading_as_of(heard):
                        async with self:
                            if self._follow_generation != mine or (
                                self.follows_one_page and self.router.url.path != path
                            ):
                                return  # a newer follower, or the tab has moved to another page
                            if await self._bound_session_now() != bound_to:
                                return  # the tab's state now belongs to another session (or none)
                            if relevant and not await self._refreshed():
                                return
                            later = relevant and self._left_for_later()
                        if later:
                            await self._after_live_refresh()
                except RedisError as exc:
                    # The tab's state lives in Redis, which is away: keep following. Once Redis is
                    # back, the notice relay's "reload everything" refreshes the page (services.notices).
                    log.warning("A live page could not reach its state in Redis (%s); waiting", type(exc).__name__)
                    await asyncio.sleep(REDIS_RETRY_SECONDS)
