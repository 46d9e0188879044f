"""The whole local control plane in one context manager, for tests and benches.

Its own database, Billy's Stripe account in a sandbox, the local provisioner with Caddy on
`proxy_port`, and the signup site served by uvicorn on a thread: what `make run-controlplane`
starts, minus the process boundary, so a test can drive the clock (`clock`) and read the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from controlplane.billing import BillyStripe
from controlplane.config import load_settings
from controlplane.lifecycle import ControlPlane
from controlplane.local import InstanceSettings, LocalProvisioner
from controlplane.local_http import local_http
from controlplane.mail import smtp_mailer
from controlplane.store import Store
from controlplane.web import create_app
from devtools.app_runner import free_port

BILLY_STRIPE_KEY = "sk_test_billy_own_account"
BILLY_WEBHOOK_SECRET = "whsec_billy_own_account_0000000000000000"


def via_proxy(
    proxy_port: int, slug: str, method: str, path: str, *, timeout: float = 15, **kwargs: Any
) -> httpx.Response:
    """A request to `{slug}.localhost:<proxy_port>` through Caddy, as a browser sends it (this
    machine's resolver does not resolve `*.localhost`; browsers do, to loopback)."""
    headers = {"Host": f"{slug}.localhost:{proxy_port}", **kwargs.pop("headers", {})}
    return local_http().request(
        method, f"http://127.0.0.1:{proxy_port}{path}", headers=headers, timeout=timeout, **kwargs
    )


@dataclass
class RunningControlPlane:
    plane: ControlPlane
    provisioner: LocalProvisioner
    url: str  # the signup site, through Caddy (http://localhost:<proxy_port>)
    proxy_port: int

    def org_url(self, slug: str) -> str:
        return self.provisioner.url(slug)


@contextmanager
def running_control_plane(
    root: Path,
    *,
    proxy_port: int,
    stripe_api_base: str,
    instance: InstanceSettings,
    smtp_port: int,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    database_url: str = "",
    signups_per_hour: int = 100,  # tests and benches sign up several organisations from one address
) -> Iterator[RunningControlPlane]:
    web_port = free_port()
    settings = load_settings(
        root=root / "controlplane",
        database_url=database_url,
        stripe_secret_key=BILLY_STRIPE_KEY,
        stripe_api_base=stripe_api_base,
        stripe_webhook_secret=BILLY_WEBHOOK_SECRET,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        signups_per_hour=signups_per_hour,
    )
    store = Store(settings.resolved_database_url)
    store.migrate()
    provisioner = LocalProvisioner(root / "instances", proxy_port, instance, controlplane_port=web_port)
    billing = BillyStripe(settings)
    billing.ensure_prices()
    plane = ControlPlane(store, provisioner, provisioner, billing, smtp_mailer(settings), settings)
    provisioner.start_proxy()
    url = f"http://localhost:{proxy_port}"
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(plane, address_suffix=f"localhost:{proxy_port}", clock=clock, public_url=url),
            host="127.0.0.1",
            port=web_port,
            log_level="warning",
            log_config=None,  # uvicorn's own would reconfigure this process's loggers (a test's too)
        )
    )
    thread = threading.Thread(target=server.run, name="controlplane-web", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if local_http().get(f"{url}/healthz", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the control plane's site did not answer through Caddy in 20 s")
            time.sleep(0.1)
        yield RunningControlPlane(plane, provisioner, url, proxy_port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        provisioner.shutdown()
        store.dispose()
