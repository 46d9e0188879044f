"""Injected faults (sandbox only): Stripe failing in the ways a client must survive.

A test configures faults with `POST /_config/faults`, each on a method and a path (a glob,
e.g. `/v1/customers/*`), for the next `count` matching API requests:

* `429`: the rate limiter's answer; nothing is done and nothing is saved under the
  `Idempotency-Key` (as on Stripe, where the limiter runs before the idempotency layer).
* `500`, `503`: an `api_error` from in front of the API (a failing front end or an overloaded
  region): the request never started executing, so, as Stripe does for requests that never
  started, nothing is saved and a retry with the same key executes it.
* `timeout`: no answer; the connection is held `seconds` (default 3), then closed, and the
  request is never executed.
* `reset`: the connection is dropped at once, with no answer; the request is never executed.
* `after_write_reset`: the request is executed (and its answer saved under its key, as Stripe
  saves it), then the connection is dropped before the answer is sent: the hardest case, where
  only an idempotent replay tells the client that the change was made.
* `after_write_timeout`: executed and saved, then held `seconds` and closed, with no answer.

Faults sit after the key check and the rate limiter and before the idempotency layer. Each one
that fires is recorded with its request's `Idempotency-Key` (`GET /_config/faults`), so a test
can check that the retry carried the same key. A reset (`DELETE /_config/data`) clears them.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from sandbox.errors import invalid_request
from sandbox.ratelimit import rate_limited_response

KINDS = ("429", "500", "503", "timeout", "reset", "after_write_reset", "after_write_timeout")
DEFAULT_HOLD_SECONDS = 3.0
MAX_HOLD_SECONDS = 30.0
MAX_FAULTS = 100
SERVER_ERROR = "An unknown error occurred. Retry the request with the same idempotency key."


@dataclass
class Fault:
    """One configured fault: the next `count` requests matching `method` and `path` meet `kind`."""

    path: str
    kind: str
    method: str = "POST"
    count: int = 1
    seconds: float = DEFAULT_HOLD_SECONDS

    def matches(self, request: web.Request) -> bool:
        return request.method == self.method and fnmatch.fnmatchcase(request.path, self.path)


@dataclass(frozen=True)
class Fired:
    """A fault that happened to a request, as a test reads it back."""

    kind: str
    method: str
    path: str
    idempotency_key: str | None


class Faults:
    """The configured faults and the ones that fired (state: never saved, emptied by a reset)."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []
        self.fired: list[Fired] = []

    def configure(self, faults: list[Fault]) -> None:
        self.pending, self.fired = faults, []

    def take(self, request: web.Request) -> Fault | None:
        """The first pending fault matching `request`, counted down (and dropped when spent)."""
        for fault in self.pending:
            if fault.matches(request):
                fault.count -= 1
                if fault.count <= 0:
                    self.pending.remove(fault)
                self.fired.append(
                    Fired(fault.kind, request.method, request.path, request.headers.get("Idempotency-Key"))
                )
                return fault
        return None

    # -- state.Extension -----------------------------------------------------------------

    def snapshot(self) -> None:
        return None  # faults are a test's set-up, never carried over a restart

    def restore(self, data: Any) -> None:
        self.configure([])

    def reset(self) -> None:
        self.configure([])


FAULTS = Faults()


def _server_error(status: int) -> web.Response:
    return web.json_response({"error": {"type": "api_error", "message": SERVER_ERROR}}, status=status)


def _drop(request: web.Request) -> web.Response:
    """Close the connection with nothing sent; the returned response is never written."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)


@web.middleware
async def fault_middleware(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Placed after the key check and the rate limiter, before idempotency (see the module doc)."""
    fault = FAULTS.take(request) if FAULTS.pending and request.path.startswith("/v1/") else None
    if fault is None:
        return await handler(request)
    if fault.kind == "429":
        return rate_limited_response()
    if fault.kind in ("500", "503"):
        return _server_error(int(fault.kind))
    if fault.kind == "reset":
        return _drop(request)
    if fault.kind == "timeout":
        await asyncio.sleep(fault.seconds)
        return _drop(request)
    await handler(request)  # after_write_*: executed, and saved under its key by the layer below
    if fault.kind == "after_write_timeout":
        await asyncio.sleep(fault.seconds)
    return _drop(request)


def _fault(item: Any) -> Fault:
    if not isinstance(item, dict):
        raise invalid_request('Each fault is {"path": …, "kind": …, "method": "POST", "count": 1, "seconds": 3}.')
    path, kind = item.get("path"), str(item.get("kind", ""))
    if not isinstance(path, str) or not path.startswith("/v1/"):
        raise invalid_request("A fault's `path` is an API path or glob starting with /v1/.", param="path")
    if kind not in KINDS:
        raise invalid_request(f"A fault's `kind` is one of {', '.join(KINDS)}.", param="kind")
    try:
        count = int(item.get("count", 1))
        seconds = float(item.get("seconds", DEFAULT_HOLD_SECONDS))
    except (TypeError, ValueError):
        raise invalid_request("`count` is a whole number and `seconds` a number.") from None
    if not 1 <= count <= 1000 or not 0 <= seconds <= MAX_HOLD_SECONDS:
        raise invalid_request(f"`count` is 1 to 1000 and `seconds` 0 to {MAX_HOLD_SECONDS:.0f}.")
    method = str(item.get("method", "POST")).upper()
    return Fault(path=path, kind=kind, method=method, count=count, seconds=seconds)


def _listing() -> dict[str, Any]:
    return {"faults": [asdict(f) for f in FAULTS.pending], "fired": [asdict(f) for f in FAULTS.fired]}


async def set_faults(request: web.Request) -> web.Response:
    """POST /_config/faults: a list of faults (or {"faults": [...]}) replaces the configured ones."""
    try:
        body = await request.json() if request.can_read_body else []
    except ValueError:
        raise invalid_request("Send the faults as JSON.") from None
    items = body.get("faults", []) if isinstance(body, dict) else body
    if not isinstance(items, list) or len(items) > MAX_FAULTS:
        raise invalid_request(f"Send a list of at most {MAX_FAULTS} faults.")
    FAULTS.configure([_fault(item) for item in items])
    return web.json_response(_listing())


async def get_faults(request: web.Request) -> web.Response:
    """GET /_config/faults: the faults still to fire and those that fired (with their keys)."""
    return web.json_response(_listing())


async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /_config/faults: no more faults; the record of fired ones is emptied too."""
    FAULTS.configure([])
    return web.json_response(_listing())
