"""The charge page (issue 12): everything about one charge and its timeline; the Owner refunds
from it and the timeline says so at once; Read Only sees the same page without "Refund"."""

from __future__ import annotations

import re

import httpx
import pytest
import sqlalchemy as sa

from services.identity import hash_password
from tests.browser.conftest import Shots, app_store, at, search_customers, sign_in_as_owner

pytestmark = pytest.mark.browser

OWNER = "charge-owner@example.com"
OWNER_PASSWORD = "an-owner-reading-one-charge"
VIEWER = "support-viewer@example.com"
VIEWER_PASSWORD = "a-viewer-who-only-looks"


def _add_read_only_member(app_server) -> None:  # type: ignore[no-untyped-def]
    engine = app_store(app_server)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO member (email, name, password_hash, role, active, token_version, created_at) "
                "VALUES (:e, 'Sam Support', :h, 'read_only', 1, 0, '2026-12-01 00:00:00.000000')"
            ),
            {"e": VIEWER, "h": hash_password(VIEWER_PASSWORD)},
        )
    engine.dispose()


def test_the_charge_page_shows_everything_and_refunds_from_it(app_server, browser, sandbox) -> None:  # type: ignore[no-untyped-def]
    owner_context = browser.new_context(viewport={"width": 1366, "height": 900})  # two tabs: settings, dashboard
    page = owner_context.new_page()
    shot = Shots(page, "charge-page")
    sign_in_as_owner(page, app_server, email=OWNER, password=OWNER_PASSWORD)
    page.wait_for_function(
        "() => { const r = [...document.querySelectorAll('.sync-resource')];"
        " return r.length > 0 && r.every(e => /done|skipped/.test(e.textContent)); }",
        timeout=60_000,
    )
    complete_total = int(page.inner_text("#sync-total").split()[0])
    # Settings → Stripe sync: "Sync now" says a sync started (or that the first one still runs),
    # and says no more once it has ended.
    page.goto(app_server.url + "/settings/sync")
    page.wait_for_selector("#sync-now")

    def latency(seconds: float) -> None:
        httpx.post(f"{sandbox.url}/_config/latency", json={"seconds": seconds}).raise_for_status()

    try:
        # The first sync's background tail (payment methods fetched after everything else, issue 16)
        # may still run: "Sync now" says so, and starts a full sync once it has ended.
        said = page.locator("#form-message")
        for _ in range(60):
            # A sync long enough to watch: ranges walked in parallel finish the demo store in a few requests.
            latency(2.0)
            page.click("#sync-now")
            said.wait_for()
            if said.inner_text().strip() == "A full sync has started.":
                break
            assert said.inner_text().strip() == "A sync is already running."
            latency(0)  # let the tail finish quickly
            page.wait_for_timeout(1000)
        assert said.inner_text().strip() == "A full sync has started."
        # Issue 14: a re-sync counts against what the store already holds ("20 of about 96 · 20% · …"),
        # and the dashboard's total keeps the last complete count meanwhile (it used to fall to the partial one).
        page.wait_for_selector(".sync-count:has-text('of about')", timeout=30_000)
        dashboard = owner_context.new_page()
        dashboard.goto(app_server.url + "/dashboard")
        badge, total = dashboard.wait_for_function(
            "() => { const b = [...document.querySelectorAll('.sync-resource')].find(e => /of about/.test(e.textContent));"
            " return b ? [b.textContent, document.querySelector('#sync-total').textContent] : null; }",
            timeout=30_000,
        ).json_value()
        assert re.search(r"\d of about [\d,]+ · \d+%", badge), badge
        assert int(total.split()[0]) >= complete_total, (total, complete_total)
        dashboard.close()
    finally:
        httpx.post(f"{sandbox.url}/_config/latency", json={"seconds": 0}).raise_for_status()
    page.wait_for_selector("#form-message", state="detached", timeout=60_000)
    page.get_by_role("link", name="Customers", exact=True).click()
    page.wait_for_url(at("/customers"))
    search_customers(page, "jane")
    page.click(".customer-link:has-text('Jane Smith')")
    page.wait_for_url(re.compile(r".*/customers/cus_.*"))
    page.locator(".charge-row", has_text="5678").locator(".charge-link").click()
    page.wait_for_url(re.compile(r".*/charges/ch_.*"))
    charge_url = page.url
    page.wait_for_selector("#charge-amount:has-text('$45.99')")
    assert page.inner_text("#charge-order") == "5678"
    assert "••••" in page.inner_text("#charge-card")
    assert "Jane Smith" in page.inner_text("#charge-customer")
    page.wait_for_selector("#charge-timeline:has-text('Payment of $45.99 succeeded')")
    shot("charge")

    page.click("#charge-refund")
    page.get_by_role("radio", name="Partial").click()
    page.fill("#refund-amount", "5.00")
    page.wait_for_selector("#refund-summary:has-text('Refund $5.00 of $45.99')")
    page.click("#confirm-refund")
    page.wait_for_selector(f"#charge-timeline:has-text('{OWNER} refunded $5.00')")
    page.wait_for_selector("#charge-refunded:has-text('$5.00 of $45.99 refunded')")
    page.wait_for_selector("#charge-refunds:has-text('$5.00')")
    shot("refunded")

    # The customer page: spend per currency, payment methods, and the same refund in its trail.
    page.click("#charge-customer")
    page.wait_for_url(re.compile(r".*/customers/cus_.*"))
    page.wait_for_selector(f"#customer-trail:has-text('{OWNER} refunded $5.00')")
    assert "USD" in page.inner_text("#lifetime-spend")
    for section in ("Payment methods", "Subscriptions", "Invoices", "Activity in Billy"):
        assert page.get_by_role("heading", name=section).count() == 1, section
    shot("customer-360")
    owner_context.close()

    _add_read_only_member(app_server)
    viewer = browser.new_context().new_page()
    viewer.goto(app_server.url + "/login")
    viewer.fill("#email", VIEWER)
    viewer.fill("#password", VIEWER_PASSWORD)
    viewer.click("#login-submit")
    viewer.wait_for_url(at("/dashboard"))
    viewer.goto(charge_url)
    viewer.wait_for_selector("#charge-amount:has-text('$45.99')")
    viewer.wait_for_selector(f"#charge-timeline:has-text('{OWNER} refunded $5.00')")
    assert viewer.locator("#charge-refund").count() == 0  # Read Only can never refund: no control
    # Nor on the customer page, and no "Sync now" on the dashboard (only the Owner may start one).
    viewer.click("#charge-customer")
    viewer.wait_for_selector(".charge-row")
    viewer.wait_for_timeout(500)  # the controls load with the page: give them time to (not) appear
    assert viewer.locator(".refund-button").count() == 0
    viewer.goto(app_server.url + "/dashboard")
    viewer.wait_for_selector("text=Stripe sync")
    assert viewer.locator("#dashboard-sync-now").count() == 0
    viewer.close()
