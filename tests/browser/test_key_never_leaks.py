"""Proof of "never" in the browser (issue 17): a recognisable restricted key is pasted in the
onboarding wizard, then a day's work runs in Chromium (sync, a refund, search, Sync now, a key rotation) with
Reflex keeping every tab's state in Redis. Afterwards the key, in plain, base64, URL-encoded and
hex forms, appears in no HTTP response body or header, no websocket frame sent to the browser,
no line of the app's log (at DEBUG), no file of the instance's folder (the SQLite store and its
WAL included) outside the secret store's ciphertext, no Reflex state kept in Redis, and nowhere
in the built frontend. The server-side half, on PostgreSQL too, is tests/test_key_custody_leaks.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from services.config import PROJECT_ROOT
from tests.browser.conftest import Shots, at, sign_in_as_owner
from tests.leak_scan import LeakScan

pytestmark = pytest.mark.browser

STATE_REDIS = "redis://127.0.0.1:6379/11"  # this module's own database: flushed before and after
# Reflex keeps state in Redis when given one, and then serves with granian: one worker, as
# SQLite allows (several workers on PostgreSQL come with the scale-out work).
APP_ENV = {"BILLY_LOG_LEVEL": "DEBUG", "BILLY_REDIS_URL": STATE_REDIS, "GRANIAN_WORKERS": "1"}
OWNER, PASSWORD = "owner@leaktest.example", "correct horse battery staple"


@pytest.fixture(scope="module", autouse=True)
def empty_state_store() -> Any:
    client = redis.Redis.from_url(STATE_REDIS)
    client.flushdb()
    yield client
    client.flushdb()


class Recorder:
    """Every response the browser received (status, headers, body) and every websocket frame."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, bytes]] = []
        self.frames: list[bytes] = []
        self.unread: list[str] = []  # responses whose body could not be read (none expected)

    def attach(self, context) -> None:  # type: ignore[no-untyped-def]
        context.on("response", self._response)
        context.on("page", self._watch)

    def _watch(self, page) -> None:  # type: ignore[no-untyped-def]
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload: str | bytes) -> None:
        self.frames.append(payload.encode() if isinstance(payload, str) else payload)

    def _response(self, response) -> None:  # type: ignore[no-untyped-def]
        """Its status, every header, and its body as the page received it (decoded)."""
        head = "\n".join(f"{h['name']}: {h['value']}" for h in response.headers_array())
        try:
            body = response.body()
        except Exception:  # a redirect has no body to read, and that is all it is
            body = b""
            # Chromium keeps no body for a module it only preloaded, and may drop a script's or a
            # stylesheet's once the page moved on: those are files of the build (public assets such
            # as /billy.js included), and the build is scanned on disk below. Anything else unread
            # would be a hole in the proof.
            path = urlsplit(response.url).path
            if not 300 <= response.status < 400 and "/assets/" not in path and not path.endswith((".js", ".css")):
                self.unread.append(response.url)
        where = f"{response.request.method} {response.url} → {response.status}"
        self.responses.append((where, head.encode() + b"\n\n" + body))


def test_the_pasted_key_never_reaches_a_browser_a_log_or_a_state_store(  # type: ignore[no-untyped-def]
    app_server, browser, sandbox, empty_state_store
) -> None:
    import httpx

    key, rotated = (
        httpx.post(f"{sandbox.url}/_config/restricted_keys", json={"profile": "billy"}, timeout=10).json()["key"]
        for _ in range(2)
    )
    recorder = Recorder()
    context = browser.new_context(viewport={"width": 1366, "height": 850})
    recorder.attach(context)
    page = context.new_page()
    shot = Shots(page, "key-never-leaks")

    # Onboarding: the key is pasted into step 2 (a native form post to the server).
    sign_in_as_owner(page, app_server, email=OWNER, password=PASSWORD, stripe_key=key)
    page.wait_for_function(
        "() => { const r = [...document.querySelectorAll('.sync-resource')];"
        " return r.length > 0 && r.every(e => /done|skipped/.test(e.textContent)); }",
        timeout=90_000,
    )
    shot("dashboard")
    # A day's work: a customer, a refund, a search, a fresh sync.
    page.click("text=Customers")
    page.wait_for_url(at("/customers"))
    page.locator(".customer-link").first.click()
    page.wait_for_url(re.compile(r".*/customers/cus_.*"))
    refundable = page.locator(".charge-row:has(.refund-button:not([disabled]))").first
    refundable.wait_for()
    refundable.locator(".refund-button").click()
    page.get_by_role("radio", name="Partial").click()
    page.fill("#refund-amount", "1.00")
    page.wait_for_selector("#refund-summary:has-text('Refund $1.00 of')")
    page.click("#confirm-refund")
    page.wait_for_selector("text=Refunded $1.00")
    page.goto(app_server.url + "/charges?q=4242")
    page.wait_for_selector(".charge-row")
    page.goto(app_server.url + "/settings/sync")
    page.click("#sync-now")
    page.wait_for_selector("#form-message")
    # Key rotation: a second key of the same account pasted in Settings → Stripe connection.
    page.goto(app_server.url + "/settings/stripe")
    page.fill("#new-stripe-key", rotated)
    page.click("#save-stripe-key")
    page.wait_for_selector(f"#form-message:has-text('Key rotated'):has-text('ending {rotated[-4:]}')")
    page.goto(app_server.url + "/dashboard")
    page.wait_for_selector(".sync-resource")
    shot("after-the-day")

    assert len(recorder.responses) > 20 and len(recorder.frames) > 20  # the capture saw the session
    assert recorder.unread == []
    scan = LeakScan({"the pasted key": key, "the key it was rotated to": rotated})
    for where, blob in recorder.responses:
        scan.scan(f"HTTP response {where}", blob)
    for n, frame in enumerate(recorder.frames):
        scan.scan(f"websocket frame {n} to the browser", frame)
    log = app_server.log.read_text(errors="replace")
    assert " DEBUG " in log  # the app really logged at every level
    scan.scan(f"the app's log {app_server.log}", log)
    states = empty_state_store.keys("*")
    assert states, "Reflex kept no state in Redis: the test would prove nothing about it"
    for name in states:
        scan.scan(f"Redis state key {name!r}", name + (empty_state_store.dump(name) or b""))
    data_dir: Path = app_server.data_dir
    scan.scan_tree(data_dir, skip=(data_dir / "secrets", data_dir / "app.log"))
    scan.scan_tree(data_dir / "secrets")  # the store itself holds ciphertext only
    web = PROJECT_ROOT / app_server.env.get("REFLEX_WEB_WORKDIR", ".web")
    assert scan.scan_tree(web, skip=(web / "node_modules",)) > 10  # the built frontend
    context.close()
    assert scan.found == [], scan.found
