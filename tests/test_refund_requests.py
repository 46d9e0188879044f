"""Over-cap refunds become requests: submitted with a note, approved by someone else whose cap
covers it, executed once in the approver's name, against the Stripe sandbox on both stores."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest
import stripe
from sqlmodel import select

from services import billing, refund_requests, stripe_keys
from services.db import session_scope
from services.errors import (
    BillyError,
    NotFound,
    PermissionDenied,
    RefundCapExceeded,
    StripeRequestFailed,
    ValidationFailed,
)
from services.models import AuditEntry, RefundRequest
from services.permissions import Actor
from services.stripe_gateway import StripeGateway, billy_error
from tests.conftest import StripePeer, member_actor
from tests.stripe_helpers import make_charge, sync_lists

NOTE = "The customer returned the whole order; see ticket #4411."


@pytest.fixture
def team(any_store, any_store_owner) -> dict[str, Actor]:  # type: ignore[no-untyped-def]
    return {
        "owner": any_store_owner,
        "clerk": member_actor("billing_clerk", "clerk@example.com"),
        "clerk2": member_actor("billing_clerk", "clerk2@example.com"),
        "manager": member_actor("billing_manager", "manager@example.com"),
        "manager2": member_actor("billing_manager", "manager2@example.com"),
        "viewer": member_actor("read_only", "viewer@example.com"),
    }


@pytest.fixture
def connected(team, stripe_peer: StripePeer) -> StripePeer:  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(team["owner"], stripe_peer.demo_key)
    return stripe_peer


def charge_of(peer: StripePeer, amount: int, description: str = "Order #7001") -> str:
    charge_id = make_charge(peer, amount, description=description)["id"]
    sync_lists()
    return charge_id


def stripe_refunds(peer: StripePeer, charge_id: str) -> list[Any]:
    return list(peer.secret_client().v1.refunds.list(params={"charge": charge_id}).data)


def audit_rows(action: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def stored(request_id: int) -> RefundRequest:
    with session_scope() as s:
        row = s.get(RefundRequest, request_id)
    assert row is not None
    return row


# --- the whole story ---------------------------------------------------------------------------


def test_a_clerks_500_refund_becomes_a_request_a_manager_approves_once(connected, team) -> None:  # type: ignore[no-untyped-def]
    clerk, manager = team["clerk"], team["manager"]
    charge_id = charge_of(connected, 50_000)

    with pytest.raises(RefundCapExceeded, match=r"over your Billing Clerk limit of \$100.00"):
        billing.issue_refund(clerk, charge_id, None, None, secrets.token_urlsafe(24))
    preview = billing.preview_refund(clerk, charge_id, None)
    assert not preview.allowed and "limit" in preview.refusal

    asked = refund_requests.submit_request(clerk, charge_id, None, "requested_by_customer", NOTE)
    assert (asked.status, asked.amount, asked.currency, asked.requester_email) == (
        "pending",
        50_000,
        "usd",
        "clerk@example.com",
    )
    assert asked.note == NOTE and asked.charge_label == "Order #7001" and asked.customer_label == "Jane Smith"
    assert asked.mine and not asked.can_decide

    queue = refund_requests.list_queue(manager)
    assert [(r.id, r.can_decide, r.mine) for r in queue] == [(asked.id, True, False)]
    assert [r.can_decide for r in refund_requests.list_queue(team["clerk2"])] == [False]  # sees it, $100 cap
    assert refund_requests.list_queue(team["viewer"]) == []  # not an approver, and not theirs
    assert [r.id for r in refund_requests.my_requests(clerk)] == [asked.id]

    done = refund_requests.approve(manager, asked.id, "Checked the return.")
    assert (done.status, done.requester_email, done.decider_email) == (
        "approved",
        "clerk@example.com",
        "manager@example.com",
    )
    assert done.decision_note == "Checked the return." and done.refund_id.startswith("re_")

    refunds = stripe_refunds(connected, charge_id)
    assert [(r.id, r.amount) for r in refunds] == [(done.refund_id, 50_000)]
    assert refunds[0].metadata["billy_member"] == str(manager.user_id)  # executed in the Manager's name
    assert billing.get_charge(manager, charge_id).amount_refunded == 50_000  # the store shows it at once

    with pytest.raises(ValidationFailed, match=r"already approved by manager@example.com \(refund re_"):
        refund_requests.approve(team["manager2"], asked.id)
    with pytest.raises(ValidationFailed, match=r"already approved by you \(refund re_"):
        refund_requests.approve(manager, asked.id)
    with pytest.raises(ValidationFailed, match="already approved"):
        refund_requests.approve(team["owner"], asked.id)
    assert len(stripe_refunds(connected, charge_id)) == 1

    (requested,) = audit_rows("refunds.request")
    assert (requested.outcome, requested.actor_email, requested.amount) == ("ok", "clerk@example.com", 50_000)
    assert requested.target_ids == [charge_id, refund_requests.request_target(asked.id)]
    refund_rows = audit_rows("charges.refund")
    assert [(r.outcome, r.actor_email) for r in refund_rows] == [
        ("denied", "clerk@example.com"),
        ("ok", "manager@example.com"),
    ]
    assert done.refund_id in refund_rows[1].target_ids
    approvals = audit_rows("refunds.approve")
    assert [(r.outcome, r.actor_email) for r in approvals] == [
        ("ok", "manager@example.com"),
        ("failed", "manager2@example.com"),
        ("failed", "manager@example.com"),
        ("failed", "owner@example.com"),
    ]
    assert approvals[0].details["requested_by"] == "clerk@example.com"
    assert approvals[0].details["requested_by_id"] == clerk.user_id
    assert approvals[0].target_ids == [refund_requests.request_target(asked.id), charge_id, done.refund_id]


# --- who may approve --------------------------------------------------------------------------


def test_nobody_approves_their_own_request_nor_beyond_their_own_cap(connected, team) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 50_000)
    asked = refund_requests.submit_request(team["clerk"], charge_id, None, None, NOTE)

    with pytest.raises(PermissionDenied, match="cannot approve your own refund request"):
        refund_requests.approve(team["clerk"], asked.id)
    with pytest.raises(RefundCapExceeded, match=r"refund limit covers it.*over your Billing Clerk limit of \$100.00"):
        refund_requests.approve(team["clerk2"], asked.id)
    with pytest.raises(PermissionDenied, match="cannot approve refund requests"):
        refund_requests.approve(team["viewer"], asked.id)
    with pytest.raises(NotFound):
        refund_requests.approve(team["manager"], 999_999)
    with pytest.raises(NotFound):
        refund_requests.approve(team["manager"], "1; DROP TABLE refund_request")  # type: ignore[arg-type]

    assert stored(asked.id).status == "pending" and stripe_refunds(connected, charge_id) == []
    assert [(r.outcome, r.actor_email) for r in audit_rows("refunds.approve")] == [
        ("denied", "clerk@example.com"),
        ("denied", "clerk2@example.com"),
        ("denied", "viewer@example.com"),
        ("denied", "manager@example.com"),  # a request that does not exist is a refused attempt too
        ("denied", "manager@example.com"),
    ]


def test_a_manager_cannot_approve_6000_dollars_but_the_owner_can(connected, team) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 600_000, "Annual licence")
    with pytest.raises(RefundCapExceeded, match=r"Billing Manager limit of \$5,000.00"):
        billing.issue_refund(team["manager"], charge_id, None, None, secrets.token_urlsafe(24))
    asked = refund_requests.submit_request(team["manager"], charge_id, 600_000, "duplicate", NOTE)

    assert [r.can_decide for r in refund_requests.list_queue(team["manager2"])] == [False]
    with pytest.raises(RefundCapExceeded, match=r"\$6,000.00, over your Billing Manager limit of \$5,000.00"):
        refund_requests.approve(team["manager2"], asked.id)
    assert stored(asked.id).status == "pending"

    done = refund_requests.approve(team["owner"], asked.id)
    assert (done.status, done.decider_email, done.requester_email) == (
        "approved",
        "owner@example.com",
        "manager@example.com",
    )
    assert [(r.amount, r.reason) for r in stripe_refunds(connected, charge_id)] == [(600_000, "duplicate")]


def test_the_cap_is_rechecked_against_stripe_at_approval(connected, team) -> None:  # type: ignore[no-untyped-def]
    """Refunds made since the request count: $4,000 asked, then $1,500 refunded in Stripe itself,
    is $5,500 on the charge: over a Manager's cap, so only the Owner can approve it now."""
    charge_id = charge_of(connected, 600_000)
    asked = refund_requests.submit_request(team["clerk"], charge_id, 400_000, None, NOTE)
    connected.secret_client().v1.refunds.create(params={"charge": charge_id, "amount": 150_000})

    with pytest.raises(RefundCapExceeded, match=r"\$5,500.00"):
        refund_requests.approve(team["manager"], asked.id)
    assert stored(asked.id).status == "pending"
    refund_requests.approve(team["owner"], asked.id)
    assert sorted(r.amount for r in stripe_refunds(connected, charge_id)) == [150_000, 400_000]


# --- one refund, however often it is approved -----------------------------------------------


def test_concurrent_approvals_make_one_refund(connected, team) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 50_000)
    asked = refund_requests.submit_request(team["clerk"], charge_id, 30_000, None, NOTE)
    approvers = [team["manager"], team["manager"], team["manager2"], team["owner"], team["clerk2"]]
    outcomes: list[tuple[str, str]] = []
    start = threading.Barrier(len(approvers))

    def approve(actor: Actor) -> None:
        start.wait()
        try:
            view = refund_requests.approve(actor, asked.id)
            outcomes.append((actor.email, view.refund_id))
        except BillyError as exc:
            outcomes.append((actor.email, f"refused: {exc.message}"))

    threads = [threading.Thread(target=approve, args=(a,)) for a in approvers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    refunds = stripe_refunds(connected, charge_id)
    assert [r.amount for r in refunds] == [30_000], outcomes
    row = stored(asked.id)
    assert row.status == "approved" and row.refund_id == refunds[0].id
    made = {refund for _, refund in outcomes if not refund.startswith("refused")}
    assert made == {refunds[0].id}, outcomes  # whoever succeeded reports the one refund
    winners = {email for email, refund in outcomes if not refund.startswith("refused")}
    assert winners == {row.decider_email}
    assert sum(r.outcome == "ok" for r in audit_rows("charges.refund")) == 1


class UnansweredGateway(StripeGateway):
    """Stripe's answer to the refund never arrives, and Stripe never saw the request."""

    def create_refund(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise billy_error(stripe.APIConnectionError("Connection reset by peer"))


def test_an_unconfirmed_approval_is_retried_with_the_same_key(connected, team) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 50_000)
    asked = refund_requests.submit_request(team["clerk"], charge_id, None, None, NOTE)
    with pytest.raises(StripeRequestFailed):
        refund_requests.approve(team["manager"], asked.id, gateway=UnansweredGateway())
    row = stored(asked.id)
    assert (row.status, row.refund_id, row.decider_email) == ("approved", None, "manager@example.com")
    assert "not confirmed the refund" in (row.error or "")
    with pytest.raises(
        ValidationFailed, match=r"already approved by manager@example\.com and its refund is being made"
    ):
        refund_requests.approve(team["owner"], asked.id)  # it is the Manager's approval to finish

    done = refund_requests.approve(team["manager"], asked.id)
    assert done.refund_id and done.error == ""
    with pytest.raises(ValidationFailed, match="already approved"):
        refund_requests.approve(team["manager"], asked.id)
    assert [r.amount for r in stripe_refunds(connected, charge_id)] == [50_000]
    assert stored(asked.id).idempotency_key == row.idempotency_key


# --- when the refund cannot be made --------------------------------------------------------


class StaleGateway(StripeGateway):
    """Reads the charge as it was before a refund made elsewhere, so Stripe itself must refuse."""

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        return {**super().retrieve_charge(charge_id), "amount_refunded": 0}


def test_stripe_refusing_the_refund_fails_the_request_with_its_reason(connected, team) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 50_000)
    asked = refund_requests.submit_request(team["clerk"], charge_id, None, None, NOTE)
    connected.secret_client().v1.refunds.create(params={"charge": charge_id, "amount": 10_000})

    with pytest.raises(StripeRequestFailed, match="greater than"):
        refund_requests.approve(team["manager"], asked.id, gateway=StaleGateway())
    row = stored(asked.id)
    assert (row.status, row.decider_email, row.refund_id) == ("failed", "manager@example.com", None)
    assert "greater than" in (row.error or "")
    assert (row.error or "").startswith("That is more than is left to refund on this charge")  # plain words first
    with pytest.raises(ValidationFailed, match=r"already failed: .*greater than"):
        refund_requests.approve(team["owner"], asked.id)
    assert [r.amount for r in stripe_refunds(connected, charge_id)] == [10_000]


def test_a_request_that_can_no_longer_be_made_fails_at_approval(connected, team) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 50_000)
    asked = refund_requests.submit_request(team["clerk"], charge_id, None, None, NOTE)
    connected.secret_client().v1.refunds.create(params={"charge": charge_id})  # refunded in full elsewhere
    with pytest.raises(ValidationFailed, match="already been refunded in full"):
        refund_requests.approve(team["manager"], asked.id)
    assert stored(asked.id).status == "failed"
    assert len(stripe_refunds(connected, charge_id)) == 1


# --- what may be asked ----------------------------------------------------------------------


def test_a_refund_within_the_cap_is_refused_as_a_request(connected, team) -> None:  # type: ignore[no-untyped-def]
    clerk = team["clerk"]
    charge_id = charge_of(connected, 50_000)
    with pytest.raises(ValidationFailed, match=r"\$50.00 is within your refund limit and daily budget: just refund it"):
        refund_requests.submit_request(clerk, charge_id, 5_000, None, NOTE)
    with pytest.raises(ValidationFailed, match="just refund it"):
        refund_requests.submit_request(team["owner"], charge_id, None, None, NOTE)  # no cap at all

    billing.issue_refund(clerk, charge_id, 6_000, None, secrets.token_urlsafe(24))
    # $60 refunded already + $50 is over $100: Stripe's amount_refunded counts, as for a refund.
    asked = refund_requests.submit_request(clerk, charge_id, 5_000, None, NOTE)
    assert asked.amount == 5_000
    with pytest.raises(ValidationFailed, match="already have a request waiting"):
        refund_requests.submit_request(clerk, charge_id, 7_000, None, NOTE)
    assert [r.outcome for r in audit_rows("refunds.request")] == ["failed", "failed", "ok", "failed"]


@pytest.mark.parametrize(
    ("amount", "reason", "note", "message"),
    [
        (0, None, NOTE, "greater than zero"),
        (-100, None, NOTE, "greater than zero"),
        (12.5, None, NOTE, "whole number"),
        (True, None, NOTE, "whole number"),
        (60_000, None, NOTE, r"at most \$500.00"),
        (None, "because", NOTE, "Choose a reason"),
        (None, None, "", "Add a note for the approver"),
        (None, None, "   \n ", "Add a note for the approver"),
        (None, None, "x" * 1001, "under 1000 characters"),
        (None, None, None, "Add a note for the approver"),
    ],
)
def test_bad_requests_are_refused_with_clear_messages(connected, team, amount, reason, note, message: str) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 50_000)
    with pytest.raises(ValidationFailed, match=message):
        refund_requests.submit_request(team["clerk"], charge_id, amount, reason, note)
    with session_scope() as s:
        assert list(s.exec(select(RefundRequest))) == []


def test_read_only_cannot_ask_and_is_audited_as_denied(connected, team) -> None:  # type: ignore[no-untyped-def]
    charge_id = charge_of(connected, 50_000)
    with pytest.raises(PermissionDenied, match=r"Read Only\) cannot issue refunds"):
        refund_requests.submit_request(team["viewer"], charge_id, None, None, NOTE)
    assert [(r.outcome, r.actor_email) for r in audit_rows("refunds.request")] == [("denied", "viewer@example.com")]
    assert refund_requests.my_requests(team["viewer"]) == []


# --- decline and withdraw -------------------------------------------------------------------


def test_decline_and_withdraw_close_requests_and_are_audited(connected, team) -> None:  # type: ignore[no-untyped-def]
    clerk, manager = team["clerk"], team["manager"]
    first = refund_requests.submit_request(clerk, charge_of(connected, 50_000, "Order #1"), None, None, NOTE)
    second = refund_requests.submit_request(clerk, charge_of(connected, 40_000, "Order #2"), None, None, NOTE)

    with pytest.raises(ValidationFailed, match="Add a note for the requester"):
        refund_requests.decline(manager, first.id, "  ")
    with pytest.raises(PermissionDenied, match="withdraw it instead"):
        refund_requests.decline(clerk, first.id, "No.")
    with pytest.raises(RefundCapExceeded, match=r"over your Billing Clerk limit"):
        refund_requests.decline(team["clerk2"], first.id, "No.")
    declined = refund_requests.decline(manager, first.id, "Outside the 30-day window.")
    assert (declined.status, declined.decider_email, declined.decision_note) == (
        "declined",
        "manager@example.com",
        "Outside the 30-day window.",
    )
    with pytest.raises(ValidationFailed, match=r"already declined by manager@example\.com"):
        refund_requests.approve(team["owner"], first.id)
    with pytest.raises(ValidationFailed, match="already declined"):
        refund_requests.withdraw(clerk, first.id)
    with pytest.raises(ValidationFailed, match="already declined by you"):
        refund_requests.decline(manager, first.id, "Again.")

    with pytest.raises(PermissionDenied, match="Only the person who asked"):
        refund_requests.withdraw(manager, second.id)
    withdrawn = refund_requests.withdraw(clerk, second.id)
    assert withdrawn.status == "withdrawn"
    with pytest.raises(ValidationFailed, match="You already withdrew"):
        refund_requests.withdraw(clerk, second.id)
    with pytest.raises(ValidationFailed, match="withdrawn by the person who asked"):
        refund_requests.approve(manager, second.id)

    assert refund_requests.list_queue(manager) == []
    assert {r.status for r in refund_requests.list_queue(manager, "all")} == {"declined", "withdrawn"}
    assert [(r.id, r.status) for r in refund_requests.my_requests(clerk)] == [
        (second.id, "withdrawn"),
        (first.id, "declined"),
    ]
    with pytest.raises(ValidationFailed, match="Choose a status"):
        refund_requests.list_queue(manager, "everything")

    decline_rows = audit_rows("refunds.decline")
    assert [(r.outcome, r.actor_email) for r in decline_rows] == [
        ("failed", "manager@example.com"),
        ("denied", "clerk@example.com"),
        ("denied", "clerk2@example.com"),
        ("ok", "manager@example.com"),
        ("failed", "manager@example.com"),
    ]
    assert decline_rows[-1].details["requested_by"] == "clerk@example.com"
    withdraw_rows = audit_rows("refunds.withdraw")
    assert [(r.outcome, r.actor_email) for r in withdraw_rows] == [
        ("failed", "clerk@example.com"),
        ("denied", "manager@example.com"),
        ("ok", "clerk@example.com"),
        ("failed", "clerk@example.com"),
    ]
    assert stripe_refunds(connected, first.charge_id) == [] and stripe_refunds(connected, second.charge_id) == []


# --- every refused attempt is audited (issue 10, F5) -----------------------------------------
# No Stripe here: each refusal comes before Stripe would be asked, so the request is put in the
# store directly.


def pending_request(requester: Actor, amount: int = 50_000) -> int:
    with session_scope() as s:
        row = RefundRequest(
            charge_id="ch_forged_test",
            amount=amount,
            currency="usd",
            note=NOTE,
            requested_by=requester.user_id,  # type: ignore[arg-type]
            requester_email=requester.email,
            idempotency_key=secrets.token_urlsafe(24),
        )
        s.add(row)
        s.flush()
        return row.id  # type: ignore[return-value]


def test_read_only_approving_or_declining_is_refused_and_audited_once(team) -> None:  # type: ignore[no-untyped-def]
    rid = pending_request(team["clerk"])
    with pytest.raises(PermissionDenied):
        refund_requests.approve(team["viewer"], rid, "forged")
    with pytest.raises(PermissionDenied):
        refund_requests.decline(team["viewer"], str(rid), "forged")
    for action in ("refunds.approve", "refunds.decline"):
        (row,) = audit_rows(action)
        assert (row.outcome, row.actor_email, row.target_ids) == (
            "denied",
            "viewer@example.com",
            [refund_requests.request_target(rid)],
        )
    assert stored(rid).status == "pending"


def test_withdrawing_someone_elses_request_is_refused_and_audited_once(team) -> None:  # type: ignore[no-untyped-def]
    rid = pending_request(team["clerk"])
    for intruder in ("clerk2", "viewer"):
        with pytest.raises(PermissionDenied):
            refund_requests.withdraw(team[intruder], rid)
    assert [(r.outcome, r.actor_email) for r in audit_rows("refunds.withdraw")] == [
        ("denied", "clerk2@example.com"),
        ("denied", "viewer@example.com"),
    ]
    assert stored(rid).status == "pending"


@pytest.mark.parametrize(
    ("given", "target"),
    [
        (999_999, "999999"),
        ("0", "0"),
        ("1; DROP TABLE refund_request", "1; DROP TABLE refund_request"),
        ("٣", "٣"),  # a digit, but not an ASCII one
        (["1"], "['1']"),
        (None, "None"),
        ("7\n2026-01-01 INFO forged\x1b[31m", "7?2026-01-01 INFO forged?[31m"),
        ("\ud800", "?"),
        ("9" * 5000, "9" * 40),
    ],
)
def test_a_request_that_does_not_exist_is_a_refused_attempt(team, given: object, target: str) -> None:  # type: ignore[no-untyped-def]
    calls = [
        ("refunds.approve", lambda: refund_requests.approve(team["manager"], given, "ok")),  # type: ignore[arg-type]
        ("refunds.decline", lambda: refund_requests.decline(team["manager"], given, "no")),  # type: ignore[arg-type]
        ("refunds.withdraw", lambda: refund_requests.withdraw(team["clerk"], given)),  # type: ignore[arg-type]
    ]
    for action, call in calls:
        with pytest.raises(NotFound, match="There is no such refund request"):
            call()
        (row,) = audit_rows(action)
        assert row.outcome == "denied" and row.target_ids == [refund_requests.request_target(target)], action
        assert row.error == "There is no such refund request."
