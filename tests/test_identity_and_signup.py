"""First-run signup, passwords and sign-in sessions, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from services import identity, organization
from services.db import get_engine, session_scope
from services.errors import InvalidCredentials, NotAuthenticated, SignupClosed, ValidationFailed
from services.models import AuditEntry, AuthSession, Member, Organization, utcnow
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD


def test_signup_creates_org_owner_and_14_day_trial(any_store) -> None:  # type: ignore[no-untyped-def]
    assert organization.signup_open()
    now = utcnow()
    owner = organization.signup("  Acme   Ltd ", "business", "Owner@Example.com", OWNER_PASSWORD, now=now)
    org = organization.get_organization()
    assert org is not None and org.name == "Acme Ltd" and org.plan == "business"
    assert org.trial_ends_at == now + timedelta(days=14)
    assert owner.role == "owner" and owner.email == "owner@example.com"
    assert not organization.signup_open()
    with session_scope() as s:
        stored = s.get(Member, owner.id)
        assert stored is not None and OWNER_PASSWORD not in stored.password_hash
        assert stored.password_hash.startswith("$argon2")
        assert s.exec(select(AuditEntry).where(AuditEntry.action == "organization.signup")).one().outcome == "ok"


def test_second_signup_is_refused_even_when_racing(any_store) -> None:  # type: ignore[no-untyped-def]
    results: list[str] = []

    def attempt(i: int) -> None:
        try:
            organization.signup(f"Org {i}", "pro", f"o{i}@example.com", OWNER_PASSWORD)
            results.append("ok")
        except SignupClosed:
            results.append("closed")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["closed", "closed", "closed", "ok"]
    with session_scope() as s:
        assert len(s.exec(select(Organization)).all()) == 1
        assert len(s.exec(select(Member)).all()) == 1  # the losers left nothing behind


def test_database_itself_refuses_a_second_organisation(any_store) -> None:  # type: ignore[no-untyped-def]
    organization.signup("Acme", "pro", OWNER_EMAIL, OWNER_PASSWORD)
    with pytest.raises(sa.exc.IntegrityError), get_engine().begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO organization (id, name, plan, trial_ends_at, created_at) "
                "VALUES (2, 'Other', 'pro', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"org_name": "   "}, "organisation's name"),
        ({"plan": "gold"}, "Choose a plan"),
        ({"email": "not-an-email"}, "email address"),
        ({"password": "short"}, "at least 10"),
        ({"password": "aaaaaaaaaaaa"}, "too easy"),
    ],
)
def test_signup_validation_says_what_to_do(instance, fields: dict[str, str], message: str) -> None:  # type: ignore[no-untyped-def]
    values = {"org_name": "Acme", "plan": "pro", "email": OWNER_EMAIL, "password": OWNER_PASSWORD} | fields
    with pytest.raises(ValidationFailed, match=message):
        organization.signup(**values)
    assert organization.get_organization() is None  # nothing half-written


def test_signup_closed_when_first_run_signup_is_off(instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from services.config import get_settings

    monkeypatch.setenv("BILLY_FIRST_RUN_SIGNUP", "false")
    get_settings.cache_clear()
    assert not organization.signup_open()
    with pytest.raises(SignupClosed):
        organization.signup("Acme", "pro", OWNER_EMAIL, OWNER_PASSWORD)


def test_login_logout_and_session_resolution(any_store_owner) -> None:  # type: ignore[no-untyped-def]
    token = identity.login(OWNER_EMAIL.upper(), OWNER_PASSWORD, "10.0.0.1", "browser")
    actor = identity.resolve_session(token, client_address="10.0.0.1")
    assert actor.email == OWNER_EMAIL and actor.role == "owner" and actor.client_address == "10.0.0.1"
    with session_scope() as s:  # only the hash is stored
        assert s.exec(select(AuthSession).where(AuthSession.token_hash == token)).first() is None
    identity.logout(token)
    with pytest.raises(NotAuthenticated):
        identity.resolve_session(token)


def test_same_refusal_for_unknown_email_and_wrong_password(owner) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidCredentials) as wrong_password:
        identity.login(OWNER_EMAIL, "not-the-password")
    with pytest.raises(InvalidCredentials) as unknown:
        identity.login("nobody@example.com", "not-the-password")
    assert wrong_password.value.message == unknown.value.message
    with session_scope() as s:
        denied = s.exec(
            select(AuditEntry).where(AuditEntry.action == "auth.login", AuditEntry.outcome == "denied")
        ).all()
    assert len(denied) == 2


def test_expired_forged_and_removed_member_sessions_are_refused(owner) -> None:  # type: ignore[no-untyped-def]
    token = identity.login(OWNER_EMAIL, OWNER_PASSWORD)
    with pytest.raises(NotAuthenticated):
        identity.resolve_session(token, now=utcnow() + timedelta(days=8))
    with pytest.raises(NotAuthenticated):
        identity.resolve_session(token[:-2] + "xx")
    with pytest.raises(NotAuthenticated):
        identity.resolve_session(None)
    with session_scope() as s:
        member = s.get(Member, owner.user_id)
        assert member is not None
        member.active = False
    with pytest.raises(NotAuthenticated):
        identity.resolve_session(token)
