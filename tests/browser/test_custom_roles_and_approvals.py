"""A custom role and the refund approval queue, end to end, in Chromium against the real app.

The Owner (Business plan) builds a "Support lead" role that can refund up to $20.00 per
charge (a cap over the Billing Manager's is refused first), invites a lead with it, and the
lead — in a browser of their own — asks for approval of a refund over that cap. The Owner
approves it from Refund requests: the refund is made once, in the Owner's name, and both
people are on the record. A refund within the cap goes straight through.
"""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser.conftest import Shots, app_store, at, open_settings, search_customers, sign_in_as_owner
from tests.browser.test_team_invites import wait_for_mail
from tests.browser.test_walking_skeleton import sandbox_client

pytestmark = pytest.mark.browser

OWNER = "owner@northwind.example"
OWNER_PASSWORD = "a-business-owner-password"
LEAD = "lead@example.com"
LEAD_NAME = "Lee Lead"
LEAD_PASSWORD = "copper-meadow-signal-58"
ROLE = "Support lead"
NOTE = "Customer was charged twice for Order #5678; the duplicate needs a full refund."
BUILT_IN = ["Read Only", "Billing Clerk", "Billing Manager", "Owner"]
JANE_AMOUNT = 4599


def query(app_server, sql: str, **params):  # type: ignore[no-untyped-def]
    engine = app_store(app_server)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()
    finally:
        engine.dispose()


def open_jane_smith(page) -> object:  # type: ignore[no-untyped-def]
    """Customers → search "jane" → Jane Smith → her Order #5678 row."""
    page.get_by_role("link", name="Customers", exact=True).click()
    page.wait_for_url(at("/customers"))
    search_customers(page, "jane")
    page.click(".customer-link:has-text('Jane Smith')")
    page.wait_for_url(re.compile(r".*/customers/cus_.*"))
    row = page.locator(".charge-row", has_text="5678")
    row.wait_for()
    return row


def test_custom_role_refund_over_its_cap_is_approved_by_the_owner(app_server, browser, mail_catcher, sandbox) -> None:  # type: ignore[no-untyped-def]
    stripe_api = sandbox_client(sandbox)
    owner_context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC")
    owner = owner_context.new_page()
    shot = Shots(owner, "custom-roles-owner")

    # 1. The Owner signs up on Business (the sandbox's demo key) and waits for the first sync.
    sign_in_as_owner(owner, app_server, email=OWNER, password=OWNER_PASSWORD, plan="business")
    # (Waits on what this test reads — customers, charges, refunds — however many resources sync.)
    owner.wait_for_function(
        "() => ['customers', 'charges', 'refunds'].every(name => [...document.querySelectorAll('.sync-resource')]"
        ".some(e => e.textContent.toLowerCase().startsWith(name + ':') && e.textContent.includes('done')))",
        timeout=60_000,
    )
    shot("dashboard-synced")

    # 2. Settings → Roles: the four built-in roles, and a New role button on Business.
    open_settings(owner, "roles")
    owner.locator(".role-row").first.wait_for()
    assert owner.locator(".role-row").evaluate_all("rows => rows.map(r => r.dataset.role)") == BUILT_IN
    assert "$5,000.00 per charge" in owner.locator(".role-row[data-role='Billing Manager']").inner_text()
    shot("built-in-roles")

    owner.click("#new-role")
    owner.wait_for_selector("#role-name")
    # The builder offers the Billing Manager's powers only: nothing the Owner alone holds.
    offered = owner.locator("[data-permission]").evaluate_all("els => els.map(e => e.dataset.permission)")
    assert "refund" in offered and "approve_refunds" in offered, offered
    for owner_only in ("manage_team", "view_audit", "manage_settings", "manage_billy_plan"):
        assert owner.locator(f"[data-permission='{owner_only}']").count() == 0, owner_only
    owner.fill("#role-name", ROLE)
    owner.locator("[data-permission='refund']").click()
    owner.wait_for_selector("#role-cap")
    owner.fill("#role-cap", "6000")
    owner.click("#save-role")
    error = owner.locator("#role-error")
    error.wait_for()
    assert "at most the Billing Manager's" in error.inner_text() and "$5,000.00" in error.inner_text()
    assert owner.locator("#role-name").is_visible()  # the builder stays open with what was typed
    assert owner.input_value("#role-name") == ROLE
    assert query(app_server, "SELECT id FROM custom_role") == []
    shot("cap-over-the-managers-refused")

    owner.fill("#role-cap", "20.00")
    owner.click("#save-role")
    created = owner.locator(f".role-row[data-role='{ROLE}']")
    created.wait_for()
    owner.wait_for_selector("#role-name", state="detached")  # the builder closed
    cells = created.locator("td").all_inner_texts()
    assert cells[1:4] == ["view billing data; issue refunds", "$20.00 per charge", "0"], cells
    assert owner.locator(".role-row").count() == 5
    ((role_id, permissions, caps),) = query(app_server, "SELECT id, permissions, refund_caps FROM custom_role")
    assert sorted(json.loads(permissions)) == ["refund", "view"] and json.loads(caps) == {"usd": 2000}
    role_key = f"custom:{role_id}"
    shot("support-lead-saved")

    # 3. Settings → Team: invite the lead as "Support lead"; the mail names the role.
    open_settings(owner, "team")
    owner.locator(f".member-row[data-email='{OWNER}']").wait_for()
    owner.locator(".invite-email input").first.fill(LEAD)
    owner.locator(".invite-role").first.click()
    owner.get_by_role("option", name=ROLE).click()
    owner.wait_for_selector(f".invite-role:has-text('{ROLE}')")
    owner.click("#send-invites")
    owner.wait_for_selector(f".invite-result:has-text('Invite sent to {LEAD}')")
    invite_cells = owner.locator(".invite-row", has_text=LEAD).locator("td").all_inner_texts()
    assert invite_cells[:2] == [LEAD, ROLE], invite_cells
    shot("lead-invited")
    mail = wait_for_mail(mail_catcher, LEAD)
    assert f"on Agent Billy as {ROLE}." in mail.text
    (link,) = mail.links

    # The lead, in a browser of their own, accepts and lands on the dashboard as a Support lead.
    lead_context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC")
    lead = lead_context.new_page()
    lead_shot = Shots(lead, "custom-roles-lead")
    lead.goto(link)
    lead.wait_for_url(at("/invite"))
    summary = lead.locator("#invite-summary")
    summary.wait_for()
    assert summary.inner_text().endswith(f"as {ROLE}.")
    lead.fill("#name", LEAD_NAME)
    lead.fill("#password", LEAD_PASSWORD)
    lead.click("#accept-invite")
    lead.wait_for_url(at("/dashboard"))
    lead.wait_for_selector(f"#who-am-i:has-text('{LEAD}')")
    assert lead.locator("#who-am-i + .rt-Badge").inner_text() == ROLE
    lead.click("#sidebar .nav-settings")
    lead.wait_for_selector("#settings-tab-sync")
    assert lead.locator("#settings-tab-roles, #settings-tab-team, #settings-tab-audit").count() == 0
    lead.go_back()
    lead.wait_for_url(at("/dashboard"))
    assert query(app_server, "SELECT role FROM member WHERE email = :e", e=LEAD) == [(role_key,)]
    lead_shot("lead-dashboard")

    # 4. The lead tries a full refund of Jane Smith's $45.99: over their $20.00 limit, so the
    #    dialog offers a request for approval instead; they send it with a note.
    row = open_jane_smith(lead)
    charge_id = row.get_attribute("data-charge") or ""
    assert charge_id.startswith("ch_") and "$45.99" in row.inner_text()
    row.locator(".refund-button").click()
    lead.wait_for_selector("#refund-summary:has-text('Refund $45.99 of $45.99')")
    problem = lead.locator("#refund-problem")
    problem.wait_for()
    assert f"over your {ROLE} limit of $20.00 per charge" in problem.inner_text()
    assert lead.locator("#confirm-refund").count() == 0  # no way to refund it oneself
    lead.wait_for_selector("#request-approval")
    lead_shot("over-the-limit")
    lead.fill("#refund-request-note", NOTE)
    lead.click("#request-approval")
    lead.wait_for_selector("text=Asked for approval of a $45.99 refund")
    lead.wait_for_selector("#refund-request-note", state="detached")
    lead_shot("request-sent")

    # Nothing was refunded: not in Stripe, not in the store; one request waits.
    assert stripe_api.v1.refunds.list(params={"charge": charge_id}).data == []
    assert query(app_server, "SELECT amount_refunded FROM stripe_charge WHERE id = :c", c=charge_id) == [(0,)]
    requests = query(
        app_server,
        "SELECT id, amount, status, note, requester_email FROM refund_request WHERE charge_id = :c",
        c=charge_id,
    )
    assert [r[1:] for r in requests] == [(JANE_AMOUNT, "pending", NOTE, LEAD)]
    request_id = str(requests[0][0])

    # The lead sees it waiting under their own requests, and has no queue to decide.
    assert lead.locator("#nav-badge-approvals").count() == 0  # nothing waits on the lead's decision
    lead.get_by_role("link", name=re.compile(r"^Refund requests")).click()
    lead.wait_for_url(at("/approvals"))
    mine = lead.locator(f".my-request-row[data-request='{request_id}']")
    mine.wait_for()
    assert "Waiting" in mine.inner_text() and "$45.99" in mine.inner_text()
    assert lead.locator("#queue-table, #queue-empty, .approve-button").count() == 0
    lead_shot("lead-request-waiting")

    # 5. The Owner opens Refund requests: the lead's request with amount, requester and note.
    owner.wait_for_selector("#nav-badge-approvals:has-text('1')")  # the badge counts it, live
    owner.get_by_role("link", name=re.compile(r"^Refund requests")).click()
    owner.wait_for_url(at("/approvals"))
    waiting = owner.locator(f".request-row[data-request='{request_id}']")
    waiting.wait_for()
    text = waiting.inner_text()
    assert "$45.99" in text and LEAD in text and NOTE in text and "Jane Smith" in text, text
    shot("queue")
    waiting.locator(".approve-button").click()
    owner.wait_for_selector("#confirm-decision")
    dialog = owner.get_by_role("dialog")
    assert f"Refund $45.99 on Order #5678 (Jane Smith), asked by {LEAD}." in dialog.inner_text()
    owner.fill("#decision-note", "Checked the duplicate charge in Stripe.")
    shot("approve-dialog")
    owner.click("#confirm-decision")
    owner.wait_for_selector("text=Approved: $45.99 refunded to the customer in your name")
    owner.wait_for_selector("#confirm-decision", state="detached")
    assert owner.locator(".request-row").count() == 0
    owner.wait_for_selector("#queue-empty")
    shot("approved")

    # The refund happened once, in Stripe and in the store.
    refunds = stripe_api.v1.refunds.list(params={"charge": charge_id}).data
    assert [r.amount for r in refunds] == [JANE_AMOUNT]
    ((status, decider, refund_id, decision_note),) = query(
        app_server,
        "SELECT status, decider_email, refund_id, decision_note FROM refund_request WHERE id = :i",
        i=request_id,
    )
    assert (status, decider, refund_id, decision_note) == (
        "approved",
        OWNER,
        refunds[0].id,
        "Checked the duplicate charge in Stripe.",
    )
    assert query(app_server, "SELECT amount_refunded FROM stripe_charge WHERE id = :c", c=charge_id) == [(JANE_AMOUNT,)]

    # The audit rows: the lead asked, the Owner approved (naming the lead) and refunded.
    audit = query(
        app_server,
        "SELECT action, actor_email, actor_role, outcome, amount, target_ids, details FROM audit_log "
        "WHERE action IN ('refunds.request', 'refunds.approve', 'charges.refund') ORDER BY id",
    )
    by_action = {a[0]: a for a in audit}
    assert sorted(by_action) == ["charges.refund", "refunds.approve", "refunds.request"], audit
    assert [a[0] for a in audit].count("charges.refund") == 1
    asked, approved, refunded = by_action["refunds.request"], by_action["refunds.approve"], by_action["charges.refund"]
    assert asked[1:5] == (LEAD, role_key, "ok", JANE_AMOUNT), asked
    assert charge_id in json.loads(asked[5])
    assert approved[1:5] == (OWNER, "owner", "ok", JANE_AMOUNT), approved
    assert {charge_id, refund_id} <= set(json.loads(approved[5]))
    assert json.loads(approved[6])["requested_by"] == LEAD
    assert refunded[1:5] == (OWNER, "owner", "ok", JANE_AMOUNT), refunded

    # The charge shows refunded on Jane Smith's page.
    row = open_jane_smith(owner)
    owner.wait_for_selector(".charge-row:has-text('5678'):has-text('Refunded')")
    assert row.locator(".refund-button").count() == 0
    shot("charge-refunded")

    # The lead sees their request approved, by the Owner.
    lead.reload()
    mine = lead.locator(f".my-request-row[data-request='{request_id}']")
    mine.wait_for()
    lead.wait_for_selector(f".my-request-row[data-request='{request_id}']:has-text('Approved')")
    assert OWNER in mine.inner_text() and refund_id in mine.inner_text()
    assert mine.locator(".withdraw-button").count() == 0
    lead_shot("lead-sees-approved")

    # 6. Within the cap, the lead's refund goes straight through: $10.00 of another charge.
    other = query(
        app_server,
        "SELECT c.id, c.customer_id FROM stripe_charge c WHERE c.status = 'succeeded' AND c.amount_refunded = 0 "
        "AND c.amount >= 2000 AND c.currency = 'usd' AND c.id != :c AND c.customer_id IS NOT NULL "
        "ORDER BY c.created DESC LIMIT 1",
        c=charge_id,
    )
    assert other, "the seeded sandbox has no other unrefunded charge"
    other_charge, other_customer = other[0]
    lead.goto(f"{app_server.url}/customers/{other_customer}")
    other_row = lead.locator(f".charge-row[data-charge='{other_charge}']")
    other_row.wait_for()
    other_row.locator(".refund-button").click()
    lead.get_by_role("radio", name="Partial").click()
    lead.fill("#refund-amount", "10.00")
    lead.wait_for_selector("#refund-summary:has-text('Refund $10.00 of')")
    assert lead.locator("#refund-problem, #request-approval").count() == 0
    # Custom roles take the Billing Clerk's daily budget (issue 15), shown before confirming.
    budget_left = "Today: $500.00 of your Support lead daily refund budget of $500.00 left."
    lead.wait_for_selector(f"#refund-budget-left:has-text('{budget_left}')")
    lead_shot("within-the-limit")
    lead.click("#confirm-refund")
    lead.wait_for_selector("text=Refunded $10.00")
    lead.wait_for_selector(f".charge-row[data-charge='{other_charge}']:has-text('Partly refunded ($10.00)')")
    lead_shot("refunded-within-the-limit")
    assert [r.amount for r in stripe_api.v1.refunds.list(params={"charge": other_charge}).data] == [1000]
    lead_refunds = query(
        app_server,
        "SELECT actor_email, actor_role, outcome, amount FROM audit_log WHERE action = 'charges.refund' "
        "AND actor_email = :e",
        e=LEAD,
    )
    assert lead_refunds == [(LEAD, role_key, "ok", 1000)]
    assert len(query(app_server, "SELECT id FROM refund_request")) == 1  # no request for this one

    # 7. Spend controls (issue 15): the Owner lowers the Support lead's daily budget to $15.00;
    #    the lead, $10.00 into it, is refused another $10.00 and offered a request instead.
    open_settings(owner, "spend")
    lead_budget = owner.locator(f".budget-row[data-scope='role:{role_key}']")
    lead_budget.wait_for()
    assert lead_budget.locator("td").all_inner_texts()[:3] == [ROLE, "USD", "$500.00"]
    assert "$25,000.00" in owner.locator(".budget-row[data-scope='role:billing_manager']").inner_text()
    assert "$10.00" in owner.locator(f".spend-member-row[data-email='{LEAD}']").inner_text()  # refunded today
    owner.locator("#budget-scope").click()
    owner.get_by_role("option", name=ROLE).click()
    owner.fill("#budget-amount", "15.00")
    owner.click("#save-budget")
    owner.wait_for_selector("#form-message:has-text('Saved: $15.00 a day.')")
    owner.wait_for_selector(f".budget-row[data-scope='role:{role_key}']:has-text('$15.00')")
    # Working hours are the team's own: the Owner picks the organisation's zone.
    owner.get_by_label("Working hours are 09:00–18:00 on weekdays in").select_option("Europe/Berlin")
    owner.click("#save-zone")
    owner.wait_for_selector("#form-message:has-text('09:00–18:00 on weekdays in Europe/Berlin')")
    assert query(app_server, "SELECT time_zone FROM organization") == [("Europe/Berlin",)]
    shot("spend-controls")

    def lead_tries_ten_dollars() -> str:
        lead.goto(f"{app_server.url}/customers/{other_customer}")
        lead.locator(f".charge-row[data-charge='{other_charge}'] .refund-button").click()
        lead.get_by_role("radio", name="Partial").click()
        lead.fill("#refund-amount", "10.00")
        lead.wait_for_selector("#refund-summary:has-text('Refund $10.00 of')")
        problem = lead.locator("#refund-problem")
        problem.wait_for()
        return problem.inner_text()

    refused = lead_tries_ten_dollars()
    assert "over your Support lead daily refund budget of $15.00. $5.00 is left." in refused, refused
    lead.wait_for_selector("#request-approval")  # over budget, as over the cap, becomes a request
    lead_shot("over-the-daily-budget")

    # The Owner freezes the lead: the lead still reads, and is refused any change.
    owner.locator(f".spend-member-row[data-email='{LEAD}'] .freeze-member").click()
    owner.wait_for_selector(f".spend-member-row[data-email='{LEAD}']:has-text('frozen')")
    lead.goto(f"{app_server.url}/customers/{other_customer}")
    frozen_button = lead.locator(f".charge-row[data-charge='{other_charge}'] .refund-button")
    # Shown, disabled, saying why: once the page has the lead's standing (rows may paint a moment before).
    expect(frozen_button).to_be_disabled()
    expect(frozen_button).to_have_attribute("title", re.compile(r"^The Owner has frozen your changes"))
    lead_shot("frozen")
    owner.locator(f".spend-member-row[data-email='{LEAD}'] .unfreeze-member").click()
    owner.wait_for_selector(f".spend-member-row[data-email='{LEAD}'] .freeze-member")
    # The same from Settings → Team.
    frozen_at = "SELECT frozen_at IS NOT NULL FROM member WHERE email = :e"
    open_settings(owner, "team")
    owner.locator(f".member-row[data-email='{LEAD}'] .freeze-member").click()
    owner.wait_for_selector(f".member-row[data-email='{LEAD}'] .unfreeze-member")
    assert query(app_server, frozen_at, e=LEAD) == [(1,)]
    owner.locator(f".member-row[data-email='{LEAD}'] .unfreeze-member").click()
    owner.wait_for_selector(f".member-row[data-email='{LEAD}'] .freeze-member")
    assert query(app_server, frozen_at, e=LEAD) == [(0,)]
    open_settings(owner, "spend")
    # Freeze all billing changes, for an incident, then lift it.
    owner.get_by_role("button", name="Freeze all billing changes").click()
    owner.get_by_role("alertdialog").get_by_role("button", name="Freeze").click()
    owner.wait_for_selector("#writes-frozen")
    assert query(app_server, "SELECT writes_frozen_at IS NOT NULL FROM organization") == [(1,)]
    shot("all-writes-frozen")
    owner.click("#unfreeze-all")
    owner.wait_for_selector("#writes-frozen", state="detached")
    freezes = query(
        app_server,
        "SELECT action, outcome FROM audit_log WHERE action IN ('spend.manage', 'spend.freeze', 'spend.unfreeze') "
        "ORDER BY id",
    )
    # The budget and the zone, then three freezes lifted.
    assert freezes == [("spend.manage", "ok")] * 2 + [("spend.freeze", "ok"), ("spend.unfreeze", "ok")] * 3

    # 8. Alerts (issue 15): the Owner tunes "refused attempts" down to one; the lead opens the
    #    Owner's Team page and is refused; the Owner's open page shows the alert live, the mail
    #    comes, and the lead is frozen from the alert itself.
    rule = owner.locator(".rule-row[data-rule='failed_attempts']")
    rule.locator("input[name='threshold']").fill("1")
    rule.get_by_role("button", name="Save").click()
    owner.wait_for_selector("#form-message:has-text('Rule saved.')")
    lead.goto(f"{app_server.url}/settings/team")
    lead.wait_for_selector("#team-refused")
    alert = owner.locator(".alert-row", has_text=f"{LEAD} was refused 1 time within an hour")
    alert.wait_for(timeout=15_000)
    owner.wait_for_selector("#nav-badge-settings-team")
    mail = wait_for_mail(mail_catcher, OWNER)
    assert "spend alert" in mail.subject and f"{LEAD} was refused" in mail.text
    # The mail's link opens this alert, picked out, with its Freeze beside it.
    freeze_link = re.search(r"http\S+/settings/spend\?alert=\d+", mail.text)
    assert freeze_link, mail.text
    owner.goto(freeze_link.group(0))
    focused = owner.locator(".alert-focus", has_text=f"{LEAD} was refused")
    focused.wait_for()
    shot("spend-alert")
    focused.locator(".alert-freeze").click()
    owner.wait_for_selector(f".spend-member-row[data-email='{LEAD}'] .unfreeze-member")
    assert query(app_server, "SELECT frozen_at IS NOT NULL FROM member WHERE email = :e", e=LEAD) == [(1,)]
    # Its audit rows: the viewer shows just those, and can show every row again.
    owner.locator(".alert-focus .alert-audit").click()
    owner.wait_for_selector("#audit-showing-ids")
    owner.wait_for_selector("#audit-table tbody tr")
    shown = owner.locator("#audit-table tbody tr").all_inner_texts()
    assert shown and all(LEAD in row for row in shown), shown
    owner.get_by_role("button", name="Show every row").click()
    owner.wait_for_selector("#audit-showing-ids", state="detached")
    owner.wait_for_selector(f"#audit-table tbody tr:has-text('{OWNER}')")

    lead_context.close()
    owner_context.close()
