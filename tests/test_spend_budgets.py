"""Rolling 24-hour refund budgets (issue 15): per member, per agent token, checked under a lock.

Real store (SQLite and PostgreSQL), real Stripe peer (the sandbox); time moved with the
injectable clock, never slept.
"""

from __future__ import annotations

import multiprocessing
import re
import secrets
import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from services import agent_tokens, billing, clock, locks, refund_requests, spend, stripe_keys
from services.db import session_scope
from services.errors import RefundBudgetExceeded, RefundCapExceeded, ValidationFailed
from services.models import RefundBudget, RefundSpend
from services.permissions import Actor, Source
from tests.conftest import member_actor
from tests.stripe_helpers import make_charge, make_customer, sync_lists

CLERK_EMAIL = "clerk@example.com"
MANAGER_EMAIL = "manager@example.com"


def key() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def connected(any_store, any_store_owner, stripe_peer):  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    return stripe_peer


def _charges(peer, count: int, amount: int = 99_00) -> list[str]:  # type: ignore[no-untyped-def]
    customer = make_customer(peer)
    made = [make_charge(peer, amount, customer=customer)["id"] for _ in range(count)]
    sync_lists()
    return made


def _refunds_in_stripe(peer, charge_ids: list[str]) -> int:  # type: ignore[no-untyped-def]
    client = peer.secret_client()
    return sum(len(client.v1.refunds.list(params={"charge": c}).data) for c in charge_ids)


def test_a_clerk_refunds_up_to_the_budget_then_hears_what_is_left_and_when_it_frees(connected) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    charges = _charges(connected, 6)
    preview = billing.preview_refund(clerk, charges[0], None)
    assert preview.budget_left == "$500.00 of your Billing Clerk daily refund budget of $500.00 left"
    for n, charge_id in enumerate(charges[:5]):  # a minute apart
        with clock.travel(timedelta(minutes=n)):
            billing.issue_refund(clerk, charge_id, None, None, key())
    with clock.travel(timedelta(minutes=5)):
        assert not billing.preview_refund(clerk, charges[5], None).allowed
        with pytest.raises(RefundBudgetExceeded) as over:
            billing.issue_refund(clerk, charges[5], None, None, key())
    with session_scope() as session:
        first_at = min(row.at for row in session.exec(select(RefundSpend)))
    message = over.value.message
    assert "would bring refunds in the last 24 hours to $594.00" in message
    assert "daily refund budget of $500.00. $5.00 is left." in message
    # $99 fits once the first refund ($99) rolls out of the window.
    assert f"frees up at {first_at + timedelta(hours=24):%Y-%m-%d %H:%M} UTC" in message
    assert _refunds_in_stripe(connected, charges) == 5
    with clock.travel(timedelta(hours=24, seconds=30)):  # the window rolls: the first refund drops out
        assert billing.preview_refund(clerk, charges[5], None).budget_left.startswith("$104.00 of your")
        billing.issue_refund(clerk, charges[5], None, None, key())
    assert _refunds_in_stripe(connected, charges) == 6


def test_a_refused_stripe_refund_is_not_counted_and_a_replay_is_counted_once(connected) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    charge_id = _charges(connected, 1, amount=80_00)[0]
    same = key()
    billing.issue_refund(clerk, charge_id, 30_00, None, same)
    billing.issue_refund(clerk, charge_id, 30_00, None, same)  # the same intent, replayed
    with pytest.raises(ValidationFailed):  # more than is left on the charge: Stripe is never asked
        billing.issue_refund(clerk, charge_id, 60_00, None, key())
    with session_scope() as session:
        counted = [(row.amount, row.refund_id is not None) for row in session.exec(select(RefundSpend))]
    assert counted == [(30_00, True)]
    assert billing.preview_refund(clerk, charge_id, 10_00).budget_left.startswith("$470.00 of")


def test_twenty_concurrent_refunds_cannot_overshoot_the_budget(connected) -> None:  # type: ignore[no-untyped-def]
    """Twenty $99 refunds at once, on twenty charges (so no charge lock serialises them)."""
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    charges = _charges(connected, 20)
    outcomes: list[str] = []
    start = threading.Barrier(20)

    def refund(charge_id: str) -> None:
        start.wait()
        try:
            billing.issue_refund(clerk, charge_id, None, None, key())
            outcomes.append("made")
        except RefundBudgetExceeded:
            outcomes.append("over budget")

    threads = [threading.Thread(target=refund, args=(c,)) for c in charges]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(outcomes) == ["made"] * 5 + ["over budget"] * 15
    assert _refunds_in_stripe(connected, charges) == 5
    assert locks.held_names() == 0  # twenty charges' and one member's locks, all gone with their holders


def _refund_from_another_worker(member_id: int, charge_id: str, start, outcomes) -> None:  # type: ignore[no-untyped-def]
    """In a process of its own (its own engine, locks and Stripe client), as another worker: wait
    for the others, then refund the charge."""
    actor = Actor(member_id, CLERK_EMAIL, "billing_clerk", Source.API, "127.0.0.1", "worker")
    billing.get_charge(actor, charge_id)  # connected and warm before the start
    start.wait(60)
    try:
        billing.issue_refund(actor, charge_id, None, None, secrets.token_urlsafe(24))
        outcomes.put("made")
    except RefundBudgetExceeded:
        outcomes.put("over budget")


def test_concurrent_refunds_from_several_processes_cannot_overshoot_on_postgresql(connected, any_store) -> None:  # type: ignore[no-untyped-def]
    """$396 of the Clerk's $500 already spent; eight workers each refund $99 at the same moment:
    exactly one fits."""
    if any_store.kind != "postgresql":
        pytest.skip("SQLite instances run one worker process; the race above covers them")
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    charges = _charges(connected, 8)
    with session_scope() as session:
        for n in range(4):
            session.add(
                RefundSpend(
                    idempotency_key=key(),
                    member_id=clerk.user_id,
                    charge_id=f"ch_earlier{n}",
                    amount=99_00,
                    currency="usd",
                )
            )
    spawn = multiprocessing.get_context("spawn")
    start, outcomes = spawn.Barrier(len(charges)), spawn.Queue()
    workers = [
        spawn.Process(target=_refund_from_another_worker, args=(clerk.user_id, charge_id, start, outcomes))
        for charge_id in charges
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0] * len(charges)
    assert sorted(outcomes.get(timeout=5) for _ in charges) == ["made"] + ["over budget"] * 7
    assert _refunds_in_stripe(connected, charges) == 1


def test_the_dashboard_and_an_agent_share_the_members_budget_and_the_token_has_its_own(connected) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    charges = _charges(connected, 6, amount=90_00)
    issued = agent_tokens.issue_token(clerk, "Claude", agent_tokens.ScopeRequest(daily_budgets={"usd": 200_00}))
    agent = agent_tokens.actor_for_token(issued.secret, Source.AGENT)
    billing.issue_refund(agent, charges[0], None, None, key())
    billing.issue_refund(agent, charges[1], None, None, key())
    with pytest.raises(RefundBudgetExceeded, match=re.escape("this agent token's daily refund budget of $200.00")):
        billing.issue_refund(agent, charges[2], None, None, key())
    # The member's own budget counts the agent's refunds: $180 of $500 spent.
    assert billing.preview_refund(clerk, charges[2], None).budget_left.startswith("$320.00 of your Billing Clerk")
    billing.issue_refund(clerk, charges[2], None, None, key())
    billing.issue_refund(clerk, charges[3], None, None, key())
    billing.issue_refund(clerk, charges[4], None, None, key())  # $450 spent in all
    with pytest.raises(RefundBudgetExceeded, match=re.escape("your Billing Clerk daily refund budget of $500.00")):
        billing.issue_refund(clerk, charges[5], None, None, key())
    # A token's budget is never above its member's own.
    with pytest.raises(ValidationFailed, match="cannot be above your own"):
        agent_tokens.issue_token(clerk, "Greedy", agent_tokens.ScopeRequest(daily_budgets={"usd": 600_00}))


def test_over_budget_becomes_a_request_and_the_approval_counts_against_the_approver(  # type: ignore[no-untyped-def]
    connected, any_store_owner, smtp_catcher
) -> None:
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    manager = member_actor("billing_manager", MANAGER_EMAIL)
    charges = _charges(connected, 6)
    for charge_id in charges[:5]:
        billing.issue_refund(clerk, charge_id, None, None, key())
    with pytest.raises(ValidationFailed, match="within your refund limit and daily budget"):
        refund_requests.submit_request(manager, charges[5], None, None, "no need")
    request = refund_requests.submit_request(clerk, charges[5], None, None, "Customer waited a week")
    refund_requests.approve(manager, request.id)
    with session_scope() as session:
        by_member = {
            row.member_id: row.amount
            for row in session.exec(select(RefundSpend).where(RefundSpend.charge_id == charges[5]))
        }
    assert by_member == {manager.user_id: 99_00}
    assert spend.check_budget(manager, 100_00, "usd")[0].words().startswith("$24,901.00 of your Billing Manager")


def test_budgets_by_default_per_role_and_what_the_owner_sets(connected, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    with session_scope() as session:
        assert spend.budgets_of(session, clerk) == {"usd": 500_00}
        assert spend.budgets_of(session, any_store_owner) is None  # the Owner: no budget by default
        session.add(RefundBudget(scope=spend.member_scope(clerk.user_id or 0), currency="usd", amount=150_00))
        session.add(RefundBudget(scope=spend.role_scope("billing_clerk"), currency="eur", amount=300_00))
    with session_scope() as session:
        assert spend.budgets_of(session, clerk) == {"usd": 150_00, "eur": 300_00}
    [standing] = spend.check_budget(clerk, 10_00, "usd")
    assert standing.words() == "$150.00 of your own daily refund budget of $150.00 left"
    # A capped role refunding in a currency with no budget set is refused, as caps are.
    with pytest.raises(RefundCapExceeded, match=re.escape("no daily refund budget set for GBP")):
        spend.check_budget(clerk, 10_00, "gbp")
