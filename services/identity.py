"""Who is calling: passwords and sign-in sessions.

A session token is random, shown to the browser only inside an httpOnly cookie and
stored here only as its SHA-256. Issue 3 layers the 1-hour JWT and rotating refresh
tokens on top of this module; edges already depend only on `resolve_session`.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from passlib.context import CryptContext
from sqlmodel import select

from services import audit
from services.audit import AuditDraft
from services.config import get_settings
from services.db import session_scope
from services.errors import InvalidCredentials, NotAuthenticated, ValidationFailed
from services.models import AuthSession, Member, utcnow
from services.permissions import Actor, Source

SESSION_COOKIE = "billy_session"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
_LAST_SEEN_EVERY = timedelta(minutes=1)

password_context = CryptContext(schemes=["argon2"], deprecated="auto")
# Verified against when the email is unknown, so both paths cost one argon2 hash.
_DUMMY_HASH = password_context.hash(secrets.token_hex(16))


def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"That email address does not look right: {exc}") from None


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(f"Passwords are limited to {MAX_PASSWORD_LENGTH} characters.")
    if len(set(password)) < 4:
        raise ValidationFailed("That password is too easy to guess: mix more different characters.")


def hash_password(password: str) -> str:
    return password_context.hash(password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_session(member_id: int, client_address: str = "", user_agent: str = "") -> str:
    """Start a signed-in session and return the token for the cookie (never stored in clear)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with session_scope() as session:
        session.add(
            AuthSession(
                member_id=member_id,
                token_hash=_token_hash(token),
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(days=get_settings().session_days),
                client_address=client_address[:64],
                user_agent=user_agent[:400],
            )
        )
    return token


def login(email: str, password: str, client_address: str = "", user_agent: str = "") -> str:
    """Check the password and open a session. One message for unknown email and wrong password."""
    try:
        address = normalize_email(email)
    except ValidationFailed:
        address = email.strip().lower()
    with session_scope() as session:
        member = session.exec(select(Member).where(Member.email == address)).first()
        if member is None or not member.active:
            password_context.verify(password, _DUMMY_HASH)
            ok, new_hash = False, None
        else:
            ok, new_hash = password_context.verify_and_update(password, member.password_hash)
            if ok and new_hash:
                member.password_hash = new_hash
    actor = Actor(
        member.id if member else None,
        address,
        member.role if member else "",
        Source.DASHBOARD,
        client_address,
        user_agent,
    )
    if not ok or member is None:
        audit.record(actor, "auth.login", "denied", AuditDraft(), "wrong email or password")
        raise InvalidCredentials()
    audit.record(actor, "auth.login", "ok")
    return new_session(member.id, client_address, user_agent)  # type: ignore[arg-type]


def resolve_session(
    token: str | None,
    source: Source = Source.DASHBOARD,
    client_address: str = "",
    user_agent: str = "",
    now: datetime | None = None,
) -> Actor:
    """The Actor behind a session cookie, re-read from the store on every call so that a
    revoked session or a removed member stops working at once."""
    if not token:
        raise NotAuthenticated()
    now = now or utcnow()
    with session_scope() as session:
        row = session.exec(select(AuthSession).where(AuthSession.token_hash == _token_hash(token))).first()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            raise NotAuthenticated("Your session has ended. Please sign in again.")
        member = session.get(Member, row.member_id)
        if member is None or not member.active:
            raise NotAuthenticated("This account can no longer sign in.")
        if now - row.last_seen_at >= _LAST_SEEN_EVERY:
            row.last_seen_at = now
            member.last_active_at = now
        return Actor(member.id, member.email, member.role, source, client_address, user_agent)


def logout(token: str | None) -> None:
    if not token:
        return
    with session_scope() as session:
        row = session.exec(select(AuthSession).where(AuthSession.token_hash == _token_hash(token))).first()
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
