"""Starting and stopping the sandbox: from the command line, a thread or a process."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from sandbox import ratelimit, state
from sandbox.app import build_app
from sandbox.persistence import Persistence

log = logging.getLogger("sandbox")

READY_PREFIX = "sandbox ready on "
REPO_ROOT = Path(__file__).resolve().parent.parent


async def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    stop: asyncio.Event,
    on_ready: Callable[[int], None],
    access_log: bool = False,
    rate_limit: int = 0,
) -> None:
    """Run until `stop` is set; load from and save to `data_dir` when given.

    `rate_limit` (requests per second, 0: none) is the start-up limit a reset returns to."""
    app = build_app()
    ratelimit.LIMIT.default = rate_limit
    state.reset_all()
    persistence = Persistence(data_dir) if data_dir else None
    saver: asyncio.Task[None] | None = None
    if persistence is not None:
        persistence.load()
        persistence.dirty = False
        saver = asyncio.create_task(persistence.run())
    runner = web.AppRunner(app, access_log=logging.getLogger("aiohttp.access") if access_log else None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        on_ready(sockets[0].getsockname()[1] if sockets else port)
        await stop.wait()
    finally:
        if saver is not None:
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
        await runner.cleanup()
        await _cancel_background_tasks()
        if persistence is not None:
            persistence.save()
            state.off_dirty(persistence.mark)


async def _cancel_background_tasks() -> None:
    """Drop webhook deliveries still waiting, so shutdown is quiet and quick."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class SandboxRequestError(RuntimeError):
    """A sandbox config endpoint refused a request."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"sandbox answered {status}: {body[:500]!r}")
        self.status = status


def _http(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    """A JSON request to the sandbox's own endpoints (plain HTTP on loopback)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, parts.path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    if response.status >= 400:
        raise SandboxRequestError(response.status, raw)
    return json.loads(raw) if raw.strip() else None


def empty_sandbox(url: str) -> None:
    """DELETE /_config/data: the store, keys, idempotency cache and the rest, all emptied."""
    _http(f"{url.rstrip('/')}/_config/data", "DELETE")


def take_snapshot(url: str, name: str) -> None:
    """Save the whole sandbox at `url` under `name` (in its memory; a reset keeps it)."""
    _http(f"{url.rstrip('/')}/_config/snapshots/{name}", "PUT")


def restore_snapshot(url: str, name: str) -> bool:
    """Bring back the state saved as `name`; False when the sandbox has no such snapshot."""
    try:
        _http(f"{url.rstrip('/')}/_config/snapshots/{name}/restore", "POST")
    except SandboxRequestError as exc:
        if exc.status == 404:
            return False
        raise
    return True


@dataclass
class SandboxHandle:
    """A running sandbox: its `url`, and helpers for test fixtures."""

    url: str
    _stop: Callable[[], None] = field(repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        self._stop()

    def reset(self) -> None:
        """Empty the sandbox (DELETE /_config/data): store, keys, idempotency cache."""
        empty_sandbox(self.url)

    def snapshot(self, name: str) -> None:
        take_snapshot(self.url, name)

    def restore(self, name: str) -> bool:
        return restore_snapshot(self.url, name)

    def create_restricted_key(self, **body: Any) -> str:
        """POST /_config/restricted_keys with `permissions=`, or `profile=` and `without=`."""
        return _http(f"{self.url}/_config/restricted_keys", "POST", body)["key"]

    def set_latency(self, seconds: float) -> None:
        """Delay every API call by `seconds` (0 turns it off; a reset does too)."""
        _http(f"{self.url}/_config/latency", "POST", {"seconds": seconds})

    def set_rate_limit(self, requests_per_second: int) -> None:
        """Answer 429 past `requests_per_second` API requests in any moving second (0: no
        limit). A reset goes back to the start-up limit (`--rate-limit`, else none)."""
        _http(f"{self.url}/_config/rate_limit", "POST", {"requests_per_second": requests_per_second})

    def rate_limit(self) -> dict[str, int]:
        """GET /_config/rate_limit: `requests_per_second`, `default` and `refused` (429s so far)."""
        return _http(f"{self.url}/_config/rate_limit")

    def set_faults(self, faults: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /_config/faults: the next matching requests meet these faults (see sandbox/faults.py),
        e.g. `[{"path": "/v1/refunds", "kind": "after_write_reset", "count": 1}]`. Replaces earlier ones."""
        return _http(f"{self.url}/_config/faults", "POST", {"faults": faults})

    def faults(self) -> dict[str, Any]:
        """GET /_config/faults: `faults` still to fire, and `fired` (kind, method, path, idempotency_key)."""
        return _http(f"{self.url}/_config/faults")

    def clear_faults(self) -> None:
        _http(f"{self.url}/_config/faults", "DELETE")

    def set_clock_offset(self, seconds: int) -> int:
        """Run the sandbox's clock `seconds` from the machine's (negative: behind); answers its time now."""
        return int(_http(f"{self.url}/_config/clock", "POST", {"offset_seconds": seconds})["now"])

    def backdate(self, object_id: str, created: int) -> dict[str, Any]:
        return _http(f"{self.url}/_config/backdate", "POST", {"id": object_id, "created": created})

    def register_webhook(self, webhook_id: str, url: str, secret: str, events: list[str] | None = None) -> None:
        body: dict[str, Any] = {"url": url, "secret": secret}
        if events is not None:
            body["events"] = events
        _http(f"{self.url}/_config/webhooks/{webhook_id}", "POST", body)

    def delete_webhook(self, webhook_id: str) -> None:
        _http(f"{self.url}/_config/webhooks/{webhook_id}", "DELETE")

    def client(self, key: str = "sk_test_billysandbox", **options: Any) -> Any:
        """A `stripe.StripeClient` pointed at this sandbox."""
        import stripe  # the SDK is only needed by callers that use this helper

        return stripe.StripeClient(key, base_addresses={"api": self.url}, **options)


class _ThreadServer:
    """The sandbox running on its own event loop in a daemon thread."""

    def __init__(self, host: str, port: int, data_dir: Path | None) -> None:
        self.host, self.requested_port, self.data_dir = host, port, data_dir
        self.users = 0
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self._bound: list[int] = []
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._main, name="sandbox", daemon=True)

    def _ready_at(self, port: int) -> None:
        self._bound.append(port)
        self._ready.set()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(
                serve(self.host, self.requested_port, self.data_dir, self._stop, self._ready_at)
            )
        except Exception as exc:
            log.exception("the sandbox thread stopped with an error")
            self._failure.append(exc)
        finally:
            self._loop.close()
            self._ready.set()

    def start(self) -> str:
        self._thread.start()
        self._ready.wait(30)
        if self._failure or not self._bound:
            self._thread.join(5)
            raise RuntimeError("the sandbox did not start") from (self._failure[0] if self._failure else None)
        return f"http://{self.host}:{self._bound[0]}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)


_thread_lock = threading.Lock()
_shared: tuple[_ThreadServer, str] | None = None


def run_in_thread(port: int = 0, host: str = "127.0.0.1", data_dir: str | Path | None = None) -> SandboxHandle:
    """Start the sandbox, from scratch, in a background thread of this process.

    localstripe keeps its data in module globals, so a process holds one
    sandbox: a second call (same host and data dir, port 0 or the same port)
    returns a handle to the running one, and it stops when every handle has
    been stopped. Use `run_in_process` for separate sandboxes.
    """
    global _shared
    wanted_dir = Path(data_dir) if data_dir else None
    with _thread_lock:
        if _shared is None:
            server = _ThreadServer(host, port, wanted_dir)
            _shared = (server, server.start())
        server, url = _shared
        if (host, wanted_dir) != (server.host, server.data_dir) or port not in (0, int(url.rsplit(":", 1)[1])):
            raise RuntimeError(f"a sandbox with other settings already runs in this process at {url}")
        server.users += 1
    released = threading.Event()

    def release() -> None:
        global _shared
        with _thread_lock:
            if released.is_set():
                return
            released.set()
            server.users -= 1
            if server.users > 0:
                return
            _shared = None
        server.stop()

    return SandboxHandle(url, release)


def run_in_process(
    port: int = 0,
    host: str = "127.0.0.1",
    data_dir: str | Path | None = None,
    python: str = sys.executable,
    rate_limit: int = 0,
) -> SandboxHandle:
    """Start `python -m sandbox` as a child process; `stop()` sends SIGTERM.

    `rate_limit` is passed as `--rate-limit` (a reset returns to it)."""
    command = [python, "-m", "sandbox", "--host", host, "--port", str(port)]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    if rate_limit:
        command += ["--rate-limit", str(rate_limit)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
        command, stdout=subprocess.PIPE, env=env, text=True, cwd=REPO_ROOT
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith(READY_PREFIX):
        process.kill()
        process.wait(10)
        raise RuntimeError(f"the sandbox did not start: {line!r}")

    def stop_process() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stdout:
            process.stdout.close()

    return SandboxHandle(line[len(READY_PREFIX) :], stop_process)
