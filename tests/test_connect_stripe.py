"""Connecting Stripe: the key is probed against the sandbox and kept only in the secret store."""

from __future__ import annotations

import logging

import pytest
from sqlmodel import select

from services import stripe_keys
from services.db import session_scope
from services.errors import PermissionDenied, StripeKeyRejected
from services.models import AuditEntry, StripeConnection
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
