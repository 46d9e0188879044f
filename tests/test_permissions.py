"""Roles are data: the subset chain and the refund caps are read from the table itself."""

from __future__ import annotations

import itertools

import pytest

from services.errors import PermissionDenied, RefundCapExceeded
from services.permissions import ACTIONS, PERMISSION_WORDS, ROLES, Actor, Permission, Source, authorize

CHAIN = ["read_only", "billing_clerk", "billing_manager", "owner"]


def actor(role: str) -> Actor:
    return Actor(1, f"{role}@example.com", role, Source.API)


def test_each_role_is_a_strict_subset_of_the_one_above() -> None:
    for lower, higher in itertools.pairwise(CHAIN):
        assert ROLES[lower].permissions < ROLES[higher].permissions, (lower, higher)
    assert ROLES["owner"].permissions == frozenset(Permission)


def test_refund_caps_grow_up_the_chain() -> None:
    assert ROLES["billing_clerk"].refund_caps == {"usd": 10_000}
    assert ROLES["billing_manager"].refund_caps == {"usd": 500_000}
    assert ROLES["owner"].refund_caps is None  # no cap at all
    assert Permission.REFUND not in ROLES["read_only"].permissions


def test_every_action_names_a_known_permission() -> None:
    assert all(isinstance(p, Permission) for p in ACTIONS.values())


@pytest.mark.parametrize(
    ("role", "total", "allowed"),
    [
        ("billing_clerk", 10_000, True),
        ("billing_clerk", 10_001, False),
        ("billing_manager", 500_000, True),
        ("billing_manager", 500_001, False),
        ("owner", 10**9, True),
    ],
)
def test_refund_cap_is_on_the_total_refunded(role: str, total: int, allowed: bool) -> None:
    if allowed:
        authorize(actor(role), "charges.refund", refund_total=total, currency="usd")
    else:
        with pytest.raises(RefundCapExceeded, match="over your"):
            authorize(actor(role), "charges.refund", refund_total=total, currency="usd")


def test_capped_role_refunding_in_a_currency_without_a_cap_is_refused_in_plain_words() -> None:
    with pytest.raises(RefundCapExceeded, match="no refund limit set for EUR; only the Owner"):
        authorize(actor("billing_clerk"), "charges.refund", refund_total=100, currency="eur")


def test_read_only_cannot_refund_or_connect_stripe_and_unknown_actions_fail_closed() -> None:
    for action in ("charges.refund", "stripe.connect", "sync.run"):
        with pytest.raises(PermissionDenied):
            authorize(actor("read_only"), action)
    with pytest.raises(PermissionDenied):
        authorize(actor("owner"), "no.such.action")
    with pytest.raises(PermissionDenied):
        authorize(actor("superuser"), "customers.search")


def test_refusals_say_what_and_who_can() -> None:
    with pytest.raises(PermissionDenied, match=r"Billing Clerk\) cannot see or manage the team: only the Owner can"):
        authorize(actor("billing_clerk"), "team.view")
    with pytest.raises(PermissionDenied, match=r"Read Only\) cannot issue refunds: ask someone who can"):
        authorize(actor("read_only"), "charges.refund")
    assert set(PERMISSION_WORDS) == set(Permission)
