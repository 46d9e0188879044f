"""Readiness for the container platform: the database, the secret store and Stripe reachable.

`/readyz` needs no sign-in, so anyone can call it, and a Stripe request spends the account's
per-second budget that refunds and sync share (issue 10, F3). So the Stripe check runs at
most once per `STRIPE_CHECK_SECONDS` however often the route is called, and callers arriving
while it runs never start a second one. The database and secret store checks are local and
cheap, so they run on every call. The route is also limited per client address
(`readyz_limit`), which keeps even the cheap part from becoming a way to load the instance.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from services import stripe_keys
from services.config import get_settings
from services.errors import BillyError, StripeKeyUnknown, StripeRateLimited
from services.secrets import get_secret_store
from services.stripe_gateway import StripeGateway

STRIPE_CHECK_SECONDS = 30.0
# Callers that find a check under way and no earlier answer wait this long for it (seconds).
CHECK_WAIT_SECONDS = 5.0
READYZ_LIMIT = "10/second"
OK = "ok"
# Stripe answered, and refused the key (revoked in its dashboard). The instance stays in service:
# taking its only replica out would hide the banner and the settings page the Owner needs to rotate
# the key, and no other replica would do better with the same key.
KEY_REJECTED = "key rejected: the Owner rotates it in Settings → Stripe connection"
READY_ANSWERS = frozenset({OK, KEY_REJECTED})


def is_ready(checks: dict[str, str]) -> bool:
    """Whether the platform should route requests here: every check answered acceptably."""
    return all(answer in READY_ANSWERS for answer in checks.values())


PROBE_SECRET = "readiness-probe"

Clock = Callable[[], float]


@dataclass(frozen=True)
class _Answer:
    subject: Hashable  # which Stripe, store and key the answer is about
    result: str
    checked_at: float


class StripeCheck:
    """The Stripe check's answer, kept for `ttl_seconds` and shared by every thread.

    An answer is about one subject (Stripe address, store and key): connecting another key
    asks again at once. Failures are kept as long as successes, so an outage does not turn
    every call into a Stripe request. While one caller checks, the others get the previous
    answer if there is one, or wait up to `wait_seconds` for the new one. `clock` is
    injectable so tests move time instead of sleeping."""

    def __init__(
        self,
        ttl_seconds: float = STRIPE_CHECK_SECONDS,
        clock: Clock = time.monotonic,
        wait_seconds: float = CHECK_WAIT_SECONDS,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.wait_seconds = wait_seconds
        self._clock = clock
        self._changed = threading.Condition()
        self._answer: _Answer | None = None
        self._checking = False

    def answer(self, subject: Hashable, check: Callable[[], str]) -> str:
        """The cached answer for `subject`, or `check()`'s, run by one caller at a time."""
        deadline = time.monotonic() + self.wait_seconds  # real time: a test's frozen clock must not hang this
        with self._changed:
            while True:
                known = self._answer if self._answer and self._answer.subject == subject else None
                if known and self._clock() - known.checked_at < self.ttl_seconds:
                    return known.result
                if not self._checking:
                    self._checking = True
                    break
                if known:
                    return known.result  # stale, but a fresh one is on its way
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "failed: still checking"
                self._changed.wait(remaining)
        result = "failed: internal error"
        try:
            result = check()
        finally:
            with self._changed:
                self._answer = _Answer(subject, result, self._clock())
                self._checking = False
                self._changed.notify_all()
        return result


class AddressLimit:
    """At most `limit` (a `limits` string such as "10/second") calls per client address.

    Counts live in this process's memory on purpose: the limit only has to keep the route
    cheap for this worker (the Stripe check is per worker anyway), and a Redis outage must
    not make the readiness route itself fail."""

    def __init__(self, limit: str = READYZ_LIMIT, namespace: str = "readyz") -> None:
        self._item: RateLimitItem = parse(limit)
        self._namespace = namespace
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, address: str) -> int | None:
        """Count one call from `address`: None when allowed, else whole seconds to wait."""
        if self._limiter.hit(self._item, self._namespace, address):
            return None
        reset_at = self._limiter.get_window_stats(self._item, self._namespace, address).reset_time
        return max(1, math.ceil(reset_at - time.time()))


# One of each per process; tests swap them for ones with their own clock or limit.
stripe_check = StripeCheck()
readyz_limit = AddressLimit()


def readiness() -> dict[str, str]:
    """Each check's answer, "ok" or "failed: <why>"; never raises. "stripe" only once connected."""
    checks: dict[str, str] = {}
    connected: stripe_keys.ConnectedKey | None = None
    try:
        # One small read of a real table: the store answers and its schema is in place.
        connected = stripe_keys.connection()
        checks["database"] = OK
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"failed: {type(exc).__name__}"
    try:
        get_secret_store().get(PROBE_SECRET)
        checks["secret_store"] = OK
    except Exception as exc:  # noqa: BLE001
        checks["secret_store"] = f"failed: {type(exc).__name__}"
    if connected is not None:
        settings = get_settings()
        subject = (settings.stripe_api_base, settings.database_url, connected.mode, connected.key_hint)
        checks["stripe"] = stripe_check.answer(subject, _reach_stripe)
    return checks


def _reach_stripe() -> str:
    """One request, no retries: a readiness answer must be quick, and it is asked again in 30 s.

    Under the shared rate gate like every other Stripe call. A 429 counts as reachable: Stripe
    answered and knew the key; it only says Billy's budget is in use right now."""
    try:
        StripeGateway().check_reachable()
    except StripeRateLimited:
        return OK
    except StripeKeyUnknown:
        return KEY_REJECTED
    except BillyError as exc:
        return f"failed: {exc.code}"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return f"failed: {type(exc).__name__}"
    return OK
