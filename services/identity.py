"""Who is calling: passwords, 1-hour access JWTs and rotating refresh tokens.

- The access token is a JWT (HS256, 1 hour) signed with a per-instance key kept in the
  secret store. It names the member, their refresh family and their token version.
- The refresh token is opaque and random, stored only as its SHA-256, and good for one
  use: each refresh spends it and hands out a new one in the same family. Presenting a
  spent one means a copy exists somewhere else, so the whole family is revoked.
- Every verification re-reads the member and the family from the store, so signing out,
  removal and a password reset take effect on the very next request; the role used is
  the stored one, so a role change does too.
"""

from __future__ import annotations

import functools
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from email_validator import EmailNotValidError, validate_email
from passlib.context import CryptContext
from sqlmodel import Session, col, select
from zxcvbn import zxcvbn

from services import audit, roles
from services.audit import AuditDraft
from services.config import get_settings
from services.db import session_scope
from services.errors import InvalidCredentials, NotAuthenticated, ValidationFailed
from services.models import Member, Organization, RefreshToken, SessionFamily, stored_id, table_of, utcnow
from services.permissions import Actor, Source
from services.signing import JWT_KEY_SECRET, digest, instance_key
from services.throttle import get_login_throttle

ACCESS_COOKIE = "billy_access"
REFRESH_COOKIE = "billy_refresh"
JWT_ALGORITHM = "HS256"
JWT_ISSUER = "agent-billy"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
_LAST_SEEN_EVERY = timedelta(minutes=1)

# Parameters are explicit so that raising them later flags older hashes for an upgrade
# at the member's next sign-in (`verify_and_update`).
password_context = CryptContext(
    schemes=["argon2"], deprecated="auto", argon2__time_cost=3, argon2__memory_cost=65536, argon2__parallelism=2
)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so both paths cost one argon2 hash. Made at the
    first sign-in, not at import: every process importing Billy (workers, the CLI, the agent's
    `--mcp`) paid ~0.13 s for it. `login` asks for it before looking the email up, so the one
    sign-in that makes it is slower whether or not the email is known."""
    return password_context.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class IssuedTokens:
    access: str
    access_expires_at: datetime
    refresh: str
    refresh_expires_at: datetime


def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"That email address does not look right: {exc}") from None


def check_password_policy(password: str, *, related: list[str] | None = None) -> None:
    """Long enough, and not guessable: zxcvbn knows the common passwords and patterns,
    and `related` (email, organisation name) counts as guessable too."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(f"Passwords are limited to {MAX_PASSWORD_LENGTH} characters.")
    verdict = zxcvbn(password[:100], user_inputs=_guessable_words(related or []))
    if verdict["score"] < 3:
        feedback = verdict["feedback"]
        warning = feedback.get("warning") or "That password is too easy to guess."
        advice = " ".join(feedback.get("suggestions") or []) or "Use a few uncommon words together."
        raise ValidationFailed(f"{warning.rstrip('.')}. {advice}")


def _guessable_words(related: list[str]) -> list[str]:
    """ "Acme Ltd" and "jane.doe@acme.com" → acme, ltd, acmeltd, jane, doe, janedoe, acme.com …"""
    words: set[str] = set()
    for text in filter(None, related):
        lowered = text.lower()
        local, _, domain = lowered.partition("@")
        parts = [p for p in re.split(r"[^a-z0-9]+", local) if p]
        words.update(parts)
        words.update({lowered, "".join(parts)})
        if domain:
            words.update({domain, domain.split(".")[0]})
    return sorted(w for w in words if len(w) >= 3)


def hash_password(password: str) -> str:
    return password_context.hash(password)


def _jwt_key() -> str:
    return instance_key(JWT_KEY_SECRET)


def access_ttl() -> timedelta:
    """One hour unless configured otherwise (tests shorten it to watch pages refresh)."""
    return timedelta(seconds=get_settings().access_token_seconds)


def _access_token(member: Member, family_id: str, now: datetime) -> tuple[str, datetime]:
    expires = now + access_ttl()
    claims = {
        "iss": JWT_ISSUER,
        "sub": str(member.id),
        "role": member.role,  # informative only: the stored role is what authorizes
        "tv": member.token_version,
        "fam": family_id,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, _jwt_key(), algorithm=JWT_ALGORITHM), expires


def _new_refresh(session: Session, family_id: str, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    session.add(RefreshToken(family_id=family_id, token_hash=digest(token), created_at=now))
    return token


def start_session(member_id: int, client_address: str = "", user_agent: str = "") -> IssuedTokens:
    """A new sign-in: a refresh family, its first refresh token and an access token."""
    now = utcnow()
    with session_scope() as session:
        member = session.get(Member, member_id)
        if member is None or not member.active:
            raise NotAuthenticated("This account can no longer sign in.")
        family = SessionFamily(
            id=str(uuid.uuid4()),
            member_id=member_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(days=get_settings().session_days),
            client_address=client_address[:64],
            user_agent=user_agent[:400],
        )
        session.add(family)
        session.flush()
        refresh = _new_refresh(session, family.id, now)
        access, access_expires = _access_token(member, family.id, now)
        return IssuedTokens(access, access_expires, refresh, family.expires_at)


def login(email: str, password: str, client_address: str = "", user_agent: str = "") -> IssuedTokens:
    """Check the password and start a session. Unknown email and wrong password get the
    same answer and cost the same time; failures are throttled per account and address."""
    try:
        address = normalize_email(email)
    except ValidationFailed:
        address = email.strip().lower()
    throttle = get_login_throttle()
    throttle.check(address, client_address)
    dummy_hash = _dummy_hash()
    with session_scope() as session:
        member = session.exec(select(Member).where(Member.email == address)).first()
        if member is None or not member.active:
            password_context.verify(password, dummy_hash)
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
        throttle.failed(address, client_address)
        audit.record(actor, "auth.login", "denied", AuditDraft(), "wrong email or password")
        raise InvalidCredentials()
    throttle.succeeded(address)
    audit.record(actor, "auth.login", "ok")
    return start_session(stored_id(member), client_address, user_agent)


def _decode(token: str, *, now: datetime | None = None, verify_exp: bool = True) -> dict[str, Any]:
    """Signature (HS256 only: `alg: none` and other algorithms are refused), issuer and the
    claims we rely on; expiry against `now`, the caller's instant (default: the clock's now)."""
    try:
        claims = jwt.decode(
            token,
            _jwt_key(),
            algorithms=[JWT_ALGORITHM],
            issuer=JWT_ISSUER,
            options={"require": ["exp", "iat", "sub", "fam", "tv"], "verify_exp": False},
        )
    except jwt.PyJWTError:
        raise NotAuthenticated() from None
    if verify_exp and claims["exp"] <= (now or utcnow()).timestamp():
        raise NotAuthenticated("Your session needs refreshing.")
    return claims


def access_expires_at(token: str | None) -> datetime | None:
    """When a (validly signed) access token expires, for the page's keep-alive timer."""
    if not token:
        return None
    try:
        claims = _decode(token, verify_exp=False)
    except NotAuthenticated:
        return None
    return datetime.fromtimestamp(claims["exp"], tz=utcnow().tzinfo)


def verify_access(
    token: str | None,
    source: Source = Source.DASHBOARD,
    client_address: str = "",
    user_agent: str = "",
) -> Actor:
    """The Actor behind an access token: signature, expiry, then the store's word on the
    member (still active, same token version) and on the session family (not revoked)."""
    now = utcnow()
    if not token:
        raise NotAuthenticated()
    claims = _decode(token, now=now)
    with session_scope() as session:
        member, family, org = _standing(session, int(claims["sub"]), str(claims["fam"]))
        if member is None or not member.active or member.token_version != claims["tv"]:
            raise NotAuthenticated("Your access has changed. Please sign in again.")
        if family is None or family.member_id != member.id or family.revoked_at is not None or family.expires_at <= now:
            raise NotAuthenticated("Your session has ended. Please sign in again.")
        if now - family.last_seen_at >= _LAST_SEEN_EVERY:
            family.last_seen_at = now
            member.last_active_at = now
        return member_actor(
            session, member, source, client_address, user_agent, session_family=family.id, now=now, org=org
        )


def _standing(
    session: Session, member_id: int, family_id: str
) -> tuple[Member | None, SessionFamily | None, Organization | None]:
    """The member, their sign-in and the organisation, read in one statement. Every dashboard
    event and every live refresh of an open page verifies its caller: three reads were three
    round trips, 2.6-5.4 ms a check on PostgreSQL here (bench.caller_check), and under a burst
    of Stripe events with fifty pages open, checking callers took 18 % of the server's time
    (py-spy on bench.burst)."""
    found = session.exec(
        select(Member, SessionFamily, Organization)
        .select_from(Member)
        .outerjoin(SessionFamily, col(SessionFamily.id) == family_id)
        .outerjoin(Organization, col(Organization.id) == 1)
        .where(col(Member.id) == member_id)
    ).first()
    if found is None:
        return None, None, None
    member, family, org = found
    return member, family, org


def member_actor(
    session: Session,
    member: Member,
    source: Source,
    client_address: str = "",
    user_agent: str = "",
    *,
    session_family: str = "",
    now: datetime,
    org: Organization | None = None,
) -> Actor:
    """The Actor for a member as the store has them at `now`: role, Billy plan, an ended trial and
    a custom role read fresh. The one place an Actor's standing is built, for every door."""
    org = org or session.get(Organization, 1)
    trial_ended = org is not None and org.plan_chosen_at is None and org.trial_ends_at <= now
    return Actor(
        stored_id(member),
        member.email,
        member.role,
        source,
        client_address,
        user_agent,
        plan=org.plan if org else "starter",
        trial_ended_on=org.trial_ends_at.date() if trial_ended and org else None,
        custom_role=roles.load_custom_role(session, member.role),
        session_family=session_family,
        frozen=member.frozen_at is not None,
        writes_frozen=org is not None and org.writes_frozen_at is not None,
    )


def refresh(refresh_token: str | None, client_address: str = "", user_agent: str = "") -> IssuedTokens:
    """Spend a refresh token for a new pair. A spent token presented again revokes its family."""
    now = utcnow()
    if not refresh_token:
        raise NotAuthenticated()
    reused: tuple[Member, SessionFamily] | None = None
    with session_scope() as session:
        row = session.exec(select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))).first()
        if row is None:
            raise NotAuthenticated()
        family = session.get(SessionFamily, row.family_id)
        member = session.get(Member, family.member_id) if family else None
        if family is None or member is None:
            raise NotAuthenticated()
        if row.used_at is not None:
            if family.revoked_at is None:
                family.revoked_at, family.revoked_reason = now, "refresh_reuse"
                reused = (member, family)
        elif family.revoked_at is None and family.expires_at > now and member.active:
            # Spend it only if nobody spent it since we read it (two tabs refreshing at once).
            spent = session.exec(
                table_of(RefreshToken)
                .update()
                .where(col(RefreshToken.id) == row.id, col(RefreshToken.used_at).is_(None))
                .values(used_at=now)
            ).rowcount
            if spent == 1:
                family.last_seen_at = now
                new_refresh = _new_refresh(session, family.id, now)
                access, access_expires = _access_token(member, family.id, now)
                return IssuedTokens(access, access_expires, new_refresh, family.expires_at)
    if reused is not None:
        member, family = reused
        actor = Actor(member.id, member.email, member.role, Source.DASHBOARD, client_address, user_agent)
        audit.record(
            actor,
            "auth.refresh_reuse",
            "denied",
            AuditDraft(details={"family": family.id}),
            "a spent refresh token was presented again; every session of that sign-in was ended",
        )
    raise NotAuthenticated("Your session has ended. Please sign in again.")


def revoke_family(family_id: str, reason: str) -> None:
    with session_scope() as session:
        family = session.get(SessionFamily, family_id)
        if family is not None and family.revoked_at is None:
            family.revoked_at, family.revoked_reason = utcnow(), reason


def revoke_all_sessions(session: Session, member_id: int, reason: str) -> None:
    """End every sign-in of a member, inside the caller's transaction."""
    now = utcnow()
    for family in session.exec(
        select(SessionFamily).where(SessionFamily.member_id == member_id, col(SessionFamily.revoked_at).is_(None))
    ):
        family.revoked_at, family.revoked_reason = now, reason


def logout(access_token: str | None, refresh_token: str | None) -> None:
    """Sign out: the family behind either cookie is revoked (an expired access token still names it)."""
    family_id = None
    if refresh_token:
        with session_scope() as session:
            row = session.exec(select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))).first()
            family_id = row.family_id if row else None
    if family_id is None and access_token:
        try:
            family_id = str(_decode(access_token, verify_exp=False)["fam"])
        except NotAuthenticated:
            family_id = None
    if family_id:
        revoke_family(family_id, "signed_out")
