"""The failed-payments report for a chosen period and payment-update emails (issue 12), against
the sandbox and both stores.

Failed charges are arranged with Stripe's decline test cards (backdated through the sandbox's
/_config/backdate) or come from the seeded demo data; Billy reads them after a sync. Mail goes
to the real SMTP catcher. The sandbox leaves `hosted_invoice_url` empty on every invoice (Stripe
fills it on finalized invoices), so the test for the link stores the open invoice as Stripe
would answer it, with its hosted page, before drafting.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
from sqlmodel import select

from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.state.failed_payments import FailedPaymentsState
from controlplane.local_http import local_http
from devtools.mailcatcher import CatcherHandle
from sandbox.seed import FAILURE_SOURCES, plan, reset_to_demo
from services import clock, exports, failed_payments, identity, mirror, stripe_keys
from services.db import run_transaction, session_scope
from services.errors import PermissionDenied, ValidationFailed
from services.failed_payments import FailedPaymentsReport
from services.models import AuditEntry, StripeCustomer, StripeInvoice
from services.permissions import Actor
from tests.conftest import StripePeer, member_actor
from tests.reflex_events import event_pipeline
from tests.stripe_helpers import sync_lists

DAY = 86_400
MEMBER_PASSWORD = "another-long-password"  # `member_actor`'s
HOSTED = "https://invoice.stripe.com/i/acct_billy/test_eve_invoice"


def key() -> str:
    return secrets.token_urlsafe(24)


def _backdate(peer: StripePeer, object_id: str, created: int) -> None:
    local_http().post(
        f"{peer.url}/_config/backdate", json={"id": object_id, "created": created}, timeout=10
    ).raise_for_status()


def _customer(peer: StripePeer, name: str, email: str | None, source: str | None = None) -> str:
    params: dict[str, Any] = {"name": name}
    if email:
        params["email"] = email
    if source:
        params["source"] = source
    return str(peer.secret_client().v1.customers.create(params=params).id)


def _charge(peer: StripePeer, customer: str, amount: int, card: str, created: int) -> str:
    """A charge on one of Stripe's test cards (a declined one leaves a failed charge), backdated."""
    client = peer.secret_client()
    params = {"amount": amount, "currency": "usd", "customer": customer, "source": card, "description": "Order"}
    try:
        charge_id = str(client.v1.charges.create(params=params).id)
    except stripe.CardError as exc:
        charge_id = str((exc.json_body or {})["error"]["charge"])
    _backdate(peer, charge_id, created)
    return charge_id


class Arranged:
    def __init__(self, now: int, ids: dict[str, str]) -> None:
        self.now = now
        self.ids = ids

    def period(self, days: int) -> tuple[datetime, datetime]:
        end = datetime.fromtimestamp(self.now, UTC) + timedelta(hours=1)
        return end - timedelta(days=days), end


@pytest.fixture
def arranged(any_store, any_store_owner: Actor, stripe_peer: StripePeer) -> Arranged:  # type: ignore[no-untyped-def]
    """Ann: two expired-card failures (a repeat customer) and a success; Bob: insufficient funds;
    Cara (no email): a Radar block; Dan: a processing error 10 days ago and a decline 40 days ago;
    Eve: her card declined an invoice's payment, which leaves the invoice open."""
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    now = int(time.time())
    ids = {
        "ann": _customer(stripe_peer, "Ann Expired", "ann@example.com"),
        "bob": _customer(stripe_peer, "Bob Broke", "bob@example.com"),
        "cara": _customer(stripe_peer, "Cara Carder", None),
        "dan": _customer(stripe_peer, "Dan Decline", "dan@example.com"),
        "eve": _customer(stripe_peer, "Eve Invoice", "eve@example.com", source="tok_chargeCustomerFail"),
    }
    _charge(stripe_peer, ids["ann"], 4500, "tok_chargeDeclinedExpiredCard", now - 2 * DAY)
    _charge(stripe_peer, ids["ann"], 4500, "tok_chargeDeclinedExpiredCard", now - 5 * DAY)
    _charge(stripe_peer, ids["ann"], 2000, "tok_visa", now - 1 * DAY)
    _charge(stripe_peer, ids["bob"], 12000, "tok_chargeDeclinedInsufficientFunds", now - 3 * DAY)
    _charge(stripe_peer, ids["cara"], 30000, "tok_radarBlock", now - 4 * DAY)
    _charge(stripe_peer, ids["dan"], 1000, "tok_chargeDeclinedProcessingError", now - 10 * DAY)
    _charge(stripe_peer, ids["dan"], 1500, "tok_chargeDeclined", now - 40 * DAY)
    client = stripe_peer.secret_client()
    invoice = client.v1.invoices.create(params={"customer": ids["eve"]})
    client.v1.invoice_items.create(
        params={"customer": ids["eve"], "invoice": invoice.id, "amount": 8000, "currency": "usd"}
    )
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(invoice.id)
    ids["eve_invoice"] = str(invoice.id)
    sync_lists()
    return Arranged(now, ids)


@pytest.fixture
def manager(any_store_owner: Actor) -> Actor:
    return member_actor("billing_manager", "manager@example.com")


def _groups(report: FailedPaymentsReport) -> dict[str, Any]:
    return {g.reason: g for g in report.groups}


def _audit() -> list[AuditEntry]:
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action == "payments.update_email")).all()
        return sorted(rows, key=lambda r: r.id or 0)


def _give_hosted_page(invoice_id: str) -> None:
    """Store Eve's open invoice as Stripe answers it: finalized invoices carry their hosted page."""
    with session_scope() as s:
        row = s.get(StripeInvoice, invoice_id)
        assert row is not None and row.status == "open"
        answer = {**row.raw, "hosted_invoice_url": HOSTED}
    run_transaction(
        lambda session: mirror.write_objects(session, "invoice", [answer], int(time.time()) + 60, replace_equal=True)
    )


# --- the report ---------------------------------------------------------------------------------


def test_the_report_groups_counts_totals_and_marks_repeat_customers(arranged: Arranged, any_store_owner: Actor) -> None:
    viewer = member_actor("read_only", "viewer@example.com")  # every role may read it
    start, end = arranged.period(30)
    report = failed_payments.failed_payments_report(viewer, start, end, "Europe/Paris")
    groups = _groups(report)
    assert [g.label for g in report.groups] == ["Expired card", "Insufficient funds", "Fraud block", "Other"]
    assert [(g.count, [m.text for m in g.totals]) for g in report.groups] == [
        (2, ["$90.00"]),
        (1, ["$120.00"]),
        (1, ["$300.00"]),
        (2, ["$90.00"]),  # Dan's processing error and Eve's declined invoice; Dan's older decline is outside
    ]
    assert (report.count, [m.text for m in report.totals]) == (6, ["$600.00"])
    assert (report.customers, report.repeat_customers, report.customers_without_email) == (5, 1, 1)

    (ann,) = groups["expired_card"].customers
    assert (ann.customer.name, ann.count, ann.period_failures, ann.repeat) == ("Ann Expired", 2, 2, True)
    assert [(f.amount.text, f.card) for f in ann.failures] == [("$45.00", "Visa •••• 0069")] * 2
    assert ann.failures[0].created > ann.failures[1].created  # newest first
    (bob,) = groups["insufficient_funds"].customers
    assert (bob.customer.name, bob.repeat, bob.has_email) == ("Bob Broke", False, True)
    (cara,) = groups["fraud"].customers
    assert (cara.customer.name, cara.has_email, cara.customer.email) == ("Cara Carder", False, "")
    assert sorted(c.customer.name for c in groups["other"].customers) == ["Dan Decline", "Eve Invoice"]
    assert report.label.endswith("(Europe/Paris)")


def test_a_longer_period_takes_in_older_failures_and_makes_a_repeat_customer(arranged: Arranged) -> None:
    start, end = arranged.period(60)
    report = failed_payments.failed_payments_report(member_actor("billing_clerk", "c@example.com"), start, end)
    other = _groups(report)["other"]
    assert (other.count, [m.text for m in other.totals]) == (3, ["$105.00"])
    dan = next(c for c in other.customers if c.customer.id == arranged.ids["dan"])
    assert (dan.count, dan.repeat) == (2, True)
    assert report.repeat_customers == 2


def test_period_bounds_start_included_end_excluded_and_refused_in_words(arranged: Arranged, manager: Actor) -> None:
    ann_older = datetime.fromtimestamp(arranged.now - 5 * DAY, UTC)  # the older of Ann's failures
    report = failed_payments.failed_payments_report(manager, ann_older, ann_older + timedelta(days=2))
    assert _groups(report)["expired_card"].count == 1  # at the start: in
    report = failed_payments.failed_payments_report(manager, ann_older - timedelta(days=1), ann_older)
    assert _groups(report)["expired_card"].count == 0  # at the end: out
    for start, end, words in [
        (ann_older, ann_older, "must end after it starts"),
        (ann_older, ann_older - timedelta(days=1), "must end after it starts"),
        (ann_older - timedelta(days=367), ann_older, "at most 366 days"),
        (ann_older.replace(tzinfo=None), ann_older + timedelta(days=1), "time zone"),
    ]:
        with pytest.raises(ValidationFailed, match=words):
            failed_payments.failed_payments_report(manager, start, end)
    with pytest.raises(ValidationFailed, match="after the 'to' date"):
        failed_payments.custom_period("2026-03-10", "2026-03-01", "UTC")
    with pytest.raises(ValidationFailed, match="at most 366 days"):
        failed_payments.custom_period("2025-01-01", "2026-01-02", "UTC")
    with pytest.raises(ValidationFailed, match="Choose a period from the list"):
        failed_payments.preset_period("last_year", "UTC")


def test_presets_and_picked_days_are_read_in_the_time_zone(any_store_owner: Actor) -> None:
    with clock.freeze(datetime(2026, 3, 1, 2, 30, tzinfo=UTC)):  # still 28 February in New York
        month = failed_payments.preset_period("this_month", "America/New_York")
        assert (month.start, month.end) == (
            datetime(2026, 2, 1, 5, tzinfo=UTC),
            datetime(2026, 3, 1, 5, tzinfo=UTC),
        )
        last = failed_payments.preset_period("last_month", "America/New_York")
        assert (last.start, last.end) == (datetime(2026, 1, 1, 5, tzinfo=UTC), datetime(2026, 2, 1, 5, tzinfo=UTC))
        week = failed_payments.preset_period("last_7_days", "America/New_York")
        assert week.end - week.start == timedelta(days=7) and week.end > clock.now()
        february = failed_payments.preset_period("last_month", "Europe/Paris")  # already March in Paris
        assert february.start == datetime(2026, 1, 31, 23, tzinfo=UTC)
    days = failed_payments.custom_period("2026-03-01", "2026-03-31", "Europe/Paris")
    assert (days.start, days.end) == (datetime(2026, 2, 28, 23, tzinfo=UTC), datetime(2026, 3, 31, 22, tzinfo=UTC))
    assert days.label == "1 March 2026 – 31 March 2026 (Europe/Paris)"


def test_the_seeded_demo_data_shows_each_reason_as_the_seed_made_it(
    any_store: object, any_store_owner: Actor, stripe_peer: StripePeer
) -> None:
    reset_to_demo(stripe_peer.url, customers=50)
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    sync_lists()
    planned: Counter[str] = Counter()
    amounts: dict[str, int] = defaultdict(int)
    per_customer: Counter[str] = Counter()
    for person in plan(42, 50):
        for charge in person.charges:
            if charge.outcome in FAILURE_SOURCES:
                planned[charge.outcome] += 1
                amounts[charge.outcome] += charge.amount
                per_customer[person.name] += 1
    now = datetime.now(UTC)
    report = failed_payments.failed_payments_report(any_store_owner, now - timedelta(days=100), now + timedelta(days=1))
    groups = _groups(report)
    for reason in FAILURE_SOURCES:  # expired_card, insufficient_funds, fraud
        assert groups[reason].count == planned[reason] >= 2
        assert [m.amount for m in groups[reason].totals] == [amounts[reason]]
    assert groups["other"].count >= 1  # renewals declined on the seed's failing card
    repeaters = {c.customer.name for g in report.groups for c in g.customers if c.repeat}
    assert {name for name, n in per_customer.items() if n >= 2} <= repeaters
    # A draft for a seeded repeat customer whose every failure is an expired card: that card, no link.
    ann_like = next(c for c in groups["expired_card"].customers if c.repeat and c.count == c.period_failures)
    (draft,) = failed_payments.draft_payment_update_emails(
        any_store_owner, [ann_like.customer.id], now - timedelta(days=100), now + timedelta(days=1)
    )
    assert draft.card == "Visa •••• 0069" and draft.link == ""
    assert "update the card we have on file" in draft.body and ann_like.customer.name.split()[0] in draft.body


# --- who may send -------------------------------------------------------------------------------


def test_read_only_and_clerks_may_read_but_not_email_and_are_audited(
    arranged: Arranged, smtp_catcher: CatcherHandle
) -> None:
    start, end = arranged.period(30)
    for role, email in (("read_only", "viewer@example.com"), ("billing_clerk", "clerk@example.com")):
        member = member_actor(role, email)
        assert failed_payments.failed_payments_report(member, start, end).count == 6
        with pytest.raises(PermissionDenied, match="cannot create or send invoices"):
            failed_payments.draft_payment_update_emails(member, [arranged.ids["ann"]], start, end)
        with pytest.raises(PermissionDenied, match="cannot create or send invoices"):
            failed_payments.send_payment_update_emails(
                member, [arranged.ids["ann"], arranged.ids["bob"]], "Hi", "Hello {name}", start, end, "UTC", key()
            )
    assert smtp_catcher.messages() == []
    rows = _audit()
    assert [(r.actor_email, r.outcome) for r in rows] == [
        ("viewer@example.com", "denied"),
        ("viewer@example.com", "denied"),
        ("clerk@example.com", "denied"),
        ("clerk@example.com", "denied"),
    ]
    assert rows[1].target_ids == [arranged.ids["ann"], arranged.ids["bob"]]


def test_a_forged_send_event_from_read_only_is_refused_and_audited(
    arranged: Arranged, smtp_catcher: CatcherHandle
) -> None:
    """The page shows Read Only no email button; a client that selects a customer and sends
    the dialog's submit event anyway is refused by the service, audited, and no mail leaves."""
    viewer = member_actor("read_only", "viewer@example.com")
    tokens = identity.login(viewer.email, MEMBER_PASSWORD, "127.0.0.1", "pytest-tab")
    with event_pipeline() as pipeline:
        tab = pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path="/failed-payments")
        loaded = tab.send(FailedPaymentsState, "load")
        assert "Ann Expired" in loaded.text
        tab.send(FailedPaymentsState, "toggle", {"customer_id": arranged.ids["ann"], "checked": True})
        sent = tab.send(
            FailedPaymentsState,
            "send_emails",
            {"form_data": {"subject": "Your card", "body": "Hello {name}, {link}"}},
        )
    assert "cannot create or send invoices" in sent.text
    assert smtp_catcher.messages() == []
    assert [(r.actor_email, r.outcome, r.target_ids) for r in _audit()] == [
        ("viewer@example.com", "denied", [arranged.ids["ann"]])
    ]


# --- a Manager sends --------------------------------------------------------------------------------


def test_drafts_are_prefilled_from_the_store_with_the_invoice_link(arranged: Arranged, manager: Actor) -> None:
    _give_hosted_page(arranged.ids["eve_invoice"])
    start, end = arranged.period(30)
    ann, eve, cara = failed_payments.draft_payment_update_emails(
        manager, [arranged.ids["ann"], arranged.ids["eve"], arranged.ids["cara"]], start, end, "UTC"
    )
    assert (ann.name, ann.email, ann.card, ann.amount, ann.link, ann.problem) == (
        "Ann Expired",
        "ann@example.com",
        "Visa •••• 0069",
        "$45.00",
        "",
        "",
    )
    assert "Hello Ann Expired" in ann.body and "ending in 0069" in ann.body and "update the card" in ann.body
    assert (eve.amount, eve.card, eve.link) == ("$80.00", "Visa •••• 0341", HOSTED)
    assert HOSTED in eve.body
    assert (cara.email, cara.problem, cara.sendable) == ("", "no email on file", False)


def test_a_manager_sends_each_customer_their_own_email_once(
    arranged: Arranged, manager: Actor, smtp_catcher: CatcherHandle
) -> None:
    _give_hosted_page(arranged.ids["eve_invoice"])
    start, end = arranged.period(30)
    chosen = [arranged.ids[n] for n in ("ann", "bob", "cara", "eve")]
    subject = "{name}, your {brand} payment to {org} did not go through"
    body = "Hi {name},\n\nWe could not charge {amount} to the card ending in {last4}.\n\n{link}"
    k = key()
    results = failed_payments.send_payment_update_emails(manager, chosen, subject, body, start, end, "UTC", k)
    assert [(r.customer_id, r.sent) for r in results] == [
        (arranged.ids["ann"], True),
        (arranged.ids["bob"], True),
        (arranged.ids["cara"], False),
        (arranged.ids["eve"], True),
    ]
    assert results[2].message == "Not sent: no email on file"
    mails = {m.to: m for m in smtp_catcher.messages()}
    assert sorted(mails) == ["ann@example.com", "bob@example.com", "eve@example.com"]
    ann, bob, eve = mails["ann@example.com"], mails["bob@example.com"], mails["eve@example.com"]
    assert ann.subject == "Ann Expired, your Visa payment to Acme Ltd did not go through"
    assert "Hi Ann Expired," in ann.text and "$45.00" in ann.text and "ending in 0069" in ann.text
    assert "update the card we have on file" in ann.text and ann.links == []
    assert "Hi Bob Broke," in bob.text and "$120.00" in bob.text and "ending in 9995" in bob.text
    assert "Hi Eve Invoice," in eve.text and "$80.00" in eve.text and "ending in 0341" in eve.text
    assert eve.links == [HOSTED]
    assert ann.text.rstrip().endswith("— Acme Ltd")

    rows = _audit()
    assert [(r.target_ids, r.outcome, r.amount) for r in rows] == [
        ([arranged.ids["ann"]], "ok", 4500),
        ([arranged.ids["bob"]], "ok", 12000),
        ([arranged.ids["cara"]], "failed", 30000),
        ([arranged.ids["eve"]], "ok", 8000),
    ]
    assert rows[2].error == "no email on file"
    for row in rows:  # customers by id only: no names or addresses in the log
        assert "example.com" not in f"{row.details} {row.error}" and "Ann" not in str(row.details)

    again = failed_payments.send_payment_update_emails(manager, chosen, subject, body, start, end, "UTC", k)
    assert [r.sent for r in again] == [False, False, False, False]
    assert [r.replayed for r in again] == [True, True, False, True]
    assert len(smtp_catcher.messages()) == 3  # nobody twice
    assert [r.details.get("replay", False) for r in _audit()[4:]] == [True, True, False, True]


def test_a_mail_server_refusal_is_reported_per_recipient_and_may_be_retried(
    arranged: Arranged, manager: Actor, smtp_catcher: CatcherHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    start, end = arranged.period(30)
    chosen = [arranged.ids["ann"], arranged.ids["bob"]]
    from services import mailer

    real = mailer.SmtpMailer.send

    def refuse_bob(self: mailer.SmtpMailer, mail: mailer.OutgoingMail) -> None:
        if mail.to == "bob@example.com":
            raise mailer.MailDeliveryFailed(mail.to, "the mail server answered 450 try later", retryable=True)
        real(self, mail)

    monkeypatch.setattr(mailer.SmtpMailer, "send", refuse_bob)
    k = key()
    first = failed_payments.send_payment_update_emails(manager, chosen, "Hi", "Hello {name}", start, end, "UTC", k)
    assert [r.sent for r in first] == [True, False]
    assert "could not send the email to bob@example.com" in first[1].message  # one failure never stops the rest
    monkeypatch.setattr(mailer.SmtpMailer, "send", real)
    retried = failed_payments.send_payment_update_emails(manager, chosen, "Hi", "Hello {name}", start, end, "UTC", k)
    assert [(r.sent, r.replayed) for r in retried] == [(False, True), (True, False)]
    assert sorted(m.to for m in smtp_catcher.messages()) == ["ann@example.com", "bob@example.com"]
    assert [r.outcome for r in _audit()] == ["ok", "failed", "ok", "ok"]
    assert "bob@example.com" not in (_audit()[1].error or "")


def test_templates_outside_the_allowed_placeholders_are_refused_in_words(
    arranged: Arranged, manager: Actor, smtp_catcher: CatcherHandle
) -> None:
    refused = [
        ("Hi", "Hello {name}, you owe {balance}.", r"uses \{balance\}, which Billy cannot fill in"),
        ("Hi", "Hello {name.__class__}", r"uses \{name.__class__\}"),
        ("Hi {0}", "Hello", r"subject uses \{0\}"),
        ("Hi", "", "Write a body"),
        ("Line one\nline two", "Hello", "one line"),
        ("x" * 201, "Hello", "at most 200 characters"),
        ("Hi", "Hello\x00", "cannot carry"),
    ]
    start, end = arranged.period(30)
    for subject, body, words in refused:
        with pytest.raises(ValidationFailed, match=words):
            failed_payments.send_payment_update_emails(
                manager, [arranged.ids["ann"]], subject, body, start, end, "UTC", key()
            )
    assert smtp_catcher.messages() == []
    assert [(r.outcome, r.target_ids) for r in _audit()] == [("failed", [arranged.ids["ann"]])] * len(refused)


def test_a_customer_name_with_braces_is_not_filled_in_again(any_store_owner: Actor) -> None:
    from services.payment_update_mail import render

    values = {"name": "Mal {link}", "brand": "Visa", "last4": "4242", "amount": "$1.00", "link": "L", "org": "O"}
    assert render("Hi {name}: {link} {unknown}", values) == "Hi Mal {link}: L {unknown}"


def test_bad_recipients_and_keys_are_refused_in_words(arranged: Arranged, manager: Actor) -> None:
    start, end = arranged.period(30)
    send = failed_payments.send_payment_update_emails
    with pytest.raises(ValidationFailed, match="at least one customer"):
        send(manager, [], "Hi", "Hello", start, end, "UTC", key())
    with pytest.raises(ValidationFailed, match="at most 200 customers"):
        send(manager, [f"cus_{i}" for i in range(201)], "Hi", "Hello", start, end, "UTC", key())
    with pytest.raises(ValidationFailed, match="not a Stripe customer id"):
        send(manager, ["ch_123"], "Hi", "Hello", start, end, "UTC", key())
    with pytest.raises(ValidationFailed, match="idempotency key"):
        send(manager, [arranged.ids["ann"]], "Hi", "Hello", start, end, "UTC", "short")
    (result,) = send(manager, [arranged.ids["dan"]], "Hi", "Hello", *arranged.period(5), "UTC", key())
    assert (result.sent, result.message) == (
        False,
        "Not sent: this customer has no failed payment in the chosen period",
    )


def test_a_customer_deleted_in_stripe_or_never_synced_gets_no_email(arranged: Arranged, manager: Actor) -> None:
    """Ann failed a payment in the period, then was deleted in Stripe: she is not written to,
    and neither is a customer Billy has never synced; each says why."""
    with session_scope() as session:
        ann = session.exec(select(StripeCustomer).where(StripeCustomer.id == arranged.ids["ann"])).one()
        ann.deleted = True
        session.add(ann)
    results = failed_payments.send_payment_update_emails(
        manager, [arranged.ids["ann"], "cus_neversynced"], "Hi", "Hello", *arranged.period(30), "UTC", key()
    )
    why = "Not sent: this customer is not in Billy's copy of Stripe (deleted, or not synced yet)"
    assert [(r.customer_id, r.sent, r.message) for r in results] == [
        (arranged.ids["ann"], False, why),
        ("cus_neversynced", False, why),
    ]


def test_a_manager_sends_through_the_page_events(
    arranged: Arranged, manager: Actor, smtp_catcher: CatcherHandle
) -> None:
    tokens = identity.login(manager.email, MEMBER_PASSWORD, "127.0.0.1", "pytest-tab")
    with event_pipeline() as pipeline:
        tab = pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path="/failed-payments")
        tab.send(FailedPaymentsState, "load")
        tab.send(FailedPaymentsState, "choose_preset", {"preset": "last_30_days"})
        for name in ("bob", "cara"):
            tab.send(FailedPaymentsState, "toggle", {"customer_id": arranged.ids[name], "checked": True})
        opened = tab.send(FailedPaymentsState, "open_email")
        assert "no email on file" in opened.text and "Bob Broke" in opened.text
        form = {"subject": "Your payment", "body": "Hello {name}, {amount} failed. {link}"}
        # As a browser submits it: the named fields, and also each control of the form by its id,
        # whose value may be null (a control not rendered just now).
        form |= {"email-subject": form["subject"], "email-body": form["body"], "send-payment-emails": None}
        sent = tab.send(FailedPaymentsState, "send_emails", {"form_data": form})
        assert "Sent to bob@example.com." in sent.text and "Not sent: no email on file" in sent.text
        resent = tab.send(FailedPaymentsState, "send_emails", {"form_data": form})  # a double submit
        assert "Already sent with this request" in resent.text
    (mail,) = smtp_catcher.messages()
    assert (mail.to, mail.subject) == ("bob@example.com", "Your payment")
    assert "Hello Bob Broke, $120.00 failed." in mail.text


def test_the_period_exports_as_csv(arranged: Arranged, manager: Actor) -> None:
    start, end = arranged.period(30)
    csv_text = "".join(exports.stream(manager, "failed-payments-period", exports.PeriodFilters(start, end)))
    lines = csv_text.strip().splitlines()
    assert len(lines) == 1 + 6 and all(",Failed," in line for line in lines[1:])
    with pytest.raises(ValidationFailed, match="at most 366 days"):
        list(exports.stream(manager, "failed-payments-period", exports.PeriodFilters(start - timedelta(days=400), end)))
