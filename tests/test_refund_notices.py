"""Refunds people hear about (issue 12): a note on a direct refund, the customer's confirmation
email, Stripe's refusals in plain words, and approvers and requesters told of refund requests.

Real peers throughout: the Stripe sandbox, a real SMTP catcher, SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import socket
from typing import Any

import pytest
import stripe
from sqlmodel import select

from devtools.mailcatcher import CatcherHandle, CaughtMail
from services import billing, mailer, refund_requests, stripe_keys
from services.config import get_settings
from services.db import session_scope
from services.errors import NotFound, PermissionDenied, StripeRequestFailed, ValidationFailed
from services.models import AuditEntry, Member
from services.permissions import Actor
from services.stripe_gateway import PLAIN_REFUSALS, StripeGateway, billy_error
from tests.conftest import StripePeer, member_actor
from tests.stripe_helpers import make_charge, sync_lists

NOTE = "Customer returned the parcel unopened; ticket #4411."
ASK = "The customer returned the whole order; see ticket #4411."


def key() -> str:
    return secrets.token_urlsafe(24)


def audit_rows(action: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def charge_of(peer: StripePeer, amount: int, description: str = "Order #5678", customer: str | None = None) -> str:
    charge_id = make_charge(peer, amount, customer=customer, description=description)["id"]
    sync_lists()
    return charge_id


def mails_to(catcher: CatcherHandle) -> dict[str, list[CaughtMail]]:
    by_recipient: dict[str, list[CaughtMail]] = {}
    for mail in catcher.messages():
        by_recipient.setdefault(mail.to, []).append(mail)
    return by_recipient


@pytest.fixture
def connected(any_store, any_store_owner, stripe_peer: StripePeer) -> StripePeer:  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    return stripe_peer


@pytest.fixture
def dead_mail_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """SMTP settings pointing at a port nobody listens on, with quick retries."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("BILLY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("BILLY_SMTP_PORT", str(port))
    monkeypatch.setenv("BILLY_SMTP_TLS", "none")
    get_settings.cache_clear()
    quick = mailer.SmtpMailer(get_settings(), attempts=2, retry_wait=0.01, timeout=2)
    monkeypatch.setattr(billing, "get_mailer", lambda: quick)


# --- 1. a note on a direct refund ------------------------------------------------------------------


def test_the_note_reaches_the_audit_row_and_the_refund_in_stripe(connected, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 4599)
    long_note = NOTE + "\x00\x1b" + " more detail" * 60  # control characters go; > 500 characters stays whole here
    done = billing.issue_refund(any_store_owner, charge_id, 1000, None, key(), note=long_note)
    cleaned = (NOTE + " more detail" * 60).strip()
    assert len(cleaned) > billing.STRIPE_METADATA_VALUE_MAX

    (row,) = audit_rows("charges.refund")
    assert row.outcome == "ok" and row.details["note"] == cleaned
    in_stripe = connected.secret_client().v1.refunds.retrieve(done.refund_id)
    assert in_stripe.metadata["billy_note"] == cleaned[: billing.STRIPE_METADATA_VALUE_MAX]
    assert in_stripe.metadata["billy_member"] == str(any_store_owner.user_id)
    assert done.email_outcome == "" and not done.email_sent  # no email was asked for

    plain = billing.issue_refund(any_store_owner, charge_id, 500, None, key())  # the note stays optional
    assert "billy_note" not in connected.secret_client().v1.refunds.retrieve(plain.refund_id).metadata


def test_a_note_over_the_limit_is_refused_before_stripe_is_asked(connected, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 4599)
    with pytest.raises(ValidationFailed, match="Keep the note under 1000 characters"):
        billing.issue_refund(any_store_owner, charge_id, 1000, None, key(), note="x" * 1001)
    assert connected.secret_client().v1.charges.retrieve(charge_id).amount_refunded == 0
    assert [r.outcome for r in audit_rows("charges.refund")] == ["failed"]


# --- 2. the customer's confirmation email ----------------------------------------------------------


def test_the_confirmation_email_reaches_the_customer_with_amount_order_and_wording(  # type: ignore[no-untyped-def]
    connected, any_store_owner, smtp_catcher: CatcherHandle
) -> None:
    charge_id = charge_of(connected, 4599, "Order #5678")
    preview = billing.preview_refund(any_store_owner, charge_id, 1000)
    assert (preview.customer_email, preview.no_email_reason) == ("jane.smith@example.com", "")

    done = billing.issue_refund(any_store_owner, charge_id, 1000, None, key(), email_customer=True)

    assert done.email_sent and done.emailed_to == "jane.smith@example.com"
    assert done.email_outcome == "A confirmation email went to jane.smith@example.com."
    (mail,) = smtp_catcher.messages()
    assert mail.to == "jane.smith@example.com"
    assert mail.subject == "Acme Ltd refunded $10.00 to you"
    assert "Acme Ltd has refunded $10.00 for “Order #5678”." in mail.text
    assert "You'll see it in 5–10 business days" in mail.text
    assert mail.html is not None and "5–10 business days" in mail.html

    (refund_row,) = audit_rows("charges.refund")
    (mail_row,) = audit_rows("refunds.confirmation_email")
    assert refund_row.id is not None and mail_row.id is not None and refund_row.id < mail_row.id  # after the refund
    customer_id = billing.get_charge(any_store_owner, charge_id).customer_id
    assert (mail_row.outcome, mail_row.amount, mail_row.currency) == ("ok", 1000, "usd")
    assert mail_row.target_ids == [charge_id, done.refund_id, customer_id]
    assert "jane" not in repr((mail_row.details, mail_row.error, mail_row.target_ids))  # customers by id only


def test_a_confirmation_can_be_sent_after_the_refund_and_only_for_a_real_one(  # type: ignore[no-untyped-def]
    connected, any_store_owner, smtp_catcher: CatcherHandle
) -> None:
    """ "Email her a confirmation", asked once the refund is done (an agent's second step)."""
    charge_id = charge_of(connected, 4599, "Order #5678")
    done = billing.issue_refund(any_store_owner, charge_id, 1000, None, key())
    assert smtp_catcher.messages() == []
    facts = billing.preview_refund_confirmation(any_store_owner, done.refund_id)
    assert (facts.to, facts.amount_label, facts.problem) == ("jane.smith@example.com", "$10.00", "")

    sent = billing.send_refund_confirmation(any_store_owner, done.refund_id)
    assert sent.emailed_to == "jane.smith@example.com"
    (mail,) = smtp_catcher.messages()
    assert mail.to == "jane.smith@example.com" and "has refunded $10.00" in mail.text
    (row,) = audit_rows("refunds.confirmation_email")
    assert row.outcome == "ok" and row.target_ids[:2] == [charge_id, done.refund_id]

    with pytest.raises(NotFound, match="No refund with that id"):
        billing.send_refund_confirmation(any_store_owner, "re_doesnotexist")
    viewer = member_actor("read_only", "viewer@example.com")
    with pytest.raises(PermissionDenied, match="Read Only"):
        billing.send_refund_confirmation(viewer, done.refund_id)
    assert len(smtp_catcher.messages()) == 1


def test_a_customer_without_an_email_gets_none_and_the_result_says_why(  # type: ignore[no-untyped-def]
    connected, any_store_owner, smtp_catcher: CatcherHandle
) -> None:
    nobody = connected.secret_client().v1.customers.create(params={"name": "No Mail"}).id
    charge_id = charge_of(connected, 2500, customer=nobody)
    preview = billing.preview_refund(any_store_owner, charge_id, None)
    assert preview.customer_email == "" and "no email address" in preview.no_email_reason

    done = billing.issue_refund(any_store_owner, charge_id, None, None, key(), email_customer=True)

    assert done.refund_id.startswith("re_") and done.charge.amount_refunded == 2500  # the refund stands
    assert not done.email_sent
    assert done.email_outcome == (
        "The refund is done, but no confirmation email was sent: "
        "The customer has no email address in Stripe, so no confirmation email can be sent."
    )
    assert smtp_catcher.messages() == []
    assert [r.outcome for r in audit_rows("charges.refund")] == ["ok"]
    (mail_row,) = audit_rows("refunds.confirmation_email")
    assert mail_row.outcome == "failed" and "no email address" in (mail_row.error or "")


def test_a_mail_failure_does_not_undo_the_refund_and_is_reported_and_audited(  # type: ignore[no-untyped-def]
    connected, any_store_owner, dead_mail_server
) -> None:
    charge_id = charge_of(connected, 4599)
    done = billing.issue_refund(any_store_owner, charge_id, 1000, None, key(), email_customer=True)

    assert connected.secret_client().v1.charges.retrieve(charge_id).amount_refunded == 1000
    assert not done.email_sent
    assert done.email_outcome.startswith("The refund is done, but no confirmation email was sent: ")
    assert "jane.smith@example.com" in done.email_outcome  # the refunder may see the address...
    (mail_row,) = audit_rows("refunds.confirmation_email")
    assert mail_row.outcome == "failed" and "mail server" in (mail_row.error or "")
    assert "jane" not in (mail_row.error or "")  # ...the audit log names customers by id only
    assert [r.outcome for r in audit_rows("charges.refund")] == ["ok"]


def test_a_replayed_refund_sends_no_second_email(connected, any_store_owner, smtp_catcher: CatcherHandle) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 4599)
    k = key()
    billing.issue_refund(any_store_owner, charge_id, 1000, None, k, email_customer=True)
    again = billing.issue_refund(any_store_owner, charge_id, 1000, None, k, email_customer=True)
    assert again.replayed and not again.email_sent and "already made by the same request" in again.email_outcome
    assert len(smtp_catcher.messages()) == 1


# --- 3. Stripe's refusals in plain words -----------------------------------------------------------


def test_stripe_refusing_an_already_refunded_charge_reads_as_a_plain_sentence(connected, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    """The sandbox answers a refund of a fully refunded charge as Stripe does (400,
    `charge_already_refunded`); the person reads what happened and what to do."""
    charge_id = charge_of(connected, 4599)
    billing.issue_refund(any_store_owner, charge_id, None, None, key())
    with pytest.raises(StripeRequestFailed) as refused:
        StripeGateway().create_refund(charge_id, None, None, key())
    assert refused.value.code == "charge_already_refunded"
    assert refused.value.message == (
        f"{PLAIN_REFUSALS['charge_already_refunded']} (Stripe: Charge {charge_id} has already been refunded.)"
    )


class StaleGateway(StripeGateway):
    """Answers the first charge read with a copy from before someone refunded it in Stripe's dashboard."""

    def __init__(self, stale: dict[str, Any]) -> None:
        super().__init__()
        self.stale: dict[str, Any] | None = stale

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        if self.stale is not None:
            stale, self.stale = self.stale, None
            return stale
        return super().retrieve_charge(charge_id)


def test_a_refund_stripe_refuses_as_already_refunded_fails_in_plain_words(connected, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    """Billy's own check passed on a copy read a moment earlier; Stripe's refusal is what the person reads."""
    charge_id = charge_of(connected, 4599)
    before = StripeGateway().retrieve_charge(charge_id)
    connected.secret_client().v1.refunds.create(params={"charge": charge_id})  # someone else, in Stripe
    with pytest.raises(StripeRequestFailed) as refused:
        billing.issue_refund(any_store_owner, charge_id, None, None, key(), gateway=StaleGateway(before))
    assert refused.value.message.startswith("This charge has already been refunded in full")
    assert "Reload the charge" in refused.value.message
    (row,) = audit_rows("charges.refund")
    assert row.outcome == "failed" and (row.error or "").startswith("This charge has already been refunded in full")


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("charge_disputed", "disputed this charge"),
        ("refund_disputed_payment", "disputed this payment"),
        ("charge_not_refundable", "too old"),
        ("amount_too_large", "more than is left to refund"),
        ("balance_insufficient", "Stripe balance is too low"),
    ],
)
def test_each_refund_refusal_has_a_plain_sentence(code: str, words: str) -> None:
    error = billy_error(stripe.InvalidRequestError("Stripe's own words.", None, code=code, http_status=400))
    assert error.code == code and words in error.message and error.message.endswith("(Stripe: Stripe's own words.)")


def test_other_stripe_errors_keep_stripes_own_message() -> None:
    error = billy_error(stripe.InvalidRequestError("No such customer: 'cus_x'", None, code="resource_missing"))
    assert error.message == "No such customer: 'cus_x'"


# --- 4. refund requests are noticed --------------------------------------------------------------


@pytest.fixture
def team(any_store, any_store_owner) -> dict[str, Actor]:  # type: ignore[no-untyped-def]
    people = {
        "owner": any_store_owner,
        "clerk": member_actor("billing_clerk", "clerk@example.com"),
        "clerk2": member_actor("billing_clerk", "clerk2@example.com"),
        "manager": member_actor("billing_manager", "manager@example.com"),
        "manager2": member_actor("billing_manager", "manager2@example.com"),
        "viewer": member_actor("read_only", "viewer@example.com"),
        "gone": member_actor("billing_manager", "gone@example.com"),
    }
    with session_scope() as s:
        gone = s.get(Member, people["gone"].user_id)
        assert gone is not None
        gone.active = False  # removed from the team: never told
    return people


def test_submitting_emails_exactly_the_approvers_whose_cap_covers_it(  # type: ignore[no-untyped-def]
    connected, team, smtp_catcher: CatcherHandle
) -> None:
    charge_id = charge_of(connected, 50_000, "Order #7001")
    asked = refund_requests.submit_request(team["clerk"], charge_id, None, "requested_by_customer", ASK)

    received = mails_to(smtp_catcher)
    # Not the requester, not a Clerk with a $100 cap, not Read Only, not a removed member.
    assert sorted(received) == ["manager2@example.com", "manager@example.com", "owner@example.com"]
    assert all(len(mails) == 1 for mails in received.values())
    mail = received["manager@example.com"][0]
    assert mail.subject == "clerk@example.com asks you to approve a $500.00 refund"
    assert "refund of $500.00 on Order #7001 (Jane Smith)" in mail.text and ASK in mail.text
    assert mail.links == [f"{get_settings().public_url.rstrip('/')}/approvals"]
    assert asked.status == "pending"

    smtp_catcher.clear()
    big = charge_of(connected, 600_000, "Order #9000")
    refund_requests.submit_request(team["manager"], big, None, None, ASK)  # $6,000: over every Manager's cap
    assert sorted(mails_to(smtp_catcher)) == ["owner@example.com"]


def test_approving_and_declining_email_the_requester(connected, team, smtp_catcher: CatcherHandle) -> None:  # type: ignore[no-untyped-def]
    first = refund_requests.submit_request(team["clerk"], charge_of(connected, 50_000, "Order #7001"), None, None, ASK)
    second = refund_requests.submit_request(team["clerk"], charge_of(connected, 30_000, "Order #7002"), None, None, ASK)
    smtp_catcher.clear()

    done = refund_requests.approve(team["manager"], first.id, "Checked the return.")
    (mail,) = smtp_catcher.messages()
    assert (mail.to, mail.subject) == ("clerk@example.com", "Your $500.00 refund request was approved")
    assert "manager@example.com approved your request to refund $500.00 on Order #7001" in mail.text
    assert done.refund_id in mail.text and "Their note: Checked the return." in mail.text

    smtp_catcher.clear()
    refund_requests.decline(team["owner"], second.id, "Outside the return window.")
    (mail,) = smtp_catcher.messages()
    assert (mail.to, mail.subject) == ("clerk@example.com", "Your $300.00 refund request was declined")
    assert "No refund was made." in mail.text and "Their note: Outside the return window." in mail.text

    # The in-app part: the requester's own list shows both decisions with their notes.
    mine = {r.id: (r.status, r.decision_note) for r in refund_requests.my_requests(team["clerk"])}
    assert mine == {
        first.id: ("approved", "Checked the return."),
        second.id: ("declined", "Outside the return window."),
    }


def test_mail_failures_block_neither_the_request_nor_the_decision(connected, team, dead_mail_server) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 50_000)
    asked = refund_requests.submit_request(team["clerk"], charge_id, None, None, ASK)
    assert asked.status == "pending"
    done = refund_requests.approve(team["manager"], asked.id)
    assert done.status == "approved" and done.refund_id.startswith("re_")
    assert connected.secret_client().v1.charges.retrieve(charge_id).amount_refunded == 50_000


def test_pending_count_for_counts_what_each_member_may_decide(connected, team) -> None:  # type: ignore[no-untyped-def]
    clerks = refund_requests.submit_request(team["clerk"], charge_of(connected, 50_000), None, None, ASK)  # $500
    refund_requests.submit_request(team["manager"], charge_of(connected, 600_000), None, None, ASK)  # $6,000

    def counts() -> dict[str, int]:
        return {name: refund_requests.pending_count_for(actor) for name, actor in team.items() if name != "gone"}

    assert counts() == {
        "owner": 2,  # both
        "clerk": 0,  # their own, and no Clerk's cap covers a request
        "clerk2": 0,
        "manager": 1,  # the Clerk's $500, not their own
        "manager2": 1,  # the Clerk's $500; $6,000 is over their cap
        "viewer": 0,  # cannot approve at all
    }
    refund_requests.approve(team["manager2"], clerks.id)
    assert counts() == {"owner": 1, "clerk": 0, "clerk2": 0, "manager": 0, "manager2": 0, "viewer": 0}


# --- 5. the dialog and the badge, through Reflex's real event pipeline ---------------------------


def _sent_value(sent: Any, state: Any, var: str) -> Any:
    name, key = state.get_full_name(), f"{var}_rx_state_"
    found = [delta[name][key] for delta in sent.deltas if key in delta.get(name, {})]
    assert found, f"{state.__name__}.{var} was not sent"
    return found[-1]


def test_the_refund_dialog_sends_the_note_and_the_email_choice(  # type: ignore[no-untyped-def]
    owner, stripe_peer: StripePeer, smtp_catcher: CatcherHandle
) -> None:
    from billy_app.billy_app import app  # noqa: F401 - every page and state registered
    from billy_app.state.nav_badges import NavBadgesState
    from billy_app.state.refund import RefundState
    from services import identity
    from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD
    from tests.reflex_events import event_pipeline

    stripe_keys.connect_stripe_key(owner, stripe_peer.demo_key)
    with_mail = charge_of(stripe_peer, 4599, "Order #5678")
    nobody = stripe_peer.secret_client().v1.customers.create(params={"name": "No Mail"}).id
    without_mail = charge_of(stripe_peer, 2500, customer=nobody)
    clerk = member_actor("billing_clerk", "clerk@example.com")
    refund_requests.submit_request(clerk, charge_of(stripe_peer, 50_000), None, None, ASK)
    smtp_catcher.clear()
    customer_id = billing.get_charge(owner, with_mail).customer_id

    with event_pipeline() as pipeline:
        tokens = identity.login(OWNER_EMAIL, OWNER_PASSWORD, "127.0.0.1", "pytest-tab")
        tab = pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path=f"/customers/{customer_id}")

        assert _sent_value(tab.send(NavBadgesState, "load"), NavBadgesState, "pending_approvals") == 1
        # Read again with nothing changed, the badge sends nothing (a burst of charges re-reads it a
        # few times a second); a count that moved is sent.
        again = tab.send(NavBadgesState, "load")
        badge = NavBadgesState.get_full_name()
        assert not [d for d in again.deltas if "pending_approvals_rx_state_" in d.get(badge, {})], again.deltas
        refund_requests.submit_request(clerk, charge_of(stripe_peer, 40_000), None, None, ASK)
        smtp_catcher.clear()  # the request's notice to approvers: this test reads the refund's mail
        assert _sent_value(tab.send(NavBadgesState, "load"), NavBadgesState, "pending_approvals") == 2

        opened = tab.send(RefundState, "start", {"charge_id": without_mail})
        assert _sent_value(opened, RefundState, "customer_email") == ""
        assert "no email address" in _sent_value(opened, RefundState, "no_email_reason")
        refused = tab.send(RefundState, "set_email_customer", {"value": True})
        assert _sent_value(refused, RefundState, "email_customer") is False  # no address: nothing to tick
        tab.send(RefundState, "close")

        opened = tab.send(RefundState, "start", {"charge_id": with_mail})
        assert _sent_value(opened, RefundState, "customer_email") == "jane.smith@example.com"
        tab.send(RefundState, "set_note", {"text": NOTE})
        assert _sent_value(tab.send(RefundState, "set_email_customer", {"value": True}), RefundState, "email_customer")
        done = tab.send(RefundState, "confirm")

    assert any("A confirmation email went to jane.smith@example.com." in t for t in done.toasts()), done.toasts()
    (mail,) = smtp_catcher.messages()
    assert mail.to == "jane.smith@example.com" and "$45.99" in mail.subject
    (refund,) = stripe_peer.secret_client().v1.refunds.list(params={"charge": with_mail}).data
    assert refund.metadata["billy_note"] == NOTE
