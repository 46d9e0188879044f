"""A Billing Manager's day in Chromium (issue 12), and what a Billing Clerk sees of it.

The Manager pauses a subscription's collection, drafts an invoice from a custom line and sends
it, reminds a customer of an overdue invoice, and emails a customer from the failed-payments
report: each change is in Stripe (the sandbox) and on the page at once, and each mail reaches the
customer's mailbox. The catalogue's "New product" is shown disabled, with the reason, because the
key may only read products. Then the rest of the writes: a quantity change with Stripe's
preview, cancel at the period end and reactivate, resume, void and mark uncollectible; and, once
the Owner edits the key in Stripe and the Manager clicks "Check again", a product with a price,
archived. The Clerk, on the same pages, gets none of those controls: subscriptions and invoices
have no write buttons, the catalogue no "New product", and the failed-payments report no "Email
selected customers".
"""

from __future__ import annotations

import re
import secrets
import string
import time
from typing import Any

import httpx
import pytest

from sandbox.keys import BILLY_PERMISSIONS
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
def team(app_server, browser, mail_catcher, sandbox) -> Any:  # type: ignore[no-untyped-def]
    """The Owner, synced, with a Billing Manager and a Billing Clerk who joined by their invites.
    Billy's key is the docs' six permissions (products and prices read only), made in the sandbox
    so the Owner can edit it later."""
    key = "rk_test_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))
    edit_key(sandbox, key, BILLY_PERMISSIONS)
    owner = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC").new_page()
    sign_in_as_owner(owner, app_server, email=OWNER, password=OWNER_PASSWORD, plan="business", stripe_key=key)
    owner.wait_for_function(
        "() => ['customers:', 'subscriptions:', 'invoices:'].every(name => [...document.querySelectorAll("
        "'.sync-resource')].some(e => e.textContent.toLowerCase().startsWith(name) && e.textContent.includes('done')))",
        timeout=60_000,
    )
    badges = owner.locator(".sync-resource").all_inner_texts()
    assert any(b.startswith("Payment methods") for b in badges) and not [b for b in badges if "_" in b], badges
    manager = invite_and_join(owner, browser, mail_catcher, MANAGER, "Billing Manager")
    clerk = invite_and_join(owner, browser, mail_catcher, CLERK, "Billing Clerk")
    return {"owner": owner, "manager": manager, "clerk": clerk, "key": key}


def edit_key(sandbox, key: str, permissions: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """Create the restricted key, or edit its permissions in place (Stripe keeps an edited key's token)."""
    httpx.post(
        f"{sandbox.url}/_config/restricted_keys", json={"key": key, "permissions": permissions}, timeout=10
    ).raise_for_status()


def _active_subscription(stripe_api, *, one_price: bool = False) -> Any:  # type: ignore[no-untyped-def]
    """An active subscription nobody has paused or set to end (`one_price`: Billy can change it)."""
    return next(
        sub
        for sub in stripe_api.v1.subscriptions.list(params={"status": "active", "limit": 100}).auto_paging_iter()
        if not sub.pause_collection
        and not sub.cancel_at_period_end
        and not sub.cancel_at
        and (not one_price or len(sub["items"].data) == 1)
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
    # As a person would: once the page shows this customer (until then it shows the previous one,
    # and "New invoice" is refused for it: tests/test_invoice_changes.py).
    page.wait_for_selector(f"#customer-email:has-text('{email}')")

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
    # Above the tables, the failures by reason as bars, and in words for a screen reader.
    by_reason = page.locator("#failed-by-reason-chart")
    by_reason.locator(".recharts-bar-rectangle").first.wait_for()
    said = by_reason.get_attribute("aria-label") or ""
    assert by_reason.get_attribute("role") == "img" and said.startswith("Failed payments by reason"), said
    assert re.search(r"expired card \d+, insufficient funds \d+, fraud block \d+, other \d+\.$", said), said
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


def _open_manage(page, subscription_id: str, tab: str) -> None:  # type: ignore[no-untyped-def]
    page.locator(f".manage-subscription[data-subscription='{subscription_id}']").click()
    page.wait_for_selector("#subscription-actions")
    page.click(f"#sub-tab-{tab}")


def test_a_manager_changes_cancels_resumes_voids_and_sells_a_new_product(  # type: ignore[no-untyped-def]
    team, app_server, sandbox
) -> None:
    stripe_api = sandbox_client(sandbox)
    subscription = _active_subscription(stripe_api, one_price=True)
    subscription_id, quantity = subscription.id, subscription["items"].data[0].quantity or 1
    page = team["manager"]
    shot = Shots(page, "billing-day-more")
    page.goto(f"{app_server.url}/customers/{subscription.customer}")
    page.wait_for_url(at(f"/customers/{subscription.customer}"))

    # 1. One more seat: Stripe's proration preview first, then the change.
    _open_manage(page, subscription_id, "change")
    page.fill("#sub-change-quantity", str(quantity + 1))
    page.click("#sub-preview-change")
    page.wait_for_selector("#sub-preview, #sub-actions-problem")
    assert page.locator("#sub-actions-problem").count() == 0, page.inner_text("#sub-actions-problem")
    assert page.locator(".sub-preview-line").count() >= 1
    shot("preview")
    page.click("#sub-confirm-change")
    page.wait_for_selector("text=Changed to")
    assert stripe_api.v1.subscriptions.retrieve(subscription_id)["items"].data[0].quantity == quantity + 1

    # 2. Cancel at the period end, then take it back.
    _open_manage(page, subscription_id, "cancel")
    page.click("#sub-cancel-period-end")
    page.click("#sub-cancel")
    page.wait_for_selector("text=nothing changes for the customer until then")
    assert stripe_api.v1.subscriptions.retrieve(subscription_id).cancel_at_period_end is True
    _open_manage(page, subscription_id, "cancel")
    page.click("#sub-reactivate")
    page.wait_for_selector("text=The cancellation is withdrawn")
    assert stripe_api.v1.subscriptions.retrieve(subscription_id).cancel_at_period_end is False

    # 3. Pause, then resume collection.
    _open_manage(page, subscription_id, "pause")
    page.click("#sub-pause-keep_as_draft")
    page.click("#sub-pause")
    page.wait_for_selector("text=Collection paused.")
    _open_manage(page, subscription_id, "pause")
    page.click("#sub-resume")
    page.wait_for_selector("text=Collection resumed")
    assert not stripe_api.v1.subscriptions.retrieve(subscription_id).pause_collection
    shot("resumed")

    # 4. Two open invoices of one customer: one void, one written off.
    by_customer: dict[str, list[Any]] = {}
    for inv in stripe_api.v1.invoices.list(params={"status": "open", "limit": 100}).auto_paging_iter():
        by_customer.setdefault(inv.customer, []).append(inv)
    customer_id, (to_void, to_write_off, *_) = next((c, v) for c, v in by_customer.items() if len(v) >= 2)
    page.goto(f"{app_server.url}/customers/{customer_id}")
    page.wait_for_url(at(f"/customers/{customer_id}"))
    page.click(f"#invoice-void-{to_void.id}")
    assert "cannot be undone" in page.inner_text("#invoice-confirm-text")
    page.click("#invoice-confirm")
    page.wait_for_selector("text=is void")
    page.click(f"#invoice-mark-uncollectible-{to_write_off.id}")
    page.click("#invoice-confirm")
    page.wait_for_selector("text=is marked uncollectible")
    assert stripe_api.v1.invoices.retrieve(to_void.id).status == "void"
    assert stripe_api.v1.invoices.retrieve(to_write_off.id).status == "uncollectible"
    assert page.locator(f"#invoice-remind-{to_void.id}").count() == 0  # a void invoice has nothing to remind
    shot("invoices-closed")

    # 5. The Owner gives the key Products and Prices "Write" in Stripe; "Check again" sees it.
    page.get_by_role("link", name="Products", exact=True).click()
    page.wait_for_url(at("/products"))
    page.wait_for_selector("#new-product-blocked")
    edit_key(sandbox, team["key"], {**BILLY_PERMISSIONS, "product": "write", "plan": "write"})
    page.click("#check-key-again")
    page.wait_for_function("() => !document.querySelector('#new-product').disabled", timeout=15_000)
    assert page.locator("#new-product-blocked").count() == 0

    page.click("#new-product")
    page.fill("#product-name", "Priority support")
    page.fill("#product-description", "Answers within the hour")
    page.click("#save-product")
    page.wait_for_selector("text=Created “Priority support” in Stripe")
    row = page.locator(".product-row").filter(has_text="Priority support")
    row.locator(".add-price").click()
    page.fill("#price-amount", "25.00")
    page.click("#save-price")
    row.locator(".product-price").filter(has_text="$25.00").wait_for()
    row.locator(".archive-product").click()
    page.click("#confirm-archive")
    row.locator(".product-status").filter(has_text="Archived").wait_for()
    (product,) = [p for p in stripe_api.v1.products.list(params={"limit": 100}).data if p.name == "Priority support"]
    assert product.active is False and product.description == "Answers within the hour"
    (price,) = stripe_api.v1.prices.list(params={"product": product.id}).data
    assert price.unit_amount == 2500 and price.active  # archiving keeps prices, as Stripe does
    shot("catalogue")


def test_a_clerk_sees_the_same_pages_without_any_of_those_controls(team, app_server, sandbox) -> None:  # type: ignore[no-untyped-def]
    stripe_api = sandbox_client(sandbox)
    overdue = _overdue_invoice(stripe_api)
    page = team["clerk"]
    shot = Shots(page, "billing-day-clerk")
    page.goto(f"{app_server.url}/customers/{overdue.customer}")
    page.wait_for_url(at(f"/customers/{overdue.customer}"))
    page.locator(f".invoice-row[data-invoice='{overdue.id}']").wait_for()
    page.wait_for_timeout(1500)  # the rows' controls load after the rows: give them time to (not) appear
    controls = (".manage-subscription", "#new-invoice", ".invoice-remind", ".invoice-void", ".invoice-send")
    for control in (*controls, ".invoice-mark-uncollectible"):
        assert page.locator(control).count() == 0, control
    shot("customer")

    page.get_by_role("link", name="Products", exact=True).click()
    page.wait_for_url(at("/products"))
    page.wait_for_selector("#products-table, #products-empty")
    assert page.locator("#new-product").count() == 0
    for control in (".rename-product", ".archive-product", ".restore-product", ".add-price", "#check-key-again"):
        assert page.locator(control).count() == 0, control
    page.get_by_role("link", name="Failed payments", exact=True).click()
    page.wait_for_url(at("/failed-payments"))
    page.wait_for_selector("#failed-total-count")
    assert page.locator("#email-selected-customers").count() == 0
    shot("report-without-email")
