"""Caddy in front of the local provisioner's instances: `{slug}.localhost:<port>` → that organisation's process.

A well-kept proxy rather than a hand-written one (issue 18): Caddy passes websockets (Reflex's
`/_event`) and the original Host header through by default, and it is changed while it runs through
its admin API, one route at a time by its `@id`, so two changes never race over a config file.

Each change is still a graceful reload of Caddy's whole HTTP app, and Caddy 2.6 then closes every
open websocket (1001, going away), every organisation's: their tabs reconnect and keep their state
(Reflex's client reconnects; the state is the server's). Caddy skips the reload when a write leaves
the config as it was, so provisioning again, or a control plane taking over, closes nothing.

    proxy = CaddyProxy(root / "proxy", port=8080, fallback_port=9000)
    proxy.start()                                  # `caddy run` on a JSON config written here
    proxy.set_route("acme.localhost", 41234)       # add or replace
    proxy.set_paused("acme.localhost")             # 503, "This organisation's Billy is paused"
    proxy.remove_route("acme.localhost")
    proxy.stop()

The running Caddy's pid and admin port are kept in `<folder>/caddy.json`, so a control plane
that restarts finds the same Caddy (and its routes) instead of starting a second one on the port.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from controlplane.local_http import local_http
from controlplane.provisioning import ProvisioningError

SERVER = "billy"
ROUTES = f"/config/apps/http/servers/{SERVER}/routes"
CONTROLPLANE_ROUTE = "controlplane"  # `localhost` and `127.0.0.1`: the control plane's own web app
UNKNOWN_ROUTE = "unknown-host"  # anything else: no organisation lives there

PAUSED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Paused · Agent Billy</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1>This organisation's Billy is paused</h1>
<p>{host} is not serving right now: its subscription was cancelled or is on hold. The data is kept
for 30 days; the owner can reactivate it from their Agent Billy account.</p>
</body></html>
"""

NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found · Agent Billy</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1>No Billy at this address</h1><p>Check the organisation's name in the address.</p>
</body></html>
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _route_id(host: str) -> str:
    return f"host-{host}"


def _html(status: int, body: str, **headers: str) -> dict[str, Any]:
    fixed = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", **headers}
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {name.replace("_", "-"): [value] for name, value in fixed.items()},
        "body": body,
    }


def _upstream(port: int) -> dict[str, Any]:
    return {"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{port}"}]}


def pid_alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie child is reaped and counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        with contextlib.suppress(ChildProcessError):  # a child of this process: reap it
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def stop_group(pid: int, *, expect: str, timeout: float = 20) -> None:
    """Stop the process group `pid` leads, if the process there is still the one we started (its
    command line contains `expect`: after a reboot the pid may be someone else's), politely, then firmly."""
    if not pid_alive(pid) or expect not in " ".join(_cmdline(pid)):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 5
        time.sleep(0.05)


class CaddyProxy:
    """One `caddy run` serving plain HTTP on `port` (loopback only), configured by its admin API."""

    def __init__(self, folder: Path, port: int, *, fallback_port: int | None = None) -> None:
        self.folder = folder
        self.port = port
        self.fallback_port = fallback_port
        self._state_file = folder / "caddy.json"
        self._proc: subprocess.Popen[bytes] | None = None

    # --- process ------------------------------------------------------------------------------

    @property
    def admin(self) -> str:
        """The admin API of the Caddy recorded in the folder (another object may have started it since)."""
        state = self._read_state()
        if not state:
            raise ProvisioningError("The proxy is not running: start it first.")
        return f"http://127.0.0.1:{int(state['admin_port'])}"

    def running(self) -> bool:
        """Whether the recorded Caddy answers on its admin port and serves our port."""
        state = self._read_state()
        if not state or state.get("port") != self.port or not pid_alive(int(state["pid"])):
            return False
        try:
            listen = local_http().get(f"{self.admin}/config/apps/http/servers/{SERVER}/listen", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        return isinstance(listen, list) and f"127.0.0.1:{self.port}" in listen

    def start(self, timeout: float = 20) -> bool:
        """Start Caddy unless ours already runs; returns whether it started a new one (whose routes
        the caller must set again: the config is not persisted, it is rebuilt from the instances)."""
        if self.running():
            self._set_fallback()
            return False
        self.stop()  # a recorded Caddy that serves another port, or no longer answers
        caddy = shutil.which("caddy")
        if caddy is None:
            raise ProvisioningError("Caddy is not installed: run `make setup-proxy` (Debian's package `caddy`).")
        self.folder.mkdir(parents=True, exist_ok=True)
        admin_port = free_port()
        config_file = self.folder / "caddy-config.json"
        config_file.write_text(json.dumps(self._config(admin_port), indent=1))
        log = self.folder / "caddy.log"
        env = {
            **os.environ,
            # Caddy's own files (certificates, autosave) under our folder, not the user's home.
            "XDG_DATA_HOME": str(self.folder / "data"),
            "XDG_CONFIG_HOME": str(self.folder / "config"),
        }
        with log.open("ab") as out:
            self._proc = subprocess.Popen(  # noqa: S603 - caddy from PATH, our own config file
                [caddy, "run", "--config", str(config_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self._write_state({"pid": self._proc.pid, "admin_port": admin_port, "port": self.port})
        deadline = time.monotonic() + timeout
        while not self.running():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = log.read_text(errors="replace")[-2000:]
                raise ProvisioningError(f"Caddy did not start on port {self.port}:\n{tail}")
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        """Stop our Caddy (the recorded one, even if another object started it). Idempotent."""
        state = self._read_state()
        if state:
            stop_group(int(state["pid"]), expect="caddy", timeout=10)
        if self._proc is not None:
            self._proc.poll()
            self._proc = None
        self._state_file.unlink(missing_ok=True)

    def _config(self, admin_port: int) -> dict[str, Any]:
        return {
            "admin": {"listen": f"127.0.0.1:{admin_port}", "config": {"persist": False}},
            "logging": {"logs": {"default": {"level": "WARN"}}},
            "storage": {"module": "file_system", "root": str(self.folder / "data")},
            "apps": {
                "http": {
                    "servers": {
                        SERVER: {
                            "listen": [f"127.0.0.1:{self.port}"],
                            "automatic_https": {"disable": True},
                            "routes": [self._fallback_route(), self._unknown_route()],
                        }
                    }
                }
            },
        }

    def _fallback_route(self) -> dict[str, Any]:
        handler = _upstream(self.fallback_port) if self.fallback_port else _html(404, NOT_FOUND_PAGE)
        return {
            "@id": CONTROLPLANE_ROUTE,
            "match": [{"host": ["localhost", "127.0.0.1"]}],
            "handle": [handler],
            "terminal": True,
        }

    @staticmethod
    def _unknown_route() -> dict[str, Any]:
        return {"@id": UNKNOWN_ROUTE, "handle": [_html(404, NOT_FOUND_PAGE)], "terminal": True}

    def _set_fallback(self) -> None:
        """The control plane's upstream as this object has it (it may have moved since Caddy started)."""
        self._call("PATCH", f"/id/{CONTROLPLANE_ROUTE}", self._fallback_route())

    def _read_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _write_state(self, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self._state_file.with_suffix(".tmp")
        partial.write_text(json.dumps(state))
        partial.replace(self._state_file)

    # --- routes -------------------------------------------------------------------------------

    def set_route(self, host: str, upstream_port: int) -> None:
        """Requests for `host` go to 127.0.0.1:`upstream_port` (added, or replacing its route)."""
        self._put_route(host, [_upstream(upstream_port)])

    def set_paused(self, host: str) -> None:
        """Requests for `host` get a 503 page saying the organisation is paused."""
        page = PAUSED_PAGE.format(host=html.escape(host))
        self._put_route(host, [_html(503, page, Retry_After="3600")])

    def remove_route(self, host: str) -> None:
        """`host` no longer routed (it gets the unknown-host page). Idempotent."""
        self._call("DELETE", f"/id/{_route_id(host)}", ok_missing=True)

    def routes(self) -> dict[str, dict[str, Any]]:
        """The routes Caddy has now, by host (for tests and the operator)."""
        found = self._call("GET", ROUTES) or []
        return {
            route["match"][0]["host"][0]: route
            for route in found
            if str(route.get("@id", "")).startswith("host-") and route.get("match")
        }

    def _put_route(self, host: str, handle: list[dict[str, Any]]) -> None:
        route = {"@id": _route_id(host), "match": [{"host": [host]}], "handle": handle, "terminal": True}
        if self._call("GET", f"/id/{_route_id(host)}", ok_missing=True) is None:
            self._call("PUT", f"{ROUTES}/0", route)  # before the fallback routes (PUT on an index inserts)
        else:
            self._call("PATCH", f"/id/{_route_id(host)}", route)

    def _call(self, method: str, path: str, body: Any = None, *, ok_missing: bool = False) -> Any:
        url = f"{self.admin}{path}"
        try:
            response = local_http().request(method, url, json=body, timeout=10)
        except httpx.HTTPError as exc:
            raise ProvisioningError(f"Caddy's admin API did not answer {method} {path}: {exc}") from exc
        if ok_missing and response.status_code in (400, 404) and "unknown object ID" in response.text:
            return None
        if response.status_code >= 400:
            raise ProvisioningError(f"Caddy refused {method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None
