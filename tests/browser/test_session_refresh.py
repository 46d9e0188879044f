"""Staying signed in past the access token's life, without a reload and without a token in script.

This instance issues 12-second access tokens, so the page's keep-alive (normally: refresh
with 10 minutes to spare) refreshes with 6 seconds to spare (checked every 3 s); the test idles past the first
token's life and then works, and a replayed refresh token ends the sign-in.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

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


def test_a_deep_link_survives_signing_in(app_server, browser) -> None:  # type: ignore[no-untyped-def]
    """Signed out, a link to a filtered list goes to sign-in and, after it, to that very list
    (several of the page's loaders notice the missing session; none may overwrite where to go back)."""
    owner = browser.new_context().new_page()
    sign_in_as_owner(owner, app_server, email=EMAIL, password=PASSWORD)  # the account exists (any order)
    owner.close()
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    page.goto(app_server.url + "/charges?status=failed")
    page.wait_for_url(re.compile(r".*/login/?\?next="))
    page.wait_for_timeout(1000)  # any later recovery would have redirected again by now
    (back,) = parse_qs(urlsplit(page.url).query)["next"]
    assert re.fullmatch(r"/charges/?\?status=failed", back), back  # the page asked for, not /login
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(re.compile(r".*/charges/?\?status=failed$"))
    page.wait_for_selector("#who-am-i")
