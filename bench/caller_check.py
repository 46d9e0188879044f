"""What checking a caller costs (`identity.verify_access`): every dashboard event, every live
refresh of an open page and every API call does it, against the store's word of that moment.

    python -m bench.caller_check [--db sqlite|postgresql|both] [--calls 1000]

A fresh migrated instance with its Owner signed in; the Owner's access token checked `--calls`
times in a row, five rounds after a warm-up, on each database. Prints the median time a check.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from bench.common import print_facts
from bench.harness import DATABASES, database_env

ROUNDS = 5
WARM_UP = 200


def time_checks(calls: int) -> float:
    """Seconds one check takes (the median of `ROUNDS` rounds of `calls`), on the store the
    environment names."""
    from services import db, identity, secrets
    from services.cli import migrate
    from services.config import get_settings
    from services.organization import signup

    get_settings.cache_clear()
    db.get_engine.cache_clear()
    secrets.get_secret_store.cache_clear()  # each store's instance keeps its own keys folder
    migrate(get_settings().resolved_database_url)
    owner = signup("Bench Ltd", "pro", "bench-owner@example.com", "a-bench-owner-password")
    access = identity.start_session(owner.id, "127.0.0.1", "bench").access
    for _ in range(WARM_UP):
        identity.verify_access(access)
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(calls):
            identity.verify_access(access)
        rounds.append((time.perf_counter() - started) / calls)
    db.get_engine().dispose()
    return statistics.median(rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.caller_check", description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=[*DATABASES, "both"], default="both")
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args(argv)
    print_facts()
    for name in DATABASES if args.db == "both" else (args.db,):
        with tempfile.TemporaryDirectory(prefix="billy-bench-check-") as tmp, database_env(name) as store:
            saved = dict(os.environ)
            os.environ.update({"BILLY_DATA_DIR": tmp, "BILLY_FIRST_RUN_SIGNUP": "true", **store})
            try:
                seconds = time_checks(args.calls)
            finally:
                os.environ.clear()
                os.environ.update(saved)
        print(f"{name:<11} {seconds * 1000:.2f} ms a check (median of {ROUNDS} rounds of {args.calls:,})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
