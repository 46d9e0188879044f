"""A log budget: how many lines one kind of client-triggered event may write per window.

Anyone can make Billy log (a browser's error report, a malformed event, a failing handler), so
each such source writes at most so many lines a window and then one summary with the count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter


class LogBudget:
    """At most `per_window` log lines per window in this process; the rest are counted and summarised
    in one line when the window rolls over, so a flood costs one line, not one per request."""

    def __init__(
        self,
        name: str,
        per_window: int,
        summary: str,
        window_seconds: int = 60,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.log = logger or logging.getLogger("billy.errors")  # where client-triggered errors are logged
        self.per_window = per_window
        self.summary = summary  # formatted with {count} and {detail}
        self._item = RateLimitItemPerSecond(per_window, window_seconds)
        self._limiter = FixedWindowRateLimiter(MemoryStorage())
        self._lock = threading.Lock()
        self._suppressed: Counter[str] = Counter()
        self._timer: threading.Timer | None = None

    def allow(self, kind: str = "") -> bool:
        """True if this one may be logged; otherwise it is counted under `kind` for the summary."""
        if self._limiter.hit(self._item, self.name):
            return True
        with self._lock:
            self._suppressed[kind] += 1
            if self._timer is None:
                reset_at = self._limiter.get_window_stats(self._item, self.name).reset_time
                self._timer = threading.Timer(max(0.0, reset_at - time.time()) + 0.05, self.flush)
                self._timer.daemon = True
                self._timer.start()
        return False

    def flush(self) -> None:
        """Log the summary of what was suppressed (the window's end does this by itself)."""
        with self._lock:
            counts, self._suppressed = self._suppressed, Counter()
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()  # a no-op when the timer itself is flushing
        total = sum(counts.values())
        if total:
            detail = ", ".join(f"{kind}×{n}" for kind, n in counts.most_common() if kind)
            self.log.warning("%s", self.summary.format(count=total, detail=f" ({detail})" if detail else ""))
