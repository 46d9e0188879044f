"""Named in-memory snapshots of the whole sandbox, for test suites that reuse one arrangement.

Seeding the demo account takes seconds; restoring it takes milliseconds. A snapshot is kept as
pickled bytes, so what a test changes after restoring never reaches the saved copy. Emptying the
sandbox (`DELETE /_config/data`) keeps the snapshots, and restoring one keeps the registered
webhooks, as a reset does: receivers are registered once per test run, not per arrangement.
"""

from __future__ import annotations

import pickle
from typing import Any

from aiohttp import web

from sandbox import state
from sandbox.errors import invalid_request

_SAVED: dict[str, bytes] = {}


async def take(request: web.Request) -> web.Response:
    """PUT /_config/snapshots/{name}: save the current state under `name` (replacing any)."""
    name = request.match_info["name"]
    captured = state.capture()
    captured["extensions"].pop("webhooks", None)  # not restored: a restore keeps today's receivers
    _SAVED[name] = pickle.dumps(captured, protocol=pickle.HIGHEST_PROTOCOL)
    return web.json_response({"name": name, "bytes": len(_SAVED[name])})


async def restore(request: web.Request) -> web.Response:
    """POST /_config/snapshots/{name}/restore: replace the whole state with the saved one."""
    name = request.match_info["name"]
    if name not in _SAVED:
        raise invalid_request(f"No snapshot named {name!r}: take one with PUT /_config/snapshots/{name}.", status=404)
    state.apply(pickle.loads(_SAVED[name]))  # noqa: S301 - bytes this process pickled itself
    return web.json_response({"name": name})


def routes() -> list[tuple[str, str, Any]]:
    return [
        ("PUT", "/_config/snapshots/{name}", take),
        ("POST", "/_config/snapshots/{name}/restore", restore),
    ]
