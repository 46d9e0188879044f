"""Attacks on the access and refresh tokens, and sign-in throttling. Each is refused."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from sqlmodel import select

from services import clock, identity
from services.db import session_scope
from services.errors import NotAuthenticated
from services.models import AuditEntry, Member, SessionFamily
from services.signing import instance_key
from services.throttle import TooManyAttempts, get_login_throttle
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD


@pytest.fixture
def tokens(any_store_owner) -> identity.IssuedTokens:  # type: ignore[no-untyped-def]
    return identity.login(OWNER_EMAIL, OWNER_PASSWORD, "10.0.0.1", "pytest")


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_access_token_lives_one_hour(tokens: identity.IssuedTokens) -> None:
    claims = _claims(tokens.access)
    assert claims["exp"] - claims["iat"] == 3600
    identity.verify_access(tokens.access)
    with clock.travel(timedelta(minutes=61)), pytest.raises(NotAuthenticated):
        identity.verify_access(tokens.access)
    expired = jwt.encode(
        {**_claims(tokens.access), "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600},
        instance_key(identity.JWT_KEY_SECRET),
        algorithm="HS256",
    )
    with pytest.raises(NotAuthenticated, match="refreshing"):
        identity.verify_access(expired)


def test_alg_none_is_refused(tokens: identity.IssuedTokens) -> None:
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(tokens.access))}."
    with pytest.raises(NotAuthenticated):
        identity.verify_access(unsigned)


def test_token_signed_with_another_key_is_refused(tokens: identity.IssuedTokens) -> None:
    forged = jwt.encode(_claims(tokens.access), "not-the-instance-key-" + "x" * 40, algorithm="HS256")
    with pytest.raises(NotAuthenticated):
        identity.verify_access(forged)


@pytest.mark.parametrize("edit", [{"role": "owner", "sub": "999"}, {"sub": "2"}, {"tv": 7}, {"fam": "someone-else"}])
def test_edited_claims_break_the_signature(tokens: identity.IssuedTokens, edit: dict) -> None:
    header, _payload, signature = tokens.access.split(".")
    tampered = f"{header}.{_b64({**_claims(tokens.access), **edit})}.{signature}"
    with pytest.raises(NotAuthenticated):
        identity.verify_access(tampered)


def test_refresh_rotates_and_a_spent_token_revokes_the_family(tokens: identity.IssuedTokens) -> None:
    second = identity.refresh(tokens.refresh)
    assert second.refresh != tokens.refresh and second.access != tokens.access
    identity.verify_access(second.access)
    with pytest.raises(NotAuthenticated):
        identity.refresh(tokens.refresh)  # replayed: someone holds a copy
    # ... so the legitimate holder of the newest tokens is signed out too.
    with pytest.raises(NotAuthenticated):
        identity.refresh(second.refresh)
    with pytest.raises(NotAuthenticated):
        identity.verify_access(second.access)
    with session_scope() as s:
        family = s.exec(select(SessionFamily)).one()
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "auth.refresh_reuse")).one()
    assert family.revoked_reason == "refresh_reuse" and audit.outcome == "denied"


def test_forged_and_missing_refresh_tokens_are_refused(any_store_owner) -> None:  # type: ignore[no-untyped-def]
    for bad in (None, "", "made-up-token"):
        with pytest.raises(NotAuthenticated):
            identity.refresh(bad)


def test_a_removed_members_still_valid_access_token_is_refused(tokens: identity.IssuedTokens) -> None:
    with session_scope() as s:
        member = s.exec(select(Member).where(Member.email == OWNER_EMAIL)).one()
        member.active = False
    with pytest.raises(NotAuthenticated):
        identity.verify_access(tokens.access)


def test_token_version_bump_kills_older_tokens(tokens: identity.IssuedTokens) -> None:
    with session_scope() as s:
        s.exec(select(Member).where(Member.email == OWNER_EMAIL)).one().token_version += 1
    with pytest.raises(NotAuthenticated, match="changed"):
        identity.verify_access(tokens.access)


def test_login_throttling_kicks_in_and_lifts(owner, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from services.config import get_settings

    monkeypatch.setenv("BILLY_LOGIN_LIMIT_PER_ACCOUNT", "3/2 seconds")
    get_settings.cache_clear()
    get_login_throttle.cache_clear()
    for _ in range(3):
        with pytest.raises(identity.InvalidCredentials):
            identity.login(OWNER_EMAIL, "wrong-password", "10.0.0.9")
    with pytest.raises(TooManyAttempts, match="Too many sign-in attempts"):
        identity.login(OWNER_EMAIL, OWNER_PASSWORD, "10.0.0.9")  # even the right password waits
    time.sleep(2.1)
    assert identity.login(OWNER_EMAIL, OWNER_PASSWORD, "10.0.0.9").access


def test_throttling_per_client_address_spans_accounts(owner, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from services.config import get_settings

    monkeypatch.setenv("BILLY_LOGIN_LIMIT_PER_ADDRESS", "4/1 minute")
    get_settings.cache_clear()
    get_login_throttle.cache_clear()
    for i in range(4):
        with pytest.raises(identity.InvalidCredentials):
            identity.login(f"guess{i}@example.com", "whatever-password", "10.9.9.9")
    with pytest.raises(TooManyAttempts):
        identity.login(OWNER_EMAIL, OWNER_PASSWORD, "10.9.9.9")
    assert identity.login(OWNER_EMAIL, OWNER_PASSWORD, "10.0.0.1").access  # another address is unaffected
