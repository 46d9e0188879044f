"""What one Stripe webhook delivery costs Billy, with nothing else running: signature, parse,
the one transaction that records the event and writes the copy, and its commit.

    python -m bench.deliveries [--deliveries 2000] [--db sqlite|postgresql|both]

Each store runs in a child process of its own, on a fresh store (SQLite in a temporary folder,
PostgreSQL in a temporary database, dropped after). Deliveries go through
`stripe_events.receive_webhook`, as the endpoint calls it, one after another: first new charges
(`charge.succeeded`, an insert each), then the same charges refunded (`charge.refunded`, a newer
copy over each). It prints p50/p95 ms and deliveries per second for each. Under a burst the
endpoint's answer time (`bench.burst`) is this plus the queue; this is the part Billy's code
sets.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.common import percentile, print_facts
from bench.harness import DATABASES, database_env

SECRET = "whsec_" + "b" * 32
WARMUP = 100


def _charge_event(n: int, refunded: bool) -> dict[str, Any]:
    created = 1_800_000_000 + n
    charge = {
        "id": f"ch_bench{n}",
        "object": "charge",
        "amount": 1_000 + n,
        "amount_refunded": 1_000 + n if refunded else 0,
        "refunded": refunded,
        "currency": "usd",
        "created": created,
        "status": "succeeded",
        "paid": True,
        "customer": None,
        "livemode": False,
    }
    return {
        "id": f"evt_bench{n}{'r' if refunded else ''}",
        "object": "event",
        "type": "charge.refunded" if refunded else "charge.succeeded",
        "created": created + (60 if refunded else 0),
        "data": {"object": charge},
    }


def _child(db: str, deliveries: int) -> None:
    """Time the deliveries on one store (called in a process of its own)."""
    with database_env(db) as env:
        os.environ.update(env, BILLY_DATA_DIR=tempfile.mkdtemp(prefix="billy-bench-deliveries-"))
        from sandbox.events import signature_header
        from services import organization, stripe_events
        from services.cli import migrate
        from services.db import get_engine
        from services.secrets import get_secret_store

        migrate()
        organization.signup("Bench Ltd", "pro", "owner@example.com", "a-long-bench-password")
        get_secret_store().set(stripe_events.WEBHOOK_SECRET, SECRET)

        def deliver(event: dict[str, Any]) -> float:
            payload = json.dumps(event).encode()
            began = time.perf_counter()
            outcome = stripe_events.receive_webhook(payload, signature_header(SECRET, payload, int(time.time())))
            took = (time.perf_counter() - began) * 1000
            assert outcome.outcome == "applied", outcome
            return took

        for refunded in (False, True):
            for n in range(WARMUP):
                deliver(_charge_event(n, refunded))
        for refunded, label in ((False, "new charge (insert)"), (True, "charge refunded (update)")):
            began = time.perf_counter()
            times = [deliver(_charge_event(n, refunded)) for n in range(WARMUP, WARMUP + deliveries)]
            rate = deliveries / (time.perf_counter() - began)
            print(
                f"{db:<11} {label:<26} p50 {percentile(times, 50):6.2f} ms  p95 {percentile(times, 95):6.2f} ms"
                f"  {rate:6.0f} deliveries/s",
                flush=True,
            )
        get_engine().dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--db", choices=[*DATABASES, "both"], default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.db, args.deliveries)
        return 0
    print_facts()
    print(f"{args.deliveries} sequential deliveries each, after {WARMUP} to warm up", flush=True)
    for db in DATABASES if args.db == "both" else (args.db,):
        child = ["--child", "--db", db, "--deliveries", str(args.deliveries)]
        subprocess.run([sys.executable, "-m", "bench.deliveries", *child], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
