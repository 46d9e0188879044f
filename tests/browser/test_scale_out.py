"""Billy scaled out (issue 16), in Chromium: two workers behind one port, on PostgreSQL and Redis.

- A refund made in a tab on one worker appears live in a tab on the other.
- One worker is killed (SIGKILL) mid-session: its tab reconnects to a worker still there and keeps
  its state (the search it had typed), and follows live updates again.
- Redis goes away: live updates pause (the REST API keeps working) and resume, catching up, once
  it is back. The database goes away as a refund is confirmed: a plain message, nothing made in
  Stripe; once it is back the same dialog makes the refund, once. No restart either time.

Which worker holds a tab: Reflex records, per tab token, the worker holding its websocket
(`token_manager_socket_record_<token>` in Redis, naming the worker's instance id), and each worker's
heartbeat names its host and pid (`billy:worker-alive:<instance id>`, billy_app/workers.py). The test
reads both, as an operator would with redis-cli. Granian spreads connections over its workers as the
kernel hands them out, so a tab that lands on the same worker as the other is reloaded (a new
connection, the same token) until it lands on the other one.

The instance has its own PostgreSQL database, reached through a TCP proxy the test can cut, and its
own redis-server on its own port, which the test kills and starts again: the servers other tests
share are never touched. Event polling is off and no webhook is set, so a page can only learn of
a change through Billy's own notices.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import httpx
import psycopg2
import pytest
import redis

from billy_app.workers import HEARTBEAT_KEY
from devtools.app_runner import RunningApp, running_app
from devtools.redis_server import RedisServer
from devtools.tcp_proxy import TcpProxy
from tests.browser.conftest import Shots, at, search_customers, sign_in_as_owner
from tests.conftest import PG_HOST, PG_USER

pytestmark = pytest.mark.browser

EMAIL = "scaled-owner@example.com"
PASSWORD = "an-owner-with-two-workers"
SOCKET_RECORD = "token_manager_socket_record_{token}"  # reflex.utils.token_manager.RedisTokenManager
STORE_AWAY = "Billy's database is not answering right now"


@dataclass
class Scaled:
    app: RunningApp
    redis: RedisServer
    proxy: TcpProxy
    dbname: str

    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url(), socket_timeout=2, socket_connect_timeout=2)

    def store_sessions(self) -> str:
        """Each of the instance's PostgreSQL sessions: its state, what it waits on, who blocks
        it, how long its transaction has run and its statement (a failed test's report ends
        with this: tests/browser/conftest.py)."""
        try:
            with closing(_admin()) as admin, admin.cursor() as cur:
                cur.execute(
                    "SELECT pid, state, wait_event_type, wait_event, pg_blocking_pids(pid), now() - xact_start,"
                    " left(query, 160) FROM pg_stat_activity WHERE datname = %s ORDER BY xact_start",
                    (self.dbname,),
                )
                rows = cur.fetchall()
        except psycopg2.Error as exc:
            return f"(PostgreSQL did not answer: {exc})"
        return "\n".join(" | ".join(map(str, row)) for row in rows) or "(no sessions)"

    def socket_records(self) -> str:
        """Each tab token's socket record (which worker holds it) and each worker's heartbeat,
        as Redis has them (a failed test's report ends with this too)."""
        try:
            client = self.redis_client()
            lines = []
            for key in client.scan_iter(SOCKET_RECORD.format(token="*")):
                lines.append(f"{key.decode()} -> {record_owner(client.get(key))}")
            for key in client.scan_iter(HEARTBEAT_KEY.format(instance="*")):
                lines.append(f"{key.decode()} = {client.get(key)!r} (ttl {client.ttl(key)} s)")
        except redis.RedisError as exc:
            return f"(Redis did not answer: {exc})"
        return "\n".join(lines) or "(no records)"


def _admin():  # type: ignore[no-untyped-def]
    conn = psycopg2.connect(host=PG_HOST, user=PG_USER, dbname="postgres")
    conn.autocommit = True
    return conn


@pytest.fixture(scope="module")
def scaled(sandbox, mail_catcher, tmp_path_factory: pytest.TempPathFactory, app_port: int) -> Iterator[Scaled]:  # type: ignore[no-untyped-def]
    import sandbox as sandbox_pkg
    from sandbox.seed import reset_to_demo

    try:
        admin = _admin()
    except psycopg2.OperationalError:
        pytest.fail("PostgreSQL is not reachable; `make test` starts it")
    dbname = f"billy_scale_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{dbname}"')
    folder = tmp_path_factory.mktemp("scaled")
    (folder / "instance").mkdir()
    private_redis = RedisServer(folder / "redis")
    private_redis.start()
    proxy = TcpProxy(PG_HOST, 5432).start()
    reset_to_demo(sandbox.url)
    try:
        with running_app(
            folder / "instance",
            sandbox_url=sandbox.url,
            demo_key=sandbox_pkg.DEMO_RESTRICTED_KEY,
            smtp_host=mail_catcher.host,
            smtp_port=mail_catcher.smtp_port,
            port=app_port,
            extra_env={
                "BILLY_DATABASE_URL": f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{proxy.port}/{dbname}",
                "BILLY_REDIS_URL": private_redis.url(),
                "GRANIAN_WORKERS": "2",
                "BILLY_EVENT_POLL_SECONDS": "0",
            },
        ) as app:
            yield Scaled(app, private_redis, proxy, dbname)
    finally:
        proxy.close()
        private_redis.stop()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()


# --- which worker holds a tab -----------------------------------------------------------------


def _token(page) -> str:  # type: ignore[no-untyped-def]
    return str(page.evaluate("() => window.sessionStorage.getItem('token')"))


def record_owner(record: bytes | None) -> str | None:
    """The instance id of the worker a tab's socket record names (None for no record)."""
    return pickle.loads(record).instance_id if record else None  # noqa: S301 - Reflex's record, in the test's Redis


def worker_of(scaled: Scaled, page) -> int | None:  # type: ignore[no-untyped-def]
    """The pid of the worker holding the tab's websocket now (None while none does)."""
    client = scaled.redis_client()
    owner = record_owner(client.get(SOCKET_RECORD.format(token=_token(page))))
    if owner is None:
        return None
    alive = client.get(HEARTBEAT_KEY.format(instance=owner))
    return int(alive.decode().rsplit("/", 1)[1]) if alive else None


def wait_for_worker(scaled: Scaled, page, *, other_than: int | None = None, seconds: float = 30) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pid = worker_of(scaled, page)
        if pid is not None and pid != other_than:
            return pid
        time.sleep(0.1)
    raise AssertionError(f"the tab has no worker (other than {other_than}) after {seconds} s")


def wait_for_saved_state(scaled: Scaled, token: str, text: str, seconds: float = 10) -> None:
    """Until the tab's state in Redis holds `text`. A worker sends an event's update before it
    writes the state back, so the page can show a search a few milliseconds before a worker
    killed at that instant would have saved it; the test kills once it is saved."""
    client = scaled.redis_client()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key in client.scan_iter(f"*{token}*"):
            value = client.get(key) if client.type(key) == b"string" else None
            if value and text.encode() in value:
                return
        time.sleep(0.05)
    raise AssertionError(f"the tab's state never held {text!r} in Redis")


def live_workers(scaled: Scaled) -> set[int]:
    """The pids of the workers whose heartbeat is current and whose process runs."""
    client = scaled.redis_client()
    pids = set()
    for key in client.scan_iter(HEARTBEAT_KEY.format(instance="*")):
        value = client.get(key)
        if value:
            pid = int(value.decode().rsplit("/", 1)[1])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            pids.add(pid)
    return pids


# --- steps -------------------------------------------------------------------------------------------


def open_janes_charge(page) -> str:  # type: ignore[no-untyped-def]
    """From any signed-in page to Jane Smith's Order #5678, by the sidebar and the customer list."""
    page.get_by_role("link", name="Customers", exact=True).click()
    page.wait_for_url(at("/customers"))
    search_customers(page, "jane")
    page.click(".customer-link:has-text('Jane Smith')")
    page.wait_for_url(re.compile(r".*/customers/cus_.*"))
    page.locator(".charge-row", has_text="5678").locator(".charge-link").click()
    page.wait_for_url(re.compile(r".*/charges/ch_.*"))
    page.wait_for_selector("#charge-amount:has-text('$45.99')")
    return str(page.url)


def refunded_cents(page) -> int:  # type: ignore[no-untyped-def]
    """What the charge page says is refunded so far ("$6.00 of $45.99 refunded"), in cents."""
    shown = page.locator("#charge-refunded")
    if not shown.count():
        return 0
    match = re.search(r"\$([\d,]+)\.(\d\d) of", shown.inner_text())
    return int(match.group(1).replace(",", "")) * 100 + int(match.group(2)) if match else 0


def shows_refunded(page, cents: int, timeout: float = 15_000) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector(
        f"#charge-refunded:has-text('${cents // 100}.{cents % 100:02d} of $45.99 refunded')", timeout=timeout
    )


def refund_in_dialog(page, dollars: str) -> None:  # type: ignore[no-untyped-def]
    page.click("#charge-refund")
    page.get_by_role("radio", name="Partial").click()
    page.fill("#refund-amount", dollars)
    page.wait_for_selector(f"#refund-summary:has-text('Refund ${dollars} of $45.99')")


def signed_in_tab(scaled: Scaled, browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    sign_in_as_owner(page, scaled.app, email=EMAIL, password=PASSWORD)
    return context, page


def refunds_in_stripe(sandbox, charge_id: str) -> list[int]:  # type: ignore[no-untyped-def]
    found = sandbox.client("sk_test_billyscaled").v1.refunds.list(params={"charge": charge_id, "limit": 100}).data
    return sorted(r.amount for r in found)


# --- the tests ---------------------------------------------------------------------------------------


def test_the_signing_keys_are_made_once_before_any_worker_starts(scaled) -> None:  # type: ignore[no-untyped-def]
    """Workers that each made their own JWT key on first use sent a tab to the sign-in page whenever
    its connection moved to the other worker (stop 32's CI failure, tests/test_instance_keys.py)."""
    log = scaled.app.log.read_text()
    made = log.find("made the instance's keys: instance-signing-key, jwt-signing-key")
    assert made != -1, "the server did not make the instance's keys at its start"
    assert made < log.find("Spawning worker")


def test_two_tabs_on_two_workers_see_each_others_refunds_and_a_killed_worker_loses_no_tab(scaled, browser) -> None:  # type: ignore[no-untyped-def]
    context, tab_a = signed_in_tab(scaled, browser)
    shot = Shots(tab_a, "scale-out")
    tab_a.wait_for_function(
        "() => { const r = [...document.querySelectorAll('.sync-resource')];"
        " return r.length > 0 && r.every(e => /done|skipped/.test(e.textContent)); }",
        timeout=90_000,
    )
    charge_url = open_janes_charge(tab_a)
    worker_a = wait_for_worker(scaled, tab_a)

    # Tab B on the same charge, on the other worker.
    tab_b = context.new_page()
    tab_b.goto(charge_url)
    tab_b.wait_for_selector("#charge-amount:has-text('$45.99')")
    for _ in range(30):
        worker_b = wait_for_worker(scaled, tab_b)
        if worker_b != worker_a:
            break
        tab_b.reload()  # a new connection, the same token
        tab_b.wait_for_selector("#charge-amount:has-text('$45.99')")
    assert worker_b != worker_a, "thirty connections in a row landed on one worker"
    assert live_workers(scaled) == {worker_a, worker_b}
    before = refunded_cents(tab_b)
    tab_b.evaluate("window.__stillThisPage = true")

    # 1. A refund on worker A appears, without a reload, in the tab on worker B.
    refund_in_dialog(tab_a, "5.00")
    tab_a.click("#confirm-refund")
    shows_refunded(tab_a, before + 500)
    shows_refunded(tab_b, before + 500)
    assert tab_b.evaluate("window.__stillThisPage") is True
    shot("refund-seen-on-the-other-worker")

    # 2. Tab B searches the customer list; then its worker is killed.
    tab_b.get_by_role("link", name="Customers", exact=True).click()
    tab_b.wait_for_url(at("/customers"))
    search_customers(tab_b, "jane")
    found = sorted(tab_b.locator(".customer-link").all_inner_texts())
    assert len(found) < 10  # a search, not the whole list
    token = _token(tab_b)
    wait_for_saved_state(scaled, token, "jane")
    os.kill(worker_b, signal.SIGKILL)
    replacement = wait_for_worker(scaled, tab_b, other_than=worker_b)  # reconnected, to a worker still there
    # What the worker held for the tab is still there: the search is in force when the list is
    # read again (a tab given a fresh state would list every customer).
    tab_b.click(".customer-link:has-text('Jane Smith')")
    tab_b.wait_for_url(re.compile(r".*/customers/cus_.*"))
    tab_b.get_by_role("link", name="Customers", exact=True).click()
    tab_b.wait_for_url(at("/customers"))
    tab_b.wait_for_selector(".customer-link")
    assert tab_b.input_value("#customer-search") == "jane"
    assert sorted(tab_b.locator(".customer-link").all_inner_texts()) == found
    assert tab_b.get_by_text("An error occurred").count() == 0
    assert _token(tab_b) == token, "the same tab state: not taken for a duplicated tab"
    shot("search-kept-after-the-worker-died")

    # 3. It follows live updates again from its new worker; Granian has replaced the dead one.
    open_janes_charge(tab_b)
    tab_b.evaluate("window.__stillThisPage = true")
    refund_in_dialog(tab_a, "1.00")
    tab_a.click("#confirm-refund")
    shows_refunded(tab_b, before + 600)
    assert tab_b.evaluate("window.__stillThisPage") is True
    deadline = time.monotonic() + 30
    while len(live_workers(scaled) - {worker_b}) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(live_workers(scaled) - {worker_b}) == 2 and worker_b not in live_workers(scaled)
    assert replacement in live_workers(scaled)
    assert httpx.get(f"{scaled.app.url}/healthz").text == "ok"
    context.close()


def test_redis_going_away_pauses_live_updates_and_they_resume_when_it_is_back(scaled, browser, sandbox) -> None:  # type: ignore[no-untyped-def]
    context, page = signed_in_tab(scaled, browser)
    open_janes_charge(page)
    charge_id = page.url.rstrip("/").rsplit("/", 1)[1]
    before = refunded_cents(page)
    page.evaluate("window.__stillThisPage = true")
    access = next(c["value"] for c in context.cookies() if c["name"] == "billy_access")
    scaled.redis.kill()
    try:
        # Redis is away: the REST API (no tab state) still refunds; the open page hears nothing.
        made = httpx.post(
            f"{scaled.app.url}/api/v1/refunds",
            headers={"Authorization": f"Bearer {access}"},
            json={"charge_id": charge_id, "amount": 200},
            timeout=30,
        )
        assert made.status_code == 201, made.text
        page.wait_for_timeout(3000)
        assert refunded_cents(page) == before, "no live update while Redis is away"
    finally:
        scaled.redis.start()
    # Back: the workers hear Redis again and the page re-reads what changed meanwhile.
    shows_refunded(page, before + 200, timeout=30_000)
    assert page.evaluate("window.__stillThisPage") is True
    assert 200 in refunds_in_stripe(sandbox, charge_id)
    # And the tab works as before: its next click reads and writes its state in Redis.
    page.get_by_role("link", name="Customers", exact=True).click()
    page.wait_for_url(at("/customers"))
    page.wait_for_selector(".customer-link")
    Shots(page, "scale-out-redis")("after-redis-came-back")
    context.close()


def test_the_database_going_away_as_a_refund_is_confirmed_says_so_and_the_same_dialog_refunds_once_it_is_back(  # type: ignore[no-untyped-def]
    scaled, browser, sandbox
) -> None:
    context, page = signed_in_tab(scaled, browser)
    open_janes_charge(page)
    charge_id = page.url.rstrip("/").rsplit("/", 1)[1]
    before = refunded_cents(page)
    refund_in_dialog(page, "3.00")
    scaled.proxy.cut()
    try:
        page.click("#confirm-refund")
        page.wait_for_selector(f"text={STORE_AWAY}", timeout=20_000)
        Shots(page, "scale-out-database")("database-away")
        assert 300 not in refunds_in_stripe(sandbox, charge_id), "nothing reached Stripe"
    finally:
        scaled.proxy.restore()
    # Back, without a restart: the dialog still holds the same intent; confirming again refunds once.
    page.click("#confirm-refund")
    shows_refunded(page, before + 300, timeout=20_000)
    assert refunds_in_stripe(sandbox, charge_id).count(300) == 1
    assert page.get_by_text("An error occurred").count() == 0
    context.close()
