"""A Stripe-style request rate limit for the sandbox (off unless asked for).

Stripe counts API requests per account per second and answers the ones over its
limit with HTTP 429 (docs: rate-limits, error-codes#rate-limit, error-low-level).
The body is an ordinary error object: `type: invalid_request_error`, `code:
rate_limit`; stripe-python picks its `RateLimitError` from the status 429. No
`Retry-After`, no remaining-requests counters, no `Stripe-Should-Retry`. Write-ups
of Stripe's 429s name the limiter in `Stripe-Rate-Limited-Reason`; the sandbox sends
`global-rate` (the per-account limit modelled here). The limiter runs before the
idempotency layer, so a 429 is never saved under an `Idempotency-Key`: retrying
with the same key executes the request.

The sandbox models the global per-account rate only (no per-endpoint or
concurrency limits): a moving one-second window over every authenticated `/v1`
request, whatever the key. A refused request does not use up the budget.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.errors import DOC_URL, invalid_request
from sandbox.params import read_json_or_form

MESSAGE = "Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits."
REASON_HEADER = "Stripe-Rate-Limited-Reason"
WINDOW_SECONDS = 1.0
MAX_RATE = 100_000


class RateLimit:
    """At most `per_second` requests in any moving one-second window; 0 means no limit.

    `default` is what the sandbox was started with (`--rate-limit`); a reset
    (`DELETE /_config/data`) returns to it and empties the window.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.default = 0
        self.per_second = 0
        self.refused = 0  # 429s answered since the last change or reset
        self._clock = clock
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()  # aiohttp runs on one thread; this only guards odd callers

    def configure(self, per_second: int) -> None:
        with self._lock:
            self.per_second = per_second
            self.refused = 0
            self._recent.clear()

    def admit(self) -> bool:
        """Count one request now; False when the last second already holds `per_second`."""
        if not self.per_second:
            return True
        now = self._clock()
        with self._lock:
            while self._recent and self._recent[0] <= now - WINDOW_SECONDS:
                self._recent.popleft()
            if len(self._recent) >= self.per_second:
                self.refused += 1
                return False
            self._recent.append(now)
            return True

    # -- state.Extension: the configured limit is start-up configuration, not data ----------

    def snapshot(self) -> int:
        return 0  # never saved: a restart takes `--rate-limit` again

    def restore(self, data: Any) -> None:
        self.configure(self.default)

    def reset(self) -> None:
        self.configure(self.default)


LIMIT = RateLimit()


def rate_limited_response() -> web.Response:
    return web.json_response(
        {
            "error": {
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": MESSAGE,
                "doc_url": DOC_URL + "rate-limit",
            }
        },
        status=429,
        headers={REASON_HEADER: "global-rate"},
    )


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Placed after the key check and before idempotency, as on Stripe."""
    if request.path.startswith("/v1/") and not LIMIT.admit():
        return rate_limited_response()
    return await handler(request)


def parse_rate(value: Any) -> int:
    """A whole number of requests per second, 0 (or nothing) for no limit."""
    if value is None or value == "":
        return 0
    try:
        number = float(value)
        whole = not isinstance(value, bool) and number.is_integer() and 0 <= number <= MAX_RATE
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise invalid_request(
            "`requests_per_second` must be a whole number from 0 (no limit) to 100000.",
            param="requests_per_second",
        )
    return int(number)


async def set_rate_limit(request: web.Request) -> web.Response:
    """POST /_config/rate_limit {"requests_per_second": 10}: 0 or absent turns it off."""
    LIMIT.configure(parse_rate((await read_json_or_form(request)).get("requests_per_second")))
    return web.json_response({"requests_per_second": LIMIT.per_second, "default": LIMIT.default})


async def get_rate_limit(request: web.Request) -> web.Response:
    """GET /_config/rate_limit: the limit in force and how many requests it refused."""
    return web.json_response(
        {"requests_per_second": LIMIT.per_second, "default": LIMIT.default, "refused": LIMIT.refused}
    )
