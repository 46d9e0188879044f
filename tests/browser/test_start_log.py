"""`make run`'s start log: one line per component with its address, and nothing that reads
like a fault (no warnings, no framework INFO chatter) on a healthy start (issue 11); and when
Billy stops, its helpers stop with it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from devtools.app_runner import free_port
from services.config import PROJECT_ROOT

pytestmark = pytest.mark.browser  # it serves the shared production build, so it runs with the browser tests

FAULT_WORDS = re.compile(r"warn|error|traceback|redefined|deprecat|\bINFO\b", re.IGNORECASE)


def test_a_healthy_start_prints_one_line_per_component_and_no_warnings(tmp_path: Path, app_port: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLY_")}
    env.update(
        BILLY_DATA_DIR=str(tmp_path / "data"),
        PORT=str(app_port),  # the port the browser modules use, so the kept frontend build serves
        SANDBOX_PORT=str(free_port()),
        MAIL_PORT=str(free_port()),
        MAIL_WEB_PORT=str(free_port()),
    )
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):
        # The build the other browser modules on this worker use (devtools/app_runner.py): made
        # for the same port, it serves as it is, rather than a third build of the same pages.
        env["REFLEX_WEB_WORKDIR"] = f".web-{worker}"
    log = tmp_path / "start.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["scripts/run.sh"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://localhost:{app_port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).text == "ok" and httpx.get(url + "/").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        time.sleep(1.0)  # anything the app prints once it answers
        started = log.read_text()  # the start log: what a person reads while Billy runs
        # Billy stopping on its own (a crash, a TERM to it alone) stops the mail catcher and the
        # sandbox with it: left running, they held their ports and the next `make run` failed.
        found = subprocess.run(["pgrep", "-of", f"billy_app.serve --port {app_port}"], capture_output=True, text=True)
        os.kill(int(found.stdout.split()[0]), signal.SIGTERM)
        proc.wait(timeout=60)
        for helper in ("MAIL_PORT", "SANDBOX_PORT"):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", int(env[helper])), timeout=5).close()
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the group (a failed check)
            os.killpg(proc.pid, signal.SIGTERM)
        # Every component stops on SIGTERM. Once, on a loaded CI machine, this took over 30 s;
        # 60 s still catches a stop that hangs (the stop's own cause is under investigation).
        proc.wait(timeout=60)
    lines = [line for line in started.splitlines() if line.strip()]
    building = [line for line in lines if "building the frontend" in line or "frontend built" in line]
    components = [line for line in lines if line not in building]
    assert [line.split(":", 1)[0] for line in components] == [
        "› mail catcher",
        "› Stripe sandbox",
        "› demo data",
        "› store",  # migrated while the others started
        "› Agent Billy",
    ], lines
    assert f"smtp://127.0.0.1:{env['MAIL_PORT']}" in components[0]
    assert f"http://localhost:{env['MAIL_WEB_PORT']}" in components[0]
    assert f"http://127.0.0.1:{env['SANDBOX_PORT']}" in components[1]
    assert "seeded" in components[2]
    assert re.search(r"store: sqlite:///\S+billy\.db", components[3])
    assert url in components[4]
    assert not [line for line in lines if FAULT_WORDS.search(line)], lines
