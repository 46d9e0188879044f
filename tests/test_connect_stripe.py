"""Connecting Stripe: the key is probed against the sandbox and kept only in the secret store."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from sqlmodel import select

from services import identity, stripe_keys
from services.config import get_settings
from services.db import session_scope
from services.errors import PermissionDenied, StripeKeyRejected
from services.models import AuditEntry, StripeConnection
from services.permissions import Actor
from services.secrets import get_secret_store
from services.stripe_gateway import REQUIRED_PERMISSIONS, STRIPE_KEY_SECRET
from tests.conftest import member_actor

ALL_PROBES = [p.name for r in REQUIRED_PERMISSIONS for p in r.probes]


def test_restricted_key_with_six_permissions_is_stored_in_the_secret_store_only(
    instance,
    owner,
    stripe_peer,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    key = stripe_peer.restricted_key(profile="billy")
    with caplog.at_level(logging.DEBUG):
        connected = stripe_keys.connect_stripe_key(owner, key)
    assert connected.mode == "test" and connected.key_hint == key[-4:]
    assert all(connected.permissions.values()) and set(connected.permissions) == set(ALL_PROBES)
    assert get_secret_store().get(STRIPE_KEY_SECRET) == key
    with session_scope() as s:
        row = s.exec(select(StripeConnection)).one()
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "stripe.connect")).one()
    assert row.key_hint == key[-4:] and row.secret_name == STRIPE_KEY_SECRET
    assert audit.outcome == "ok" and audit.details == {"mode": "test", "key_hint": key[-4:]}
    # Nowhere in the database files (SQLite and its write-ahead log), nor in any log record.
    for path in (instance.data_dir / "db").iterdir():
        assert key.encode() not in path.read_bytes(), path
    assert key not in caplog.text
    assert stripe_keys.checklist(connected.permissions) == [
        {"resource": r.resource, "access": r.access, "state": "ok"} for r in REQUIRED_PERMISSIONS
    ]


@pytest.mark.parametrize("missing", ALL_PROBES)
def test_key_missing_a_permission_is_refused_and_nothing_is_stored(instance, owner, stripe_peer, missing: str) -> None:  # type: ignore[no-untyped-def]
    key = stripe_peer.restricted_key(profile="billy", without=[missing])
    with pytest.raises(stripe_keys.KeyMissingPermissions) as refused:
        stripe_keys.connect_stripe_key(owner, key)
    assert refused.value.missing == [missing]
    rows = {r["resource"]: r["state"] for r in stripe_keys.checklist(refused.value.granted)}
    assert list(rows.values()).count("missing") == 1
    assert get_secret_store().get(STRIPE_KEY_SECRET) is None
    assert stripe_keys.connection() is None


def test_unknown_key_is_refused_as_unknown(instance, owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StripeKeyRejected) as refused:
        stripe_keys.connect_stripe_key(owner, "rk_test_" + "x" * 40)
    assert refused.value.code == "unknown_key"
    with session_scope() as s:
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "stripe.connect")).one()
    assert audit.outcome == "failed" and "x" * 40 not in (audit.error or "") + str(audit.details)


def test_only_the_owner_connects_stripe(instance, owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    manager = member_actor("billing_manager", "manager@example.com")
    with pytest.raises(PermissionDenied):
        stripe_keys.connect_stripe_key(manager, stripe_peer.demo_key)
    assert get_secret_store().get(STRIPE_KEY_SECRET) is None
    with session_scope() as s:
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "stripe.connect")).one()
    assert (audit.outcome, audit.actor_email) == ("denied", "manager@example.com")


def test_finishing_onboarding_needs_a_connected_key(instance, owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    from services.organization import onboarding_done

    with pytest.raises(StripeKeyRejected):
        stripe_keys.finish_onboarding(owner)
    stripe_keys.connect_stripe_key(owner, stripe_peer.demo_key)
    assert not onboarding_done()
    stripe_keys.finish_onboarding(owner)
    assert onboarding_done()


# --- sandbox mode: the demo key is connected server-side and never held in Reflex state ---------


def test_the_owner_connects_the_demo_key_through_the_same_checks(instance, owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    connected = stripe_keys.connect_demo_key(owner)
    assert (connected.mode, connected.key_hint) == ("test", stripe_peer.demo_key[-4:])
    assert set(connected.permissions) == set(ALL_PROBES) and all(connected.permissions.values())  # probed
    assert get_secret_store().get(STRIPE_KEY_SECRET) == stripe_peer.demo_key
    with session_scope() as s:
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "stripe.connect")).one()
    assert audit.outcome == "ok"
    assert audit.details == {"source": "sandbox_demo_key", "mode": "test", "key_hint": stripe_peer.demo_key[-4:]}


@pytest.mark.parametrize("role", ["read_only", "billing_clerk", "billing_manager"])
def test_only_the_owner_connects_the_demo_key(instance, owner, stripe_peer, role: str) -> None:  # type: ignore[no-untyped-def]
    member = member_actor(role, f"{role}@example.com")
    with pytest.raises(PermissionDenied):
        stripe_keys.connect_demo_key(member)
    assert get_secret_store().get(STRIPE_KEY_SECRET) is None and stripe_keys.connection() is None
    with session_scope() as s:
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "stripe.connect")).one()
    assert (audit.outcome, audit.actor_email) == ("denied", member.email)


def test_the_demo_key_is_refused_outside_sandbox_mode(instance, owner, stripe_peer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BILLY_SANDBOX", "false")
    get_settings.cache_clear()
    with pytest.raises(StripeKeyRejected) as refused:
        stripe_keys.connect_demo_key(owner)
    assert refused.value.code == "demo_unavailable"
    assert get_secret_store().get(STRIPE_KEY_SECRET) is None and stripe_keys.connection() is None


def test_the_demo_key_never_replaces_a_connected_key(instance, owner, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    own_key = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, own_key)
    with pytest.raises(StripeKeyRejected) as refused:
        stripe_keys.connect_demo_key(owner)
    assert refused.value.code == "already_connected"
    assert get_secret_store().get(STRIPE_KEY_SECRET) == own_key


def _loaded_onboarding_state(actor: Actor) -> tuple[Any, Any]:
    """The whole state tree of a tab after the wizard's `load` ran for `actor`'s sign-in:
    (root state, OnboardingState). Everything a tab's frames can carry lives in the root's `dict()`."""
    from reflex.istate.data import RouterData
    from reflex.state import State

    from billy_app.state.onboarding import OnboardingState

    assert actor.user_id is not None
    tokens = identity.start_session(actor.user_id, "127.0.0.1", "pytest")
    root = State(_reflex_internal_init=True)
    root.router = RouterData.from_router_data(
        {
            "headers": {"cookie": f"{identity.ACCESS_COOKIE}={tokens.access}", "user-agent": "pytest"},
            "pathname": "/onboarding",
            "asPath": "/onboarding",
            "query": {},
        }
    )
    state = root.get_substate(OnboardingState.get_full_name().split(".")[1:])
    assert asyncio.run(OnboardingState.load.fn(state)) is None  # signed in: no recovery needed
    return root, state


def _assert_key_absent(root: Any, key: str) -> None:
    """Not in what is sent to the browser (`dict()`, every var of every substate), nor in what
    the state manager keeps (the pickle, backend vars included)."""
    assert key not in json.dumps(root.dict(), default=str)
    assert key.encode() not in root._serialize()


@pytest.mark.parametrize("role", ["read_only", "billing_clerk", "billing_manager", "owner"])
def test_the_demo_key_is_in_no_roles_onboarding_state(instance, owner, stripe_peer, role: str) -> None:  # type: ignore[no-untyped-def]
    """Issue 10, F2: `load` used to put the demo key in state for every member, Read Only included."""
    actor = owner if role == "owner" else member_actor(role, f"{role}@example.com")
    root, state = _loaded_onboarding_state(actor)
    _assert_key_absent(root, stripe_peer.demo_key)
    # The Owner is offered the button (a boolean); nobody else is.
    assert state.demo_key_offered is (role == "owner")
    assert state.is_owner is (role == "owner")


def test_the_demo_key_is_offered_only_in_sandbox_mode_and_until_a_key_is_connected(
    instance, owner, stripe_peer, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    assert _loaded_onboarding_state(owner)[1].demo_key_offered is True
    monkeypatch.setenv("BILLY_SANDBOX", "false")
    get_settings.cache_clear()
    assert _loaded_onboarding_state(owner)[1].demo_key_offered is False
    monkeypatch.setenv("BILLY_SANDBOX", "true")
    get_settings.cache_clear()
    stripe_keys.connect_demo_key(owner)
    root, state = _loaded_onboarding_state(owner)
    assert state.demo_key_offered is False and state.step == 3
    assert state.connected_hint == stripe_peer.demo_key[-4:]  # the hint, as for any key
    _assert_key_absent(root, stripe_peer.demo_key)
