"""Start Billy in production mode, building the frontend only when the pages changed.

`reflex run --env prod` compiles and rebuilds the whole frontend at every start (15–20 s on
two cores). Here the build is keyed by everything that shapes it (the app's Python sources,
`rxconfig.py`, the pinned packages, the address the pages talk to) and kept in `.web/`; a
restart with nothing changed only starts the backend, which serves the kept build itself.

    python -m billy_app.serve --port 3000      # build if needed, then serve
    python -m billy_app.serve --build-only     # just make sure the build is current
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


def serve(port: int, host: str = "0.0.0.0", loglevel: str = "warning") -> None:  # noqa: S104 - a container's port
    """The backend, serving the kept build on the same port (as `reflex run --env prod` does).

    With tab state in memory (no Redis) there is exactly one worker, so it runs in this process
    under uvicorn: Reflex's own launcher would add Granian's supervisor, a second resident copy
    of the app (about 170 MB). With Redis, Reflex's launcher and its workers."""
    from reflex.utils import exec as reflex_exec
    from reflex_base import constants
    from reflex_base.environment import environment

    from services.config import get_settings

    environment.REFLEX_ENV_MODE.set(constants.Env.PROD)
    environment.REFLEX_SKIP_COMPILE.set(True)  # the build above is the compiled app
    if get_settings().redis_url:
        reflex_exec.run_backend_prod(host, port, constants.LogLevel(loglevel), mount_frontend_compiled_app=True)
        return
    import uvicorn

    environment.REFLEX_MOUNT_FRONTEND_COMPILED_APP.set(True)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m billy_app.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104
    parser.add_argument("--loglevel", default="warning")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args(argv)
    ensure_built(args.port)
    if not args.build_only:
        serve(args.port, args.host, args.loglevel)


if __name__ == "__main__":
    main()
