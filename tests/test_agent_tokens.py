"""Agent tokens and preview confirmations (issue 13): a token acts as its member, never above the
role, optionally scoped lower; it is stored hashed, shown once, revocable; every refusal is the
dashboard's and is audited with the token's id and client."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlmodel import select

from billy_app.api.bearer import actor_from_token
from services import agent_tokens, billing, clock, confirmations, stripe_keys, team
from services.agent_tokens import ScopeRequest
from services.db import session_scope
from services.errors import NotAuthenticated, PermissionDenied, RefundCapExceeded, ValidationFailed
from services.models import AgentToken, AuditEntry
from services.permissions import Actor, Source
from tests.conftest import member_actor
from tests.stripe_helpers import make_charge, sync_lists


def key() -> str:
    return secrets.token_urlsafe(24)


def _audit(action: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _issue(actor: Actor, **scope: object) -> tuple[str, Actor]:
    issued = agent_tokens.issue_token(actor, "Claude Desktop", ScopeRequest(**scope))  # type: ignore[arg-type]
    return issued.secret, actor_from_token(issued.secret, Source.AGENT, "127.0.0.1", "pytest-agent")


@pytest.fixture
def charge(any_store, any_store_owner, stripe_peer):  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    created = make_charge(stripe_peer, 4599, description="Order #5678")
    big = make_charge(stripe_peer, 500_000, description="Order #9999")
    sync_lists()
    return created, big


def test_the_secret_is_shown_once_and_stored_only_as_its_hash(any_store, any_store_owner: Actor) -> None:
    issued = agent_tokens.issue_token(any_store_owner, "  Claude   Desktop ", ScopeRequest())
    assert issued.secret.startswith("billy_at_") and issued.client_name == "Claude Desktop"
    with session_scope() as s:
        row = s.get(AgentToken, issued.id)
        assert row is not None and issued.secret not in row.secret_hash and len(row.secret_hash) == 64
    (view,) = agent_tokens.list_tokens(any_store_owner)
    assert view.id == issued.id and view.active and not hasattr(view, "secret")
    assert issued.secret not in repr(view)


def test_a_clerk_token_refunds_within_the_cap_and_is_refused_5000_with_the_cap_named(charge) -> None:  # type: ignore[no-untyped-def]
    small, big = charge
    clerk = member_actor("billing_clerk", "clerk@example.com")
    _, agent = _issue(clerk)
    billing.issue_refund(agent, small["id"], None, None, key())
    with pytest.raises(RefundCapExceeded, match=r"over your Billing Clerk limit of \$100.00"):
        billing.issue_refund(agent, big["id"], 500_000, None, key())
    ok, denied = _audit("charges.refund")
    assert (ok.outcome, ok.source, ok.details["agent_token"], ok.details["client"]) == (
        "ok",
        "agent",
        agent.token_id,
        "Claude Desktop",
    )
    assert denied.outcome == "denied" and denied.source == "agent" and denied.details["agent_token"] == agent.token_id


def test_a_read_only_scoped_manager_token_is_refused_a_10_dollar_refund(charge) -> None:  # type: ignore[no-untyped-def]
    small, _ = charge
    manager = member_actor("billing_manager", "manager@example.com")
    _, agent = _issue(manager, read_only=True)
    with pytest.raises(PermissionDenied, match="read-only"):
        billing.issue_refund(agent, small["id"], 1000, None, key())
    assert billing.preview_refund(agent, small["id"], 1000).allowed is False  # the preview says so too
    assert billing.search_customers(agent, "", None).items is not None  # reading still works


def test_a_lower_cap_and_an_action_subset_bind_the_token_not_the_member(charge) -> None:  # type: ignore[no-untyped-def]
    small, _ = charge
    manager = member_actor("billing_manager", "manager@example.com")
    _, capped = _issue(manager, refund_caps={"usd": 2000})
    with pytest.raises(RefundCapExceeded, match=r"this agent token's limit of \$20.00"):
        billing.issue_refund(capped, small["id"], 2500, None, key())
    billing.issue_refund(capped, small["id"], 2000, None, key())
    billing.issue_refund(manager, small["id"], 2500, None, key())  # the member in the dashboard: the role's cap

    _, searcher = _issue(manager, actions=("customers.search",))
    billing.search_customers(searcher, "", None)
    with pytest.raises(PermissionDenied, match=r"not allowed 'charges\.view'"):
        billing.get_charge(searcher, small["id"])


def test_a_scope_cannot_reach_above_the_role(any_store, any_store_owner: Actor) -> None:
    clerk = member_actor("billing_clerk", "clerk@example.com")
    with pytest.raises(ValidationFailed, match="above your role's"):
        agent_tokens.issue_token(clerk, "x", ScopeRequest(refund_caps={"usd": 100_01}))
    with pytest.raises(ValidationFailed, match=r"cannot 'team\.invite'"):
        agent_tokens.issue_token(clerk, "x", ScopeRequest(actions=("team.invite",)))
    with pytest.raises(ValidationFailed, match="Name the client"):
        agent_tokens.issue_token(clerk, "   ", ScopeRequest())
    with pytest.raises(ValidationFailed, match="1, 7, 30, 90 or 365"):
        agent_tokens.issue_token(clerk, "x", ScopeRequest(expires_in_days=3650))


def test_a_role_lowered_later_lowers_the_token_at_its_next_call(charge, any_store_owner: Actor) -> None:  # type: ignore[no-untyped-def]
    small, _ = charge
    manager = member_actor("billing_manager", "manager@example.com")
    secret, agent = _issue(manager)
    assert agent.role == "billing_manager"
    team.change_role(any_store_owner, manager.user_id or 0, "read_only")
    lowered = actor_from_token(secret, Source.AGENT)
    with pytest.raises(PermissionDenied, match=r"Read Only"):
        billing.issue_refund(lowered, small["id"], 1000, None, key())


def test_revoked_expired_removed_and_forged_tokens_get_an_authentication_error(
    any_store, any_store_owner: Actor
) -> None:
    clerk = member_actor("billing_clerk", "clerk@example.com")
    revoked, _ = _issue(clerk)
    (token_id,) = [t.id for t in agent_tokens.list_tokens(clerk)]
    agent_tokens.revoke_token(clerk, token_id)
    with pytest.raises(NotAuthenticated, match="revoked"):
        actor_from_token(revoked, Source.AGENT)

    expiring, _ = _issue(clerk, expires_in_days=1)
    with clock.travel(timedelta(days=1, seconds=1)), pytest.raises(NotAuthenticated, match="expired"):
        actor_from_token(expiring, Source.API)

    kept, _ = _issue(clerk)
    team.remove_member(any_store_owner, clerk.user_id or 0)
    with pytest.raises(NotAuthenticated, match="can no longer sign in"):
        actor_from_token(kept, Source.AGENT)
    for forged in ("billy_at_" + "A" * 44, kept[:-1] + ("B" if kept[-1] != "B" else "C"), "", "billy_at_short"):
        with pytest.raises(NotAuthenticated):
            actor_from_token(forged, Source.AGENT)


def test_members_see_their_own_tokens_the_owner_sees_and_revokes_all(any_store, any_store_owner: Actor) -> None:
    clerk = member_actor("billing_clerk", "clerk@example.com")
    viewer = member_actor("read_only", "viewer@example.com")
    _issue(clerk)
    _issue(viewer, read_only=True)
    assert [t.member_email for t in agent_tokens.list_tokens(clerk)] == ["clerk@example.com"]
    assert sorted(t.member_email for t in agent_tokens.list_tokens(any_store_owner)) == [
        "clerk@example.com",
        "viewer@example.com",
    ]
    (clerks,) = agent_tokens.list_tokens(clerk)
    with pytest.raises(PermissionDenied, match="Only the Owner"):
        agent_tokens.revoke_token(viewer, clerks.id)
    agent_tokens.revoke_token(any_store_owner, clerks.id)
    assert not agent_tokens.list_tokens(clerk)[0].active
    assert [r.outcome for r in _audit("agents.revoke")] == ["denied", "ok"]


def test_a_token_cannot_issue_or_revoke_tokens(any_store, any_store_owner: Actor) -> None:
    _, agent = _issue(any_store_owner)
    with pytest.raises(PermissionDenied, match="cannot issue or revoke"):
        agent_tokens.issue_token(agent, "sneaky", ScopeRequest())
    with pytest.raises(PermissionDenied, match="cannot issue or revoke"):
        agent_tokens.revoke_token(agent, agent.token_id)


def test_last_used_says_when_and_through_which_door(any_store, any_store_owner: Actor) -> None:
    secret, _ = _issue(any_store_owner)
    actor_from_token(secret, Source.API, "203.0.113.7")
    (view,) = agent_tokens.list_tokens(any_store_owner)
    assert view.last_used_at is not None and view.last_used_from == "api · 203.0.113.7"


# --- confirmations ------------------------------------------------------------------------------


def test_a_confirmation_is_bound_to_its_preview_member_and_token_and_spent_once(
    any_store, any_store_owner: Actor
) -> None:
    clerk = member_actor("billing_clerk", "clerk@example.com")
    _, agent = _issue(clerk)
    _, other_agent = _issue(clerk)
    params = {"charge_id": "ch_1", "amount": 4599}
    with clock.freeze():
        token, expires = confirmations.issue(agent, "charges.refund", params)
        assert expires - clock.now() == confirmations.TTL

    with pytest.raises(confirmations.ConfirmationRefused, match="different change"):
        confirmations.redeem(agent, "charges.refund", {**params, "amount": 500_000}, token)  # an edited amount
    with pytest.raises(confirmations.ConfirmationRefused, match="already used"):
        confirmations.redeem(agent, "charges.refund", params, token)  # the edit spent it

    token, _ = confirmations.issue(agent, "charges.refund", params)
    with pytest.raises(confirmations.ConfirmationRefused, match="another member or agent"):
        confirmations.redeem(other_agent, "charges.refund", params, token)
    token, _ = confirmations.issue(agent, "charges.refund", params)
    with pytest.raises(confirmations.ConfirmationRefused, match="another member or agent"):
        confirmations.redeem(any_store_owner, "charges.refund", params, token)

    token, _ = confirmations.issue(agent, "charges.refund", params)
    with clock.travel(confirmations.TTL), pytest.raises(confirmations.ConfirmationRefused, match="expired"):
        confirmations.redeem(agent, "charges.refund", params, token)

    token, _ = confirmations.issue(agent, "charges.refund", params)
    confirmations.redeem(agent, "charges.refund", params, token)
    with pytest.raises(confirmations.ConfirmationRefused, match="already used"):
        confirmations.redeem(agent, "charges.refund", params, token)  # a replay
    with pytest.raises(confirmations.ConfirmationRefused, match="not known"):
        confirmations.redeem(agent, "charges.refund", params, "billy_cf_made-up")

    refused = _audit(confirmations.CONFIRM_ACTION)
    assert len(refused) == 7 and {r.outcome for r in refused} == {"denied"}
    assert all(r.details["for"] == "charges.refund" for r in refused)


def test_logout_revokes_the_calling_token_only(any_store, any_store_owner: Actor) -> None:
    first, agent = _issue(any_store_owner)
    second, _ = _issue(any_store_owner)
    agent_tokens.revoke_own_token(agent)
    with pytest.raises(NotAuthenticated, match="revoked"):
        actor_from_token(first, Source.AGENT)
    assert actor_from_token(second, Source.AGENT).token_id  # the other token still works
    with pytest.raises(PermissionDenied, match="Only an agent token"):
        agent_tokens.revoke_own_token(any_store_owner)
