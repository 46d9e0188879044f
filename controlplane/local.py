"""Organisations on this machine: a process, port, store and secret namespace each, behind Caddy.

`LocalProvisioner` is the `Provisioner` and `InstanceWriter` the tests and a laptop use. Its root
folder holds everything:

    root/orgs/<slug>/data/        BILLY_DATA_DIR: the SQLite store, the secret store and its master
                                  key (so a secret namespace of its own), nothing shared
    root/orgs/<slug>/instance.json  the port, pid and state, so a control plane that restarts (a new
                                  LocalProvisioner over the same root) can stop what an earlier one started
    root/orgs/<slug>/app.log      the instance's output
    root/backups/<slug>/<UTC time>.db  read-only copies of its store (see `backup`)
    root/proxy/                   Caddy's config, log and pid (controlplane.proxy)

Each instance is `python -m billy_app.serve` run as a process, never imported (DESIGN, Tenancy:
the control plane does not import the app), at `http://{slug}.localhost:<proxy port>`. Writes into
an instance go through its own command line (`python -m services.cli provision-org / set-plan /
handover`) with the instance's settings, the way a provisioner on Azure runs a job in the app's
container. Every method converges: calling it again after a crash midway finishes the job.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from controlplane.local_http import local_http
from controlplane.provisioning import (
    LOCAL_DOMAIN,
    InstanceInfo,
    InstanceState,
    OrgSpec,
    OwnerSeed,
    ProvisioningError,
    check_slug,
)
from controlplane.proxy import CaddyProxy, free_port, pid_alive, stop_group
from services.config import PROJECT_ROOT
from services.plans import PLANS

BACKUP_RETENTION = timedelta(days=30)  # "we keep your data for 30 days" (PRODUCT_DOCS, cancel)
BACKUP_STAMP = "%Y%m%dT%H%M%SZ"
SERVE_MODULE = "billy_app.serve"


@dataclass(frozen=True)
class InstanceSettings:
    """What every local instance is told besides its own address and folder."""

    stripe_api_base: str = ""  # empty: real Stripe
    sandbox: bool = False
    sandbox_demo_key: str = ""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_tls: str = "none"
    web_workdir: str = ""  # REFLEX_WEB_WORKDIR for the shared frontend build; empty: Reflex's `.web`
    frontend: bool = True  # False: backend only (`serve --no-build`), for tests without a browser
    extra_env: Mapping[str, str] = field(default_factory=dict)  # any other BILLY_* setting


@cache
def npm_registry() -> str:
    """npm's configured registry, for the frontend build (Reflex probes mirrors over the network without it)."""
    npm = shutil.which("npm")
    if npm is None:
        return ""
    try:
        done = subprocess.run(  # noqa: S603 - npm from PATH, fixed arguments
            [npm, "config", "get", "registry"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def instance_process_env(*, builds_pages: bool = True) -> dict[str, str]:
    """This machine's environment for a Billy instance process, before its own `BILLY_*` settings:
    none of the caller's `BILLY_*`, bun and this venv on PATH, Reflex's telemetry and update check off,
    and (when it may build the pages) npm's registry pinned. Tests start instances with it too
    (devtools/app_runner.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLY_")}
    env.update(
        PATH=f"{PROJECT_ROOT / '.tools/bun/bin'}:{Path(sys.executable).parent}:{env.get('PATH', '')}",
        REFLEX_TELEMETRY_ENABLED="false",
        REFLEX_CHECK_LATEST_VERSION="false",
    )
    if builds_pages and not env.get("NPM_CONFIG_REGISTRY") and (registry := npm_registry()):
        env["NPM_CONFIG_REGISTRY"] = registry
    return env


class LocalProvisioner:
    """One process per organisation on this machine, routed by Caddy on `proxy_port`."""

    def __init__(
        self,
        root: Path,
        proxy_port: int,
        settings: InstanceSettings,
        *,
        controlplane_port: int | None = None,
        start_timeout: float | None = None,
    ) -> None:
        self.root = root
        self.proxy_port = proxy_port
        self.settings = settings
        # The first frontend build takes minutes on two cores; a backend alone starts in seconds.
        self.start_timeout = start_timeout or (600.0 if settings.frontend else 60.0)
        self.proxy = CaddyProxy(root / "proxy", proxy_port, fallback_port=controlplane_port)
        self._proxy_checked = False

    # --- where things are -------------------------------------------------------------------

    def url(self, slug: str) -> str:
        return f"http://{slug}.{LOCAL_DOMAIN}:{self.proxy_port}"

    def org_dir(self, slug: str) -> Path:
        return self.root / "orgs" / check_slug(slug)

    def data_dir(self, slug: str) -> Path:
        return self.org_dir(slug) / "data"

    def store_file(self, slug: str) -> Path:
        """The instance's SQLite store (services.config: `<data_dir>/db/billy.db`)."""
        return self.data_dir(slug) / "db" / "billy.db"

    def backup_dir(self, slug: str) -> Path:
        return self.root / "backups" / check_slug(slug)

    def slugs(self) -> list[str]:
        """Every organisation with a folder here (running or suspended)."""
        orgs = self.root / "orgs"
        return sorted(p.name for p in orgs.iterdir() if (p / "instance.json").is_file()) if orgs.is_dir() else []

    # --- Provisioner ------------------------------------------------------------------------

    def provision(self, org: OrgSpec) -> InstanceInfo:
        """Folder, migrated store, process and route; again: whatever is missing of those."""
        self._check_local(org)
        with self._locked(org.slug):
            self.data_dir(org.slug).mkdir(parents=True, exist_ok=True)
            state = self._state(org.slug) or {"state": InstanceState.RUNNING.value, "min_replicas": 1}
            state["state"] = InstanceState.RUNNING.value
            self._write_state(org.slug, state)
            self._ensure_running(org.slug)
            return self._info(org.slug)

    def scale(self, org: OrgSpec, replicas: int) -> InstanceInfo:
        """One process is the most a SQLite instance runs (DESIGN, Tenancy); `0` is recorded, but the
        process keeps running: there is no platform here to start it again on the next request."""
        self._check_local(org)
        if not 0 <= replicas <= 1:
            raise ProvisioningError(f"A local instance runs one process (SQLite): {replicas} replicas asked.")
        with self._locked(org.slug):
            state = self._existing_state(org.slug)
            state["min_replicas"] = replicas
            self._write_state(org.slug, state)
            if state["state"] == InstanceState.RUNNING.value:
                self._ensure_running(org.slug)
            return self._info(org.slug)

    def suspend(self, org: OrgSpec) -> InstanceInfo:
        """Process stopped, route answering 503 "paused"; folder, store and secrets kept."""
        self._check_local(org)
        with self._locked(org.slug):
            state = self._existing_state(org.slug)
            state["state"] = InstanceState.SUSPENDED.value
            self._write_state(org.slug, state)
            self._proxy().set_paused(self._host(org.slug))
            self._stop_process(org.slug)
            return self._info(org.slug)

    def resume(self, org: OrgSpec) -> InstanceInfo:
        """Started again on the same folder (migrated first: the code may be newer than the store)."""
        self._check_local(org)
        with self._locked(org.slug):
            state = self._existing_state(org.slug)
            state["state"] = InstanceState.RUNNING.value
            self._write_state(org.slug, state)
            self._ensure_running(org.slug)
            return self._info(org.slug)

    def destroy(self, org: OrgSpec) -> None:
        """Process, route, folder (store, secret store, master key) and backups, gone. Idempotent."""
        self._check_local(org)
        with self._locked(org.slug):
            self._stop_process(org.slug)
            if self.proxy.running():
                self.proxy.remove_route(self._host(org.slug))
            _remove_tree(self.backup_dir(org.slug))
            _remove_tree(self.org_dir(org.slug))

    # --- InstanceWriter -----------------------------------------------------------------------

    def seed(self, org: OrgSpec, owner: OwnerSeed) -> str:
        """Organisation, Owner and trial written by the instance's own `provision-org` (the password on
        its standard input only); returns the Owner's single-use hand-over address."""
        self._check_local(org)
        args = [
            "provision-org",
            "--org-name", owner.org_name,
            "--plan", org.plan,
            "--owner-email", owner.owner_email,
            "--owner-name", owner.owner_name,
            "--trial-ends-at", _iso(owner.trial_ends_at),
        ]  # fmt: skip
        answer = self._instance_command(org.slug, args, stdin=owner.password + "\n")
        return self._handover_url(org.slug, answer)

    def set_plan(self, org: OrgSpec, plan: str, *, trial_ends_at: datetime | None, plan_chosen: bool) -> None:
        self._check_local(org)
        if plan not in PLANS:
            raise ProvisioningError(f"Plan {plan!r} is not one of Billy's plans ({', '.join(PLANS)}).")
        args = ["set-plan", "--plan", plan, "--plan-chosen" if plan_chosen else "--trial"]
        if trial_ends_at is not None:
            args += ["--trial-ends-at", _iso(trial_ends_at)]
        self._instance_command(org.slug, args)

    def handover(self, org: OrgSpec) -> str:
        self._check_local(org)
        return self._handover_url(org.slug, self._instance_command(org.slug, ["handover"]))

    def _handover_url(self, slug: str, answer: dict[str, Any]) -> str:
        token = answer.get("handover_token")
        if not isinstance(token, str) or not token:
            raise ProvisioningError(f"{slug}'s instance gave no hand-over token.")
        return f"{self.url(slug)}/api/auth/handover?token={quote(token, safe='')}"

    # --- backups ------------------------------------------------------------------------------

    def backup(self, org: OrgSpec, *, now: datetime | None = None) -> Path:
        """A consistent copy of the instance's store, taken while it runs (SQLite's online backup),
        at `root/backups/<slug>/<UTC time>.db`, read-only.

        Why the instance cannot delete it: locally, the backups folder is outside the instance's data
        folder and no setting the instance is given points at it (same OS user, so this is a matter of
        configuration, not of permissions). On Azure the backups are the Flexible Server's own
        automated ones (deploy/README.md), which no organisation's database role can reach."""
        self._check_local(org)
        source = self.store_file(org.slug)
        if not source.is_file():
            raise ProvisioningError(f"{org.slug} has no store to back up (not provisioned, or destroyed).")
        folder = self.backup_dir(org.slug)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(BACKUP_STAMP)
        target = folder / f"{stamp}.db"
        n = 1
        while target.exists():  # two backups within a second: keep both
            n += 1
            target = folder / f"{stamp}-{n}.db"
        partial = folder / f".{target.name}.partial"
        partial.unlink(missing_ok=True)
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        partial.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        partial.replace(target)
        return target

    def backups(self, org: OrgSpec) -> list[Path]:
        """The organisation's backups, oldest first."""
        folder = self.backup_dir(org.slug)
        return sorted(folder.glob("*.db")) if folder.is_dir() else []

    def restore(self, org: OrgSpec, backup: Path) -> None:
        """The store as it was in `backup`: instance stopped, store replaced, started again (a
        suspended instance is restored and stays suspended)."""
        self._check_local(org)
        if backup.resolve().parent != self.backup_dir(org.slug).resolve():
            # One organisation's data never lands in another's instance, whatever the caller mixed up.
            raise ProvisioningError(f"{backup.name} is not one of {org.slug}'s backups: not restored.")
        if not backup.is_file():
            raise ProvisioningError(f"No backup at {backup}.")
        check = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        try:
            verdict = check.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ProvisioningError(f"{backup.name} is not a readable SQLite backup: {exc}") from exc
        finally:
            check.close()
        if verdict != ("ok",):
            raise ProvisioningError(f"{backup.name} is damaged ({verdict}): not restored.")
        with self._locked(org.slug):
            state = self._existing_state(org.slug)
            self._stop_process(org.slug)
            store = self.store_file(org.slug)
            store.parent.mkdir(parents=True, exist_ok=True)
            for leftover in (store, Path(f"{store}-wal"), Path(f"{store}-shm"), Path(f"{store}-journal")):
                leftover.unlink(missing_ok=True)
            partial = store.with_name(f".{store.name}.restoring")
            shutil.copyfile(backup, partial)
            partial.chmod(stat.S_IRUSR | stat.S_IWUSR)
            partial.replace(store)
            if state["state"] == InstanceState.RUNNING.value:
                self._ensure_running(org.slug)

    def prune_backups(self, now: datetime) -> list[Path]:
        """Delete backups older than 30 days (the data promise); returns what it deleted."""
        cutoff = now - BACKUP_RETENTION
        pruned = []
        for backup in sorted((self.root / "backups").glob("*/*.db")):
            taken = _backup_time(backup)
            if taken is not None and taken < cutoff:
                backup.unlink()
                pruned.append(backup)
        return pruned

    # --- the proxy ----------------------------------------------------------------------------

    def _proxy(self) -> CaddyProxy:
        """The running proxy; one started afresh gets every organisation's route again."""
        if self._proxy_checked and self.proxy.running():
            return self.proxy
        if self.proxy.start():
            for slug in self.slugs():
                state = self._state(slug)
                if state.get("state") == InstanceState.SUSPENDED.value:
                    self.proxy.set_paused(self._host(slug))
                elif state.get("port"):
                    self.proxy.set_route(self._host(slug), int(state["port"]))
        self._proxy_checked = True
        return self.proxy

    def start_proxy(self) -> None:
        """Start Caddy now (else the first call that needs a route does)."""
        self._proxy()

    def reconcile(self) -> list[str]:
        """After the control plane (or the machine) restarted: the proxy up with every route, and every
        instance that should run, running. Returns the slugs it started again."""
        self._proxy()
        started = []
        for slug in self.slugs():
            with self._locked(slug):
                state = self._state(slug)
                if state.get("state") != InstanceState.RUNNING.value:
                    continue
                if not (state.get("pid") and self._is_ours(int(state["pid"]), int(state.get("port", 0)))):
                    started.append(slug)
                self._ensure_running(slug)
        return started

    def shutdown(self) -> None:
        """Stop every instance and the proxy, keeping their state: `provision`/`resume` bring each back."""
        for slug in self.slugs():
            with self._locked(slug):
                self._stop_process(slug)
        self.proxy.stop()
        self._proxy_checked = False

    # --- processes ----------------------------------------------------------------------------

    def _host(self, slug: str) -> str:
        return f"{slug}.{LOCAL_DOMAIN}"

    def env(self, slug: str) -> dict[str, str]:
        """The instance's environment: `instance_process_env` plus the instance's own settings."""
        s = self.settings
        env = instance_process_env(builds_pages=s.frontend)
        env.update(
            BILLY_DATA_DIR=str(self.data_dir(slug)),
            BILLY_PUBLIC_URL=self.url(slug),
            BILLY_ACCOUNT_URL=f"http://{LOCAL_DOMAIN}:{self.proxy_port}/account/{slug}",
            BILLY_FIRST_RUN_SIGNUP="false",
            BILLY_SANDBOX="true" if s.sandbox else "false",
            BILLY_SMTP_HOST=s.smtp_host,
            BILLY_SMTP_PORT=str(s.smtp_port),
            BILLY_SMTP_TLS=s.smtp_tls,
        )
        if s.stripe_api_base:
            env["BILLY_STRIPE_API_BASE"] = s.stripe_api_base
        if s.sandbox_demo_key:
            env["BILLY_SANDBOX_DEMO_KEY"] = s.sandbox_demo_key
        if s.web_workdir:
            env["REFLEX_WEB_WORKDIR"] = s.web_workdir
        env.update(s.extra_env)
        return env

    def _ensure_running(self, slug: str) -> None:
        """Process up and answering, route pointing at it (called with the org's lock held)."""
        state = self._existing_state(slug)
        pid = state.get("pid")
        if not (pid and self._is_ours(int(pid), int(state.get("port", 0)))):
            self._run(slug, ["migrate"])
            port = int(state.get("port") or 0)
            if not port or not _port_free(port):
                port = free_port()
            state.update(port=port, pid=self._start(slug, port))
            self._write_state(slug, state)
        self._wait_ready(slug, int(state["pid"]), int(state["port"]))
        self._proxy().set_route(self._host(slug), int(state["port"]))

    def _start(self, slug: str, port: int) -> int:
        # One worker (SQLite), on loopback: only the proxy and this machine reach it.
        command = [sys.executable, "-m", SERVE_MODULE, "--port", str(port), "--host", "127.0.0.1", "--workers", "1"]
        command += ["--build-port", str(self.proxy_port)] if self.settings.frontend else ["--no-build"]
        with (self.org_dir(slug) / "app.log").open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module; the port is an int
                command,
                cwd=PROJECT_ROOT,
                env=self.env(slug),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped whole
            )
        return proc.pid

    def _wait_ready(self, slug: str, pid: int, port: int) -> None:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.start_timeout
        http = local_http()
        while True:
            if not pid_alive(pid):
                raise ProvisioningError(f"{slug}'s instance exited while starting:\n{self._log_tail(slug)}")
            try:
                if http.get(f"{base}/healthz", timeout=2).text == "ok" and (
                    not self.settings.frontend or http.get(f"{base}/", timeout=5).status_code == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ProvisioningError(f"{slug}'s instance did not start in time:\n{self._log_tail(slug)}")
            time.sleep(0.1)

    def _is_ours(self, pid: int, port: int) -> bool:
        """`pid` is still this organisation's server (not a pid reused since, say, a reboot)."""
        if not pid_alive(pid):
            return False
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True
        return SERVE_MODULE.encode() in line and str(port).encode() in line

    def _stop_process(self, slug: str) -> None:
        state = self._state(slug)
        if state.get("pid"):
            if self._is_ours(int(state["pid"]), int(state.get("port", 0))):
                stop_group(int(state["pid"]), expect=SERVE_MODULE)
            state.pop("pid")
            self._write_state(slug, state)

    def _log_tail(self, slug: str) -> str:
        try:
            return (self.org_dir(slug) / "app.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _run(self, slug: str, args: list[str], stdin: str | None = None) -> str:
        """`python -m services.cli <args>` with the instance's settings; its standard output."""
        done = subprocess.run(  # noqa: S603 - our own interpreter and module; no shell, arguments as a list
            [sys.executable, "-m", "services.cli", *args],
            cwd=PROJECT_ROOT,
            env=self.env(slug),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            message = (done.stderr.strip() or done.stdout.strip())[-2000:]
            raise ProvisioningError(f"{slug}'s instance refused `{args[0]}` (exit {done.returncode}): {message}")
        return done.stdout

    def _instance_command(self, slug: str, args: list[str], stdin: str | None = None) -> dict[str, Any]:
        """A seeding command's one JSON line."""
        with self._locked(slug):
            self._existing_state(slug)
            out = self._run(slug, args, stdin)
        lines = [line for line in out.splitlines() if line.strip()]
        try:
            answer = json.loads(lines[-1])
        except (IndexError, ValueError) as exc:
            raise ProvisioningError(f"{slug}'s `{args[0]}` did not answer one JSON line: {out[-500:]!r}") from exc
        if not isinstance(answer, dict):
            raise ProvisioningError(f"{slug}'s `{args[0]}` answered {answer!r}, not a JSON object.")
        return answer

    # --- state --------------------------------------------------------------------------------

    def _info(self, slug: str) -> InstanceInfo:
        state = self._state(slug)
        running = state.get("state") == InstanceState.RUNNING.value
        return InstanceInfo(
            slug=slug,
            url=self.url(slug),
            state=InstanceState.RUNNING if running else InstanceState.SUSPENDED,
            min_replicas=int(state.get("min_replicas", 1)) if running else 0,
            max_replicas=1,
            resources={
                "process": str(state.get("pid", "")),
                "port": str(state.get("port", "")),
                "data_dir": str(self.data_dir(slug)),
                "backups": str(self.backup_dir(slug)),
            },
        )

    def _check_local(self, org: OrgSpec) -> None:
        if org.base_domain != LOCAL_DOMAIN:
            raise ProvisioningError(
                f"The local provisioner serves {{slug}}.{LOCAL_DOMAIN}, not {org.base_domain}: "
                f"give the organisation base_domain={LOCAL_DOMAIN!r}."
            )

    def _state_file(self, slug: str) -> Path:
        return self.org_dir(slug) / "instance.json"

    def _state(self, slug: str) -> dict[str, Any]:
        try:
            state = json.loads(self._state_file(slug).read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _existing_state(self, slug: str) -> dict[str, Any]:
        state = self._state(slug)
        if not state:
            raise ProvisioningError(f"{slug} has no instance here: provision it first (or it was destroyed).")
        return state

    def _write_state(self, slug: str, state: dict[str, Any]) -> None:
        target = self._state_file(slug)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".tmp")
        partial.write_text(json.dumps(state, sort_keys=True))
        partial.replace(target)

    @contextmanager
    def _locked(self, slug: str) -> Iterator[None]:
        """One change to an organisation at a time, across threads and control-plane processes (the
        lock file lives outside the org's folder, which `destroy` deletes)."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with (locks / f"{check_slug(slug)}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ProvisioningError("Times written into an instance are timezone-aware (UTC).")
    return at.astimezone(UTC).isoformat()


def _backup_time(path: Path) -> datetime | None:
    try:
        return datetime.strptime(path.stem.split("-")[0], BACKUP_STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _remove_tree(folder: Path) -> None:
    """Delete `folder` whole. The backups in it are read-only files, but removing a file needs only
    the folder's write permission, which the control plane keeps."""
    if folder.exists():
        shutil.rmtree(folder)
