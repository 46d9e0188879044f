"""Requests per agent token (or per member, for an access token) with the `limits` package.

A script in a loop must not take the instance (or Billy's Stripe request budget, which refunds
and sync share) from everyone else. The window is a moving one; counts live in Redis when
BILLY_REDIS_URL is set, so several workers share them, else in this process's memory.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.strategies import MovingWindowRateLimiter

from billy_app.api.v1.errors import ApiRateLimited
from services.config import get_settings
from services.permissions import Actor
from services.shared_limits import SharedLimiter

DEFAULT_LIMIT = "120/minute"


class CallerLimit:
    """At most `limit` (a `limits` string such as "120/minute") requests per caller."""

    def __init__(self, limit: str = DEFAULT_LIMIT, storage_uri: str = "memory://") -> None:
        self.limit = limit
        self._item: RateLimitItem = parse(limit)
        # In Redis, counted per worker while Redis is away: the API keeps answering (services.shared_limits).
        self._counts = SharedLimiter(storage_uri, "the REST API's request limit")

    def hit(self, actor: Actor) -> None:
        """Count one request, or refuse it with how long to wait."""
        who = f"tok:{actor.token_id}" if actor.token_id else f"member:{actor.user_id}"
        reset_at = self._counts.call(lambda limiter: self._hit(limiter, who))
        if reset_at is not None:
            raise ApiRateLimited(max(1, math.ceil(reset_at - time.time())), self.limit)

    def _hit(self, limiter: MovingWindowRateLimiter, who: str) -> float | None:
        """None when counted; else when the window frees up."""
        if limiter.hit(self._item, "api-v1", who):
            return None
        return limiter.get_window_stats(self._item, "api-v1", who).reset_time


_limit: CallerLimit | None = None


def caller_limit() -> CallerLimit:
    """The process's limiter (made on first use, once the settings are known)."""
    global _limit
    if _limit is None:
        _limit = CallerLimit(DEFAULT_LIMIT, get_settings().redis_url or "memory://")
    return _limit


def use_limit(limit: CallerLimit | None) -> None:
    """Replace the limiter (tests: a small limit to see the 429, a large one for a fuzzing run)."""
    global _limit
    _limit = limit
