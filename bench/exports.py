"""The charges CSV export at scale: rows per second, and memory that does not grow with the rows.

    python -m bench.exports [--charges 1000000] [--db sqlite|postgresql|both]

For each database: a fresh store (as bench.pages makes it) filled with `--charges` charges (and
a tenth as many customers, whose names the rows carry; generated in a child process, so they do
not set this process's peak memory), an Owner on the Pro plan; then the charges
export is streamed to /dev/null through `services.exports.stream` (authorization, keyset pages,
the rows built as the list builds them, CSV, the audit row), first filtered to about a tenth of
the charges, then all of them. Printed per run: rows, bytes, seconds, rows/s, and the process's
resident memory: now and at its peak (`ru_maxrss`) before the run and after it. A peak that stays
put from the tenth to the whole shows the stream holds a page, not the file.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.queues
import resource
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import human_bytes, print_facts
from bench.pages import DAY, Generator, Loader, _exit_on_sigterm, temporary_store

PAGE_SIZE = 4096


def rss_now() -> int:
    """Resident memory at this moment, in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except OSError:
        return 0


def rss_peak() -> int:
    """The process's peak resident memory so far, in bytes (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def fill_in_child(store: Any, charges: int, now: int) -> tuple[int, int, float]:
    """`fill` in a forked child, so generating a million rows does not set this process's peak
    RSS (ru_maxrss of RUSAGE_SELF leaves children out): the peak printed is the export's."""
    ctx = multiprocessing.get_context("fork")
    answer: multiprocessing.queues.Queue[tuple[int, int, float]] = ctx.Queue()

    def child() -> None:
        from services import db

        db.get_engine.cache_clear()  # never share the parent's pooled connections across fork
        filled = fill(store, charges, now)
        signup_owner()  # argon2 hashing takes 64 MiB: here, not in the measured process
        answer.put(filled)

    process = ctx.Process(target=child)
    process.start()
    result = answer.get()
    process.join()
    if process.exitcode:
        raise SystemExit(f"generating the store failed (exit code {process.exitcode})")
    return result


def fill(store: Any, charges: int, now: int) -> tuple[int, int, float]:
    """Customers and charges (with their refunds) only: what the charges export reads."""
    started = time.perf_counter()
    gen = Generator(max(1, charges // 10), charges, now)
    loader = Loader(store)
    loader.drop_secondary_indexes(["stripe_customer", "stripe_charge", "stripe_refund"])
    n_customers = n_charges = 0
    for chunk in gen.customers():
        loader.insert("stripe_customer", chunk)
        n_customers += len(chunk)
    refunds: list[dict[str, Any]] = []
    for chunk in gen.charges(refunds):
        loader.insert("stripe_charge", chunk)
        loader.insert("stripe_refund", refunds)
        n_charges += len(chunk)
        refunds.clear()
    loader.finish()
    return n_customers, n_charges, time.perf_counter() - started


OWNER_EMAIL = "owner@bench.example"


def signup_owner() -> None:
    from services.organization import signup

    signup("Bench Ltd", "pro", OWNER_EMAIL, "a-long-bench-password")


def owner_on_pro() -> Any:
    """The Owner the child signed up (Pro plan), as an Actor."""
    from sqlmodel import select

    from services.db import session_scope
    from services.models import Member
    from services.permissions import Actor, Source

    with session_scope() as session:
        member = session.exec(select(Member).where(Member.email == OWNER_EMAIL)).one()
        return Actor(member.id, member.email, member.role, Source.SYSTEM)


def export_once(actor: Any, filters: Any, label: str) -> dict[str, float]:
    from services import exports

    before_now, before_peak = rss_now(), rss_peak()
    started = time.perf_counter()
    written = 0
    with open("/dev/null", "w", encoding="utf-8") as sink:
        for chunk in exports.stream(actor, "charges", filters):
            sink.write(chunk)
            written += len(chunk)
    took = time.perf_counter() - started
    rows = _audited_rows()
    result = {
        "rows": rows,
        "chars": written,
        "seconds": took,
        "rows_per_s": rows / took if took else 0.0,
        "rss_before": before_now,
        "peak_before": before_peak,
        "rss_after": rss_now(),
        "peak_after": rss_peak(),
    }
    print(
        f"  {label:<14} {rows:>10,} rows  {human_bytes(written):>9}  {took:7.1f} s"
        f"  {result['rows_per_s']:>7,.0f} rows/s"
        f"  RSS {human_bytes(before_now)} → {human_bytes(result['rss_after'])}"
        f"  peak {human_bytes(before_peak)} → {human_bytes(result['peak_after'])}",
        flush=True,
    )
    return result


def _audited_rows() -> int:
    """The row count the export's own audit row recorded (the newest charges.export row)."""
    import sqlalchemy as sa

    from services.db import get_engine
    from services.models import AuditEntry, table_of

    t = table_of(AuditEntry)
    with get_engine().connect() as conn:
        details = conn.execute(
            sa.select(t.c.details).where(t.c.action == "charges.export").order_by(t.c.id.desc()).limit(1)
        ).scalar_one()
    return int(details["rows"])


def run_one(kind: str, charges: int) -> list[dict[str, float]]:
    from services import clock
    from services.reports import ChargeFilters

    now_dt = datetime.now(UTC).replace(microsecond=0)
    print(f"\n=== {kind}: {charges:,} charges ===", flush=True)
    with temporary_store(kind) as store:
        customers, n, took = fill_in_child(store, charges, int(now_dt.timestamp()))
        print(f"generated in {took:.1f} s: customers {customers:,}, charges {n:,}; store {human_bytes(store.size())}")
        actor = owner_on_pro()
        # The generator spreads charges over three years: the newest tenth is the last ~110 days.
        tenth = ChargeFilters(date_from=now_dt - timedelta(seconds=int(3 * 365 * DAY * 0.1)))
        print(f"RSS before any export: {human_bytes(rss_now())} (peak {human_bytes(rss_peak())})", flush=True)
        with clock.freeze(now_dt):
            results = [export_once(actor, tenth, "newest tenth"), export_once(actor, ChargeFilters(), "all charges")]
    small, full = results
    grew = max(0, full["peak_after"] - small["peak_after"])
    times = full["rows"] / max(1, small["rows"])
    print(
        f"peak RSS after {small['rows']:,} rows: {human_bytes(small['peak_after'])}; after {full['rows']:,} rows: "
        f"{human_bytes(full['peak_after'])} (grew {human_bytes(grew)} for {times:.1f}× the rows)"
    )
    return results


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # unwinds, so the temporary store is removed
    parser = argparse.ArgumentParser(prog="python -m bench.exports", description=__doc__.split("\n\n")[0])
    parser.add_argument("--charges", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    args = parser.parse_args(argv)
    print_facts()
    for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        run_one(kind, args.charges)
    return 0


if __name__ == "__main__":
    sys.exit(main())
