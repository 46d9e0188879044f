"""Start a real Billy (production build, as `make run` starts it) on a fresh data folder.

Shared by the browser tests and `bench/live`, so both measure the app as `make run` runs
it: migrated store, the given Stripe sandbox and mail catcher, bun from `.tools/`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from controlplane.local import instance_process_env
from controlplane.local_http import local_http
from controlplane.proxy import free_port
from services.config import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class RunningApp:
    url: str
    data_dir: Path
    env: dict[str, str]
    log: Path


@contextmanager
def running_app(
    data_dir: Path,
    *,
    sandbox_url: str,
    demo_key: str,
    smtp_host: str = "127.0.0.1",
    smtp_port: int = 1025,
    extra_env: dict[str, str] | None = None,
    start_timeout: float = 240,
    port: int | None = None,
    store_template: Path | None = None,
) -> Iterator[RunningApp]:
    """Billy on `port` (a free one if not given). Instances started one after another on the same
    port share one frontend build (`billy_app.serve`), so only the first pays for it."""
    port = port or free_port()
    env = instance_process_env()
    env.update(
        BILLY_DATA_DIR=str(data_dir),
        BILLY_STRIPE_API_BASE=sandbox_url,
        BILLY_SANDBOX="true",
        BILLY_SANDBOX_DEMO_KEY=demo_key,
        BILLY_PUBLIC_URL=f"http://localhost:{port}",
        BILLY_SMTP_HOST=smtp_host,
        BILLY_SMTP_PORT=str(smtp_port),
        BILLY_SMTP_TLS="none",
    )
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):  # parallel browser tests: a build per worker
        env["REFLEX_WEB_WORKDIR"] = f".web-{worker}"
    env.update(extra_env or {})
    if store_template is not None:  # an SQLite store migrated once already: a copy is the same schema
        (data_dir / "db").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store_template, data_dir / "db" / "billy.db")
    else:
        subprocess.run([sys.executable, "-m", "services.cli", "migrate"], env=env, cwd=PROJECT_ROOT, check=True)
    log = data_dir / "app.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "billy_app.serve", "--port", str(port), "--loglevel", "info"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://localhost:{port}"
    http = local_http()
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Billy exited while starting:\n{log.read_text()[-3000:]}")
            try:
                if http.get(f"{url}/", timeout=2).status_code == 200 and http.get(f"{url}/healthz").text == "ok":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Billy did not start in time:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield RunningApp(url, data_dir, env, log)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """The app's whole process group, politely then firmly; one that already exited is left be
    (its start error, not a second one from here, is what the caller should see)."""
    try:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
