"""First-run signup, passwords and sign-in sessions, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from services import clock, identity, organization
from services.db import get_engine, session_scope
from services.errors import InvalidCredentials, NotAuthenticated, SignupClosed, ValidationFailed
from services.models import AuditEntry, Member, Organization, RefreshToken, utcnow
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD


def test_signup_creates_org_owner_and_14_day_trial(any_store) -> None:  # type: ignore[no-untyped-def]
    assert organization.signup_open()
    now = utcnow()
    with clock.freeze(now):
        owner = organization.signup("  Acme   Ltd ", "business", "Owner@Example.com", OWNER_PASSWORD)
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
        ({"password": "aaaaaaaaaaaa"}, "Repeats like"),
        ({"password": "password1234"}, "very common password"),
        ({"password": "acmeltd2026!", "org_name": "Acme Ltd"}, "."),
        ({"owner_name": "   "}, "Enter your name"),
        ({"owner_name": "x" * 121}, "120 characters"),
    ],
)
def test_signup_validation_says_what_to_do(instance, fields: dict[str, str], message: str) -> None:  # type: ignore[no-untyped-def]
    values = {"org_name": "Acme", "plan": "pro", "email": OWNER_EMAIL, "password": OWNER_PASSWORD} | fields
    with pytest.raises(ValidationFailed, match=message):
        organization.signup(**values)
    assert organization.get_organization() is None  # nothing half-written


def test_the_owner_name_given_at_signup_is_the_owners_name(instance) -> None:  # type: ignore[no-untyped-def]
    owner = organization.signup("Acme", "pro", OWNER_EMAIL, OWNER_PASSWORD, owner_name="  Ada   Lovelace ")
    assert owner.name == "Ada Lovelace"


def test_signup_closed_when_first_run_signup_is_off(instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from services.config import get_settings

    monkeypatch.setenv("BILLY_FIRST_RUN_SIGNUP", "false")
    get_settings.cache_clear()
    assert not organization.signup_open()
    with pytest.raises(SignupClosed):
        organization.signup("Acme", "pro", OWNER_EMAIL, OWNER_PASSWORD)


def test_login_logout_and_access_token_resolution(any_store_owner) -> None:  # type: ignore[no-untyped-def]
    tokens = identity.login(OWNER_EMAIL.upper(), OWNER_PASSWORD, "10.0.0.1", "browser")
    actor = identity.verify_access(tokens.access, client_address="10.0.0.1")
    assert actor.email == OWNER_EMAIL and actor.role == "owner" and actor.client_address == "10.0.0.1"
    assert tokens.access_expires_at - utcnow() <= timedelta(hours=1)
    with session_scope() as s:  # only the refresh token's hash is stored
        assert s.exec(select(RefreshToken).where(RefreshToken.token_hash == tokens.refresh)).first() is None
    identity.logout(tokens.access, tokens.refresh)
    with pytest.raises(NotAuthenticated):
        identity.verify_access(tokens.access)
    with pytest.raises(NotAuthenticated):
        identity.refresh(tokens.refresh)


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


def test_an_unknown_email_costs_one_argon2_check_at_the_live_parameters_from_the_first_sign_in(
    owner, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Timing must not tell which emails are members: an unknown email is checked against a dummy
    hash made with today's parameters, and the first sign-in of a process (which makes that hash)
    is no different for an unknown email than for a known one."""
    identity._dummy_hash.cache_clear()  # as in a process that has not signed anyone in yet
    checked: list[str] = []
    verify, verify_and_update = identity.password_context.verify, identity.password_context.verify_and_update
    monkeypatch.setattr(identity.password_context, "verify", lambda p, h: checked.append(h) or verify(p, h))
    monkeypatch.setattr(
        identity.password_context, "verify_and_update", lambda p, h: checked.append(h) or verify_and_update(p, h)
    )
    with pytest.raises(InvalidCredentials):
        identity.login(OWNER_EMAIL, "not-the-password")
    assert identity._dummy_hash.cache_info().currsize == 1  # a member's first sign-in made it too
    with pytest.raises(InvalidCredentials):
        identity.login("nobody@example.com", "not-the-password")
    assert len(checked) == 2
    member_hash, dummy = checked
    assert dummy == identity._dummy_hash() and dummy != member_hash
    assert not identity.password_context.needs_update(dummy)  # the same argon2 cost as a member's
    assert dummy.split("$")[:4] == member_hash.split("$")[:4]


def test_password_hash_is_upgraded_at_sign_in_when_parameters_change(owner) -> None:  # type: ignore[no-untyped-def]
    weaker = identity.password_context.copy(argon2__time_cost=1).hash(OWNER_PASSWORD)
    with session_scope() as s:
        member = s.get(Member, owner.user_id)
        assert member is not None
        member.password_hash = weaker
    identity.login(OWNER_EMAIL, OWNER_PASSWORD)
    with session_scope() as s:
        upgraded = s.get(Member, owner.user_id).password_hash  # type: ignore[union-attr]
    assert upgraded != weaker and "t=3" in upgraded


def test_a_caller_is_checked_in_one_read_of_the_store(any_store_owner) -> None:  # type: ignore[no-untyped-def]
    """Every dashboard event and every live refresh of an open page checks its caller: member,
    sign-in and organisation come in one statement (three round trips before, 2.6-5.4 ms a check on
    PostgreSQL), and the answer is still the store's word of that moment."""
    tokens = identity.login(OWNER_EMAIL, OWNER_PASSWORD, "10.0.0.1", "browser")
    identity.verify_access(tokens.access)  # the sign-in's first sighting is written here
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    sa.event.listen(get_engine(), "before_cursor_execute", seen)
    try:
        actor = identity.verify_access(tokens.access)
    finally:
        sa.event.remove(get_engine(), "before_cursor_execute", seen)
    assert actor.email == OWNER_EMAIL and actor.plan == "pro"
    assert [s.split()[0].upper() for s in statements] == ["SELECT"], statements
    identity.logout(tokens.access, tokens.refresh)
    with pytest.raises(NotAuthenticated, match="session has ended"):
        identity.verify_access(tokens.access)
