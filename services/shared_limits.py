"""Counts that every worker shares through Redis, and that go on in each worker's memory while
Redis is away (the `limits` library's moving windows, whatever they count).

With BILLY_REDIS_URL, the Stripe request gate, the REST API's per-caller limit and the sign-in
throttle count in Redis so that N workers together keep one limit. A Redis outage must not turn
those limits into failures of the requests they guard (every API call and Stripe call would fail
with it), so while Redis does not answer each worker counts alone, in memory, for
`FALLBACK_SECONDS` before trying Redis again: the limits hold per worker meanwhile, not per
instance. A Redis that stops answering is given `REDIS_TIMEOUT_SECONDS`, never more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)
T = TypeVar("T")

MEMORY = "memory://"
FALLBACK_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 1.0


class SharedLimiter:
    """A moving-window limiter on `storage_uri` (Redis, or memory for a single worker) with this
    process's memory as the stand-in while the shared storage does not answer. `what` names it in
    the log ("the Stripe request gate")."""

    def __init__(self, storage_uri: str, what: str) -> None:
        self.what = what
        self._shared: MovingWindowRateLimiter | None = None
        if storage_uri != MEMORY:
            storage = storage_from_string(
                storage_uri,
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self._shared = MovingWindowRateLimiter(storage)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared_down_until = 0.0
        self._lock = threading.Lock()
        self.fallback_seconds = FALLBACK_SECONDS

    def call(self, work: Callable[[MovingWindowRateLimiter], T]) -> T:
        """`work(limiter)` on the shared limiter, or on the local one while the shared is away."""
        shared = self._shared
        if shared is not None and time.monotonic() >= self._shared_down_until:
            try:
                return work(shared)
            except StorageError as exc:
                with self._lock:
                    first = time.monotonic() >= self._shared_down_until
                    self._shared_down_until = time.monotonic() + self.fallback_seconds
                if first:
                    log.warning(
                        "Redis is not answering for %s (%s): each worker counts alone meanwhile",
                        self.what,
                        type(exc.storage_error).__name__,
                    )
        return work(self._local)

    @staticmethod
    def moving_window(limiter: MovingWindowRateLimiter, key: str, limit: int, seconds: float) -> tuple[float, int]:
        """(oldest entry, count) of `key`'s entries in the last `seconds`, which may be fractional
        (the storages' own reading; `limits`' items only take whole seconds)."""
        storage: Any = limiter.storage
        start, count = storage.get_moving_window(key, limit, seconds)
        return float(start), int(count)
