"""Editing a customer per role (issue 12), in Chromium against the real app and the sandbox.

A Billing Manager opens Jane Smith, edits her name in the "Edit customer" dialog and sees the
new name on the page at once, and Stripe has it. A Billing Clerk's dialog offers only the email
and address fields; nothing else is there to fill in.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import Shots, at, open_settings, sign_in_as_owner
from tests.browser.test_custom_roles_and_approvals import open_jane_smith, query
from tests.browser.test_team_invites import wait_for_mail
from tests.browser.test_walking_skeleton import sandbox_client

pytestmark = pytest.mark.browser

OWNER = "owner@northwind.example"
OWNER_PASSWORD = "a-business-owner-password"
MANAGER = "manager@example.com"
CLERK = "clerk@example.com"
MEMBER_PASSWORD = "copper-meadow-signal-58"
CONTACT_INPUTS = [
    "edit-email",
    "edit-address_line1",
    "edit-address_line2",
    "edit-address_city",
    "edit-address_state",
    "edit-address_postal_code",
    "edit-address_country",
]
OTHER_INPUTS = ["edit-name", "edit-phone", "edit-description", "edit-metadata"]


def invite_and_join(owner, browser, mail_catcher, email: str, role: str):  # type: ignore[no-untyped-def]
    """The Owner invites `email` as `role`; the invitee joins in a browser of their own."""
    open_settings(owner, "team")
    owner.locator(".member-row").first.wait_for()
    owner.locator(".invite-email input").first.fill(email)
    owner.locator(".invite-role").first.click()
    owner.get_by_role("option", name=role).click()
    owner.wait_for_selector(f".invite-role:has-text('{role}')")
    owner.click("#send-invites")
    owner.wait_for_selector(f".invite-result:has-text('Invite sent to {email}')")
    (link,) = wait_for_mail(mail_catcher, email).links
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC")
    page = context.new_page()
    page.goto(link)
    page.wait_for_url(at("/invite"))
    page.locator("#invite-summary").wait_for()
    page.fill("#name", email.split("@")[0].title())
    page.fill("#password", MEMBER_PASSWORD)
    page.click("#accept-invite")
    page.wait_for_url(at("/dashboard"))
    page.wait_for_selector(f"#who-am-i:has-text('{email}')")
    return page


def test_a_manager_edits_the_name_and_a_clerk_sees_only_email_and_address(  # type: ignore[no-untyped-def]
    app_server, browser, mail_catcher, sandbox
) -> None:
    stripe_api = sandbox_client(sandbox)
    owner_context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC")
    owner = owner_context.new_page()
    sign_in_as_owner(owner, app_server, email=OWNER, password=OWNER_PASSWORD, plan="business")
    owner.wait_for_function(
        "() => [...document.querySelectorAll('.sync-resource')]"
        ".some(e => e.textContent.toLowerCase().startsWith('customers:') && e.textContent.includes('done'))",
        timeout=60_000,
    )

    # 1. The Billing Manager renames Jane Smith: the page shows it at once, and Stripe has it.
    manager = invite_and_join(owner, browser, mail_catcher, MANAGER, "Billing Manager")
    shot = Shots(manager, "customer-edit-manager")
    open_jane_smith(manager)
    customer_id = manager.url.rstrip("/").rsplit("/", 1)[-1]
    manager.click("#edit-customer")
    manager.wait_for_selector("#edit-name")
    for input_id in CONTACT_INPUTS + OTHER_INPUTS:
        assert manager.locator(f"#{input_id}").count() == 1, input_id
    assert manager.input_value("#edit-name") == "Jane Smith"
    shot("dialog-every-field")
    manager.fill("#edit-name", "Jane Doe")
    manager.click("#save-customer")
    manager.wait_for_selector("#edit-name", state="detached")  # the dialog closed
    manager.wait_for_selector("#customer-name:has-text('Jane Doe')")  # the page shows it at once
    shot("renamed")
    assert stripe_api.v1.customers.retrieve(customer_id).name == "Jane Doe"
    assert query(app_server, "SELECT name FROM stripe_customer WHERE id = :c", c=customer_id) == [("Jane Doe",)]
    rows = query(
        app_server,
        "SELECT action, outcome, actor_email FROM audit_log WHERE action LIKE 'customers.update%' ORDER BY id",
    )
    assert rows == [("customers.update", "ok", MANAGER)]

    # 2. The Billing Clerk's dialog: email and the address parts, nothing else.
    clerk = invite_and_join(owner, browser, mail_catcher, CLERK, "Billing Clerk")
    clerk_shot = Shots(clerk, "customer-edit-clerk")
    clerk.goto(f"{app_server.url}/customers/{customer_id}")
    clerk.wait_for_selector("#edit-customer")
    clerk.click("#edit-customer")
    clerk.wait_for_selector("#edit-email")
    for input_id in CONTACT_INPUTS:
        assert clerk.locator(f"#{input_id}").count() == 1, input_id
    for input_id in OTHER_INPUTS:
        assert clerk.locator(f"#{input_id}").count() == 0, input_id
    clerk_shot("dialog-contact-only")


# Every time the page changes, the customer name it shows and the address it shows it under.
NAME_UNDER_ADDRESS = """
window.__namesShown = [];
new MutationObserver(() => {
  const name = document.getElementById("customer-name");
  if (name) window.__namesShown.push([location.pathname, name.textContent]);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def test_moving_to_another_customer_never_shows_the_previous_one_under_its_address(  # type: ignore[no-untyped-def]
    app_server, browser, sandbox
) -> None:
    """The tab keeps the previous customer until the next one has loaded: the page says it is
    opening rather than showing (and offering the buttons of) the previous customer at the new address,
    after a full load and after a click within the app."""
    stripe_api = sandbox_client(sandbox)
    named = [c for c in stripe_api.v1.customers.list(params={"limit": 20}).data if c.name]
    first, second = named[0], named[1]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    sign_in_as_owner(page, app_server, email=OWNER, password=OWNER_PASSWORD, plan="business")
    page.add_init_script(NAME_UNDER_ADDRESS)
    for customer in (first, second, first):  # full loads, each tab state holding the one before
        page.goto(f"{app_server.url}/customers/{customer.id}")
        page.wait_for_selector(f"#customer-name:has-text('{customer.name}')")
        wrong = [seen for seen in page.evaluate("window.__namesShown") if seen[1] and seen[1] != customer.name]
        assert not wrong, f"another customer's name shown under /customers/{customer.id}: {wrong}"
    # Within the app: back to the list, then the other customer.
    page.go_back()
    page.wait_for_selector(f"#customer-name:has-text('{second.name}')")
    page.evaluate("window.__namesShown = []")
    page.go_forward()
    page.wait_for_selector(f"#customer-name:has-text('{first.name}')")
    wrong = [seen for seen in page.evaluate("window.__namesShown") if seen[1] not in ("", first.name)]
    assert not wrong, f"another customer's name shown after moving on: {wrong}"
    context.close()
