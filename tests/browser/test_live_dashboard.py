"""Live pages: a payment made in Stripe shows up on an open dashboard and charges list,
pushed by Stripe's webhook through Billy's notices, with no reload.

Event polling is off for this instance, so the only way in is the webhook the Owner sets
up in Settings → Stripe sync (the sandbox delivers to it as Stripe would)."""

from __future__ import annotations

import re

import pytest
import stripe

from tests.browser.conftest import Shots, at, open_settings, sign_in_as_owner

pytestmark = pytest.mark.browser

APP_ENV = {"BILLY_EVENT_POLL_SECONDS": "0"}
EMAIL = "live-owner@example.com"
PASSWORD = "an-owner-watching-live"
SECRET = "whsec_" + "live" * 8


def _number(page, selector: str) -> int:  # type: ignore[no-untyped-def]
    return int(re.sub(r"[^0-9]", "", page.inner_text(selector)) or 0)


def test_payments_appear_on_open_pages_without_a_reload(app_server, browser, sandbox) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    shot = Shots(page, "live-dashboard")
    sign_in_as_owner(page, app_server, email=EMAIL, password=PASSWORD)
    page.wait_for_function(
        "() => { const r = [...document.querySelectorAll('.sync-resource')];"
        " return r.length > 0 && r.every(e => /done|skipped/.test(e.textContent)); }",
        timeout=60_000,
    )

    # 1. The Owner sets up the webhook: the page shows the endpoint, the secret goes by form post.
    open_settings(page, "sync")
    assert page.inner_text("#webhook-url").endswith("/api/stripe/webhook")
    assert "every" not in page.inner_text("#how-current")  # polling is off here
    page.fill("#whsec", SECRET)
    page.click("#save-webhook-secret")
    page.wait_for_selector("text=Webhook signing secret saved")
    page.wait_for_selector("#how-current:has-text('Webhooks')")
    assert SECRET not in page.content()
    shot("webhook-set-up")
    sandbox.register_webhook("billy-live", f"{app_server.url}/api/stripe/webhook", SECRET)
    client = sandbox.client()
    try:
        # 2. The dashboard is open; a card is declined in Stripe; the failure appears in place.
        page.get_by_role("link", name="Dashboard", exact=True).click()
        page.wait_for_url(at("/dashboard"))
        page.wait_for_selector("#failed-count")
        # The revenue chart: money on its axis, and a label a screen reader reads.
        chart = page.locator("#revenue-chart")
        chart.wait_for()
        assert chart.get_attribute("role") == "img" and "Net revenue per day" in (
            chart.get_attribute("aria-label") or ""
        )
        y_ticks = page.locator("#revenue-chart text.recharts-cartesian-axis-tick-value[orientation='left']")
        y_ticks.first.wait_for()
        ticks = y_ticks.all_text_contents()
        assert ticks and all(t.startswith(("$", "-$")) for t in ticks), ticks
        # Days on the axis at a fixed step: at most eight labels over 30 days, the first day first.
        x_ticks = page.locator("#revenue-chart text.recharts-cartesian-axis-tick-value[orientation='bottom']")
        days = x_ticks.all_text_contents()
        assert 2 <= len(days) <= 8 and re.fullmatch(r"\d{1,2} [A-Z][a-z]{2}", days[0]), days
        # Another period: the last 7 days against the 7 before, in words, as a muted second line,
        # and money in the tooltip.
        page.locator("#revenue-period button", has_text="7 days").click()
        page.wait_for_function(
            "() => /7 days|no previous data/.test(document.querySelector('#revenue-change')?.textContent || '')"
        )
        change = page.inner_text("#revenue-change").strip()
        assert re.fullmatch(r"[+-][\d,]+\.\d% vs previous 7 days|no previous data", change), change
        assert "last 7 days" in (chart.get_attribute("aria-label") or "")
        page.wait_for_function(
            '() => document.querySelectorAll("#revenue-chart text.recharts-cartesian-axis-tick-value'
            "[orientation='bottom']\").length === 7"
        )  # a short period labels every day
        assert "Net revenue, previous 7 days" in chart.locator(".recharts-legend-wrapper").inner_text()
        chart.locator(".recharts-wrapper").hover()
        tooltip = chart.locator(".recharts-tooltip-item-value")
        tooltip.first.wait_for()
        values = tooltip.all_text_contents()
        assert values and all(re.fullmatch(r"-?\$[\d,]+\.\d\d", v) for v in values), values
        shot("revenue-last-7-days")
        before = _number(page, "#failed-count")
        page.evaluate("window.__stillThisPage = true")
        larry = client.v1.customers.create(params={"name": "Live Larry", "email": "larry@example.com"})
        with pytest.raises(stripe.CardError):
            client.v1.charges.create(
                params={
                    "amount": 2500,
                    "currency": "usd",
                    "customer": larry.id,
                    "source": "tok_chargeDeclinedInsufficientFunds",
                }
            )
        page.wait_for_selector(f".failed-customer[data-customer='{larry.id}']", timeout=15_000)
        page.wait_for_function(f"() => Number(document.querySelector('#failed-count').textContent) === {before + 1}")
        assert page.evaluate("window.__stillThisPage") is True  # updated in place, not reloaded
        shot("failure-arrived")

        # 3. The charges list is open; a payment succeeds; it appears at the top.
        page.get_by_role("link", name="Charges", exact=True).click()
        page.wait_for_url(at("/charges"))
        page.wait_for_selector(".charge-row")
        page.evaluate("window.__stillThisPage = true")
        paid = client.v1.charges.create(
            params={"amount": 4242, "currency": "usd", "customer": larry.id, "source": "tok_visa"}
        )
        page.wait_for_selector(f".charge-row[data-charge='{paid.id}']", timeout=15_000)
        assert page.locator(".charge-row").first.get_attribute("data-charge") == paid.id
        assert "$42.42" in page.locator(f".charge-row[data-charge='{paid.id}']").inner_text()
        assert page.evaluate("window.__stillThisPage") is True
        shot("payment-arrived")

        # 4. Settings → Stripe sync now names the newest event and a small lag.
        open_settings(page, "sync")
        page.wait_for_selector("#sync-lag")
        assert re.match(r"^\d+ s ago$", page.inner_text("#sync-lag").strip()), page.inner_text("#sync-lag")
        assert page.get_by_text("An error occurred").count() == 0  # no handler failed along the way
    finally:
        sandbox.delete_webhook("billy-live")
        page.close()
