"""Many workers on one instance (issue 16): what they share through Redis holds across processes,
and what happens to them when Redis goes away and comes back.

Every test that takes Redis away uses a private `redis-server` of its own (devtools/redis_server.py),
never the shared one. The browser side (two tabs on two workers, a worker killed) is
tests/browser/test_scale_out.py.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from billy_app.serve import scaling_problem
from devtools.redis_server import RedisServer
from services import notices, shared_limits
from services.config import PROJECT_ROOT
from services.notices import EVERYTHING, Notice, NoticeBus, RedisRelay
from services.stripe_gateway import RateGate
from tests.waiting import eventually

RATE = 10  # requests a second the gate allows, in both processes together
PER_PROCESS = 15
STAMP_SLACK = 0.05  # seconds a stamp may be read after the gate let its request go


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("private-redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def up_redis(private_redis: RedisServer) -> RedisServer:
    """The private server, running (a test before may have left it down) and empty."""
    try:
        redis.Redis.from_url(private_redis.url(), socket_timeout=1).ping()
    except redis.ConnectionError:
        private_redis.start()
    redis.Redis.from_url(private_redis.url()).flushall()
    return private_redis


# --- the Stripe request gate, shared by every worker ----------------------------------------------


def _send_through_the_gate(url: str, name: str, count: int, start, sent) -> None:  # type: ignore[no-untyped-def]
    """In a process of its own, as a worker would: its own gate on the shared Redis key space."""
    gate = RateGate(RATE, url, name=name)
    start.wait(60)
    stamps = []
    for _ in range(count):
        gate.acquire()
        stamps.append(time.time())  # when this request would leave for Stripe
    sent.put(stamps)


def test_two_processes_share_one_gate_and_never_exceed_its_rate_in_any_second(up_redis: RedisServer) -> None:
    spawn = multiprocessing.get_context("spawn")
    start, sent = spawn.Barrier(2), spawn.Queue()
    name = f"test-{uuid.uuid4().hex}"
    workers = [
        spawn.Process(target=_send_through_the_gate, args=(up_redis.url(), name, PER_PROCESS, start, sent))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    stamps = sorted(stamp for _ in workers for stamp in sent.get(timeout=90))
    for worker in workers:
        worker.join(30)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert len(stamps) == 2 * PER_PROCESS
    # No second holds more than RATE of them, wherever it starts: the (RATE+1)th after any request
    # leaves a second later. Each process alone would have sent its 15 within about a second, so a
    # gate counted per process puts 11 within ~0.5 s. A stamp is read after acquire() returns, and
    # a process descheduled in between (CI once read one 14 ms late on a loaded machine) makes a gap
    # look shorter than the gate made it: STAMP_SLACK allows for that reading, not for the gate.
    closest = min(later - earlier for earlier, later in zip(stamps, stamps[RATE:], strict=False))
    assert closest >= 1.0 - STAMP_SLACK, f"{RATE + 1} requests within {closest:.3f} s"
    assert stamps[-1] - stamps[0] >= 2 * PER_PROCESS // RATE - 1


def test_while_redis_is_away_each_worker_paces_itself_and_shares_again_once_it_is_back(
    up_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_limits, "FALLBACK_SECONDS", 0.5)
    name = f"test-{uuid.uuid4().hex}"
    gate = RateGate(5, up_redis.url(), name=name)
    gate.acquire()
    shared = redis.Redis.from_url(up_redis.url())
    assert shared.keys(f"*{name}*"), "the first request is counted in Redis"
    up_redis.kill()
    started = time.monotonic()
    for _ in range(10):  # Stripe calls go on, paced by this process alone: 5 now, 5 a second later
        gate.acquire()
    took = time.monotonic() - started
    assert 1.0 <= took < 4, took
    up_redis.start()
    shared.flushall()
    time.sleep(0.6)  # past the fallback: the next request tries the shared gate again
    gate.acquire()
    assert shared.keys(f"*{name}*"), "counted in Redis again"


# --- live updates through Redis: pause while it is away, resume (and catch up) when it is back -------


def _listen(bus: NoticeBus, got: list[Notice], ready: threading.Event, stop: threading.Event) -> None:
    """A page's follower on its own event loop: collects every notice its worker hears."""

    async def follow() -> None:
        async with bus.subscription() as sub:
            ready.set()
            while not stop.is_set():
                notice = await sub.next(0.05)
                if notice is not None:
                    got.append(notice)

    asyncio.run(follow())


def test_live_updates_pause_while_redis_is_away_and_resume_with_a_catch_up_when_it_is_back(
    up_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notices, "CHANNEL", f"billy:test:{uuid.uuid4().hex}")
    monkeypatch.setattr(notices, "RECONNECT_SECONDS", 0.2)
    writer_bus, reader_bus = NoticeBus(), NoticeBus()  # two workers: one writes, one shows a page
    writer, _reader = RedisRelay(up_redis.url(), writer_bus), RedisRelay(up_redis.url(), reader_bus)
    got: list[Notice] = []
    ready, stop = threading.Event(), threading.Event()
    page = threading.Thread(target=_listen, args=(reader_bus, got, ready, stop), daemon=True)
    page.start()
    assert ready.wait(5)
    try:
        writer.publish(Notice("refund", ("re_before",)))
        assert eventually(lambda: Notice("refund", ("re_before",)) in got)

        up_redis.kill()
        time.sleep(0.5)
        with pytest.raises(redis.ConnectionError):  # the write's own publish fails ...
            writer.publish(Notice("refund", ("re_during",)))
        monkeypatch.setattr(notices, "_relay", lambda: writer)
        notices.publish("refund", ["re_during"])  # ... but through `publish` it never fails the write
        time.sleep(0.5)
        assert got == [Notice("refund", ("re_before",))], "pages are not woken while Redis is away"

        up_redis.start()
        # Back: the reading worker hears Redis again and tells its pages to re-read everything (what
        # changed meanwhile never reached them), and notices flow again.
        assert eventually(lambda: EVERYTHING in got), got
        writer.publish(Notice("refund", ("re_after",)))
        assert eventually(lambda: Notice("refund", ("re_after",)) in got), got
        assert Notice("refund", ("re_during",)) not in got
    finally:
        stop.set()
        page.join(5)


# --- how many workers an instance may run ---------------------------------------------------------------


def test_several_workers_need_postgresql_and_redis() -> None:
    pg, rd = "postgresql+psycopg2://billy@db/billy", "redis://cache:6379/0"
    assert scaling_problem(1, "sqlite:///data/db/billy.db", "") == ""
    assert scaling_problem(4, pg, rd) == ""
    assert "SQLite means one worker" in scaling_problem(2, "sqlite:///data/db/billy.db", rd)
    assert "BILLY_REDIS_URL is not set" in scaling_problem(2, pg, "")
    assert "at least one" in scaling_problem(0, pg, rd)


def test_starting_two_workers_on_sqlite_is_refused_in_words(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLY_", "GRANIAN_"))}
    env.update(BILLY_DATA_DIR=str(tmp_path), GRANIAN_WORKERS="2")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "billy_app.serve", "--port", "1"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Billy cannot start: 2 workers asked, but the store is SQLite, and SQLite means one worker" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 30  # refused before any frontend build
