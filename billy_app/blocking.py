"""Where the app's blocking calls wait: a thread pool of its own, off the event loop.

Every service call blocks on the store or Stripe. asyncio's default pool has cpu + 4 threads
(six on a 2-core machine), so six slow reports at once would queue every other tab's calls, and
the REST API's, behind them. This pool has room for a few slow calls beside the everyday ones;
the store's connection pool (20 on PostgreSQL) is the next limit, and a call waiting for a
connection still leaves the event loop free.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

SERVICE_THREADS = 32

# Stripe's webhook deliveries have threads of their own: in a burst of events every open page
# re-reads its rows, and deliveries queued in the shared pool behind those reads took five times
# as long as the burst itself to be applied (bench/burst), so pages lagged further behind Stripe.
WEBHOOK_THREADS = 4

_pool = ThreadPoolExecutor(max_workers=SERVICE_THREADS, thread_name_prefix="billy-call")
_webhook_pool = ThreadPoolExecutor(max_workers=WEBHOOK_THREADS, thread_name_prefix="billy-webhook")


async def in_thread(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """`fn(*args, **kwargs)` in the app's pool, with the caller's context variables (as
    `asyncio.to_thread` carries them)."""
    return await _run_in(_pool, fn, *args, **kwargs)


async def in_webhook_thread(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """As `in_thread`, in the webhook deliveries' own pool."""
    return await _run_in(_webhook_pool, fn, *args, **kwargs)


async def _run_in(pool: ThreadPoolExecutor, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, call)
