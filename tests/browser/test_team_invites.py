"""The Owner invites a Billing Clerk, who joins by the emailed link, in Chromium against the real app.

Settings → Team → invite → the mail (caught by the mail catcher) → the invitee sets a name
and password → dashboard as Billing Clerk → no team page for a clerk → the used link
explains itself → the Owner sees the new member.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.conftest import Shots, at, open_settings, sign_in_as_owner
from tests.browser.test_walking_skeleton import EMAIL, PASSWORD

pytestmark = pytest.mark.browser

CLERK = "clerk@example.com"
CLERK_NAME = "Casey Clerk"
CLERK_PASSWORD = "violet-harbour-lantern-73"
EXPIRY_FORMAT = "%Y-%m-%d %H:%M UTC%z"  # how pages show times: the browser's zone (UTC here), named


def wait_for_mail(catcher, to: str, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    """The newest mail to `to` (the app stores it before answering, so this rarely waits)."""
    deadline = time.monotonic() + timeout
    while True:
        mails = [m for m in catcher.messages() if to in m.to]
        if mails:
            return mails[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no mail to {to}; caught: {[(m.to, m.subject) for m in catcher.messages()]}")
        time.sleep(0.1)


def test_owner_invites_a_billing_clerk_who_joins_by_the_link(app_server, browser, mail_catcher) -> None:  # type: ignore[no-untyped-def]
    owner_context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC")
    owner = owner_context.new_page()
    shot = Shots(owner, "team-invites")
    sign_in_as_owner(owner, app_server, email=EMAIL, password=PASSWORD)
    org_name = owner.get_by_role("heading", name="Agent Billy").locator("xpath=following-sibling::*[1]").inner_text()
    assert org_name.strip(), "the sidebar names no organisation"

    # 1. The Owner opens Settings → Team, sees themselves as Owner, and invites a Billing Clerk.
    open_settings(owner, "team")
    me = owner.locator(f".member-row[data-email='{EMAIL}']")
    me.wait_for()
    assert me.locator(".rt-Badge").inner_text() == "Owner"
    assert "Olivia Owner" in me.inner_text()  # the name asked at signup, not "—"
    assert owner.locator(f".member-row[data-email='{CLERK}']").count() == 0
    shot("team-page")

    owner.locator(".invite-email input").first.fill(CLERK)
    owner.locator(".invite-role").first.click()
    owner.get_by_role("option", name="Billing Clerk").click()
    owner.wait_for_selector(".invite-role:has-text('Billing Clerk')")
    asked_at = datetime.now(UTC).replace(second=0, microsecond=0)
    owner.click("#send-invites")
    owner.wait_for_selector(f".invite-result:has-text('Invite sent to {CLERK}')")
    answered_at = datetime.now(UTC)
    invite = owner.locator(".invite-row", has_text=CLERK)
    invite.wait_for()
    cells = invite.locator("td").all_inner_texts()
    assert cells[:2] == [CLERK, "Billing Clerk"], cells
    expires = datetime.strptime(cells[2].strip(), EXPIRY_FORMAT)
    assert cells[2].strip().endswith("UTC+00:00")  # the zone is said
    assert asked_at + timedelta(hours=48) <= expires <= answered_at + timedelta(hours=48), cells
    assert owner.input_value(".invite-email input") == ""  # the sent row is cleared for the next one
    shot("invite-sent")

    # 2. The mail arrives: to the clerk, naming the role and the organisation, with one link.
    mail = wait_for_mail(mail_catcher, CLERK)
    assert mail.to == CLERK
    assert mail.subject == f"{EMAIL} invited you to {org_name} on Agent Billy"
    assert f"invited you to {org_name} on Agent Billy as Billing Clerk." in mail.text
    assert "The link works once" in mail.text
    (link,) = mail.links
    assert link.startswith(f"{app_server.url}/api/links/invite?token=")
    token = parse_qs(urlsplit(link).query)["token"][0]
    signature = token.rsplit(".", 1)[-1]

    # 3. The invitee, in a browser of their own, opens the link, picks a name and password.
    clerk_context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC")
    clerk = clerk_context.new_page()
    frames: list[str] = []
    clerk.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
    clerk_shot = Shots(clerk, "team-invites-clerk")
    clerk.goto(link)
    clerk.wait_for_url(at("/invite"))
    summary = clerk.locator("#invite-summary")
    summary.wait_for()
    assert summary.inner_text() == f"{EMAIL} invited {CLERK} to {org_name} as Billing Clerk."
    assert "billy_invite_link" not in clerk.evaluate("document.cookie")
    link_cookie = next(c for c in clerk_context.cookies() if c["name"] == "billy_invite_link")
    assert link_cookie["httpOnly"] is True
    clerk_shot("invite-page")
    clerk.fill("#name", CLERK_NAME)
    clerk.fill("#password", CLERK_PASSWORD)
    clerk.click("#accept-invite")
    clerk.wait_for_url(at("/dashboard"))
    clerk.wait_for_selector(f"#who-am-i:has-text('{CLERK}')")
    assert clerk.locator("#who-am-i + .rt-Badge").inner_text() == "Billing Clerk"
    cookies = {c["name"]: c for c in clerk_context.cookies()}
    assert "billy_invite_link" not in cookies  # spent with the link
    assert cookies["billy_access"]["httpOnly"] and cookies["billy_refresh"]["httpOnly"]
    clerk_shot("clerk-dashboard")

    # 4. A Billing Clerk has no team page: no Team tab in Settings, and the address itself refuses.
    clerk.click("#sidebar .nav-settings")
    clerk.wait_for_selector("#settings-tab-plan")
    assert clerk.locator("#settings-tab-team").count() == 0
    clerk.goto(app_server.url + "/settings/team")
    clerk.wait_for_selector("#team-refused")
    assert "Billing Clerk" in clerk.inner_text("#team-refused")
    assert clerk.locator("#members-table, .member-row, .invite-row, #send-invites").count() == 0
    assert clerk.locator("#settings-tab-team").count() == 0
    clerk_shot("clerk-refused-team")

    # 5. The used link, opened again (after signing out), explains itself and signs nobody in.
    clerk.click("#sign-out")
    clerk.wait_for_url(at("/login"))
    clerk.goto(link)
    clerk.wait_for_url(at("/invite"))
    notice = clerk.locator("#form-message")
    notice.wait_for()
    assert "already been used" in notice.inner_text()
    assert "Ask your Owner to resend" in notice.inner_text()
    body = clerk.inner_text("body")
    assert not re.search(r"Traceback|Exception|Internal Server Error|\bFile \"", body), body
    assert clerk.locator("#accept-invite, #invite-summary").count() == 0
    assert clerk.get_by_role("link", name="Go to sign-in").is_visible()
    assert not {"billy_access", "billy_refresh", "billy_invite_link"} & {c["name"] for c in clerk_context.cookies()}
    clerk_shot("link-already-used")
    clerk.goto(app_server.url + "/dashboard")
    clerk.wait_for_url(re.compile(r".*/login/?\?next=%2Fdashboard"))  # back there after signing in

    # No token where the invitee's scripts could read it, nor in anything the app pushed to the page.
    visible = clerk.evaluate("document.cookie")
    assert token not in visible and signature not in visible and "billy_" not in visible
    assert frames, "the invitee's page received no websocket frames"
    assert all(token not in f and signature not in f for f in frames)
    clerk_context.close()

    # 6. The Owner's team page now lists Casey Clerk as a Billing Clerk; no invite is pending.
    owner.reload()
    member = owner.locator(f".member-row[data-email='{CLERK}']")
    member.wait_for()
    assert CLERK_NAME in member.inner_text()
    assert member.locator("button[role='combobox']").inner_text() == "Billing Clerk"
    assert owner.locator(".invite-row").count() == 0
    assert owner.locator(".invite-result").count() == 0  # the earlier send's outcome is not shown again
    shot("clerk-is-a-member")
    owner_context.close()
