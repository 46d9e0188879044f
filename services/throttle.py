"""Sign-in throttling per account and per client address, with the `limits` library.

Only failures count, so a member who types their password right is never slowed down;
a success clears that account's count. Counts live in memory, or in Redis when
BILLY_REDIS_URL is set so that several workers share them (each worker's own while Redis is away)."""

from __future__ import annotations

import math
import time
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.strategies import MovingWindowRateLimiter

from services.config import get_settings
from services.errors import BillyError
from services.shared_limits import SharedLimiter


class TooManyAttempts(BillyError):
    code = "too_many_attempts"

    def __init__(self, retry_after_seconds: int) -> None:
        minutes = max(1, math.ceil(retry_after_seconds / 60))
        super().__init__(
            f"Too many sign-in attempts. Wait {minutes} minute{'s' if minutes != 1 else ''} and try again, "
            "or reset your password from the sign-in page."
        )
        self.retry_after_seconds = retry_after_seconds


class LoginThrottle:
    def __init__(self, per_account: str, per_address: str, storage_uri: str = "memory://") -> None:
        # In Redis, counted per worker while Redis is away: sign-in keeps working (services.shared_limits).
        self._counts = SharedLimiter(storage_uri, "the sign-in throttle")
        self._account: RateLimitItem = parse(per_account)
        self._address: RateLimitItem = parse(per_address)

    def _checks(self, email: str, address: str) -> list[tuple[RateLimitItem, str, str]]:
        checks = [(self._account, "account", email.strip().lower())]
        if address:
            checks.append((self._address, "address", address))
        return checks

    def check(self, email: str, address: str) -> None:
        """Refuse before any password work once either count is used up."""
        for item, kind, key in self._checks(email, address):
            reset_at = self._counts.call(lambda limiter: _used_up_until(limiter, item, kind, key))  # noqa: B023 - called at once
            if reset_at is not None:
                raise TooManyAttempts(max(1, int(reset_at - time.time())))

    def failed(self, email: str, address: str) -> None:
        for item, kind, key in self._checks(email, address):
            self._counts.call(lambda limiter: limiter.hit(item, kind, key))  # noqa: B023 - called at once

    def succeeded(self, email: str) -> None:
        self._counts.call(lambda limiter: limiter.clear(self._account, "account", email.strip().lower()))


def _used_up_until(limiter: MovingWindowRateLimiter, item: RateLimitItem, kind: str, key: str) -> float | None:
    """None while attempts are left; else when the window frees one up."""
    if limiter.test(item, kind, key):
        return None
    return limiter.get_window_stats(item, kind, key).reset_time


@lru_cache(maxsize=1)
def get_login_throttle() -> LoginThrottle:
    settings = get_settings()
    storage = settings.redis_url or "memory://"
    return LoginThrottle(settings.login_limit_per_account, settings.login_limit_per_address, storage)
