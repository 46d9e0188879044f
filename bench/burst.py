"""A burst of Stripe events while many pages are open (issue 16): nothing lost, nothing applied
twice, no 5xx, every page ends on the final state, and the arrival → painted delay, p50/p95.

    python -m bench.burst [--events 1000] [--seconds 10] [--pages 50] [--browser-pages 5]

Starts the Stripe sandbox (20 demo customers) and a real Billy (production build, event polling
off, so the store hears of the burst through its webhook only); an Owner signs up in Chromium and
saves a webhook signing secret. Then `--pages` dashboards open the charges list (the newest 50
charges), each its own signed-in tab following the list live: `--browser-pages` of them in
Chromium, each with a MutationObserver stamping when each charge's row is first painted, and the
rest as websocket clients that send what a tab sends on opening the list (its on_load events)
and keep the rows the server pushes. The server's work is the same for both; the second kind
only saves this 2-core machine from rendering 50 browsers' pages itself, which each person's
own computer does.

The burst is made in the sandbox first (no webhook endpoint is registered there, so nothing is
delivered by itself): charges on the demo customers, some of them refunded in full or in part,
and customers renamed, about `--events` events in all. The bench then POSTs each event, signed
as Stripe signs, to `/api/stripe/webhook`, spread evenly over `--seconds`: each neighbouring pair
swapped with a 1-in-10 chance (Stripe does not promise order) and 1 in 20 delivered a second
time half a second later (Stripe retries), from 16 senders at once.

Checked, and printed as PASS/FAIL lines (the exit status is 0 whatever they say):
- every event recorded exactly once in the event log, and of an event delivered twice one delivery
  applied and the other answered as a duplicate (either may come first: both can be in flight);
- the store equals Stripe afterwards (each charge's status and refunded amount, each customer's
  name);
- the endpoint never answered 5xx;
- every open page ends showing the newest 50 charges in Stripe's order, each with its final
  state (refunded, partly refunded, succeeded), and how long after the last delivery it got there;
- a new charge's delivery until its row was painted in each browser page, p50/p95 (target p95 ≤
  1 s), and until its row reached each websocket client. A row pushed off the first page by newer
  ones before it was shown is not counted (the number is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa

from bench.common import load_average, percentile, print_facts
from bench.harness import (
    DATABASES,
    ROW_OBSERVER,
    WEBHOOK_SECRET,
    billy_and_sandbox,
    chromium,
    database_url,
    open_tab_socket,
    save_webhook_secret,
    send_tab_event,
    sign_in,
)
from sandbox.events import signature_header

TARGET_P95_MS = 1000.0
SENDERS = 16
ROWS_SHOWN = 50  # the charges list's first page (billy_app.state.list_page.ROWS_PER_PAGE)
# What the page shows of one row: its id (in order) and its state badge's words.
# Stamps, in each Chromium page, when a websocket frame first named each charge: the delivery →
# heard share is the server's, heard → painted the browser's (its rendering, on this machine's
# cores shared with the server).
SOCKET_HEARING = """
(() => {
  window.__heard = {};
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (m) => {
        if (typeof m.data !== 'string') return;
        const now = Date.now();
        for (const found of m.data.matchAll(/"(ch_[A-Za-z0-9]+)"/g)) {
          if (!(found[1] in window.__heard)) window.__heard[found[1]] = now;
        }
      });
    }
  };
})();
"""
PAGE_ROWS = (
    "() => [...document.querySelectorAll('#charges-table .charge-row')]"
    ".map(e => [e.getAttribute('data-charge'), e.getAttribute('data-state')])"
)


@dataclass
class Delivery:
    event: dict[str, Any]
    at: float  # seconds after the burst starts
    repeat: bool = False


@dataclass
class Outcome:
    statuses: Counter[int] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    repeat_answers: Counter[str] = field(default_factory=Counter)
    # Every answer per event id: a repeat may reach Billy before the first delivery is done (both
    # in flight at once), so which one applies is a race; exactly one of them may.
    by_event: dict[str, list[str]] = field(default_factory=dict)
    first_posted: dict[str, float] = field(default_factory=dict)  # charge id → ms (Date.now() clock)
    answer_ms: list[float] = field(default_factory=list)  # each POST until its answer came back
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_burst(client: Any, events: int) -> list[dict[str, Any]]:
    """Charges, refunds and customer renames in the sandbox: about `events` events, oldest first."""
    since = int(time.time()) - 1
    customers = [c.id for c in client.v1.customers.list(params={"limit": 100}).data]
    rng = random.Random(16)
    charges: list[str] = []

    def charge(n: int) -> str:
        made = client.v1.charges.create(
            params={
                "amount": 500 + 37 * n,
                "currency": "usd",
                "customer": customers[n % len(customers)],
                "source": "tok_visa",
                "description": f"Burst order #{n}",
            }
        )
        return str(made.id)

    # Roughly: a charge is one event, a refund one or two, a rename one.
    charge_count = int(events * 0.65)
    with ThreadPoolExecutor(8) as pool:
        charges = list(pool.map(charge, range(charge_count)))
        refunded = rng.sample(charges, int(events * 0.12))
        list(
            pool.map(
                lambda pair: client.v1.refunds.create(
                    params={"charge": pair[1], **({"amount": 200} if pair[0] % 2 else {})}
                ),
                enumerate(refunded),
            )
        )
        list(
            pool.map(
                lambda n: client.v1.customers.update(customers[n % len(customers)], params={"name": f"Renamed {n}"}),
                range(int(events * 0.08)),
            )
        )
    found: list[dict[str, Any]] = []
    for event in client.v1.events.list(params={"created": {"gte": since}, "limit": 100}).auto_paging_iter():
        found.append(event.to_dict())
    found.sort(key=lambda e: (int(e["created"]), e["id"]))
    return found


def schedule(events: list[dict[str, Any]], seconds: float) -> list[Delivery]:
    """Evenly over `seconds`, neighbours sometimes swapped, some delivered twice."""
    rng = random.Random(7)
    order = list(events)
    for i in range(0, len(order) - 1):
        if rng.random() < 0.1:
            order[i], order[i + 1] = order[i + 1], order[i]
    gap = seconds / max(1, len(order))
    plan = [Delivery(event, i * gap) for i, event in enumerate(order)]
    plan += [Delivery(d.event, d.at + 0.5, repeat=True) for d in plan if rng.random() < 0.05]
    return sorted(plan, key=lambda d: d.at)


def deliver(url: str, plan: list[Delivery]) -> tuple[Outcome, float]:
    """POST each delivery at its time; returns what came back and how long the burst took."""
    outcome = Outcome()
    start = time.monotonic()

    def post(http: httpx.Client, item: Delivery) -> None:
        wait = start + item.at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        body = json.dumps(item.event).encode()
        signed = signature_header(WEBHOOK_SECRET, body, int(time.time()))
        posted_ms = time.time() * 1000
        answer = http.post("/api/stripe/webhook", content=body, headers={"stripe-signature": signed})
        answered_ms = time.time() * 1000 - posted_ms
        obj = item.event["data"]["object"]
        with outcome.lock:
            outcome.answer_ms.append(answered_ms)
            outcome.statuses[answer.status_code] += 1
            said = answer.text.strip()[:40]
            (outcome.repeat_answers if item.repeat else outcome.answers)[said] += 1
            outcome.by_event.setdefault(item.event["id"], []).append(said)
            if item.event["type"] == "charge.succeeded" and not item.repeat:
                outcome.first_posted.setdefault(obj["id"], posted_ms)

    with httpx.Client(base_url=url, timeout=30) as http, ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(lambda item: post(http, item), plan))
    return outcome, time.monotonic() - start


def stripe_state(client: Any) -> tuple[dict[str, tuple[str, int]], dict[str, str], list[tuple[str, str]]]:
    """Stripe's charges (status, refunded amount), customers' names, and the first page as shown."""
    from services.models import StripeCharge
    from services.reports import charge_state_label

    charges = list(client.v1.charges.list(params={"limit": 100}).auto_paging_iter())
    by_id = {c.id: (c.status, int(c.amount_refunded or 0)) for c in charges}
    names = {c.id: c.name for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter()}
    newest = sorted(charges, key=lambda c: (int(c.created), c.id), reverse=True)[:ROWS_SHOWN]
    shown = [
        (
            c.id,
            charge_state_label(
                StripeCharge(
                    id=c.id,
                    created=c.created,
                    status=c.status,
                    amount=c.amount,
                    amount_refunded=c.amount_refunded or 0,
                    currency=c.currency,
                )
            ),
        )
        for c in newest
    ]
    return by_id, names, shown


def store_state(url: str) -> tuple[dict[str, tuple[str, int]], dict[str, str], Counter[str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:

            def rows(sql: str) -> list[Any]:
                return list(db.execute(sa.text(sql)))

            charges = {r[0]: (r[1], r[2]) for r in rows("SELECT id, status, amount_refunded FROM stripe_charge")}
            names = {r[0]: r[1] for r in rows("SELECT id, name FROM stripe_customer WHERE NOT deleted")}
            recorded = Counter({r[0]: r[1] for r in rows("SELECT outcome, count(*) FROM stripe_event GROUP BY 1")})
    finally:
        engine.dispose()
    return charges, names, recorded


class SocketPage:
    """A signed-in tab on the charges list, as a websocket client: it sends the list's on_load
    events (the member check, the first page, the live follower) and keeps each push of rows."""

    def __init__(self, url: str, cookie: str) -> None:
        from billy_app.state.charges import ChargesState

        self.url, self.cookie, self.token = url, cookie, str(uuid.uuid4())
        self.state_name = ChargesState.get_full_name()
        self.rows: list[tuple[str, str]] = []
        self.first_seen: dict[str, float] = {}  # charge id → ms (Date.now() clock) its row arrived
        self._sio: Any = None

    def _on_update(self, data: dict[str, Any]) -> None:
        rows = (data.get("delta") or {}).get(self.state_name, {}).get("rows_rx_state_")
        if rows is None:
            return
        now = time.time() * 1000
        self.rows = [(r["id"], r["state"]) for r in rows]
        for charge_id, _ in self.rows:
            self.first_seen.setdefault(charge_id, now)

    async def open(self) -> None:
        from billy_app.state.charges import ChargesState
        from billy_app.state.session import SessionState

        self._sio = await open_tab_socket(self.url, self.cookie, self.token, self._on_update)
        router_data = {"pathname": "/charges", "query": {}, "asPath": "/charges"}
        for state, handler in ((SessionState, "require_member"), (ChargesState, "load"), (ChargesState, "follow")):
            await send_tab_event(self._sio, f"{state.get_full_name()}.{handler}", router_data)
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self._sio.disconnect()


def _cookie_of(context: Any) -> str:
    return "; ".join(f"{c['name']}={c['value']}" for c in context.cookies() if c["name"].startswith("billy_"))


class SocketPages:
    """`count` socket pages on a loop of their own (the bench's own thread does the browser)."""

    def __init__(self, url: str, cookie: str, count: int) -> None:
        self.pages = [SocketPage(url, cookie) for _ in range(count)]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def open(self) -> None:
        async def each() -> None:
            for page in self.pages:
                await page.open()

        self.run(each())

    def close(self) -> None:
        async def each() -> None:
            await asyncio.gather(*(page.close() for page in self.pages))

        self.run(each())
        self.loop.call_soon_threadsafe(self.loop.stop)


BENCH_REDIS_URL = "redis://127.0.0.1:6379/3"  # tests use database 0, `make run-scaled` database 1


def scaled_out(workers: int) -> dict[str, str]:
    """Billy's environment for `workers` workers sharing state and live updates through Redis (an
    emptied database of the local server of its own); nothing for one."""
    if workers <= 1:
        return {}
    import redis

    redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
    return {"GRANIAN_WORKERS": str(workers), "BILLY_REDIS_URL": BENCH_REDIS_URL}


def run(events: int, seconds: float, pages: int, browser_pages: int, db: str = "sqlite", workers: int = 1) -> list[str]:
    lines: list[str] = []

    def check(ok: bool, text: str) -> None:
        lines.append(f"{'PASS' if ok else 'FAIL'}  {text}")

    env = scaled_out(workers)
    with (
        billy_and_sandbox("billy-bench-burst-", customers=20, db=db, extra_env=env) as (sandbox, app),
        chromium() as browser,
    ):
        client = sandbox.client()
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(SOCKET_HEARING)
        owner = context.new_page()
        sign_in(owner, app, wait_for_first_sync=True)
        save_webhook_secret(owner, app)
        owner.close()
        tabs = []
        for _ in range(min(browser_pages, pages)):
            tab = context.new_page()
            tab.goto(app.url + "/charges")
            tab.wait_for_selector("#charges-table .charge-row")
            tab.evaluate(ROW_OBSERVER, "#charges-table .charge-row")
            tabs.append(tab)
        sockets = SocketPages(app.url, _cookie_of(context), pages - len(tabs))
        sockets.open()
        print(f"{len(tabs)} browser pages and {len(sockets.pages)} websocket pages open", flush=True)
        burst = make_burst(client, events)
        plan = schedule(burst, seconds)
        repeats = sum(d.repeat for d in plan)
        print(f"delivering {len(burst)} events (+{repeats} repeats) over {seconds:.0f} s", flush=True)
        outcome, took = deliver(app.url, plan)
        done_at = time.time() * 1000
        by_id, names, shown = stripe_state(client)

        # Every page ends on Stripe's first page, each row in its final state.
        converged: list[float] = []
        deadline = time.monotonic() + 60
        for tab in tabs:
            while True:
                if [tuple(r) for r in tab.evaluate(PAGE_ROWS)] == shown:
                    converged.append(time.time() * 1000 - done_at)
                    break
                if time.monotonic() > deadline:
                    break
                tab.wait_for_timeout(100)
        for socket_page in sockets.pages:
            while socket_page.rows != shown and time.monotonic() < deadline:
                time.sleep(0.1)
            if socket_page.rows == shown:
                converged.append(time.time() * 1000 - done_at)
        sockets.close()

        def delays_of(first_seen: list[dict[str, float]]) -> tuple[list[float], int]:
            found, missed = [], 0
            for seen in first_seen:
                for charge_id, posted in outcome.first_posted.items():
                    if charge_id in seen:
                        found.append(max(0.0, seen[charge_id] - posted))
                    else:
                        missed += 1
            return found, missed

        seen_in_tabs = [tab.evaluate("() => window.__seen") for tab in tabs]
        heard_in_tabs = [tab.evaluate("() => window.__heard") for tab in tabs]
        delays, overtaken = delays_of(seen_in_tabs)
        # Of the painted rows: how long after its frame arrived each was painted.
        rendering = [
            max(0.0, seen[charge_id] - heard[charge_id])
            for seen, heard in zip(seen_in_tabs, heard_in_tabs, strict=True)
            for charge_id in outcome.first_posted
            if charge_id in seen and charge_id in heard
        ]
        heard, _ = delays_of(heard_in_tabs)
        pushed, pushed_over = delays_of([p.first_seen for p in sockets.pages])
        stored_charges, stored_names, recorded = store_state(database_url(app))

    lines.append(
        f"burst: {len(burst)} events + {repeats} repeats in {took:.1f} s, {pages} pages open "
        f"({len(tabs)} in Chromium, {pages - len(tabs)} websocket clients)"
    )
    lines.append(f"answers: {dict(outcome.answers)}; repeats: {dict(outcome.repeat_answers)}")
    lines.append(
        f"webhook answered in: p50 {percentile(outcome.answer_ms, 50):.0f} ms, "
        f"p95 {percentile(outcome.answer_ms, 95):.0f} ms (part of every delay below)"
    )
    lines.append(f"event log: {dict(recorded)}")
    check(sum(recorded.values()) >= len(burst), f"every event recorded: {sum(recorded.values())} of {len(burst)}")
    twice = [said for said in outcome.by_event.values() if len(said) > 1]
    check(
        all(sorted(said).count("duplicate") == len(said) - 1 for said in twice),
        f"every event delivered twice applied once, the other delivery answered as a duplicate ({len(twice)})",
    )
    fives = sum(n for status, n in outcome.statuses.items() if status >= 500)
    check(fives == 0, f"no 5xx from the endpoint (statuses {dict(outcome.statuses)})")
    wrong = [i for i, state in by_id.items() if stored_charges.get(i) != state]
    check(not wrong, f"store equals Stripe for {len(by_id)} charges ({len(wrong)} differ)")
    for charge_id in wrong[:5]:
        lines.append(f"      {charge_id}: Stripe {by_id[charge_id]}, store {stored_charges.get(charge_id)}")
    renamed = [i for i, name in names.items() if stored_names.get(i) != name]
    check(not renamed, f"store equals Stripe for {len(names)} customers' names ({len(renamed)} differ)")
    check(
        len(converged) == pages,
        f"{len(converged)} of {pages} pages show the final first page; last got there "
        f"{max(converged or [0]) / 1000:.1f} s after the last delivery",
    )
    if delays:
        p50, p95 = percentile(delays, 50), percentile(delays, 95)
        check(
            p95 <= TARGET_P95_MS,
            f"delivery → painted: p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(delays):.0f} ms "
            f"over {len(delays)} (page, charge) pairs in Chromium; {overtaken} pushed off the page before "
            f"painted (target p95 ≤ {TARGET_P95_MS:.0f} ms)",
        )
    if heard:
        lines.append(
            f"      delivery → heard on a Chromium page's websocket: p50 {percentile(heard, 50):.0f} ms, "
            f"p95 {percentile(heard, 95):.0f} ms over {len(heard)} pairs; frame heard → row painted: "
            f"p50 {percentile(rendering or [0.0], 50):.0f} ms, "
            f"p95 {percentile(rendering or [0.0], 95):.0f} ms (the browser's share)"
        )
    if pushed:
        lines.append(
            f"      delivery → rows pushed to a websocket page: p50 {percentile(pushed, 50):.0f} ms, "
            f"p95 {percentile(pushed, 95):.0f} ms over {len(pushed)} pairs; {pushed_over} pushed off first"
        )
    lines.append(f"load average after: {load_average()}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pages", type=int, default=50, help="open dashboards in all")
    parser.add_argument("--browser-pages", type=int, default=5, help="of them, pages in Chromium")
    parser.add_argument("--db", choices=DATABASES, default="sqlite", help="Billy's store")
    parser.add_argument("--workers", type=int, default=1, help="Billy's workers (more than one: PostgreSQL and Redis)")
    args = parser.parse_args(argv)
    if args.workers > 1 and args.db != "postgresql":
        parser.error("several workers share a PostgreSQL store: add --db postgresql")
    print_facts()
    print(f"store: {args.db}; workers: {args.workers}")
    print("\n".join(run(args.events, args.seconds, args.pages, args.browser_pages, args.db, args.workers)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
