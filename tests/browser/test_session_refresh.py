"""Staying signed in past the access token's life, without a reload and without a token in script.

This instance issues 12-second access tokens, so the page's keep-alive (normally: refresh
with 10 minutes to spare) refreshes with 6 seconds to spare (checked every 3 s); the test idles past the first
token's life and then works, and a replayed refresh token ends the sign-in.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.browser.conftest import Shots, at, sign_in_as_owner

pytestmark = pytest.mark.browser

APP_ENV = {"BILLY_ACCESS_TOKEN_SECONDS": "12"}
EMAIL = "keeper@example.com"
PASSWORD = "a-patient-owner-password"


def _cookie(context, name: str) -> str:  # type: ignore[no-untyped-def]
    return next(c["value"] for c in context.cookies() if c["name"] == name)


def test_page_refreshes_its_token_and_keeps_working(app_server, browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    shot = Shots(page, "session-refresh")
    sign_in_as_owner(page, app_server, email=EMAIL, password=PASSWORD)
    page.click("text=Customers")
    page.wait_for_url(at("/customers"))
    first_access, first_refresh = _cookie(context, "billy_access"), _cookie(context, "billy_refresh")

    time.sleep(14)  # past the first access token's life, with the page left open

    assert _cookie(context, "billy_access") != first_access  # refreshed in the background
    assert _cookie(context, "billy_refresh") != first_refresh  # rotated on every use
    page.fill("#customer-search", "jane")
    page.click("#customer-search-submit")
    page.wait_for_selector(".customer-link:has-text('Jane Smith')", timeout=15_000)  # still signed in
    assert at("/customers").match(page.url)
    shot("still-signed-in")

    # The first refresh token was spent long ago: presenting it again ends this sign-in.
    replay = httpx.post(
        f"{app_server.url}/api/auth/refresh",
        cookies={"billy_refresh": first_refresh},
        headers={"origin": app_server.url},
    )
    assert replay.status_code == 401
    page.reload()
    page.wait_for_url(at("/login"), timeout=15_000)
    shot("signed-out-after-replay")
    context.close()
