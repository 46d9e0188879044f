"""Idempotent requests (Stripe docs: api/idempotent_requests).

localstripe ignores `Idempotency-Key`. Stripe saves the status and body of the
first POST made with a key and answers later requests with the same key from
that record (header `Idempotent-Replayed: true`), so a retried request never
creates a second object. The same key with other parameters, or on another
endpoint, is refused with 400 `idempotency_error`. Keys may be pruned after 24
hours. Results are saved only once the endpoint has started executing, so
requests refused by validation (most 4xx) are not saved and may be retried.
Concurrent requests with one key are serialised here, so the second one
replays the first instead of racing it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from localstripe.errors import UserError

from sandbox.errors import error_response, invalid_request
from sandbox.state import REQUEST_ID, mark_dirty

KEY_TTL_SECONDS = 24 * 3600
MAX_KEYS = 10_000
MAX_KEY_LENGTH = 255
# Executed-and-saved statuses: success, card errors (the charge exists), server errors.
SAVED_STATUSES = range(200, 300), (402,), range(500, 600)


@dataclass(frozen=True)
class SavedResponse:
    path: str
    fingerprint: str
    status: int
    body: bytes
    content_type: str
    request_id: str | None
    saved_at: float


class IdempotencyCache:
    """Saved responses by idempotency key, oldest first, pruned after 24 hours."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.entries: OrderedDict[str, SavedResponse] = OrderedDict()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def reset(self) -> None:
        self.entries.clear()

    def snapshot(self) -> list[tuple[str, SavedResponse]]:
        self.prune()
        return list(self.entries.items())

    def restore(self, data: list[tuple[str, SavedResponse]]) -> None:
        self.entries = OrderedDict(data)
        self.prune()

    def prune(self) -> None:
        cutoff = self.clock() - KEY_TTL_SECONDS
        while self.entries:
            key, entry = next(iter(self.entries.items()))
            if entry.saved_at >= cutoff and len(self.entries) <= MAX_KEYS:
                break
            del self.entries[key]

    def get(self, key: str) -> SavedResponse | None:
        self.prune()
        return self.entries.get(key)

    def save(self, key: str, entry: SavedResponse) -> None:
        self.entries[key] = entry
        self.prune()
        mark_dirty()

    async def serialised(self, key: str, run: Callable[[], Any]) -> Any:
        """Run `run` while holding the key's lock; drop the lock when nobody waits."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await run()
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


CACHE = IdempotencyCache()


def fingerprint(body: bytes) -> str:
    """Parameters in a canonical form: the same request encoded differently matches."""
    text = body.decode("utf-8", "replace")
    try:
        return json.dumps(json.loads(text), sort_keys=True) if text.strip() else ""
    except ValueError:
        return json.dumps(sorted(parse_qsl(text, keep_blank_values=True)))


def _is_saved(status: int) -> bool:
    return any(status in statuses for statuses in SAVED_STATUSES)


def replay(entry: SavedResponse) -> web.Response:
    response = web.Response(body=entry.body, status=entry.status, content_type=entry.content_type)
    response.headers["Idempotent-Replayed"] = "true"
    if entry.request_id:
        response.headers["Original-Request"] = entry.request_id
    return response


def mismatch(key: str, entry: SavedResponse, path: str) -> web.Response:
    if entry.path != path:
        message = (
            "Keys for idempotent requests can only be used for the same endpoint "
            f"they were first used for ('{entry.path}' vs '{path}'). Try using a key "
            f"other than '{key}' if you meant to execute a different request."
        )
    else:
        message = (
            "Keys for idempotent requests can only be used with the same parameters "
            f"they were first used with. Try using a key other than '{key}' if you "
            "meant to execute a different request."
        )
    return web.json_response({"error": {"message": message, "type": "idempotency_error"}}, status=400)


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key or not request.path.startswith("/v1/"):
        return await handler(request)
    if len(key) > MAX_KEY_LENGTH:
        raise invalid_request(f"Idempotency keys can be no longer than {MAX_KEY_LENGTH} characters.")
    request_print = fingerprint(await request.read())

    async def run() -> web.StreamResponse:
        saved = CACHE.get(key)
        if saved is not None:
            if saved.path != request.path or saved.fingerprint != request_print:
                return mismatch(key, saved, request.path)
            return replay(saved)
        try:
            response = await handler(request)
        except UserError as exc:
            response = error_response(exc)
        if isinstance(response, web.Response) and _is_saved(response.status):
            CACHE.save(
                key,
                SavedResponse(
                    path=request.path,
                    fingerprint=request_print,
                    status=response.status,
                    body=bytes(response.body or b""),
                    content_type=response.content_type,
                    request_id=request.get(REQUEST_ID),
                    saved_at=CACHE.clock(),
                ),
            )
        return response

    return await CACHE.serialised(key, run)
