"""The one clock every time-dependent service reads, so tests move time instead of sleeping.

`now()` is the wall clock in timezone-aware UTC (DESIGN, Conventions). Tests move it with
`travel(timedelta)` or pin it with `freeze(at)`, both context managers that put the clock back
as they found it on exit. The clock is process-wide (services run in worker threads), so a
moved clock is seen by every thread of the test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_lock = threading.Lock()
_offset = timedelta(0)  # added to the wall clock while it runs
_frozen: datetime | None = None  # while set, the time `now()` gives, whatever the wall clock says


def now() -> datetime:
    """The current time, timezone-aware UTC: the wall clock, unless a test moved or froze it."""
    frozen = _frozen
    if frozen is not None:
        return frozen
    return datetime.now(UTC) + _offset


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("the clock keeps timezone-aware UTC times: give `at` a time zone")
    return at.astimezone(UTC)


@contextmanager
def travel(delta: timedelta) -> Iterator[None]:
    """Move the clock by `delta` (either way) for the block; a frozen clock stays frozen."""
    global _offset, _frozen
    with _lock:
        saved = (_offset, _frozen)
        if _frozen is not None:
            _frozen = _frozen + delta
        else:
            _offset = _offset + delta
    try:
        yield
    finally:
        with _lock:
            _offset, _frozen = saved


@contextmanager
def freeze(at: datetime | None = None) -> Iterator[None]:
    """Stop the clock at `at` (default: now) for the block; `travel` and `advance` still move it."""
    global _frozen
    start = _aware(at) if at is not None else now()
    with _lock:
        saved = _frozen
        _frozen = start
    try:
        yield
    finally:
        with _lock:
            _frozen = saved


def advance(delta: timedelta) -> None:
    """Move the clock by `delta` until the enclosing `freeze` or `travel` block ends (or `reset`)."""
    global _offset, _frozen
    with _lock:
        if _frozen is not None:
            _frozen = _frozen + delta
        else:
            _offset = _offset + delta


def reset() -> None:
    """Back to the wall clock, whatever moved it (a test fixture's safety net)."""
    global _offset, _frozen
    with _lock:
        _offset, _frozen = timedelta(0), None
