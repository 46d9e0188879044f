"""Backfill throughput against the local sandbox, with and without a Stripe-style rate limit.

    python -m bench.backfill [--customers 2000] [--limit 10] [--seed 42] [--api URL]

The question: how many objects per second does `services.sync.backfill()` copy from a
Stripe that allows `--limit` requests per second, as a fraction of the bound
`limit × 100` objects/s (a list page holds at most 100 objects)? Target ≥ 90 %.

What it does:

1. starts a sandbox in a child process (`sandbox.run_in_process`) and seeds it with
   `sandbox.seed` (`--customers` customers, 2–6 charges each, refunds, the billing demo);
2. for each run, makes a fresh Billy instance (SQLite in a temporary folder, migrated
   like `tests/conftest.py`), signs up an Owner and connects the sandbox's demo
   restricted key (`services.stripe_keys.connect_stripe_key`);
3. sets the sandbox's limit (`POST /_config/rate_limit`) AND Billy's own ceiling
   (`BILLY_STRIPE_REQUESTS_PER_SECOND`), runs `services.sync.backfill()` and reports
   objects stored, HTTP requests made, wall time, objects/s, the fraction of the bound,
   429s (Billy's `sync_state.throttled_count` and the sandbox's own count) and each
   resource's numbers.

Runs: throttled (sandbox and Billy at `--limit`) over all ten resources; throttled over
the list resources only (without `payment_methods`, which Stripe lists per customer:
one request per customer for about one card each); and the same two unthrottled (no
sandbox limit, Billy's ceiling out of the way), which is what the sandbox and the store
can do at all on this machine. Requests are counted per HTTP attempt (a refused one
too) by wrapping the gateway's `read`, so nothing in `services` changes for the bench.

Not part of `make test`; takes a few minutes (seeding about 30 ms per customer, then
the throttled run is mostly `payment_methods` at `limit` customers per second).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
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

import stripe

from bench.common import print_facts

PAGE = 100  # Stripe's largest list page
UNLIMITED = 1_000_000  # Billy's ceiling when the run is meant to be unthrottled
OWNER_EMAIL = "bench.owner@example.com"
OWNER_PASSWORD = "bench-Owner-password-2024!"


@dataclass
class ResourceResult:
    name: str
    status: str
    objects: int
    requests: int
    refused: int  # 429 answers seen by the gateway
    throttled: int  # sync_state.throttled_count
    seconds: float | None
    error: str | None


@dataclass
class RunResult:
    label: str
    sandbox_limit: int
    billy_limit: float
    wall: float
    resources: list[ResourceResult]
    sandbox_refused: int
    outcome: dict[str, str] = field(default_factory=dict)

    @property
    def objects(self) -> int:
        return sum(r.objects for r in self.resources)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.resources)

    @property
    def throttled(self) -> int:
        return sum(r.throttled for r in self.resources)


class CountingGateway:
    """A `StripeGateway` that counts each HTTP attempt (and each 429) per resource.

    `list_page` names the resource; a `read` outside it is the per-customer payment
    methods walk (`sync._per_customer`), the only other read a backfill makes.
    """

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
                resource = getattr(self._local, "resource", None) or "payment_methods"

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


@contextlib.contextmanager
def billy_instance(api_url: str, requests_per_second: float) -> Iterator[Path]:
    """A fresh, migrated SQLite instance pointed at the sandbox, as tests/conftest.py makes one."""
    from services import db, secrets
    from services.cli import migrate
    from services.config import get_settings

    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="billy-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        url = f"sqlite:///{data_dir / 'db' / 'billy.db'}"
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
            db.get_engine.cache_clear()
            secrets.get_secret_store.cache_clear()

        clear()
        try:
            migrate(url)
            yield data_dir
        finally:
            db.get_engine().dispose()
            os.environ.clear()
            os.environ.update(saved)
            clear()


def add_charges(api_url: str, count: int, seed: int) -> None:
    """`count` more card charges without a customer, through the API like the demo's, four at a time."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    from sandbox.seed import SEED_KEY

    client = stripe.StripeClient(SEED_KEY, base_addresses={"api": api_url}, max_network_retries=2)
    amounts = random.Random(seed).choices(range(500, 50_000, 100), k=count)

    def create(amount: int) -> None:
        client.v1.charges.create(
            params={"amount": amount, "currency": "usd", "source": "tok_visa", "description": "Bench charge"}
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(create, amounts))


def connect_owner() -> None:
    from sandbox import DEMO_RESTRICTED_KEY
    from services.organization import signup
    from services.permissions import Actor, Source
    from services.stripe_keys import connect_stripe_key

    member = signup("Bench Ltd", "business", OWNER_EMAIL, OWNER_PASSWORD)
    owner = Actor(member.id, member.email, member.role, Source.DASHBOARD, "127.0.0.1", "bench")
    connect_stripe_key(owner, DEMO_RESTRICTED_KEY)


def run_backfill(handle: Any, label: str, sandbox_limit: int, billy_limit: float, resources: list[str]) -> RunResult:
    from sqlmodel import select

    from services import sync
    from services.db import session_scope
    from services.models import SyncState

    with billy_instance(handle.url, billy_limit):
        connect_owner()  # its permission probes happen before the limit is set
        handle.set_rate_limit(sandbox_limit)  # also empties the sandbox's window
        gateway = CountingGateway()
        time.sleep(1.1)  # Billy's own gate starts with an empty window too
        started = time.monotonic()
        outcome = sync.backfill(gateway, resources)
        wall = time.monotonic() - started
        sandbox_refused = handle.rate_limit()["refused"]
        handle.set_rate_limit(0)
        with session_scope() as session:
            states = {s.resource: s for s in session.exec(select(SyncState))}
            rows = []
            for name in resources:
                s = states[name]
                took = (s.finished_at - s.started_at).total_seconds() if s.finished_at and s.started_at else None
                rows.append(
                    ResourceResult(
                        name,
                        s.status,
                        s.synced_count,
                        gateway.requests[name],
                        gateway.refused[name],
                        s.throttled_count,
                        took,
                        s.last_error,
                    )
                )
    return RunResult(label, sandbox_limit, billy_limit, wall, rows, sandbox_refused, outcome)


def _per_second(run: RunResult) -> float:
    return run.objects / run.wall if run.wall else 0.0


def report(run: RunResult, limit: int) -> None:
    bound = limit * PAGE
    per_second = _per_second(run)
    requests_per_second = run.requests / run.wall if run.wall else 0.0
    per_request = run.objects / run.requests if run.requests else 0.0
    print(f"\n== {run.label}")
    billy = "off" if run.billy_limit >= UNLIMITED else f"{run.billy_limit:g} r/s"
    sandbox = f"{run.sandbox_limit} r/s" if run.sandbox_limit else "off"
    print(f"   limits: sandbox {sandbox}, Billy's gate {billy}")
    print(f"   objects stored   {run.objects:>10,}")
    print(f"   requests made    {run.requests:>10,}   (HTTP attempts, 429s included)")
    print(f"   wall time        {run.wall:>10.1f} s")
    print(f"   objects/s        {per_second:>10,.0f}")
    print(f"   requests/s       {requests_per_second:>10.1f}")
    print(f"   objects/request  {per_request:>10.1f}   (page fill {per_request / PAGE:.0%})")
    if run.sandbox_limit:
        print(f"   fraction of bound {per_second / bound:>9.1%}   (bound {limit} r/s × {PAGE} = {bound:,} objects/s)")
        print(f"   budget used      {requests_per_second / limit:>10.1%}   (requests/s ÷ {limit})")
        print(
            f"   best at this mix {per_request * limit:>10,.0f}   objects/s with every request of the budget used "
            f"({per_request / PAGE:.1%} of the bound)"
        )
    else:
        print(f"   vs {bound:,} objects/s {per_second / bound:>8.1%}   (no limit in force: for comparison)")
    print(f"   429s             {run.throttled:>10,}   (sync_state.throttled_count)")
    print(f"   429s answered    {run.sandbox_refused:>10,}   (the sandbox's own count)")
    print(f"   {'resource':<16} {'status':<8} {'objects':>8} {'requests':>8} {'obj/req':>7} {'429s':>5} {'seconds':>7}")
    for r in run.resources:
        took = f"{r.seconds:7.1f}" if r.seconds is not None else "      –"
        ratio = f"{r.objects / r.requests:7.1f}" if r.requests else "      –"
        print(
            f"   {r.name:<16} {r.status:<8} {r.objects:>8,} {r.requests:>8,} {ratio} {r.throttled:>5} {took}"
            + (f"  {r.error}" if r.error else "")
        )
    lists = [r for r in run.resources if r.name != "payment_methods"]
    list_objects, list_requests = sum(r.objects for r in lists), sum(r.requests for r in lists)
    if list_requests and len(lists) != len(run.resources):
        fill = list_objects / list_requests
        print(
            f"   list requests only: {list_objects:,} objects in {list_requests:,} requests "
            f"= {fill:.1f} objects/request ({fill / PAGE:.0%} page fill)"
        )


def conclude(runs: list[RunResult], limit: int) -> None:
    """The closing lines: the headline fraction (each throttled list run, and their median when
    repeated), and what bounds it."""
    bound = limit * PAGE
    print("\n== summary")
    for kind, label in (("throttled", "all resources"), ("throttled", "list resources"),
                        ("unthrottled", "all resources"), ("unthrottled", "list resources")):  # fmt: skip
        picked = [r for r in runs if r.label.startswith(kind) and label.split()[0] in r.label]
        for run in picked:
            line = f"   {kind + ', ' + label + ':':<30} {_per_second(run):>6,.0f} objects/s"
            if kind == "throttled":
                line += (
                    f" = {_per_second(run) / bound:.1%} of {bound:,} (budget used "
                    f"{run.requests / run.wall / limit:.0%}, {run.throttled} × 429)"
                )
            print(line)
        if len(picked) > 1:
            fractions = sorted(_per_second(r) / bound for r in picked)
            print(f"   median of {len(picked)}: {fractions[len(fractions) // 2]:.1%} (lowest {fractions[0]:.1%})")
    free_lists = [r for r in runs if r.label.startswith("unthrottled") and "list" in r.label]
    if free_lists and _per_second(free_lists[0]) < bound:
        print(
            f"   Without any limit the list resources came at {_per_second(free_lists[0]):,.0f} objects/s, under the "
            f"{bound:,} objects/s bound: on this machine the sandbox and the store, not the limit, set the pace."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--customers", type=int, default=2000, help="customers to seed (default 2000, the demo seeder's most)"
    )
    parser.add_argument("--limit", type=int, default=10, help="requests per second, sandbox and Billy (default 10)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--api",
        help="use this running sandbox instead of starting one (seeded if it is empty; its limit is set, then 0)",
    )
    parser.add_argument(
        "--extra-charges",
        type=int,
        default=0,
        help="after the demo, this many more charges (the demo seeder stops at 2,000 customers; "
        "a longer run shows the steady state, past the start and the last partial pages)",
    )
    parser.add_argument(
        "--lists-only",
        action="store_true",
        help="skip the runs with payment_methods (one request per customer: most of the time)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the throttled list-resources run this many times (default 1)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows in a log file too

    import sandbox
    from sandbox.seed import seed
    from services.sync import RESOURCES

    facts = print_facts()
    print(f"\nbench.backfill: {args.customers} customers, limit {args.limit} r/s, seed {args.seed}")
    handle = sandbox.SandboxHandle(args.api.rstrip("/"), lambda: None) if args.api else sandbox.run_in_process(port=0)
    try:
        started = time.monotonic()
        summary = seed(handle.url, seed=args.seed, customers=args.customers)
        if summary["already_seeded"]:
            print(f"using the sandbox at {handle.url} as it is (already seeded)")
        else:
            counts = {k: summary[k] for k in ("customers", "charges", "subscriptions", "one_off_invoices")}
            print(f"seeded in {time.monotonic() - started:.1f}s through the API: {counts}")
            if args.extra_charges:
                started = time.monotonic()
                add_charges(handle.url, args.extra_charges, args.seed)
                print(f"added {args.extra_charges:,} charges in {time.monotonic() - started:.1f}s")
        everything = list(RESOURCES)
        lists_only = [n for n in everything if n != "payment_methods"]
        throttled_lists = (
            f"throttled: {args.limit} r/s, list resources only (no payment_methods)",
            args.limit,
            args.limit,
            lists_only,
        )
        plan = [
            (f"throttled: sandbox and Billy at {args.limit} r/s, all resources", args.limit, args.limit, everything),
            *[throttled_lists] * max(1, args.repeat),
            ("unthrottled: no limits, all resources", 0, UNLIMITED, everything),
            ("unthrottled: no limits, list resources only", 0, UNLIMITED, lists_only),
        ]
        if args.lists_only:
            plan = [p for p in plan if p[3] is lists_only]
        runs = []
        for label, sandbox_limit, billy_limit, resources in plan:
            runs.append(run_backfill(handle, label, sandbox_limit, billy_limit, resources))
            report(runs[-1], args.limit)
        conclude(runs, args.limit)
    finally:
        handle.stop()
    print(f"\n(measured on {facts['cpu_count']} × {facts['cpu']}, {facts['timestamp']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
