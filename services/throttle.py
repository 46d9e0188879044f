"""Sign-in throttling per account and per client address, with the `limits` library.

Only failures count, so a member who types their password right is never slowed down;
a success clears that account's count. Counts live in memory, or in Redis when
BILLY_REDIS_URL is set so that several workers share them."""

from __future__ import annotations

import math
import time
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from services.config import get_settings
from services.errors import BillyError


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
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
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
            if not self._limiter.test(item, kind, key):
                reset_at = self._limiter.get_window_stats(item, kind, key).reset_time
                raise TooManyAttempts(max(1, int(reset_at - time.time())))

    def failed(self, email: str, address: str) -> None:
        for item, kind, key in self._checks(email, address):
            self._limiter.hit(item, kind, key)

    def succeeded(self, email: str) -> None:
        self._limiter.clear(self._account, "account", email.strip().lower())


@lru_cache(maxsize=1)
def get_login_throttle() -> LoginThrottle:
    settings = get_settings()
    storage = settings.redis_url or "memory://"
    return LoginThrottle(settings.login_limit_per_account, settings.login_limit_per_address, storage)
