"""Start Billy in production mode, building the frontend only when the pages changed.

`reflex run --env prod` compiles and rebuilds the whole frontend at every start (15–20 s on
two cores). Here the build is keyed by everything that shapes it (the app's Python sources,
`rxconfig.py`, the pinned packages, the address the pages talk to) and kept in `.web/`; a
restart with nothing changed only starts the backend, which serves the kept build itself.

    python -m billy_app.serve --port 3000              # build if needed, then serve
    python -m billy_app.serve --port 3000 --workers 4  # four workers on one port (PostgreSQL + Redis)
    python -m billy_app.serve --build-only             # just make sure the build is current
    python -m billy_app.serve --port 4101 --build-port 8080  # behind a proxy the browser reaches on :8080
    python -m billy_app.serve --port 4101 --no-build   # the backend alone (API-only instances in tests)

Behind a proxy the pages must call back to the proxy's address, not the backend's own port, so
`--build-port` names the port the browser uses. Reflex's client swaps a `localhost` host in that
address for the page's own host, so one build for `localhost:8080` serves every
`{org}.localhost:8080` (the local provisioner's instances share it).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Reflex's own setting for where the frontend is built; parallel browser-test workers each have
# their own (tests/browser/conftest.py), since a build is made for one address.
WEB = ROOT / os.environ.get("REFLEX_WEB_WORKDIR", ".web")
BUILD = WEB / "build" / "client"
KEY_FILE = WEB / "billy-build.key"
# What the compiled pages depend on, besides the address they call back to.
SOURCES = ("billy_app/**/*.py", "rxconfig.py", "assets/**/*", "requirements.txt", "constraints.txt")


def build_key(api_url: str) -> str:
    digest = hashlib.sha256(api_url.encode())
    for pattern in SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            rel = path.relative_to(ROOT)
            if path.is_file() and not any(p.startswith(".web") or p == "__pycache__" for p in rel.parts):
                digest.update(str(rel).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


@contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time, even from several test processes."""
    WEB.mkdir(exist_ok=True)
    with (WEB / "billy-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_built(port: int, env: dict[str, str] | None = None) -> bool:
    """Build the frontend for pages served at `localhost:port` unless that build is current.
    Returns whether it built."""
    api_url = f"http://localhost:{port}"
    key = build_key(api_url)
    with _build_lock():
        if BUILD.is_dir() and KEY_FILE.is_file() and KEY_FILE.read_text() == key:
            return False
        started = time.monotonic()
        print(f"› building the frontend for {api_url} (pages changed or first run)", flush=True)
        KEY_FILE.unlink(missing_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "reflex", "export", "--frontend-only", "--no-zip", "--env", "prod"],
            cwd=ROOT,
            env={**(env or os.environ), "REFLEX_API_URL": api_url},
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise SystemExit(f"The frontend build failed (exit {done.returncode}).")
        KEY_FILE.write_text(key)
        print(f"› frontend built in {time.monotonic() - started:.0f} s", flush=True)
        return True


def worker_count(requested: int | None = None) -> int:
    """How many worker processes to run: `--workers`, else `GRANIAN_WORKERS` (Reflex's own name for
    it), else one. Never a guess from the CPU count: in a container that is the host's, and each
    worker is a resident copy of the app (about 170 MB)."""
    if requested is not None:
        return requested
    raw = os.environ.get("GRANIAN_WORKERS", "").strip()
    if not raw:
        return 1
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"GRANIAN_WORKERS is {raw!r}: use a whole number of worker processes.") from None


def scaling_problem(workers: int, database_url: str, redis_url: str) -> str:
    """Why `workers` processes cannot serve this instance, in words for the operator ("" when they can).

    Several workers share one store, and each tab's state and the live updates through Redis; SQLite
    is one process's store (one writer, a file on one disk), so SQLite means one worker."""
    if workers < 1:
        return f"{workers} workers asked: run at least one."
    if workers == 1:
        return ""
    if database_url.startswith("sqlite"):
        return (
            f"{workers} workers asked, but the store is SQLite, and SQLite means one worker. "
            "Run one worker (GRANIAN_WORKERS=1), or set BILLY_DATABASE_URL to PostgreSQL and BILLY_REDIS_URL "
            "to Redis (`make run-scaled` does both)."
        )
    if not redis_url:
        return (
            f"{workers} workers asked, but BILLY_REDIS_URL is not set: workers share each tab's state, the live "
            "updates and the Stripe request gate through Redis. Set it, or run one worker."
        )
    return ""


def serve(
    port: int,
    host: str = "0.0.0.0",  # noqa: S104 - a container's port
    loglevel: str = "warning",
    workers: int = 1,
    *,
    frontend: bool = True,
) -> None:
    """The backend, serving the kept build on the same port (as `reflex run --env prod` does);
    `frontend=False` serves the backend's routes only (no build needed).

    One worker runs in this process under uvicorn: Granian's supervisor would add a second resident
    copy of the app (about 170 MB) for nothing. Several run under Granian, which spreads connections
    over them on one port and starts a new worker in place of one that dies (a tab on it reconnects
    to another and keeps its state: `billy_app.workers`)."""
    from reflex.utils import exec as reflex_exec
    from reflex_base import constants
    from reflex_base.environment import environment

    environment.REFLEX_ENV_MODE.set(constants.Env.PROD)
    environment.REFLEX_SKIP_COMPILE.set(True)  # the build above is the compiled app
    environment.REFLEX_MOUNT_FRONTEND_COMPILED_APP.set(frontend)
    if workers > 1:
        _serve_workers(host, port, loglevel, workers)
        return
    import uvicorn

    uvicorn.run(
        reflex_exec.get_app_instance(),
        factory=True,
        host=host,
        port=port,
        log_level=loglevel,
        access_log=False,
        ws="wsproto",
        lifespan="on",
    )


def make_shared_keys() -> list[str]:
    """The instance's own signing keys, made once here before any worker starts, so every worker
    reads the same ones (`services.signing.make_instance_keys`). Answers the names it created.

    A secret store that cannot be reached now does not stop the start: the workers then make the
    keys on first use, which the local store keeps race-free and Key Vault nearly so, and the
    readiness probe reports the store meanwhile."""
    from services.config import get_settings
    from services.secrets import SecretStoreError, make_secret_store
    from services.signing import make_instance_keys

    try:
        store = make_secret_store(get_settings())  # its own: nothing this process opens is forked
        try:
            created = make_instance_keys(store)
        finally:
            if close := getattr(store, "close", None):
                close()
    except SecretStoreError as exc:
        print(f"› the instance's signing keys are not checked: {exc}", file=sys.stderr, flush=True)
        return []
    if created:
        print(f"› made the instance's keys: {', '.join(created)}", flush=True)
    return created


def _serve_workers(host: str, port: int, loglevel: str, workers: int) -> None:
    """Granian as Reflex's production launcher runs it (the app imported once and forked into each
    worker, Reflex's log set-up), plus what Reflex leaves off: a worker that exits unexpectedly
    is replaced, where Granian would otherwise stop every worker with it."""
    import multiprocessing

    make_shared_keys()

    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server
    from reflex.utils import exec as reflex_exec

    if (start_method := reflex_exec._backend_start_method()) is not None:
        multiprocessing.set_start_method(start_method, force=True)
        if start_method == "fork" and not reflex_exec._preload_for_fork(None):
            multiprocessing.set_start_method("spawn", force=True)
    Server(
        target=reflex_exec.get_app_instance_from_file(),
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        log_level=LogLevels(os.getenv("GRANIAN_LOG_LEVEL", loglevel)),
        log_dictconfig=reflex_exec._granian_log_dictconfig(),
        workers=workers,
        respawn_failed_workers=True,
    ).serve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m billy_app.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104
    parser.add_argument("--loglevel", default="warning")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: GRANIAN_WORKERS, else 1)")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument(
        "--build-port", type=int, default=None, help="port the browser reaches the pages on (default: --port)"
    )
    parser.add_argument("--no-build", action="store_true", help="serve the backend only, without a frontend build")
    args = parser.parse_args(argv)
    if args.no_build and args.build_only:
        parser.error("--no-build and --build-only contradict each other")
    workers = worker_count(args.workers)
    if not args.build_only:
        from services.config import get_settings

        settings = get_settings()
        if problem := scaling_problem(workers, settings.resolved_database_url, settings.redis_url):
            raise SystemExit(f"Billy cannot start: {problem}")
    if not args.no_build:
        ensure_built(args.build_port or args.port)
    if not args.build_only:
        serve(args.port, args.host, args.loglevel, workers, frontend=not args.no_build)


if __name__ == "__main__":
    main()
