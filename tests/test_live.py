"""Store-change notices reach open pages (in one process, and across workers through Redis),
and Settings → Stripe sync / `billy sync` say honestly where the sync stands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
import uuid
from typing import Any

import pytest

from services import notices, stripe_keys, sync
from services.notices import Notice, NoticeBus, RedisRelay
from services.stripe_events import apply_event, overview
from tests.conftest import member_actor, redis_or_skip


async def _receive(bus: NoticeBus, count: int, started: threading.Event) -> list[Notice]:
    got: list[Notice] = []
    stream = bus.subscribe()
    started.set()
    async for notice in stream:
        got.append(notice)
        if len(got) == count:
            break
    return got


def _run_subscriber(bus: NoticeBus, count: int) -> tuple[threading.Thread, list[list[Notice]], threading.Event]:
    """A subscriber on its own event loop (as a page's background task would be)."""
    out: list[list[Notice]] = []
    started = threading.Event()

    def run() -> None:
        out.append(asyncio.run(asyncio.wait_for(_receive(bus, count, started), 10)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(5)
    time.sleep(0.05)  # the subscription is registered before `started` is set; let the loop settle
    return thread, out, started


def test_notices_reach_every_subscriber_from_any_thread() -> None:
    bus = NoticeBus()
    first, got_first, _ = _run_subscriber(bus, 2)
    second, got_second, _ = _run_subscriber(bus, 2)
    assert bus.subscriber_count == 2
    threading.Thread(target=lambda: bus.deliver(Notice("charge", ("ch_1",)))).start()
    bus.deliver(Notice("invoice", ("in_1", "in_2")))
    first.join(5)
    second.join(5)
    for got in (got_first[0], got_second[0]):
        assert sorted(got, key=lambda n: n.kind) == [Notice("charge", ("ch_1",)), Notice("invoice", ("in_1", "in_2"))]
    time.sleep(0.05)
    assert bus.subscriber_count == 0  # a page that stops listening is forgotten


def test_a_notice_wakes_each_loop_once_however_many_pages_wait_on_it() -> None:
    """Fifty open pages wait on the same event loop: a notice from a webhook's thread is handed
    to that loop once, which queues it for all of them, in order; a page that stops listening is
    left out of the next one."""

    class CountingLoop(asyncio.SelectorEventLoop):
        handed = 0

        def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> Any:
            CountingLoop.handed += 1
            return super().call_soon_threadsafe(*args, **kwargs)

    bus = NoticeBus()

    async def scenario() -> tuple[int, list[list[Notice]], int]:
        async with contextlib.AsyncExitStack() as stack:
            subs = [await stack.enter_async_context(bus.subscription()) for _ in range(50)]
            sent = [Notice("charge", (f"ch_{i}",)) for i in range(3)]
            webhook = threading.Thread(target=lambda: [bus.deliver(n) for n in sent])
            webhook.start()
            webhook.join()
            got = [[await sub.next(1) for _ in sent] for sub in subs]  # type: ignore[misc]
            handed = CountingLoop.handed
            async with bus.subscription():
                pass  # one more page came and went
        return handed, got, bus.subscriber_count

    loop = CountingLoop()
    try:
        handed, got, left = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert handed == 3  # one per notice, not one per page
    assert all(each == [Notice("charge", (f"ch_{i}",)) for i in range(3)] for each in got)
    assert left == 0


def test_a_quiet_spell_does_not_end_a_subscription() -> None:
    """A page's task waits with a timeout to check on its tab; the wait must not end the feed."""
    bus = NoticeBus()

    async def scenario() -> list[Notice | None]:
        async with bus.subscription() as sub:
            idle = await sub.next(0.05)
            bus.deliver(Notice("charge", ("ch_1",)))
            return [idle, await sub.next(1)]

    assert asyncio.run(scenario()) == [None, Notice("charge", ("ch_1",))]


def test_a_subscriber_that_falls_behind_gets_one_reload_everything_notice() -> None:
    bus = NoticeBus()

    async def scenario() -> list[Notice]:
        stream = bus.subscribe()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.01)
        for i in range(notices.QUEUE_LIMIT + 50):
            bus.deliver(Notice("charge", (f"ch_{i}",)))
        await asyncio.sleep(0.05)
        got = [await first]
        while True:
            try:
                got.append(await asyncio.wait_for(anext(stream), 0.1))
            except TimeoutError:
                return got

    got = asyncio.run(scenario())
    assert notices.EVERYTHING in got and len(got) < notices.QUEUE_LIMIT


def test_a_watcher_hears_its_signals_and_reload_everything_and_its_fault_stops_no_page(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A signal (a secret changed in the vault) reaches the watchers of its kind only: no page is
    woken and the generation, which says rows changed, stays where it was."""
    bus = NoticeBus()
    heard: list[Notice] = []

    def broken(notice: Notice) -> None:
        raise RuntimeError("a watcher's bug")

    bus.watch("secret", broken)
    stop = bus.watch("secret", heard.append)
    thread, got, _ = _run_subscriber(bus, 2)
    changed = Notice("secret", ("t-stripe-restricted-key",), signal=True)
    bus.deliver(Notice("charge", ("ch_1",)))
    bus.deliver(changed)
    assert bus.generation == 1
    bus.deliver(notices.EVERYTHING)
    thread.join(5)
    assert heard == [changed, notices.EVERYTHING]
    assert got == [[Notice("charge", ("ch_1",)), notices.EVERYTHING]]
    assert "A store-change watcher failed" in caplog.text

    stop()
    bus.deliver(Notice("secret", ("t-other",), signal=True))
    assert len(heard) == 2


def test_with_redis_a_write_in_one_worker_reaches_pages_in_another() -> None:
    """... and a signal reaches the other worker's watchers, but none of its pages."""
    redis_url = redis_or_skip()
    channel = f"billy:test:{uuid.uuid4().hex}"
    worker_a, worker_b = NoticeBus(), NoticeBus()
    heard_b: list[Notice] = []
    worker_b.watch("secret", heard_b.append)
    changed = Notice("secret", ("t-stripe-restricted-key",), signal=True)
    original = notices.CHANNEL
    notices.CHANNEL = channel
    try:
        relay_a, _relay_b = RedisRelay(redis_url, worker_a), RedisRelay(redis_url, worker_b)
        time.sleep(0.2)
        thread_a, got_a, _ = _run_subscriber(worker_a, 1)
        thread_b, got_b, _ = _run_subscriber(worker_b, 1)
        relay_a.publish(changed)
        relay_a.publish(Notice("refund", ("re_1",)))
        thread_a.join(5)
        thread_b.join(5)
    finally:
        notices.CHANNEL = original
    assert got_a == [[Notice("refund", ("re_1",))]] and got_b == [[Notice("refund", ("re_1",))]]
    assert heard_b == [changed] and worker_b.generation == 1


def test_a_stored_event_publishes_what_changed(any_store) -> None:  # type: ignore[no-untyped-def]
    bus = notices.get_bus()
    thread, got, _ = _run_subscriber(bus, 1)
    customer = {"id": "cus_live", "object": "customer", "email": "a@example.com", "created": 1_700_000_000}
    event = {"id": "evt_live", "object": "event", "type": "customer.created", "created": 1_700_000_000}
    apply_event({**event, "data": {"object": customer}}, "webhook")
    thread.join(5)
    assert got == [[Notice("customer", ("cus_live",))]]


# --- Settings → Stripe sync, and the command line ------------------------------------------


def test_the_sync_overview_names_each_resource_and_the_event_lag(any_store, any_store_owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    from sandbox.seed import seed

    seed(stripe_peer.url, customers=6)
    key = stripe_peer.restricted_key(profile="billy", without=["rak_dispute_read"])
    stripe_keys.connect_stripe_key(any_store_owner, key)
    sync.backfill()  # the whole first sync, card sweep included, as the sync page reports it
    view = overview(member_actor("read_only", "viewer@example.com"))  # everyone may look
    by_name = {r.resource: r for r in view.resources}
    assert set(by_name) == set(sync.RESOURCES)
    assert by_name["customers"].status == "done" and by_name["customers"].synced_count == 6
    assert by_name["disputes"].status == "skipped" and "Disputes: Read" in (by_name["disputes"].last_error or "")
    assert by_name["disputes"].required is False and by_name["charges"].required is True
    assert view.webhook_configured is False and view.endpoint_url.endswith("/api/stripe/webhook")
    assert view.last_event_created is not None and view.lag_seconds is not None and view.lag_seconds <= 120


def test_billy_sync_prints_each_resource_and_fails_when_one_did_not_finish(  # type: ignore[no-untyped-def]
    any_store, any_store_owner, stripe_peer, capsys
) -> None:
    from sandbox.seed import seed
    from services.cli import main

    seed(stripe_peer.url, customers=4)
    key = stripe_peer.restricted_key(profile="billy", without=["rak_product_read"])
    stripe_keys.connect_stripe_key(any_store_owner, key)
    assert main(["sync"]) == 1  # products were skipped: not a clean run
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith("took")}
    assert set(lines) == set(sync.RESOURCES)
    assert "skipped" in lines["products"] and "Products: Read" in lines["products"]
    assert lines["customers"].split()[1:3] == ["done", "4"]


def test_the_dashboard_is_recomputed_when_the_store_changes(any_store, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    from services import reports

    first = reports.dashboard(any_store_owner)
    assert reports.dashboard(any_store_owner) is first  # nothing changed: the same copy
    charge = {
        "id": "ch_live1",
        "object": "charge",
        "amount": 1234,
        "currency": "usd",
        "status": "succeeded",
        "paid": True,
        "created": int(time.time()) - 60,
    }
    apply_event(
        {
            "id": "evt_c1",
            "object": "event",
            "type": "charge.succeeded",
            "created": int(time.time()),
            "data": {"object": charge},
        },
        "webhook",
    )
    after = reports.dashboard(any_store_owner)
    assert after is not first
    assert first.revenue == [] and [(r.currency, r.gross.amount) for r in after.revenue] == [("usd", 1234)]


# --- the follower's refreshes: errors are handled, never swallowed (issue 11) ----------------------


@pytest.mark.parametrize(
    ("raised", "keeps_following", "logged"),
    [
        (None, True, False),
        ("session", False, False),  # the session ended: stop, the next event signs the person in again
        ("refused", True, False),  # a Billy error: the page keeps what it shows
        ("bug", True, True),  # unexpected: logged with an id, not swallowed
    ],
)
def test_a_live_refresh_handles_each_kind_of_failure(
    raised: str | None, keeps_following: bool, logged: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from billy_app.state.live import LiveState
    from services.errors import NotAuthenticated, PermissionDenied

    async def refresh() -> None:
        if raised == "session":
            raise NotAuthenticated()
        if raised == "refused":
            raise PermissionDenied("no")
        if raised == "bug":
            raise RuntimeError("a bug in a page's refresh")

    page = type("ChargesPage", (), {"_live_refresh": staticmethod(refresh)})()
    caplog.set_level(logging.ERROR)
    assert asyncio.run(LiveState._refreshed(page)) is keeps_following  # type: ignore[arg-type]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert bool(errors) is logged
    if logged:
        assert re.search(r"error id [0-9a-f]{8}", errors[0].getMessage())
        assert "RuntimeError: a bug" in (errors[0].exc_text or "")


def test_a_burst_of_notices_makes_a_few_refreshes_a_second_and_none_is_missed() -> None:
    """100 notices over a second (a burst of Stripe events): a page re-reads at most every
    MIN_REFRESH_GAP, so about four times, and every notice is in one of its groups; a lone notice
    after a quiet spell is handled within the batch window, not the gap."""
    from billy_app.state.live import BATCH_SECONDS, MIN_REFRESH_GAP, paced_batches

    bus = NoticeBus()

    burst_took: list[float] = []  # the burst's own length: about 1 s, more on a busy machine

    async def scenario() -> tuple[list[int], float]:
        async with bus.subscription() as sub:
            batches = paced_batches(sub)

            def burst() -> None:
                began = time.monotonic()
                for i in range(100):
                    bus.deliver(Notice("charge", (f"ch_{i}",)))
                    time.sleep(0.01)
                burst_took.append(time.monotonic() - began)

            threading.Thread(target=burst, daemon=True).start()
            sizes: list[int] = []
            while sum(sizes) < 100:
                batch = await asyncio.wait_for(anext(batches), 5)
                assert batch is not None
                sizes.append(len(batch.notices))
            await asyncio.sleep(MIN_REFRESH_GAP)  # quiet: the next notice is not held back
            sent = time.monotonic()
            bus.deliver(Notice("charge", ("ch_late",)))
            late = await asyncio.wait_for(anext(batches), 5)
            assert late is not None and late.notices == [Notice("charge", ("ch_late",))]
            assert late.heard == bus.generation  # every notice so far had arrived when it closed
            return sizes, time.monotonic() - sent

    sizes, late_after = asyncio.run(scenario())
    assert sum(sizes) == 100
    # One group per MIN_REFRESH_GAP of burst (about 1 s: four or five groups), not one per notice.
    assert len(sizes) <= burst_took[0] / MIN_REFRESH_GAP + 2, (sizes, burst_took)
    assert late_after < BATCH_SECONDS + 0.15


def test_notices_of_rows_a_page_does_not_show_neither_wake_it_nor_hold_back_its_next_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A charges list hears a stream of customer renames (a burst of Stripe events): none of them
    makes a refresh, so the next charge is handled within the batch window rather than after a
    refresh gap; and a tab that only ever hears other kinds is still checked on after an idle
    spell, so a follower whose tab has gone ends even while other pages keep changing."""
    from billy_app import state as _state  # noqa: F401 - the page states import Reflex first
    from billy_app.state import live

    monkeypatch.setattr(live, "IDLE_CHECK_SECONDS", 0.4)
    bus = NoticeBus()

    def charges_only(notice: Notice) -> bool:
        return notice.kind == "charge"

    async def scenario() -> tuple[list[Notice], float, list[object]]:
        stop = threading.Event()

        def renames() -> None:
            i = 0
            while not stop.is_set():
                bus.deliver(Notice("customer", (f"cus_{i}",)))
                i += 1
                time.sleep(0.01)

        async with bus.subscription() as sub:
            batches = live.paced_batches(sub, charges_only)
            threading.Thread(target=renames, daemon=True).start()
            try:
                await asyncio.sleep(0.1)
                sent = time.monotonic()
                bus.deliver(Notice("charge", ("ch_1",)))
                first = await asyncio.wait_for(anext(batches), 5)
                took = time.monotonic() - sent
                assert first is not None
                # Only renames follow: the next thing this page hears is its idle check.
                idle = [await asyncio.wait_for(anext(batches), 5)]
            finally:
                stop.set()
        return first.notices, took, idle

    got, took, idle = asyncio.run(scenario())
    assert got == [Notice("charge", ("ch_1",))]  # the renames around it are not in its group
    assert took < live.BATCH_SECONDS + live.TICK_SECONDS + 0.15, took
    assert idle == [None]


def test_pages_hearing_the_same_burst_refresh_on_shared_beats() -> None:
    """Open pages that take different times to refresh still refresh on the process's shared
    beat (a multiple of TICK_SECONDS), so those refreshing in the same instant share one read of
    their rows; without the beat each page drifts by its own refresh time."""
    from billy_app.state.live import TICK_SECONDS, paced_batches

    bus = NoticeBus()

    async def page(refresh_seconds: float, beats: list[float]) -> None:
        async with bus.subscription() as sub:
            async for batch in paced_batches(sub):
                assert batch is not None
                beats.append(asyncio.get_running_loop().time())
                await asyncio.sleep(refresh_seconds)  # this page's re-read and render
                if len(beats) == 5:
                    return

    async def scenario() -> list[list[float]]:
        timings = [0.0, 0.013, 0.071, 0.123]
        beats: list[list[float]] = [[] for _ in timings]
        pages = [asyncio.create_task(page(t, b)) for t, b in zip(timings, beats, strict=True)]
        await asyncio.sleep(0.05)

        def burst() -> None:
            for i in range(300):
                bus.deliver(Notice("charge", (f"ch_{i}",)))
                time.sleep(0.007)

        threading.Thread(target=burst, daemon=True).start()
        await asyncio.wait_for(asyncio.gather(*pages), 10)
        return beats

    beats = asyncio.run(scenario())
    for moments in beats:
        for moment in moments:
            off = moment / TICK_SECONDS - round(moment / TICK_SECONDS)
            assert 0 <= off * TICK_SECONDS < 0.02, (moment, off)  # woke on a beat, a moment after it
    on_beat = [[round(m / TICK_SECONDS) for m in moments] for moments in beats]
    assert on_beat[0] == on_beat[1], on_beat  # pages a little apart refresh together
    assert len({m[0] for m in on_beat}) == 1, on_beat  # all heard the burst's first notice together


def test_a_live_refresh_shares_any_read_begun_after_the_notices_it_heard() -> None:
    """A page's refresh needs a read begun once its notices had arrived, not one begun after
    every notice since: so fifty pages refreshing in one beat share one read even while the burst
    goes on. Anyone else (a click) reads the store as it is now."""
    from services.reports import SharedReads

    shared, began = SharedReads(), []

    def read() -> int:
        began.append(notices.generation())
        return len(began)

    heard = notices.generation()
    assert shared.read("first page", read) == 1
    notices.get_bus().deliver(Notice("charge", ("ch_1",)))  # the store moved on meanwhile
    with notices.reading_as_of(heard):
        assert shared.read("first page", read) == 1  # begun at what this page heard: shared
    assert shared.read("first page", read) == 2  # a click wants the store as it is now
    with notices.reading_as_of(heard):
        assert shared.read("first page", read) == 2  # a newer read serves too
    notices.get_bus().deliver(Notice("charge", ("ch_2",)))
    with notices.reading_as_of(notices.generation()):
        assert shared.read("first page", read) == 3  # it heard of a change the kept read predates
    assert began == sorted(began) and len(set(began)) == 3
