"""An ended trial, as the Owner sees it: a read-only notice everywhere until a plan is chosen."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.browser.conftest import Shots, app_store, at, open_settings, sign_in_as_owner

pytestmark = pytest.mark.browser

EMAIL = "trial-owner@example.com"
PASSWORD = "an-owner-whose-trial-ran-out"


def test_trial_end_makes_billy_read_only_until_a_plan_is_chosen(app_server, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    shot = Shots(page, "trial-end")
    sign_in_as_owner(page, app_server, email=EMAIL, password=PASSWORD)
    assert page.locator("#read-only-notice").count() == 0
    engine = app_store(app_server)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE organization SET trial_ends_at = '2026-01-01 00:00:00.000000'"))
    page.reload()
    page.wait_for_selector("#read-only-notice:has-text('trial ended on 01 January 2026')")
    shot("read-only-notice")
    open_settings(page, "plan")
    page.wait_for_selector("#trial-over")
    # The trial's plan is marked and can be kept; the others say what they hold and switch.
    assert page.inner_text("#choose-business") == "Keep Business after the trial"
    assert page.inner_text("#choose-pro") == "Switch to Pro"
    assert page.get_by_text("Up to 10 members · exports").count() == 1
    page.click("#choose-pro")
    page.wait_for_selector("text=You are on the Pro plan.")
    assert page.locator("#choose-pro").count() == 0  # chosen: nothing to choose on it any more
    assert page.inner_text("#choose-business") == "Switch to Business"
    page.click("text=Dashboard")
    page.wait_for_url(at("/dashboard"))
    page.wait_for_selector("#who-am-i")
    # The dashboard's on_load re-reads the plan; the header (and its notice) is already on screen
    # from before, so wait for the notice to go rather than counting it at once.
    page.wait_for_selector("#read-only-notice", state="detached", timeout=10_000)
    with engine.connect() as conn:
        plan, chosen = conn.execute(sa.text("SELECT plan, plan_chosen_at FROM organization")).one()
        audited = conn.execute(sa.text("SELECT outcome FROM audit_log WHERE action = 'billy.choose_plan'")).all()
    engine.dispose()
    assert plan == "pro" and chosen is not None and [a[0] for a in audited] == ["ok"]
    shot("plan-chosen")
    page.close()
