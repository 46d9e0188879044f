"""Shared benchmark helpers: the machine facts printed with every result, and timing stats.

Other benchmarks import `machine_facts()` / `print_facts()` from here so every result says
what it was measured on.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return f"{pages / 1024**3:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        return "unknown"


def _os_name() -> str:
    try:
        fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
        pretty = fields.get("PRETTY_NAME", "").strip('"')
        if pretty:
            return f"{pretty} (kernel {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def postgres_version(host: str | None = None, user: str | None = None) -> str:
    """The PostgreSQL server's version, or why it is unknown (no server is not an error)."""
    host = host or os.environ.get("BILLY_TEST_PG_HOST", "127.0.0.1")
    user = user or os.environ.get("BILLY_TEST_PG_USER", "postgres")
    try:
        import psycopg2

        conn = psycopg2.connect(host=host, user=user, dbname="postgres", connect_timeout=3)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                row = cur.fetchone()
            return str(row[0]) if row else "unknown"
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - a fact line, never a failure
        try:
            out = subprocess.run(["psql", "--version"], capture_output=True, text=True, timeout=5, check=False)
            client = out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            client = ""
        return f"server not reachable ({type(exc).__name__}){'; client ' + client if client else ''}"


def load_average() -> str:
    """The machine's load average: other work running beside a benchmark shows in its numbers."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} (1 min), {five:.2f} (5 min), {fifteen:.2f} (15 min)"


def machine_facts() -> dict[str, str]:
    """What a benchmark ran on: CPU, RAM, OS, Python, SQLite and PostgreSQL versions, when."""
    return {
        "cpu": _cpu_model(),
        "cpu_count": str(os.cpu_count() or "unknown"),
        "ram": _ram(),
        "os": _os_name(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version(),
        "load": load_average(),
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def print_facts(facts: dict[str, str] | None = None, file=None) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Print the machine facts as an aligned block; returns them."""
    facts = facts or machine_facts()
    width = max(len(k) for k in facts)
    print("Machine:", file=file)
    for key, value in facts.items():
        print(f"  {key:<{width}}  {value}", file=file)
    return facts


# --- timing ---------------------------------------------------------------------------------


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile of samples (pct in 0..100)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def time_call(fn: Callable[[], object], runs: int, warmup: int = 2) -> dict[str, float]:
    """Run `fn` `warmup` times untimed, then `runs` times; milliseconds p50/p95/max/mean."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return {
        "p50": statistics.median(samples),
        "p95": percentile(samples, 95),
        "max": max(samples),
        "mean": statistics.fmean(samples),
        "runs": float(runs),
    }


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


if __name__ == "__main__":
    print_facts()
