"""The local provisioner (controlplane/local.py): real instance processes behind a real Caddy.

Two organisations are provisioned once for the module (about 10 s) and shared; every test leaves
them running and signed in as it found them, so the tests hold in any order. The instances serve
the backend only (`frontend=False`): no browser here, so no frontend build.

The isolation tests sign each Owner in (one through the seeded hand-over address, one with the
password), then send one organisation's credentials everywhere the other answers: through the proxy
at the other's host, and straight to the other's port with a forged Host naming the first.
"""

from __future__ import annotations

import base64
import os
import socket
import sqlite3
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.local import InstanceSettings, LocalProvisioner
from controlplane.local_http import local_http
from controlplane.provisioning import InstanceState, OrgSpec, OwnerSeed, ProvisioningError
from controlplane.proxy import free_port, pid_alive
from devtools.controlplane_runner import via_proxy
from sandbox.keys import DEMO_RESTRICTED_KEY
from services.identity import ACCESS_COOKIE, REFRESH_COOKIE

PASSWORD = "a-long-owner-password"


@dataclass
class Org:
    spec: OrgSpec
    name: str
    token: str  # the Owner's access JWT (the `billy_access` cookie)
    refresh: str

    @property
    def slug(self) -> str:
        return self.spec.slug


@dataclass
class Local:
    provisioner: LocalProvisioner
    orgs: dict[str, Org] = field(default_factory=dict)

    @property
    def acme(self) -> Org:
        return self.orgs["acme"]

    @property
    def globex(self) -> Org:
        return self.orgs["globex"]

    @property
    def proxy_port(self) -> int:
        return self.provisioner.proxy_port

    def host(self, slug: str) -> str:
        return f"{slug}.localhost:{self.proxy_port}"

    def via_proxy(self, method: str, slug: str, path: str, **kwargs: Any) -> httpx.Response:
        return via_proxy(self.proxy_port, slug, method, path, timeout=10, **kwargs)

    def via_proxy_refused(self, slug: str) -> bool:
        try:
            self.via_proxy("GET", slug, "/healthz")
        except httpx.ConnectError:
            return True
        return False

    def direct(self, slug: str, path: str, host: str, **kwargs: Any) -> httpx.Response:
        """Straight to `slug`'s own port, past the proxy, naming any Host."""
        port = self.provisioner._state(slug)["port"]
        return local_http().get(
            f"http://127.0.0.1:{port}{path}", headers={"Host": host, **kwargs.pop("headers", {})}, **kwargs
        )


def _settings(sandbox: Any) -> InstanceSettings:
    return InstanceSettings(
        stripe_api_base=sandbox.url,
        sandbox=True,
        sandbox_demo_key=DEMO_RESTRICTED_KEY,
        smtp_port=free_port(),  # nothing listens: these tests send no mail
        frontend=False,
        extra_env={"BILLY_SYNC_ON_START": "false", "BILLY_EVENT_POLL_SECONDS": "0"},
    )


def _spec(slug: str) -> OrgSpec:
    return OrgSpec(slug, "starter", f"owner@{slug}.example", "localhost", "local")


def _owner(slug: str, name: str) -> OwnerSeed:
    return OwnerSeed(name, f"{name} Owner", f"owner@{slug}.example", PASSWORD, datetime.now(UTC) + timedelta(days=14))


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, sandbox: Any) -> Iterator[Local]:
    provisioner = LocalProvisioner(tmp_path_factory.mktemp("local-provisioner"), free_port(), _settings(sandbox))
    provisioner.start_proxy()
    try:

        def bring_up(slug: str, name: str) -> tuple[OrgSpec, str]:
            spec = _spec(slug)
            provisioner.provision(spec)
            return spec, provisioner.seed(spec, _owner(slug, name))

        with ThreadPoolExecutor(2) as pool:
            (acme, handover), (globex, _) = pool.map(bring_up, ["acme", "globex"], ["Acme", "Globex"])
        setup = Local(provisioner)
        # Acme's Owner arrives the way signup sends them: the seeded single-use hand-over address.
        assert handover.startswith(f"http://acme.localhost:{provisioner.proxy_port}/api/auth/handover?token=")
        arrived = setup.via_proxy("GET", "acme", handover.split(f":{provisioner.proxy_port}", 1)[1])
        assert arrived.status_code == 303, arrived.text
        assert arrived.headers["location"] == "/onboarding"
        setup.orgs["acme"] = Org(acme, "Acme", arrived.cookies[ACCESS_COOKIE], arrived.cookies[REFRESH_COOKIE])
        # Globex's Owner signs in with the password, from Globex's own page.
        signed_in = setup.via_proxy(
            "POST",
            "globex",
            "/api/auth/login",
            data={"email": "owner@globex.example", "password": PASSWORD},
            headers={"Origin": f"http://{setup.host('globex')}"},
        )
        assert signed_in.status_code == 303, signed_in.text
        setup.orgs["globex"] = Org(
            globex, "Globex", signed_in.cookies[ACCESS_COOKIE], signed_in.cookies[REFRESH_COOKIE]
        )
        yield setup
    finally:
        for slug in ("acme", "globex"):
            provisioner.destroy(_spec(slug))
        provisioner.shutdown()


def _me(local: Local, slug: str, token: str) -> httpx.Response:
    return local.via_proxy("GET", slug, "/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def _rows(store: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The organisation and member rows, read from the store file itself."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()  # noqa: S608 - fixed names
            for table in ("organization", "member")
        }


# --- side by side ---------------------------------------------------------------------------


def test_two_organisations_answer_each_at_their_own_host(local: Local) -> None:
    p = local.provisioner
    for slug in ("acme", "globex"):
        answer = local.via_proxy("GET", slug, "/healthz")
        assert (answer.status_code, answer.text) == (200, "ok")
    assert sorted(p.proxy.routes()) == ["acme.localhost", "globex.localhost"]
    a, g = p._state("acme"), p._state("globex")
    assert a["port"] != g["port"] and a["pid"] != g["pid"]
    # Each its own store, secret store and master key: nothing in one folder names the other.
    for slug in ("acme", "globex"):
        data = p.data_dir(slug)
        assert (data / "db" / "billy.db").is_file()
        assert (data / "keys" / "master.key").is_file()
        assert (data / "secrets").is_dir()
    keys = {(p.data_dir(s) / "keys" / "master.key").read_bytes() for s in ("acme", "globex")}
    assert len(keys) == 2
    assert _rows(p.store_file("acme"))["organization"][0] != _rows(p.store_file("globex"))["organization"][0]
    # No organisation at other names, and no control plane configured behind plain localhost.
    assert local.via_proxy("GET", "initech", "/healthz").status_code == 404
    bare = local_http().get(
        f"http://127.0.0.1:{local.proxy_port}/healthz", headers={"Host": f"localhost:{local.proxy_port}"}
    )
    assert bare.status_code == 404


def _open_event_socket(local: Local, slug: str) -> tuple[socket.socket, bytes]:
    """Reflex's `/_event` websocket at `slug`'s address, opened as a browser opens it: the socket and
    the answer's head."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /_event/?EIO=4&transport=websocket HTTP/1.1\r\n"
        f"Host: {local.host(slug)}\r\nOrigin: http://{local.host(slug)}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    conn = socket.create_connection(("127.0.0.1", local.proxy_port), timeout=10)
    conn.sendall(request.encode())
    received = b""
    while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < 3:
        chunk = conn.recv(4096)
        assert chunk, received
        received += chunk
    head, frame = received.split(b"\r\n\r\n", 1)
    assert frame[0] == 0x81 and frame[2:3] == b"0", frame  # a text frame: Engine.IO's "open"
    return conn, head


def test_the_reflex_websocket_passes_through_and_outlives_provisioning_again(local: Local) -> None:
    """Reflex's pages talk over `/_event`'s websocket: the upgrade reaches the instance. Caddy closes
    every websocket when its config changes, so provisioning again (or a control plane taking over)
    must not touch a route that is already right."""
    conn, head = _open_event_socket(local, "acme")
    with conn:
        assert head.startswith(b"HTTP/1.1 101"), head
        p = local.provisioner
        p.provision(local.acme.spec)
        p.provision(local.globex.spec)
        LocalProvisioner(p.root, p.proxy_port, p.settings).start_proxy()
        conn.settimeout(0.5)
        with pytest.raises(TimeoutError):  # nothing: no close frame, no end of stream
            conn.recv(4096)


# --- isolation ------------------------------------------------------------------------------


def test_each_owner_reads_their_own_organisation_only(local: Local) -> None:
    for org in (local.acme, local.globex):
        me = _me(local, org.slug, org.token)
        assert me.status_code == 200, me.text
        assert me.json()["member_email"] == f"owner@{org.slug}.example"


def test_one_organisations_credentials_get_nothing_from_the_other(local: Local) -> None:
    acme, globex = local.acme, local.globex
    cookies = {ACCESS_COOKIE: acme.token}
    # Through the proxy, at Globex's host.
    assert _me(local, "globex", acme.token).status_code == 401
    export = local.via_proxy("GET", "globex", "/api/exports/customers.csv?ticket=x", cookies=cookies)
    assert export.status_code == 401, export.text
    refreshed = local.via_proxy(
        "POST",
        "globex",
        "/api/auth/refresh",
        cookies={REFRESH_COOKIE: acme.refresh},
        headers={"Origin": f"http://{local.host('globex')}"},
    )
    assert refreshed.status_code == 401, refreshed.text
    # Straight to Globex's port, with a Host header claiming to be Acme.
    forged = f"acme.localhost:{local.proxy_port}"
    bearer = {"Authorization": f"Bearer {acme.token}"}
    assert local.direct("globex", "/api/v1/me", forged, headers=bearer).status_code == 401
    assert local.direct("globex", "/api/exports/customers.csv?ticket=x", forged, cookies=cookies).status_code == 401
    # The Host header picks nothing: Globex's own token at Globex's port, whatever Host it names,
    # reads Globex (there is no other organisation's data in that process to pick).
    mine = local.direct("globex", "/api/v1/me", forged, headers={"Authorization": f"Bearer {globex.token}"})
    assert mine.json()["member_email"] == "owner@globex.example"


def test_a_form_post_from_the_other_organisations_page_is_refused(local: Local) -> None:
    """Each instance's origin is its own `{slug}.localhost`: Acme's page cannot post Globex's forms."""
    posted = local.via_proxy(
        "POST",
        "globex",
        "/api/auth/login",
        data={"email": "owner@globex.example", "password": PASSWORD},
        headers={"Origin": f"http://{local.host('acme')}"},
    )
    assert posted.status_code == 403


# --- lifecycle ------------------------------------------------------------------------------


def test_suspend_answers_paused_and_resume_keeps_the_data(local: Local) -> None:
    p, acme = local.provisioner, local.acme
    before = _rows(p.store_file("acme"))
    pid = p._state("acme")["pid"]
    info = p.suspend(acme.spec)
    try:
        assert (info.state, info.min_replicas) == (InstanceState.SUSPENDED, 0)
        assert not pid_alive(pid)
        paused = local.via_proxy("GET", "acme", "/dashboard")
        assert paused.status_code == 503
        assert "This organisation's Billy is paused" in paused.text
        assert p.suspend(acme.spec).state is InstanceState.SUSPENDED  # again: no change
        assert _me(local, "globex", local.globex.token).status_code == 200  # the other carries on
    finally:
        info = p.resume(acme.spec)
    assert info.state is InstanceState.RUNNING
    assert _rows(p.store_file("acme")) == before
    assert _me(local, "acme", acme.token).json()["member_email"] == "owner@acme.example"  # still signed in


def test_backup_then_wipe_then_restore_gives_the_same_data(local: Local) -> None:
    p, acme = local.provisioner, local.acme
    before = _rows(p.store_file("acme"))
    backup = p.backup(acme.spec)
    assert backup.parent == p.root / "backups" / "acme"
    assert not backup.is_relative_to(p.data_dir("acme"))
    assert stat.S_IMODE(backup.stat().st_mode) == 0o444
    assert _rows(backup) == before
    store = p.store_file("acme")
    for part in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
        part.unlink(missing_ok=True)
    p.restore(acme.spec, backup)
    assert _rows(store) == before
    assert backup.is_file()  # a restore keeps the backup it used
    assert _me(local, "acme", acme.token).json()["member_email"] == "owner@acme.example"


def test_an_organisations_backup_is_never_restored_into_another(local: Local) -> None:
    p = local.provisioner
    globex_backup = p.backup(local.globex.spec)
    acme_before = _rows(p.store_file("acme"))
    with pytest.raises(ProvisioningError, match="not one of acme's backups"):
        p.restore(local.acme.spec, globex_backup)
    assert _rows(p.store_file("acme")) == acme_before


def test_backups_older_than_30_days_are_pruned(local: Local) -> None:
    p, globex = local.provisioner, local.globex
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    old = p.backup(globex.spec, now=now - timedelta(days=31))
    kept = p.backup(globex.spec, now=now - timedelta(days=29))
    assert p.prune_backups(now) == [old]
    assert not old.exists() and kept.exists()
    assert p.prune_backups(now) == []


def test_seeding_again_doubles_nothing_and_set_plan_writes_the_plan(local: Local) -> None:
    p, globex = local.provisioner, local.globex
    before = _rows(p.store_file("globex"))
    first = p.handover(globex.spec)
    again = p.seed(globex.spec, _owner("globex", "Globex"))
    assert again != first and again.startswith(f"http://globex.localhost:{local.proxy_port}/api/auth/handover?token=")
    assert len(_rows(p.store_file("globex"))["member"]) == len(before["member"])
    p.set_plan(globex.spec, "pro", trial_ends_at=None, plan_chosen=True)
    try:
        with sqlite3.connect(f"file:{p.store_file('globex')}?mode=ro", uri=True) as conn:
            chosen = conn.execute("SELECT plan, plan_chosen_at IS NOT NULL FROM organization").fetchone()
        assert chosen == ("pro", 1)
    finally:
        p.set_plan(globex.spec, "starter", trial_ends_at=None, plan_chosen=False)


def test_a_new_provisioner_over_the_same_root_takes_over(local: Local, sandbox: Any) -> None:
    """The control plane restarts: a new object finds the running instances and Caddy, and changes
    nothing by provisioning again."""
    p = local.provisioner
    state = p._state("globex")
    again = LocalProvisioner(p.root, p.proxy_port, _settings(sandbox))
    info = again.provision(local.globex.spec)
    assert again._state("globex") == state
    assert info.resources["process"] == str(state["pid"])
    assert again.scale(local.globex.spec, 1).min_replicas == 1
    assert _me(local, "globex", local.globex.token).status_code == 200


def test_after_a_restart_reconcile_brings_back_the_proxy_and_every_running_instance(local: Local, sandbox: Any) -> None:
    p = local.provisioner
    p.shutdown()  # the machine went down: no Caddy, no instance
    assert local.via_proxy_refused("acme")
    again = LocalProvisioner(p.root, p.proxy_port, _settings(sandbox))
    assert again.reconcile() == ["acme", "globex"]
    for org in (local.acme, local.globex):  # same data, same sessions
        assert _me(local, org.slug, org.token).json()["member_email"] == f"owner@{org.slug}.example"
    assert again.reconcile() == []


def test_destroy_removes_process_route_data_and_backups_and_can_run_again(local: Local) -> None:
    p = local.provisioner
    spec = _spec("initech")
    p.provision(spec)
    backup = p.backup(spec)
    pid = p._state("initech")["pid"]
    assert local.via_proxy("GET", "initech", "/healthz").text == "ok"
    p.destroy(spec)
    assert not pid_alive(pid)
    assert "initech.localhost" not in p.proxy.routes()
    assert local.via_proxy("GET", "initech", "/healthz").status_code == 404
    assert not p.org_dir("initech").exists()
    assert not backup.exists() and not p.backup_dir("initech").exists()
    p.destroy(spec)  # again: nothing left, no error
    assert sorted(p.slugs()) == ["acme", "globex"]


# --- serve.py ---------------------------------------------------------------------------------


def test_serve_builds_for_the_address_the_browser_uses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Behind the proxy the pages are built for the proxy's port, not the process's own; `--no-build`
    serves the backend without any build."""
    from billy_app import serve

    monkeypatch.setenv("BILLY_DATA_DIR", str(tmp_path))
    built: list[int] = []
    served: list[tuple[int, bool]] = []
    monkeypatch.setattr(serve, "ensure_built", lambda port, env=None: built.append(port) or False)
    monkeypatch.setattr(
        serve, "serve", lambda port, host, loglevel, workers, frontend=True: served.append((port, frontend))
    )
    serve.main(["--port", "4101", "--build-port", "8080"])
    serve.main(["--port", "4102", "--no-build"])
    serve.main(["--port", "4103"])
    assert built == [8080, 4103]
    assert served == [(4101, True), (4102, False), (4103, True)]
