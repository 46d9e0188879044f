"""Many workers behind one address (issue 16): a tab outlives the worker that held it.

With BILLY_REDIS_URL, Reflex keeps each tab's state in Redis and records, per tab token, which
worker holds the tab's websocket (a "socket record", kept for an hour). When a tab connects and a
record for its token already exists, Reflex takes the newcomer for a duplicated tab (the browser
copies sessionStorage, and so the token, when a tab is duplicated) and gives it a fresh token: a
fresh, empty state. A worker that dies without closing its sockets (kill -9, out of memory, a
replica lost with its host) leaves its records behind, so every tab it served would reconnect to
another worker as a "duplicate" and lose what it showed: the search typed, the page it was on.

So each worker keeps one connection to Redis named after it (`billy-worker-<instance id>`) and a
heartbeat key renewed every `HEARTBEAT_SECONDS`. A record whose worker has no named connection
(the process is gone: its sockets closed with it, at once) or no heartbeat (its host went away
without closing anything: within `HEARTBEAT_TTL_SECONDS`) is a dead worker's leftover, deleted
before Reflex looks: the tab keeps its token and its state. A live owner still means a duplicated
tab, handled as Reflex does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import socket
from collections.abc import AsyncIterator
from typing import Any

from reflex.utils.token_manager import RedisTokenManager

from services.config import get_settings

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TTL_SECONDS = 10
HEARTBEAT_KEY = "billy:worker-alive:{instance}"
CONNECTION_NAME = "billy-worker-{instance}"
# Delete a socket record only if it is still the one judged dead (a live worker may relink meanwhile).
_DELETE_IF_UNCHANGED = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def worker_name() -> str:
    """This process as an operator finds it: the host (a container's replica name) and the pid.
    It is the heartbeat's value, so `redis-cli get billy:worker-alive:<instance id>` names the worker
    a tab's socket record (`token_manager_socket_record_<token>`) points at."""
    return f"{socket.gethostname()}/{os.getpid()}"


async def worker_alive(redis: Any, instance_id: str) -> bool:
    """Whether the worker `instance_id` still runs: its heartbeat is current and its named
    connection open. A Redis that refuses CLIENT LIST (some managed ones) leaves the heartbeat alone to say."""
    if not await redis.exists(HEARTBEAT_KEY.format(instance=instance_id)):
        return False
    try:
        clients = await redis.client_list()
    except Exception:  # noqa: BLE001 - CLIENT LIST not allowed here: the heartbeat decides
        return True
    name = CONNECTION_NAME.format(instance=instance_id)
    return any(client.get("name") == name for client in clients)


class SurvivingTokenManager(RedisTokenManager):
    """Reflex's Redis token manager, except that a socket record left by a dead worker is not a
    duplicate tab (see the module docstring)."""

    async def link_token_to_sid(self, token: str, sid: str) -> str | None:
        try:
            await self._forget_dead_owner(token)
        except Exception as exc:  # noqa: BLE001 - Redis trouble: Reflex's own handling follows
            log.warning("Could not check a reconnecting tab's previous worker (%s)", type(exc).__name__)
        return await super().link_token_to_sid(token, sid)

    async def _forget_dead_owner(self, token: str) -> None:
        key = self._get_redis_key(token)
        raw = await self.redis.get(key)
        if not raw:
            return
        # Reflex's own record, pickled by Reflex into the instance's Redis; Reflex reads it the same way.
        owner = getattr(pickle.loads(raw), "instance_id", None)  # noqa: S301
        if not owner or owner == self.instance_id or await worker_alive(self.redis, owner):
            return
        if await self.redis.eval(_DELETE_IF_UNCHANGED, 1, key, raw):
            log.info("A tab whose worker died reconnected here; it keeps its state")


async def _heartbeat(manager: RedisTokenManager, url: str) -> None:
    """Renew this worker's heartbeat over a connection named after it, for as long as it runs.
    Reflex gives the worker its instance id when the app starts in it; a new id gets a new name."""
    client: Any = None
    named = ""
    try:
        while True:
            try:
                if named != manager.instance_id:
                    if client is not None:
                        await client.aclose()
                    from redis import asyncio as redis_asyncio

                    named = manager.instance_id
                    client = redis_asyncio.Redis.from_url(
                        url,
                        client_name=CONNECTION_NAME.format(instance=named),
                        socket_timeout=HEARTBEAT_SECONDS,
                        socket_connect_timeout=HEARTBEAT_SECONDS,
                    )
                await client.set(HEARTBEAT_KEY.format(instance=named), worker_name(), ex=HEARTBEAT_TTL_SECONDS)
            except Exception as exc:  # noqa: BLE001 - Redis away: try again at the next beat
                log.debug("Worker heartbeat missed (%s)", type(exc).__name__)
            await asyncio.sleep(HEARTBEAT_SECONDS)
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                await client.delete(HEARTBEAT_KEY.format(instance=named))
            with contextlib.suppress(Exception):
                await client.aclose()


@contextlib.asynccontextmanager
async def survive_dead_workers(app: Any) -> AsyncIterator[None]:
    """A lifespan task: with Redis, this worker's heartbeat, and the token manager that tells a
    dead worker's tab from a duplicated one. Without Redis (one worker) there is nothing to do."""
    url = get_settings().redis_url
    namespace = app.event_namespace
    manager = getattr(namespace, "_token_manager", None)
    if not url or not isinstance(manager, RedisTokenManager):
        yield
        return
    manager.__class__ = SurvivingTokenManager  # the same object and maps; one method differs
    beat = asyncio.create_task(_heartbeat(manager, url), name="billy-worker-heartbeat")
    try:
        yield
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
