"""The first complete sync of a large Stripe account, against the local sandbox.

    python -m bench.backfill [--customers 2000[,20000…]] [--rate 25] [--latency 0.3] [--db sqlite|postgresql]
                             [--seed 42] [--days 365] [--api URL] [--sweep] [--skip-unthrottled]

The questions (issue 16):

* With Stripe answering each request in `--latency` seconds and allowing `--rate` requests per
  second, how close does `services.sync.backfill()` come to the bound `rate × 100` objects/s (a
  list page holds at most 100 objects)? Targets: all resources ≥ 85 %, list resources ≥ 90 %.
* Without latency or limit, how close does it come to the **raw read floor**: the same lists
  read one page after another over one keep-alive connection with `json.loads`, the pages
  thrown away (no store)? Target ≥ 75 %.
* Does Billy's memory stay flat as the account grows (peak RSS during each run, at each size)?

What it does, for each size in `--customers` (the same account grown step by step):

1. makes the account inside the sandbox (`POST /_config/generate`, sandbox/bulk.py: customers
   with a saved card, 2-6 charges each, some declined, about 10 % refunded), 1,000 customers per
   call, and the demo billing (products, prices, subscriptions, invoices) once; prints how long
   generation takes per 10,000 customers;
2. for each run, a fresh Billy instance (SQLite in a temporary folder, or with `--db postgresql`
   a temporary database on the local server; migrated as tests/conftest.py does), an Owner, the
   sandbox's demo restricted key;
3. **throttled**: the sandbox's latency (`POST /_config/latency`) and rate limit
   (`POST /_config/rate_limit`) and Billy's ceiling (`BILLY_STRIPE_REQUESTS_PER_SECOND`) set,
   then `sync.backfill(sweep=False)`: the first complete sync (every resource done; payment
   methods come with the customers, expanded). Then the list resources alone (no payment
   methods). With `--sweep`, the background per-customer payment-method sweep is timed apart;
4. **unthrottled**: no latency, no limit, all resources; and the raw read floor under the same
   conditions.

Requests are counted per HTTP attempt (429s included) by wrapping the gateway's `read`. Each
run is a fresh Billy process (spawned), so its peak RSS (sampled every 50 ms during the sync,
next to the RSS just before it) is Billy's alone at that account size; the sandbox runs in its
own process.

Not part of `make test`. The full size of issue 16 (100,000 customers and about 400,000 charges,
538,189 objects), with the sandbox grown once and shared by the runs:

    python -m sandbox --port 8499 &
    python -m bench.backfill --api http://127.0.0.1:8499 --customers 100000 --rate 100 --skip-unthrottled

On 2026-12-08 (2 × Intel Xeon; `--db postgresql` for PostgreSQL, `--rate 25` for the first line):

    rate     store        first complete sync   % of the bound (all / lists)   Billy's CPU a page   peak RSS
    25 r/s   PostgreSQL   223 s                 96.6 % / 94.8 %                 12.3 ms              194 MiB
    100 r/s  SQLite       105 s                 51.4 % / 48.5 %                 16.9 ms              397 MiB
    100 r/s  PostgreSQL   89 s                  60.6 % / 59.1 %                 11.5 ms              215 MiB

PostgreSQL's line at 100 r/s was 110 s (49.0 %) the same day with one writer and row insert
triggers. At 100 r/s the two cores are shared by Billy, the sandbox and, on PostgreSQL, the
database server: on SQLite Billy's one writer thread is the limit (busy nine tenths of the run),
on PostgreSQL four writers keep up and a fifth of the two cores is left idle. Generation took
27 s per 10,000 customers; the sandbox holds about 5 GB at full size.

The raw read floor is the sandbox's speed as much as Billy's: since the sandbox exports objects
without `dir()` (2026-12-08) one connection reads 18,000-21,000 objects/s, against 11,000 before,
while Billy's unthrottled rate stayed at about 8,200 objects/s on SQLite (40-47 % of the new
floor, 67-77 % of the old) and 5,800-6,400 on PostgreSQL (30-32 %). `--sweep` times the
background per-customer sweep too: one request per customer at about half the rate (2,000
customers: 160 s at 25 r/s), so leave it out at full size.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import stripe

from bench.common import human_bytes, print_facts
from bench.harness import DATABASES, database_env

PAGE = 100  # Stripe's largest list page
UNLIMITED = 1_000_000  # Billy's ceiling when the run is meant to be unthrottled
GENERATE_CHUNK = 1000
OWNER_EMAIL = "bench.owner@example.com"
OWNER_PASSWORD = "bench-Owner-password-2024!"
CARRIED = "payment_methods"  # listed inside the customers' pages, no requests of its own


@dataclass
class ResourceResult:
    name: str
    status: str
    objects: int
    requests: int
    refused: int  # 429 answers seen by the gateway
    throttled: int  # sync_state.throttled_count
    error: str | None


@dataclass
class RunResult:
    label: str
    rate: float  # the limit in force (0: none)
    latency: float
    wall: float
    resources: list[ResourceResult]
    sandbox_refused: int
    rss_before: int
    rss_peak: int
    cpu: float = 0.0  # Billy's process CPU seconds during the sync (all threads)
    outcome: dict[str, str] = field(default_factory=dict)

    @property
    def objects(self) -> int:
        """Objects read from lists: the cards the customers' pages carry are counted apart, so
        objects per request stay comparable with the page bound and the floor."""
        return sum(r.objects for r in self.resources if r.name != CARRIED)

    @property
    def carried(self) -> int:
        return sum(r.objects for r in self.resources if r.name == CARRIED)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.resources)

    @property
    def per_second(self) -> float:
        return self.objects / self.wall if self.wall else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.wall if self.wall else 0.0


@dataclass
class Floor:
    objects: int
    requests: int
    wall: float
    cpu: float  # the reading client's CPU seconds

    @property
    def per_second(self) -> float:
        return self.objects / self.wall if self.wall else 0.0


class CountingGateway:
    """A `StripeGateway` that counts each HTTP attempt (and each 429) per resource: `list_page`
    names the resource (a per-customer list counts as `payment_methods`)."""

    def __new__(cls) -> Any:  # built lazily: services must be imported after the settings are set
        from services.stripe_gateway import StripeGateway

        class _Counting(StripeGateway):
            def __init__(self) -> None:
                super().__init__()
                self.requests: Counter[str] = Counter()
                self.refused: Counter[str] = Counter()
                self._lock = threading.Lock()
                self._local = threading.local()

            def list_page(self, resource: str, *args: Any, **kwargs: Any) -> Any:
                self._local.resource = resource
                try:
                    return super().list_page(resource, *args, **kwargs)
                finally:
                    self._local.resource = None

            def read(self, fn: Callable[[Any], Any], on_throttled: Callable[[], None] | None = None) -> Any:
                resource = getattr(self._local, "resource", None) or "other"

                def counted(client: Any) -> Any:
                    with self._lock:
                        self.requests[resource] += 1
                    try:
                        return fn(client)
                    except stripe.RateLimitError:
                        with self._lock:
                            self.refused[resource] += 1
                        raise

                return super().read(counted, on_throttled)

        return _Counting()


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


@contextlib.contextmanager
def peak_rss() -> Iterator[list[int]]:
    """Samples RSS every 50 ms while the block runs; yields [before, peak] (peak filled at the end)."""
    found = [rss_bytes(), rss_bytes()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            found[1] = max(found[1], rss_bytes())

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    try:
        yield found
    finally:
        stop.set()
        sampler.join()
        found[1] = max(found[1], rss_bytes())


@contextlib.contextmanager
def billy_instance(api_url: str, requests_per_second: float, db: str = "sqlite") -> Iterator[Path]:
    """A fresh, migrated instance pointed at the sandbox, as tests/conftest.py makes one: SQLite
    in a temporary folder, or a temporary PostgreSQL database (`db`)."""
    from services import db as store_module
    from services import secrets
    from services.cli import migrate
    from services.config import get_settings

    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="billy-bench-") as tmp, database_env(db) as store:
        data_dir = Path(tmp) / "data"
        url = store.get("BILLY_DATABASE_URL") or f"sqlite:///{data_dir / 'db' / 'billy.db'}"
        os.environ.update(
            {
                "BILLY_DATA_DIR": str(data_dir),
                "BILLY_DATABASE_URL": url,
                "BILLY_FIRST_RUN_SIGNUP": "true",
                "BILLY_STRIPE_API_BASE": api_url,
                "BILLY_SANDBOX": "true",
                "BILLY_STRIPE_REQUESTS_PER_SECOND": str(requests_per_second),
                "BILLY_SYNC_ON_START": "false",
                "BILLY_EVENT_POLL_SECONDS": "0",
            }
        )
        os.environ.pop("BILLY_REDIS_URL", None)

        def clear() -> None:
            get_settings.cache_clear()
            store_module.get_engine.cache_clear()
            secrets.get_secret_store.cache_clear()

        clear()
        try:
            migrate(url)
            yield data_dir
        finally:
            store_module.get_engine().dispose()
            os.environ.clear()
            os.environ.update(saved)
            clear()


def connect_owner() -> None:
    from sandbox import DEMO_RESTRICTED_KEY
    from services.organization import signup
    from services.permissions import Actor, Source
    from services.stripe_keys import connect_stripe_key

    member = signup("Bench Ltd", "business", OWNER_EMAIL, OWNER_PASSWORD)
    owner = Actor(member.id, member.email, member.role, Source.DASHBOARD, "127.0.0.1", "bench")
    connect_stripe_key(owner, DEMO_RESTRICTED_KEY)


def grow_account(url: str, have: int, want: int, seed: int, days: int) -> float:
    """Make customers `have` … `want - 1` in the sandbox; returns the seconds it took."""
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=600) as client:
        for offset in range(have, want, GENERATE_CHUNK):
            count = min(GENERATE_CHUNK, want - offset)
            made = client.post(
                "/_config/generate", json={"customers": count, "seed": seed, "days": days, "offset": offset}
            )
            made.raise_for_status()
            done = offset + count
            if done % 10_000 == 0 or done == want:
                print(f"   generated {done:,} customers ({time.monotonic() - started:.0f} s)")
    return time.monotonic() - started


def add_billing(url: str, seed: int) -> None:
    """The demo catalog, subscriptions and invoices, on a few of the generated customers."""
    from sandbox.seed import SEED_KEY
    from sandbox.seed_billing import seed_billing

    client = stripe.StripeClient(SEED_KEY, base_addresses={"api": url}, max_network_retries=2)
    customers = [c["id"] for c in client.raw_request("get", "/v1/customers", limit=40).data["data"]]
    seed_billing(client, seed, customers, int(time.time()), Counter())


def set_conditions(url: str, latency: float, rate: int) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        client.post("/_config/latency", json={"seconds": latency}).raise_for_status()
        client.post("/_config/rate_limit", json={"requests_per_second": rate}).raise_for_status()


def sandbox_refused(url: str) -> int:
    return int(httpx.get(f"{url}/_config/rate_limit", timeout=30).json()["refused"])


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` in a new interpreter, so its memory is its own (and the next run's is too)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def run_backfill(url: str, label: str, rate: int, latency: float, names: list[str], db: str = "sqlite") -> RunResult:
    logging.basicConfig(level=logging.ERROR)
    from sqlmodel import select

    from services import sync
    from services.db import session_scope
    from services.models import SyncState

    with billy_instance(url, rate or UNLIMITED, db):
        connect_owner()  # its permission probes happen before the limit is set
        set_conditions(url, latency, rate)  # also empties the sandbox's window
        gateway = CountingGateway()
        time.sleep(1.1)  # Billy's own gate starts with an empty window too
        with peak_rss() as rss:
            started, cpu = time.monotonic(), time.process_time()
            outcome = sync.backfill(gateway, names, sweep=False)
            wall, cpu = time.monotonic() - started, time.process_time() - cpu
        refused = sandbox_refused(url)
        set_conditions(url, 0, 0)
        with session_scope() as session:
            states = {s.resource: s for s in session.exec(select(SyncState))}
            rows = [
                ResourceResult(
                    name,
                    states[name].status,
                    states[name].synced_count,
                    gateway.requests[name],
                    gateway.refused[name],
                    states[name].throttled_count,
                    states[name].last_error,
                )
                for name in names
            ]
    return RunResult(label, rate, latency, wall, rows, refused, rss[0], rss[1], cpu, outcome)


def run_sweep(url: str, rate: int, latency: float, db: str = "sqlite") -> tuple[float, int, int]:
    """The per-customer payment-method sweep after a first sync: seconds, requests, cards."""
    logging.basicConfig(level=logging.ERROR)
    from services import sync
    from services.db import session_scope
    from services.models import SyncState

    with billy_instance(url, rate or UNLIMITED, db):
        connect_owner()
        sync.backfill(resources=["customers", CARRIED], sweep=False)
        set_conditions(url, latency, rate)
        gateway = CountingGateway()
        time.sleep(1.1)
        started = time.monotonic()
        sync.sweep_cards(gateway)
        wall = time.monotonic() - started
        set_conditions(url, 0, 0)
        with session_scope() as session:
            state = session.get(SyncState, sync.CARD_SWEEP)
            cards = state.synced_count if state else 0
    return wall, sum(gateway.requests.values()), cards


def raw_floor(url: str, names: list[str]) -> Floor:
    """The same lists (same parameters, expansions included), one page after another over one
    keep-alive connection, parsed with `json.loads` and thrown away."""
    from sandbox import DEMO_RESTRICTED_KEY
    from services.stripe_gateway import PAGE_SIZE, STRIPE_API_VERSION
    from services.sync import RESOURCES

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    headers = {"Authorization": f"Bearer {DEMO_RESTRICTED_KEY}", "Stripe-Version": STRIPE_API_VERSION}
    objects = requests = 0
    started, cpu = time.monotonic(), time.process_time()
    try:
        for name in names:
            spec = RESOURCES[name]
            after: str | None = None
            while True:
                query: list[tuple[str, Any]] = [("limit", PAGE_SIZE)]
                for key, value in spec.list_params.items():
                    if isinstance(value, list):
                        query += [(f"{key}[{i}]", item) for i, item in enumerate(value)]
                    else:
                        query.append((key, value))
                if after:
                    query.append(("starting_after", after))
                connection.request("GET", f"/v1/{name}?{urlencode(query)}", headers=headers)
                response = connection.getresponse()
                body = json.loads(response.read())
                requests += 1
                if response.status != 200:
                    raise RuntimeError(f"the floor read of {name} got {response.status}: {body}")
                data = body.get("data") or []
                objects += len(data)
                if not body.get("has_more") or not data:
                    break
                after = data[-1]["id"]
    finally:
        connection.close()
    return Floor(objects, requests, time.monotonic() - started, time.process_time() - cpu)


def report(run: RunResult) -> None:
    print(f"\n== {run.label}")
    limit = f"{run.rate:g} r/s" if run.rate else "none"
    print(f"   sandbox latency {run.latency:g} s, rate limit {limit} (Billy's ceiling the same)")
    print(f"   objects listed   {run.objects:>10,}   (and {run.carried:,} saved cards carried in the customers' pages)")
    print(f"   requests made    {run.requests:>10,}   (HTTP attempts, 429s included)")
    print(f"   first full sync  {run.wall:>10.1f} s")
    print(f"   objects/s        {run.per_second:>10,.0f}")
    print(f"   requests/s       {run.requests_per_second:>10.1f}")
    if run.rate:
        bound = run.rate * PAGE
        shown = f"({run.rate:g} r/s × {PAGE} = {bound:,.0f} objects/s)"
        print(f"   of the bound     {run.per_second / bound:>10.1%}   {shown}")
        print(f"   requests/s used  {run.requests_per_second / run.rate:>10.1%}   of {run.rate:g} r/s")
    throttled = sum(r.throttled for r in run.resources)
    print(f"   429s             {throttled:>10,}   (the sandbox answered {run.sandbox_refused})")
    print(f"   RSS              {human_bytes(run.rss_before):>10} before, peak {human_bytes(run.rss_peak)}")
    per_page = run.cpu / run.requests * 1000 if run.requests else 0.0
    print(f"   Billy's CPU      {run.cpu:>10.1f} s   ({per_page:.1f} ms a request: reading, parsing, storing)")
    print(f"   {'resource':<16} {'status':<8} {'objects':>8} {'requests':>8} {'obj/req':>7} {'429s':>5}")
    for r in run.resources:
        ratio = f"{r.objects / r.requests:7.1f}" if r.requests else "      –"
        print(
            f"   {r.name:<16} {r.status:<8} {r.objects:>8,} {r.requests:>8,} {ratio} {r.throttled:>5}"
            + (f"  {r.error}" if r.error else "")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--customers",
        default="2000",
        help="account size(s): customers, each with 2-6 charges; a comma list grows one account step by step "
        "(default 2000; full size 100000)",
    )
    parser.add_argument("--rate", type=int, default=25, help="requests per second, sandbox and Billy (default 25)")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds the sandbox takes per request (0.3)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--days", type=int, default=365, help="the account's age in days (default 365)")
    parser.add_argument("--api", help="use this running sandbox (empty, or grown by an earlier run with the same seed)")
    parser.add_argument("--sweep", action="store_true", help="also time the per-customer payment-method sweep")
    parser.add_argument("--db", choices=DATABASES, default="sqlite", help="Billy's store (default sqlite)")
    parser.add_argument("--skip-unthrottled", action="store_true", help="leave out the unthrottled run and the floor")
    args = parser.parse_args(argv)
    sizes = sorted({int(size) for size in args.customers.split(",")})
    logging.basicConfig(level=logging.ERROR)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows in a log file too

    import sandbox
    from services.sync import RESOURCES

    facts = print_facts()
    print(
        f"\nbench.backfill: sizes {sizes}, rate {args.rate} r/s, latency {args.latency} s, seed {args.seed}, "
        f"store {args.db}"
    )
    handle = sandbox.SandboxHandle(args.api.rstrip("/"), lambda: None) if args.api else sandbox.run_in_process(port=0)
    everything = list(RESOURCES)
    lists_only = [n for n in everything if n != CARRIED]
    summary: list[tuple[int, list[RunResult], Floor | None, float]] = []
    try:
        have = int(httpx.get(f"{handle.url}/v1/customers", params={"limit": 1}, timeout=30,
                             headers={"Authorization": "Bearer sk_test_bench"}).json()["data"] != [])  # fmt: skip
        have = 0 if not have else sizes[0]  # a sandbox given with --api is taken as grown to the first size
        billed = bool(have)
        for size in sizes:
            if size > have:
                took = grow_account(handle.url, have, size, args.seed, args.days)
                per = took / (size - have) * 10_000
                print(f"made customers {have:,} … {size - 1:,} in {took:.0f} s: {per:.0f} s per 10,000 customers")
                have = size
            if not billed:
                add_billing(handle.url, args.seed)
                billed = True
            label = f"{size:,} customers · throttled"
            runs = [
                in_fresh_process(run_backfill, handle.url, f"{label} · {kind}", args.rate, args.latency, names, args.db)
                for kind, names in (("all resources", everything), ("list resources", lists_only))
            ]
            for run in runs:
                report(run)
            floor = None
            if not args.skip_unthrottled:
                unthrottled = f"{size:,} customers · unthrottled · all resources"
                runs.append(in_fresh_process(run_backfill, handle.url, unthrottled, 0, 0, everything, args.db))
                report(runs[-1])
                floor = raw_floor(handle.url, lists_only)
                print(
                    f"\n== raw read floor: {floor.objects:,} objects in {floor.requests:,} requests, "
                    f"{floor.wall:.1f} s = {floor.per_second:,.0f} objects/s "
                    f"(one keep-alive connection, json.loads, nothing stored; client CPU {floor.cpu:.1f} s)"
                )
            sweep_seconds = 0.0
            if args.sweep:
                swept = in_fresh_process(run_sweep, handle.url, args.rate, args.latency, args.db)
                sweep_seconds, requests, cards = swept
                print(
                    f"\n== per-customer sweep (background, after the first sync): {cards:,} cards, {requests:,} "
                    f"requests in {sweep_seconds:.1f} s = {requests / sweep_seconds:.1f} requests/s"
                )
            summary.append((size, runs, floor, sweep_seconds))
    finally:
        handle.stop()
    bound = args.rate * PAGE
    print(f"\n== summary (rate {args.rate} r/s, latency {args.latency} s; bound {bound:,} objects/s)")
    header = f"   {'customers':>9} {'run':<28} {'objects':>8} {'time s':>7} {'obj/s':>7} {'% bound':>7} {'req/s %':>7} {'% floor':>7} {'peak RSS':>9} {'CPU s':>6}"  # noqa: E501
    print(header)
    for size, runs, floor, _sweep in summary:
        for run in runs:
            kind = run.label.split(" · ", 1)[1]
            of_bound = f"{run.per_second / bound:7.1%}" if run.rate else "      –"
            used = f"{run.requests_per_second / run.rate:7.1%}" if run.rate else "      –"
            of_floor = f"{run.per_second / floor.per_second:7.1%}" if floor and not run.rate else "      –"
            print(
                f"   {size:>9,} {kind:<28} {run.objects:>8,} {run.wall:>7.1f} {run.per_second:>7,.0f} "
                f"{of_bound} {used} {of_floor} {human_bytes(run.rss_peak):>9} {run.cpu:>6.1f}"
            )
        if floor:
            print(
                f"   {size:>9,} {'raw read floor':<28} {floor.objects:>8,} {floor.wall:>7.1f} "
                f"{floor.per_second:>7,.0f} {'':>7} {'':>7} {'':>7} {'':>9} {floor.cpu:>6.1f}"
            )
    print(f"\n(measured on {facts['cpu_count']} × {facts['cpu']}, load {facts['load']}, {facts['timestamp']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
