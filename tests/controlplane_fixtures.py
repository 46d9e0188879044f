"""Fixtures for the control plane's tests: its own database (SQLite and PostgreSQL), Billy's Stripe
account in the sandbox, the mail catcher, and a recording provisioner.

The recording provisioner is a spy on the control plane's own interface (Provisioner and
InstanceWriter), used to assert which calls the lifecycle makes and in which order; every other
peer is real. The real local provisioner is exercised end to end elsewhere.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from controlplane.billing import BillyStripe
from controlplane.config import ControlPlaneSettings
from controlplane.lifecycle import ControlPlane
from controlplane.mail import smtp_mailer
from controlplane.provisioning import InstanceInfo, InstanceState, OrgSpec, OwnerSeed, ProvisioningError
from controlplane.store import Store
from devtools.mailcatcher import CatcherHandle
from tests.conftest import PG_HOST, PG_USER, _drop_database, _pg_admin

WEBHOOK_SECRET = "whsec_controlplanetests0000000000000000"
STRIPE_KEY = "sk_test_billycontrolplane"
PASSWORD = "violet-harbour-tangent-91"


@pytest.fixture(params=["sqlite", "postgresql"])
def cp_store(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[Store]:
    """The control plane's database, migrated by its own alembic environment, once per backend."""
    dbname = ""
    if request.param == "postgresql":
        if not postgres_available:
            if os.environ.get("CI"):
                pytest.fail("PostgreSQL is not reachable; `make test` should have started it")
            pytest.skip("PostgreSQL is not running")
        dbname = f"billy_cp_test_{uuid.uuid4().hex[:12]}"
        admin = _pg_admin()
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{dbname}"')
        admin.close()
        url = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}/{dbname}"
    else:
        url = f"sqlite:///{tmp_path / 'controlplane' / 'controlplane.db'}"
    store = Store(url)
    store.migrate()
    try:
        yield store
    finally:
        store.dispose()
        if dbname:
            _drop_database(dbname)


@dataclass
class RecordingProvisioner:
    """Both protocols, recording each call as (method, slug, …); `fail_next` makes one call fail."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail_next: set[str] = field(default_factory=set)
    seeds: list[OwnerSeed] = field(default_factory=list)

    def _call(self, name: str, org: OrgSpec, *extra: Any) -> None:
        self.calls.append((name, org.slug, *extra))
        if name in self.fail_next:
            self.fail_next.discard(name)
            raise ProvisioningError(f"{name} of {org.slug} failed (as the test asked)")

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == name]

    def methods(self) -> list[str]:
        return [call[0] for call in self.calls]

    @staticmethod
    def _info(org: OrgSpec, state: InstanceState, replicas: int) -> InstanceInfo:
        return InstanceInfo(org.slug, f"http://{org.slug}.localhost:8080", state, replicas, 1)

    def provision(self, org: OrgSpec) -> InstanceInfo:
        self._call("provision", org)
        return self._info(org, InstanceState.RUNNING, 1)

    def scale(self, org: OrgSpec, replicas: int) -> InstanceInfo:
        self._call("scale", org, replicas)
        return self._info(org, InstanceState.RUNNING, replicas)

    def suspend(self, org: OrgSpec) -> InstanceInfo:
        self._call("suspend", org)
        return self._info(org, InstanceState.SUSPENDED, 0)

    def resume(self, org: OrgSpec) -> InstanceInfo:
        self._call("resume", org)
        return self._info(org, InstanceState.RUNNING, 1)

    def destroy(self, org: OrgSpec) -> None:
        self._call("destroy", org)

    def seed(self, org: OrgSpec, owner: OwnerSeed) -> str:
        self._call("seed", org)
        self.seeds.append(owner)
        return f"http://{org.slug}.localhost:8080/api/auth/handover?token=t{len(self.seeds)}"

    def set_plan(self, org: OrgSpec, plan: str, *, trial_ends_at: datetime | None, plan_chosen: bool) -> None:
        self._call("set_plan", org, plan, plan_chosen)

    def handover(self, org: OrgSpec) -> str:
        self._call("handover", org)
        return f"http://{org.slug}.localhost:8080/api/auth/handover?token=h"


@dataclass
class Plane:
    """A control plane wired to real peers, and the handles a test looks through."""

    cp: ControlPlane
    store: Store
    provisioner: RecordingProvisioner
    billing: BillyStripe
    mail: CatcherHandle
    sandbox: Any

    def stripe(self) -> Any:
        """An SDK client on Billy's account in the sandbox, to look at what the control plane made."""
        return self.billing.client

    def sign_up(self, slug: str = "acme", now: datetime | None = None, **form: Any) -> Any:
        fields = {
            "org_name": "Acme Ltd",
            "slug": slug,
            "plan": "starter",
            "owner_name": "Jane Doe",
            "email": f"jane@{slug}.example",
            "password": PASSWORD,
        }
        fields.update(form)
        return self.cp.sign_up(now=now or real_now(), **fields)


def real_now() -> datetime:
    """Signup runs on the real clock: Stripe refuses a trial end in its past. Later steps move on from it."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def plane(cp_store: Store, sandbox: Any, smtp_catcher: CatcherHandle, tmp_path: Path) -> Plane:
    sandbox.reset()
    settings = ControlPlaneSettings(
        root=tmp_path / "controlplane",
        database_url=cp_store.url,
        stripe_secret_key=STRIPE_KEY,
        stripe_api_base=sandbox.url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        smtp_host=smtp_catcher.host,
        smtp_port=smtp_catcher.smtp_port,
        stripe_retries=2,
    )
    billing = BillyStripe(settings)
    billing.ensure_prices()
    recorder = RecordingProvisioner()
    cp = ControlPlane(cp_store, recorder, recorder, billing, smtp_mailer(settings), settings)
    return Plane(cp, cp_store, recorder, billing, smtp_catcher, sandbox)


@dataclass
class Delivery:
    payload: bytes
    signature: str

    @property
    def type(self) -> str:
        return str(json.loads(self.payload)["type"])


@pytest.fixture
def webhook_inbox(sandbox: Any) -> Iterator[list[Delivery]]:
    """Every delivery the sandbox makes to the control plane's endpoint, as Stripe sent it (body and signature)."""
    inbox: list[Delivery] = []

    class Receive(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            inbox.append(Delivery(body, self.headers.get("Stripe-Signature", "")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sandbox.register_webhook("controlplane", f"http://127.0.0.1:{server.server_address[1]}/", WEBHOOK_SECRET)
    try:
        yield inbox
    finally:
        sandbox.delete_webhook("controlplane")
        server.shutdown()
        thread.join(10)
