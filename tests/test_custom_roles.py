"""Custom roles (Business): built from the Manager's permissions, capped no higher than the
Manager, never holding an Owner power, whatever is typed in or written to the store."""

from __future__ import annotations

import itertools
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import select

from services import billing, identity, organization, roles, stripe_keys, team
from services.db import session_scope
from services.errors import NotFound, PermissionDenied, PlanLimitReached, RefundCapExceeded, ValidationFailed
from services.models import AuditEntry, CustomRole, Member, Organization
from services.permissions import (
    ACTIONS,
    GRANTABLE_PERMISSIONS,
    OWNER_ONLY_PERMISSIONS,
    ROLES,
    Actor,
    Permission,
    Role,
    Source,
    authorize,
)
from tests.conftest import member_actor
from tests.stripe_helpers import make_charge, sync_lists

NEW_PASSWORD = "violet-harbour-lantern-42"
LEAD = "lead@example.com"


def _business(plan: str = "business") -> None:
    with session_scope() as s:
        s.get(Organization, 1).plan = plan  # type: ignore[union-attr]


def _as_member(key: str, role: Role, plan: str = "business") -> Actor:
    return Actor(7, "someone@example.com", key, Source.AGENT, plan=plan, custom_role=role)


def _signed_in(email: str) -> Actor:
    return identity.verify_access(identity.login(email, NEW_PASSWORD).access)


def _invite_and_accept(owner: Actor, catcher, email: str, role: str) -> int:  # type: ignore[no-untyped-def]
    (outcome,) = team.invite_members(owner, [(email, role)])
    assert outcome.ok, outcome.message
    signed = parse_qs(urlsplit(catcher.links(to=email)[-1]).query)["token"][0]
    return team.accept_invite(signed, "Lee Lead", NEW_PASSWORD)


def _audit(action: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


# --- the engine: bounds that hold whatever the stored row says ---------------------------


def test_owner_only_powers_are_exactly_what_the_manager_lacks() -> None:
    assert ROLES["owner"].permissions - ROLES["billing_manager"].permissions == OWNER_ONLY_PERMISSIONS
    assert {
        Permission.MANAGE_TEAM,
        Permission.VIEW_AUDIT,
        Permission.MANAGE_SETTINGS,
        Permission.MANAGE_BILLY_PLAN,
    } <= OWNER_ONLY_PERMISSIONS
    assert not OWNER_ONLY_PERMISSIONS & GRANTABLE_PERMISSIONS


@pytest.mark.parametrize("size", range(len(GRANTABLE_PERMISSIONS) + 1))
def test_every_custom_permission_set_allows_exactly_its_actions(size: int) -> None:
    """Every combination of grantable permissions, against every action (the matrix for custom roles)."""
    for chosen in itertools.combinations(sorted(GRANTABLE_PERMISSIONS), size):
        role = Role("custom:1", "Mix", frozenset(chosen), {"usd": 100})
        actor = _as_member("custom:1", role)
        for action, needed in ACTIONS.items():
            allowed = needed in set(chosen) | {Permission.VIEW}
            if allowed:
                authorize(actor, action)
            else:
                with pytest.raises(PermissionDenied):
                    authorize(actor, action)


def test_a_tampered_custom_role_still_cannot_reach_owner_powers_or_exceed_the_manager_cap() -> None:
    greedy = Role("custom:9", "Greedy", frozenset(Permission), {"usd": 10**12, "eur": 10**12})
    actor = _as_member("custom:9", greedy)
    for action, needed in ACTIONS.items():
        if needed in OWNER_ONLY_PERMISSIONS:
            with pytest.raises(PermissionDenied):
                authorize(actor, action)
    authorize(actor, "charges.refund", refund_total=5_000_00, currency="usd")
    with pytest.raises(RefundCapExceeded, match=r"\$5,000.00"):
        authorize(actor, "charges.refund", refund_total=5_000_01, currency="usd")
    with pytest.raises(RefundCapExceeded, match="EUR"):  # the Manager has no EUR cap, so neither can it
        authorize(actor, "charges.refund", refund_total=1, currency="eur")


def test_a_custom_role_must_match_the_members_role_key() -> None:
    role = Role("custom:1", "Lead", frozenset({Permission.VIEW, Permission.REFUND}), {"usd": 100})
    with pytest.raises(PermissionDenied, match="not known"):
        authorize(_as_member("custom:2", role), "customers.view")
    with pytest.raises(PermissionDenied, match="not known"):
        authorize(Actor(7, "x@example.com", "custom:1", Source.API), "customers.view")  # no role loaded


def test_off_business_a_custom_role_may_only_view() -> None:
    role = Role("custom:1", "Lead", frozenset({Permission.VIEW, Permission.REFUND}), {"usd": 100})
    actor = _as_member("custom:1", role, plan="pro")
    authorize(actor, "customers.view")
    with pytest.raises(PlanLimitReached, match="Business"):
        authorize(actor, "charges.refund", refund_total=50, currency="usd")


# --- the service: building, assigning, changing, deleting (SQLite and PostgreSQL) ---------


def test_owner_builds_a_role_and_a_member_acts_under_it(any_store_owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    _business()
    key = roles.create_custom_role(
        any_store_owner, "  Support   lead ", ["refund", "update_customer_contact"], {"usd": 250_00}
    )
    view = {r.key: r for r in roles.list_roles(any_store_owner)}
    lead_role = view[key]
    assert (lead_role.label, lead_role.built_in, lead_role.refund_caps) == ("Support lead", False, {"usd": 250_00})
    assert set(lead_role.permissions) == {Permission.VIEW, Permission.REFUND, Permission.UPDATE_CUSTOMER_CONTACT}
    assert [r.key for r in roles.list_roles(any_store_owner)][:4] == [
        "read_only",
        "billing_clerk",
        "billing_manager",
        "owner",
    ]

    member_id = _invite_and_accept(any_store_owner, smtp_catcher, LEAD, key)
    assert "Support lead" in smtp_catcher.messages()[-1].text
    actor = _signed_in(LEAD)
    assert (actor.user_id, actor.role, actor.custom_role.label) == (member_id, key, "Support lead")  # type: ignore[union-attr]
    authorize(actor, "charges.refund", refund_total=250_00, currency="usd")
    with pytest.raises(RefundCapExceeded, match=r"Support lead limit of \$250.00"):
        authorize(actor, "charges.refund", refund_total=250_01, currency="usd")
    with pytest.raises(PermissionDenied, match=r"Your role \(Support lead\) cannot see or manage the team"):
        authorize(actor, "team.view")
    assert [(m.email, m.role_label) for m in team.list_team(any_store_owner).members][1] == (LEAD, "Support lead")
    assert {r.key: r.members for r in roles.list_roles(any_store_owner)}[key] == 1

    # A change applies on the member's next request, no new sign-in needed.
    roles.update_custom_role(any_store_owner, key, "Support lead", ["refund"], {"usd": 50_00})
    again = identity.verify_access(identity.login(LEAD, NEW_PASSWORD).access)
    with pytest.raises(RefundCapExceeded, match=r"\$50.00"):
        authorize(again, "charges.refund", refund_total=50_01, currency="usd")
    assert [r.outcome for r in _audit("roles.create")] == ["ok"]
    (updated,) = _audit("roles.update")
    assert updated.details["old"]["refund_caps"] == {"usd": 250_00} and updated.details["new"]["refund_caps"] == {
        "usd": 50_00
    }


def test_the_builder_refuses_what_a_custom_role_may_not_have(any_store_owner) -> None:  # type: ignore[no-untyped-def]
    _business()
    cases = [
        ("Lead", ["manage_team"], {}, "Only the Owner can see or manage the team"),
        ("Lead", ["view_audit"], {}, "Only the Owner can open the audit log"),
        ("Lead", ["manage_billy_plan"], {}, "Only the Owner"),
        ("Lead", ["refund"], {"usd": 5_000_01}, r"at most the Billing Manager's, \$5,000.00"),
        ("Lead", ["refund"], {"usd": 0}, "above zero"),
        ("Lead", ["refund"], {"usd": 12.5}, "whole amount in cents"),
        ("Lead", ["refund"], {}, "needs a refund limit"),
        ("Lead", ["refund"], {"eur": 100}, "USD only"),
        ("Lead", ["approve_refunds"], {}, "must also be able to issue refunds"),
        ("Lead", ["superpowers"], {}, "not a permission Billy knows"),
        ("", ["view"], {}, "Give the role a name"),
        ("x" * 41, ["view"], {}, "40 characters"),
        ("billing manager", ["view"], {}, "built-in role's name"),
    ]
    for label, permissions, caps, message in cases:
        with pytest.raises(ValidationFailed, match=message):
            roles.create_custom_role(any_store_owner, label, permissions, caps)
    roles.create_custom_role(any_store_owner, "Lead", [], {})
    with pytest.raises(ValidationFailed, match="already a role called “Lead”"):
        roles.create_custom_role(any_store_owner, "LEAD", [], {})
    with session_scope() as s:
        assert len(s.exec(select(CustomRole)).all()) == 1  # nothing half-saved
    assert [r.outcome for r in _audit("roles.create")] == ["failed"] * len(cases) + ["ok", "failed"]


def test_only_the_owner_on_business_builds_roles(any_store_owner) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PlanLimitReached, match="Business"):  # signup's plan is Pro
        roles.create_custom_role(any_store_owner, "Lead", [], {})
    _business()
    manager = member_actor("billing_manager", "m@example.com")
    with pytest.raises(PermissionDenied, match="only the Owner"):
        roles.create_custom_role(manager, "Lead", [], {})
    with pytest.raises(PermissionDenied):
        roles.list_roles(manager)
    assert [r.outcome for r in _audit("roles.create")] == ["denied", "denied"]
    with session_scope() as s:
        assert s.exec(select(CustomRole)).all() == []


def test_a_role_in_use_cannot_be_deleted_nor_the_plan_left(any_store_owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    _business()
    key = roles.create_custom_role(any_store_owner, "Lead", ["refund"], {"usd": 100_00})
    member_id = _invite_and_accept(any_store_owner, smtp_catcher, LEAD, key)
    with pytest.raises(ValidationFailed, match=r"still given to lead@example\.com"):
        roles.delete_custom_role(any_store_owner, key)
    with pytest.raises(ValidationFailed, match="give them a built-in role"):
        organization.choose_plan(any_store_owner, "pro")
    team.change_role(any_store_owner, member_id, "billing_clerk")
    organization.choose_plan(any_store_owner, "pro")
    with pytest.raises(PlanLimitReached, match="Business"):  # off Business a custom role cannot be given
        team.change_role(any_store_owner, member_id, key)
    organization.choose_plan(any_store_owner, "business")
    roles.delete_custom_role(any_store_owner, key)
    with pytest.raises(NotFound):
        roles.delete_custom_role(any_store_owner, key)
    with pytest.raises(ValidationFailed, match="Choose a role"):
        team.change_role(any_store_owner, member_id, key)
    with session_scope() as s:
        assert s.get(Member, member_id).role == "billing_clerk"  # type: ignore[union-attr]


def test_a_role_row_edited_out_of_band_is_still_bounded(any_store_owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    _business()
    key = roles.create_custom_role(any_store_owner, "Lead", ["refund"], {"usd": 100_00})
    _invite_and_accept(any_store_owner, smtp_catcher, LEAD, key)
    with session_scope() as s:
        row = s.get(CustomRole, int(key.split(":")[1]))
        row.permissions = [p.value for p in Permission]  # type: ignore[union-attr]
        row.refund_caps = {"usd": 10**9}  # type: ignore[union-attr]
    actor = _signed_in(LEAD)
    for action in ("team.invite", "audit.view", "stripe.connect", "billy.choose_plan", "roles.manage"):
        with pytest.raises(PermissionDenied):
            authorize(actor, action)
    with pytest.raises(RefundCapExceeded):
        authorize(actor, "charges.refund", refund_total=5_000_01, currency="usd")


def test_a_custom_role_refund_is_capped_against_stripe(any_store, any_store_owner, stripe_peer, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    _business()
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    charge = make_charge(stripe_peer, 400_00)
    sync_lists()
    key = roles.create_custom_role(any_store_owner, "Lead", ["refund"], {"usd": 250_00})
    _invite_and_accept(any_store_owner, smtp_catcher, LEAD, key)
    actor = _signed_in(LEAD)
    billing.issue_refund(actor, charge["id"], 200_00, None, "custom-role-refund-0001")
    with pytest.raises(RefundCapExceeded, match=r"\$300.00"):  # 200 already + 100 more is over 250
        billing.issue_refund(actor, charge["id"], 100_00, None, "custom-role-refund-0002")
    assert stripe_peer.secret_client().v1.charges.retrieve(charge["id"]).amount_refunded == 200_00
    assert [(r.outcome, r.actor_role) for r in _audit("charges.refund")] == [("ok", key), ("denied", key)]


def test_the_audit_log_names_a_custom_role_by_its_label(any_store_owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    from services import audit_viewer

    _business()
    key = roles.create_custom_role(any_store_owner, "Support lead", ["refund"], {"usd": 100_00})
    _invite_and_accept(any_store_owner, smtp_catcher, LEAD, key)
    lead = _signed_in(LEAD)
    with pytest.raises(PermissionDenied):
        roles.list_roles(lead)
    from services.audit_viewer import AuditFilters

    page = audit_viewer.search(any_store_owner, AuditFilters(person=LEAD))
    assert page.entries and {(e.actor_role, e.actor_role_label) for e in page.entries} == {(key, "Support lead")}
    assert audit_viewer.get_entry(any_store_owner, page.entries[0].id).actor_role_label == "Support lead"
