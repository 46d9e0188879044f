"""Sandbox time: a clock that can be set back, billing periods, and moving history.

The sandbox's clock can also run ahead of or behind the machine's (`POST /_config/clock
{"offset_seconds": -120}`), as Stripe's clock and a client's disagree by seconds or minutes:
`created` of new objects and events, webhook signature times and the `Date` header all follow it.

Stripe's test clocks let an integration watch subscriptions renew without
waiting a month (docs: billing/testing/test-clocks). The sandbox has no test
clocks; instead, backdating a subscription replays the renewals that fall
between its new start and now. While it does, `at(moment)` makes every object
and event created (localstripe's included) carry that moment as `created`.

Billing periods follow Stripe's rule (docs: billing/subscriptions/billing-cycle):
a period runs from the billing cycle anchor plus N intervals to the anchor plus
N+1 intervals, counted from the anchor each time, so a subscription anchored on
the 31st bills on the last day of shorter months and on the 31st again after.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from dateutil.relativedelta import relativedelta
from localstripe import resources

from sandbox.errors import invalid_request
from sandbox.params import read_json_or_form
from sandbox.state import INDEX

DAY = 86_400

_moment: ContextVar[int | None] = ContextVar("sandbox_moment", default=None)
MAX_OFFSET_SECONDS = 7 * DAY


class ClockOffset:
    """How far the sandbox's clock runs from the machine's (state: a reset sets it back to 0)."""

    def __init__(self) -> None:
        self.seconds = 0

    def snapshot(self) -> int:
        return 0  # never carried over a restart

    def restore(self, data: int) -> None:
        self.seconds = 0

    def reset(self) -> None:
        self.seconds = 0


OFFSET = ClockOffset()


def wall_now() -> float:
    """The sandbox's own clock: the machine's, moved by the configured offset."""
    return _time.time() + OFFSET.seconds


def now() -> int:
    """The current sandbox time: a replayed moment, or the sandbox's clock."""
    moment = _moment.get()
    return int(wall_now()) if moment is None else moment


@contextmanager
def at(moment: int) -> Iterator[None]:
    """Create objects and events as if it were `moment` (used while replaying renewals)."""
    token = _moment.set(int(moment))
    try:
        yield
    finally:
        _moment.reset(token)


class _ClockModule:
    """Stands in for the `time` module inside localstripe.resources."""

    def time(self) -> float:
        moment = _moment.get()
        return wall_now() if moment is None else float(moment)

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


def add_interval(anchor: int, interval: str, count: int) -> int:
    """`anchor` plus `count` intervals (day, week, month or year), in UTC."""
    start = datetime.fromtimestamp(anchor, UTC)
    steps = {
        "day": relativedelta(days=count),
        "week": relativedelta(weeks=count),
        "month": relativedelta(months=count),
        "year": relativedelta(years=count),
    }
    return int((start + steps[interval]).timestamp())


# -- moving history -------------------------------------------------------------

# Fields that hold a moment in time in the objects the sandbox backdates, also
# inside event snapshots. `start` and `end` occur only inside `period` hashes.
TIME_FIELDS = frozenset(
    {
        "billing_cycle_anchor",
        "cancel_at",
        "canceled_at",
        "created",
        "current_period_end",
        "current_period_start",
        "date",
        "due_date",
        "effective_at",
        "end",
        "ended_at",
        "finalized_at",
        "marked_uncollectible_at",
        "next_payment_attempt",
        "paid_at",
        "period_end",
        "period_start",
        "start",
        "start_date",
        "trial_end",
        "trial_start",
        "voided_at",
        "webhooks_delivered_at",
    }
)
# Nested objects that belong to something else and keep their own times.
_FOREIGN = frozenset({"source", "payment_method_details", "product", "customer"})


def shift_snapshot(value: Any, delta: int) -> Any:
    """A copy of an exported object with every time field moved by `delta` seconds."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in TIME_FIELDS and isinstance(item, int) and not isinstance(item, bool):
                out[key] = item + delta
            elif key in _FOREIGN:
                out[key] = item
            else:
                out[key] = shift_snapshot(item, delta)
        return out
    if isinstance(value, list):
        return [shift_snapshot(item, delta) for item in value]
    return value


def move_created(object_type: str, obj: Any, delta: int) -> None:
    obj.created += delta
    if isinstance(getattr(obj, "date", None), int):
        obj.date += delta
    INDEX.set_created(object_type, obj.id, obj.created)


def shift_events(origin_id: str, delta: int) -> None:
    """Move every event recorded about `origin_id` (and its snapshot) by `delta`."""
    for event in list(INDEX.objects("event", "_origin", origin_id)):
        move_created("event", event, delta)
        event.data = shift_snapshot(event.data, delta)


def shift_charge(charge_id: str, delta: int) -> None:
    """A charge made by an invoice moves with the invoice, with its events."""
    charge = INDEX.get("charge", charge_id)
    if charge is None:
        return
    move_created("charge", charge, delta)
    shift_events(charge_id, delta)


async def set_clock(request: web.Request) -> web.Response:
    """POST /_config/clock {"offset_seconds": -120}: run the sandbox's clock that far from the machine's."""
    value = (await read_json_or_form(request)).get("offset_seconds", 0)
    try:
        offset = int(value)
    except (TypeError, ValueError):
        raise invalid_request("`offset_seconds` must be a whole number.", param="offset_seconds") from None
    if isinstance(value, bool) or abs(offset) > MAX_OFFSET_SECONDS:
        raise invalid_request("`offset_seconds` is at most a week either way.", param="offset_seconds")
    OFFSET.seconds = offset
    return await get_clock(request)


async def get_clock(request: web.Request) -> web.Response:
    """GET /_config/clock: the offset and the sandbox's time now."""
    return web.json_response({"offset_seconds": OFFSET.seconds, "now": int(wall_now())})


def install() -> None:
    resources.time = _ClockModule()
