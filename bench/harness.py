"""What the end-to-end benches share: a Stripe sandbox, a mail catcher and a real Billy (the
production build, as `make run` runs it), Chromium, and an Owner signed in.

    with billy_and_sandbox("billy-bench-x-", customers=20) as (sandbox, app):
        with chromium() as browser:
            page = browser.new_page()
            sign_in(page, app)

Event polling is off unless a bench asks for it: what reaches the store then comes from the
bench's own webhook deliveries (or the first sync), so what it times is what it sent.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

OWNER_EMAIL = "bench-owner@example.com"
OWNER_PASSWORD = "a-bench-owner-password"  # a throwaway instance
WEBHOOK_SECRET = "whsec_" + "bench" * 7
# The dashboard lists each resource's first sync; all done (or skipped) means the store holds
# the sandbox's account.
FIRST_SYNC_DONE = (
    "() => { const r = [...document.querySelectorAll('.sync-resource')];"
    " return r.length > 0 && r.every(e => /done|skipped/.test(e.textContent)); }"
)
# React reuses row elements, so a new row can arrive as changed attributes of an existing one:
# every DOM change rescans the rows and stamps (Date.now(), this machine's clock) each id the
# page had not shown before, in `window.__seen`.
ROW_OBSERVER = """
(selector) => {
  window.__seen = {};
  const scan = () => {
    const now = Date.now();
    document.querySelectorAll(selector).forEach((el) => {
      const id = el.getAttribute('data-charge');
      if (id && !(id in window.__seen)) window.__seen[id] = now;
    });
  };
  scan();
  new MutationObserver(scan).observe(document.body, {childList: true, subtree: true, attributes: true});
}
"""


DATABASES = ("sqlite", "postgresql")


@contextmanager
def database_env(db: str) -> Iterator[dict[str, str]]:
    """Billy's store for a bench: SQLite in the instance's own folder (nothing to set), or a
    temporary PostgreSQL database on the test server, dropped after."""
    if db == "sqlite":
        yield {}
        return
    import os
    import uuid

    import psycopg2

    host = os.environ.get("BILLY_TEST_PG_HOST", "127.0.0.1")
    user = os.environ.get("BILLY_TEST_PG_USER", "postgres")
    name = f"billy_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=host, user=user, dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield {"BILLY_DATABASE_URL": f"postgresql+psycopg2://{user}@{host}/{name}"}
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def database_url(app: Any) -> str:
    """The store a running Billy writes to (SQLAlchemy URL), for a bench's own checks."""
    return app.env.get("BILLY_DATABASE_URL") or f"sqlite:///{app.data_dir / 'db' / 'billy.db'}"


@contextmanager
def billy_and_sandbox(
    prefix: str, *, customers: int = 0, extra_env: dict[str, str] | None = None, db: str = "sqlite"
) -> Iterator[tuple[Any, Any]]:
    """A sandbox (seeded with `customers` demo customers if any) and Billy on it, with a mail
    catcher, storing in `db`; all stopped (a PostgreSQL database dropped) on the way out."""
    import sandbox as sandbox_pkg
    from devtools.app_runner import running_app
    from devtools.mailcatcher import run_in_thread as mail_catcher
    from sandbox.seed import seed

    handle = sandbox_pkg.run_in_thread(port=0)
    try:
        if customers:
            seed(handle.url, customers=customers)
        with (
            database_env(db) as store,
            mail_catcher() as catcher,
            tempfile.TemporaryDirectory(prefix=prefix) as tmp,
            running_app(
                Path(tmp),
                sandbox_url=handle.url,
                demo_key=sandbox_pkg.DEMO_RESTRICTED_KEY,
                smtp_host=catcher.host,
                smtp_port=catcher.smtp_port,
                extra_env={"BILLY_EVENT_POLL_SECONDS": "0", **store, **(extra_env or {})},
            ) as app,
        ):
            yield handle, app
    finally:
        handle.stop()


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright, as the browser tests drive it."""
    from playwright.sync_api import sync_playwright

    from devtools.app_runner import CHROMIUM, CHROMIUM_FLAGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, app: Any, *, wait_for_first_sync: bool = False) -> None:
    """The Owner signed up (or in) on `page`, the wizard finished with the sandbox's demo key."""
    from tests.browser.conftest import sign_in_as_owner

    sign_in_as_owner(page, app, email=OWNER_EMAIL, password=OWNER_PASSWORD)
    if wait_for_first_sync:
        page.goto(app.url + "/dashboard")
        page.wait_for_function(FIRST_SYNC_DONE, timeout=180_000)


def save_webhook_secret(page: Any, app: Any, secret: str = WEBHOOK_SECRET) -> None:
    """The Owner pastes the endpoint's signing secret in Settings → Stripe sync."""
    page.goto(app.url + "/settings/sync")
    page.wait_for_selector("#whsec")
    page.fill("#whsec", secret)
    page.click("#save-webhook-secret")
    page.wait_for_selector("text=Webhook signing secret saved")


async def open_tab_socket(url: str, cookie: str, token: str, on_update: Any) -> Any:
    """A tab's websocket to Reflex, as the browser opens it: its token, its cookie, its origin.
    `on_update(data)` hears every state update the server pushes."""
    import socketio

    sio = socketio.AsyncClient(reconnection=False)
    sio.on("event", on_update, namespace="/_event")
    await sio.connect(
        f"{url}?token={token}",
        headers={"Origin": url, "Cookie": cookie},
        transports=["websocket"],
        socketio_path="/_event",
        namespaces=["/_event"],
    )
    return sio


async def send_tab_event(sio: Any, name: str, router_data: dict[str, Any]) -> None:
    """One event from the tab, as the page sends it (no arguments)."""
    await sio.emit("event", {"name": name, "payload": {}, "router_data": router_data}, namespace="/_event")
