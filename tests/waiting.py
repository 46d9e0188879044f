"""Waiting in tests for something another thread or process does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(condition: Callable[[], T], seconds: float = 10.0, interval: float = 0.05) -> T:
    """Ask `condition` until it gives something truthy, and return that; after `seconds`, return
    its last (falsy) answer, for the caller's assertion to fail on."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
