"""Store-change notices: "these rows of this kind changed", for open pages to refresh.

A notice carries only a kind (`charge`, `invoice`, `sync`, ...) and ids, never row data,
so a page re-reads what it shows through the service layer with its viewer's own
permissions. In one process notices go straight to subscribers; with BILLY_REDIS_URL set
they go through Redis publish/subscribe, so every app worker hears every write.

Publishing never fails the write that caused it: a lost notice only delays a refresh.

A *signal* (`signal`) travels the same way but only to watchers (`watch`), plain callbacks that
drop what their process keeps: the Key Vault store's kept copy of a secret another worker
changed. No page hears a signal, and it does not move the generation, since no row changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from services.config import get_settings

log = logging.getLogger(__name__)
CHANNEL = "billy:store-changes"
QUEUE_LIMIT = 1000  # a subscriber this far behind gets a "reload everything" notice instead


@dataclass(frozen=True)
class Notice:
    kind: str
    ids: tuple[str, ...]
    # A signal (`signal`) is for watchers only: no page hears it and it does not move the generation,
    # since no row changed (a secret written in the vault, say).
    signal: bool = False


EVERYTHING = Notice("*", ())
Watcher = Callable[[Notice], None]


class Subscription:
    """One listener's queue. `next` waits at most `timeout` seconds (None: as long as it takes)."""

    def __init__(self, queue: asyncio.Queue[Notice], bus: NoticeBus) -> None:
        self._queue = queue
        self._bus = bus

    def heard(self) -> int:
        """The bus's generation now: at least that of every notice `next` has handed over (a
        notice moves the generation before it is queued)."""
        return self._bus.generation

    async def next(self, timeout: float | None) -> Notice | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None


class NoticeBus:
    """Fan-out to asyncio subscribers (each page's background task), from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Subscribers by the loop they wait on: a notice is handed to each loop once, and the loop
        # queues it for all of its subscribers. One wake-up of the loop per subscriber was 6 % of
        # the server's samples under a burst of webhooks with fifty pages open (py-spy, bench.burst).
        self._by_loop: dict[asyncio.AbstractEventLoop, set[asyncio.Queue[Notice]]] = {}
        self.generation = 0  # notices delivered so far: a cheap "has the store changed?" for caches
        self._watchers: dict[str, list[Watcher]] = {}

    def watch(self, kind: str, watcher: Watcher) -> Callable[[], None]:
        """Call `watcher` with every notice of `kind`, and every "reload everything", in the thread
        that delivers it and before pages hear it; returns the call that stops it. For what this
        process keeps that another worker's write makes stale (the Key Vault store's kept reads).
        A watcher must be quick: with Redis it runs on the one listener thread."""
        with self._lock:
            self._watchers.setdefault(kind, []).append(watcher)

        def stop() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._watchers.get(kind, []).remove(watcher)

        return stop

    def deliver(self, notice: Notice) -> None:
        with self._lock:
            if not notice.signal:
                self.generation += 1
            everything = notice.kind == EVERYTHING.kind
            watchers = [w for kind, ws in self._watchers.items() if everything or kind == notice.kind for w in ws]
            loops = [] if notice.signal else [(loop, list(queues)) for loop, queues in self._by_loop.items()]
        for watcher in watchers:
            try:
                watcher(notice)
            except Exception:  # one watcher's fault must not stop the others or the pages' notices
                log.exception("A store-change watcher failed on a %r notice", notice.kind)
        for loop, queues in loops:
            try:
                loop.call_soon_threadsafe(_offer_all, queues, notice)
            except RuntimeError:  # that loop has closed; its subscriptions end with it
                with self._lock:
                    self._by_loop.pop(loop, None)

    @contextlib.asynccontextmanager
    async def subscription(self) -> AsyncIterator[Subscription]:
        """Notices from now until the block ends, read with `await sub.next(timeout)`."""
        queue: asyncio.Queue[Notice] = asyncio.Queue(QUEUE_LIMIT)
        loop = asyncio.get_running_loop()
        with self._lock:
            self._by_loop.setdefault(loop, set()).add(queue)
        try:
            yield Subscription(queue, self)
        finally:
            with self._lock:
                queues = self._by_loop.get(loop)
                if queues is not None:
                    queues.discard(queue)
                    if not queues:
                        del self._by_loop[loop]

    async def subscribe(self) -> AsyncIterator[Notice]:
        async with self.subscription() as sub:
            while True:
                notice = await sub.next(None)
                if notice is not None:
                    yield notice

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(queues) for queues in self._by_loop.values())


def _offer_all(queues: list[asyncio.Queue[Notice]], notice: Notice) -> None:
    for queue in queues:
        _offer(queue, notice)


def _offer(queue: asyncio.Queue[Notice], notice: Notice) -> None:
    try:
        queue.put_nowait(notice)
    except asyncio.QueueFull:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(EVERYTHING)


PUBLISH_TIMEOUT_SECONDS = 2.0  # a write never waits longer than this on Redis to announce itself
RECONNECT_SECONDS = 1.0


class RedisRelay:
    """Publishes to Redis; one listener thread per process delivers what arrives to the local bus.

    When Redis goes away, notices stop (a write still succeeds: its notice is logged as lost) and
    the listener tries again every `RECONNECT_SECONDS`. Once it hears Redis again it delivers one
    "reload everything" notice, so open pages re-read what changed meanwhile: live updates pause
    and resume, and nothing stays stale. Pages are not woken while Redis is away (their state
    lives there too: a refresh then would only fail)."""

    def __init__(self, url: str, bus: NoticeBus) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)  # the listener's: it waits on the channel without a timeout
        self._publisher = redis.Redis.from_url(
            url, socket_timeout=PUBLISH_TIMEOUT_SECONDS, socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS
        )
        self._bus = bus
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="billy-notices", daemon=True)
        self._thread.start()
        self._started.wait(5)

    def publish(self, notice: Notice) -> None:
        message = {"kind": notice.kind, "ids": list(notice.ids)} | ({"signal": True} if notice.signal else {})
        self._publisher.publish(CHANNEL, json.dumps(message))

    def _listen(self) -> None:
        interrupted = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                self._started.set()
                if interrupted:
                    log.warning("Store-change notices from Redis resumed")
                    self._bus.deliver(EVERYTHING)  # something may have been missed meanwhile
                    interrupted = False
                for message in pubsub.listen():
                    data: dict[str, Any] = json.loads(message["data"])
                    self._bus.deliver(
                        Notice(str(data["kind"]), tuple(map(str, data["ids"])), signal=data.get("signal") is True)
                    )
            except Exception as exc:  # noqa: BLE001 - reconnect; pages catch up once it is back
                if not interrupted:
                    log.warning("Store-change notices from Redis interrupted (%s); reconnecting", type(exc).__name__)
                interrupted = True
                with contextlib.suppress(Exception):
                    pubsub.close()
                threading.Event().wait(RECONNECT_SECONDS)


@lru_cache(maxsize=1)
def get_bus() -> NoticeBus:
    return NoticeBus()


@lru_cache(maxsize=1)
def _relay() -> RedisRelay | None:
    url = get_settings().redis_url
    return RedisRelay(url, get_bus()) if url else None


def publish(kind: str, ids: Iterable[str]) -> None:
    """Tell open pages that rows changed (after the transaction that changed them committed)."""
    _send(Notice(kind, tuple(ids)))


def signal(kind: str, ids: Iterable[str]) -> None:
    """Tell every process's watchers of `kind` (`watch`) about `ids`; pages hear nothing of it."""
    _send(Notice(kind, tuple(ids), signal=True))


def _send(notice: Notice) -> None:
    if not notice.ids:
        return
    try:
        relay = _relay()
        if relay is not None:
            relay.publish(notice)
        else:
            get_bus().deliver(notice)
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        log.warning("Could not publish a store-change notice (%s)", type(exc).__name__)


def watch(kind: str, watcher: Watcher) -> Callable[[], None]:
    """`NoticeBus.watch` on this process's bus, which hears every worker's notices when Redis is set."""
    _relay()
    return get_bus().watch(kind, watcher)


def generation() -> int:
    """Moves whenever this process hears of a store change (from any worker, with Redis)."""
    _relay()
    return get_bus().generation


# How new a read must be for the caller: None, a read begun at the current generation; a live
# page's refresh sets the generation it heard of (`reading_as_of`).
_reading_as_of: ContextVar[int | None] = ContextVar("billy_reading_as_of", default=None)


@contextlib.contextmanager
def reading_as_of(heard: int) -> Iterator[None]:
    """Reads in the block need only have begun at generation `heard` or later: a live page's
    refresh, once the notices it answers had all arrived. Any such read shows every change those
    notices announced (a notice is published after its transaction commits), so it may be shared
    with the pages that heard the same notices (`reports.SharedReads`), even if more notices came
    meanwhile: those bring the page's next refresh."""
    token = _reading_as_of.set(heard)
    try:
        yield
    finally:
        _reading_as_of.reset(token)


def wanted_generation() -> int:
    """The oldest generation a shared read may have begun at to serve the caller."""
    heard = _reading_as_of.get()
    return generation() if heard is None else heard


def subscription() -> contextlib.AbstractAsyncContextManager[Subscription]:
    """Notices from now on, read with timeouts (a page's background task checks on its tab between them)."""
    _relay()
    return get_bus().subscription()
