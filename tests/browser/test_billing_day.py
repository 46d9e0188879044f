"""A Billing Manager's day in Chromium (issue 12), and what a Billing Clerk sees of it.

The Manager pauses a subscription's collection, drafts an invoice from a custom line and sends
it, reminds a customer of an overdue invoice, and emails a customer from the failed-payments
report: each change is in Stripe (the sandbox) and on the page at once, and each mail reaches the
customer's mailbox. The catalogue's "New product" is shown disabled, with the reason, because the
demo key may not write products. The Clerk, on the same pages,
gets none of those controls: subscriptions and invoices have no write buttons, the catalogue no
"New product", and the failed-payments report no "Email selected customers".
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.browser.conftest import Shots, at, sign_in_as_owner
from tests.browser.test_customer_edit import invite_and_join
from tests.browser.test_team_invites import wait_for_mail
from tests.browser.test_walking_skeleton import sandbox_client

pytestmark = pytest.mark.browser

OWNER = "owner@billingday.example"
OWNER_PASSWORD = "a-billing-day-owner-password"
MANAGER = "manager@billingday.example"
CLERK = "clerk@billingday.example"


@pytest.fixture(scope="module")
def team(app_server, browser, mail_catcher) -> Any:  # type: ignore[no-untyped-def]
    """The Owner, synced, with a Billing Manager and a Billing Clerk who joined by their invites."""
    owner = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC").new_page()
    sign_in_as_owner(owner, app_server, email=OWNER, password=OWNER_PASSWORD, plan="business")
    owner.wait_for_function(
        "() => ['customers:', 'subscriptions:', 'invoices:'].every(name => [...document.querySelectorAll("
        "'.sync-resource')].some(e => e.textContent.toLowerCase().startsWith(name) && e.textContent.includes('done')))",
        timeout=60_000,
    )
    manager = invite_and_join(owner, browser, mail_catcher, MANAGER, "Billing Manager")
    clerk = invite_and_join(owner, browser, mail_catcher, CLERK, "Billing Clerk")
    return {"owner": owner, "manager": manager, "clerk": clerk}


def _active_subscription(stripe_api) -> Any:  # type: ignore[no-untyped-def]
    return next(
        sub
        for sub in stripe_api.v1.subscriptions.list(params={"status": "active", "limit": 100}).auto_paging_iter()
        if not sub.pause_collection and not sub.cancel_at_period_end
    )


def _overdue_invoice(stripe_api) -> Any:  # type: ignore[no-untyped-def]
    """An open invoice past its due date whose customer has an email (the seeded demo data has some)."""
    now = int(time.time())
    return next(
        inv
        for inv in stripe_api.v1.invoices.list(params={"status": "open", "limit": 100}).auto_paging_iter()
        if inv.due_date and inv.due_date < now and stripe_api.v1.customers.retrieve(inv.customer).email
    )


def test_a_manager_pauses_a_subscription_invoices_and_reminds(team, app_server, sandbox, mail_catcher) -> None:  # type: ignore[no-untyped-def]
    stripe_api = sandbox_client(sandbox)
    subscription = _active_subscription(stripe_api)
    subscription_id = subscription.id
    page = team["manager"]
    shot = Shots(page, "billing-day-manager")
    page.goto(f"{app_server.url}/customers/{subscription.customer}")
    page.wait_for_url(at(f"/customers/{subscription.customer}"))

    # 1. Pause collection on the subscription: Stripe has it, the dialog says so.
    page.locator(f".manage-subscription[data-subscription='{subscription_id}']").click()
    page.wait_for_selector("#subscription-actions")
    page.click("#sub-tab-pause")
    page.click("#sub-pause-void")
    page.click("#sub-pause")
    page.wait_for_selector("text=Collection paused.")  # the dialog closes with what happened
    shot("paused")
    assert stripe_api.v1.subscriptions.retrieve(subscription_id).pause_collection.behavior == "void"
    page.locator(f".manage-subscription[data-subscription='{subscription_id}']").click()
    page.click("#sub-tab-pause")
    page.wait_for_selector("#sub-paused")  # opened again, it says how collection is paused
    page.keyboard.press("Escape")

    overdue = _overdue_invoice(stripe_api)
    customer_id, overdue_id = overdue.customer, overdue.id
    email = stripe_api.v1.customers.retrieve(customer_id).email
    page.goto(f"{app_server.url}/customers/{customer_id}")
    page.wait_for_url(at(f"/customers/{customer_id}"))

    # 2. A draft from a custom line, then sent from its row.
    page.click("#new-invoice")
    page.fill("#new-invoice-description", "Rush delivery")
    page.fill("#new-invoice-amount", "45.50")
    page.click("#add-custom-line")
    page.wait_for_selector("#new-invoice-total:has-text('$45.50')")
    page.click("#create-invoice")
    page.wait_for_selector("text=Draft invoice for $45.50 created")
    (draft,) = stripe_api.v1.invoices.list(params={"customer": customer_id, "status": "draft"}).data
    page.click(f"#invoice-send-{draft.id}")
    page.click("#invoice-confirm")
    page.wait_for_function(
        f"() => !document.querySelector('#invoice-send-{draft.id}') || "
        f"document.querySelector('#invoice-remind-{draft.id}')",
        timeout=15_000,
    )
    assert stripe_api.v1.invoices.retrieve(draft.id).status == "open"
    shot("invoice-sent")

    # 3. Remind the customer of the overdue invoice: the mail is in their mailbox.
    page.click(f"#invoice-remind-{overdue_id}")
    page.click("#invoice-confirm")
    mail = wait_for_mail(mail_catcher, email)
    assert "overdue" in (mail.subject + mail.text).lower() and "https://" in mail.text
    shot("reminded")

    # 4. Failed payments of the last 30 days: email one customer the pre-filled update request.
    page.get_by_role("link", name="Failed payments", exact=True).click()
    page.wait_for_url(at("/failed-payments"))
    page.click("#failed-period")
    page.get_by_role("option", name="Last 30 days").click()
    page.wait_for_selector("#failed-period-label:has-text('30')")
    with_email = page.locator(".failed-customer").filter(has_not=page.locator(".no-email-badge")).first
    with_email.wait_for()
    customer = with_email.get_attribute("data-customer") or ""
    to = stripe_api.v1.customers.retrieve(customer).email
    with_email.locator(".failed-select").click()
    page.click("#email-selected-customers")
    page.wait_for_selector("#email-subject")
    page.click("#send-payment-emails")
    page.wait_for_selector("#email-results, #email-problem")
    assert page.locator("#email-problem").count() == 0, page.locator("#email-problem").inner_text()
    update = wait_for_mail(mail_catcher, to)
    card = stripe_api.v1.customers.retrieve(customer).name.split()[0]
    assert card in update.text  # addressed to them by name, from the editable template
    shot("payment-update-sent")
    page.click("#email-done")

    # 5. The catalogue: the demo key may only read products, so "New product" is shown disabled
    #    with the permission the Owner would add (the Manager's role may; the key may not).
    page.get_by_role("link", name="Products", exact=True).click()
    page.wait_for_url(at("/products"))
    page.wait_for_selector("#new-product-blocked")
    assert page.locator("#new-product").is_disabled()
    assert "“Products” to “Write”" in page.locator("#new-product-blocked").inner_text()
    shot("catalogue-blocked-by-the-key")


def test_a_clerk_sees_the_same_pages_without_any_of_those_controls(team, app_server, sandbox) -> None:  # type: ignore[no-untyped-def]
    stripe_api = sandbox_client(sandbox)
    overdue = _overdue_invoice(stripe_api)
    page = team["clerk"]
    shot = Shots(page, "billing-day-clerk")
    page.goto(f"{app_server.url}/customers/{overdue.customer}")
    page.wait_for_url(at(f"/customers/{overdue.customer}"))
    page.locator(f".invoice-row[data-invoice='{overdue.id}']").wait_for()
    page.wait_for_timeout(1500)  # the rows' controls load after the rows: give them time to (not) appear
    for control in (".manage-subscription", "#new-invoice", ".invoice-remind", ".invoice-void", ".invoice-send"):
        assert page.locator(control).count() == 0, control
    shot("customer")

    page.get_by_role("link", name="Products", exact=True).click()
    page.wait_for_url(at("/products"))
    page.wait_for_selector("#products-table, #products-empty")
    assert page.locator("#new-product").count() == 0
    page.get_by_role("link", name="Failed payments", exact=True).click()
    page.wait_for_url(at("/failed-payments"))
    page.wait_for_selector("#failed-total-count")
    assert page.locator("#email-selected-customers").count() == 0
    shot("report-without-email")
