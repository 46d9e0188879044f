"""Agent tokens: a member's credential for the REST API and the MCP agent (DESIGN, Programmatic doors).

A token belongs to one member and acts as that member: the role, its caps and the plan gates are
read from the store on every call, so a role lowered later lowers the token at its next call.
The member may scope a token below their role (read-only, lower refund caps, a subset of
actions, an expiry); `authorize` applies role ∩ scope. Only the SHA-256 of the secret is stored;
the secret is shown once, when issued. Every member manages their own tokens; the Owner sees and
revokes everyone's. A token cannot issue or revoke tokens: that needs the person, signed in.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlmodel import col, select

from services import audit, identity, spend
from services.db import session_scope
from services.errors import NotAuthenticated, NotFound, PermissionDenied, ValidationFailed
from services.models import AgentToken, Member, utcnow
from services.money import format_money, is_currency_code, parse_money
from services.permissions import (
    ACTIONS,
    READ_PERMISSIONS,
    Actor,
    Permission,
    Source,
    TokenScope,
    authorize,
    role_of,
)
from services.signing import digest

SECRET_PREFIX = "billy_at_"  # recognisable in a config file, and by secret scanners
_SECRET = re.compile(r"^billy_at_[A-Za-z0-9_\-]{40,60}$")
CLIENT_NAME_MAX = 80
EXPIRY_CHOICES = (1, 7, 30, 90, 365)  # days; None: until revoked
LAST_USED_EVERY = timedelta(seconds=60)  # "last used" is written at most this often per token


# What a member may tick when limiting a token to some kinds of change (reads always stay: an agent
# that may refund must still find the charge). Each group is its actions.
ACTION_GROUPS: dict[str, tuple[str, ...]] = {
    "refunds": ("charges.refund", "refunds.confirmation_email"),
    "refund_requests": ("refunds.request", "refunds.withdraw", "refunds.approve", "refunds.decline"),
    "customers": ("customers.update", "customers.update_contact"),
    "subscriptions": (
        "subscriptions.preview_change",
        "subscriptions.change",
        "subscriptions.pause",
        "subscriptions.resume",
        "subscriptions.cancel",
        "subscriptions.reactivate",
    ),
    "invoices": ("invoices.create", "invoices.send", "invoices.remind", "invoices.void", "invoices.mark_uncollectible"),
    "emails": ("payments.update_email",),
}
GROUP_WORDS = {
    "refunds": "Refunds",
    "refund_requests": "Refund requests and approvals",
    "customers": "Customer details",
    "subscriptions": "Subscriptions",
    "invoices": "Invoices and reminders",
    "emails": "Payment-update emails",
}


def groups_for(actor: Actor) -> list[str]:
    """The groups of changes the actor's role holds at least one action of (what the page offers)."""
    held = role_of(actor).permissions
    return [g for g, actions in ACTION_GROUPS.items() if any(ACTIONS[a] in held for a in actions)]


def actions_for_groups(actor: Actor, groups: Iterable[str]) -> tuple[str, ...] | None:
    """A token limited to `groups` (None: not limited): every read of the role, and the chosen
    groups' actions the role holds."""
    chosen = [g for g in groups if g in ACTION_GROUPS]
    if not chosen:
        return None
    held = role_of(actor).permissions
    reads = [a for a, needed in ACTIONS.items() if needed in READ_PERMISSIONS and not a.startswith("agents.")]
    changes = [a for g in chosen for a in ACTION_GROUPS[g] if ACTIONS[a] in held]
    return tuple(sorted({*reads, *changes}))


@dataclass(frozen=True)
class ScopeRequest:
    """What a member asks for when issuing a token (validated against their role)."""

    read_only: bool = False
    refund_caps: dict[str, int] | None = None  # minor units per currency; None: the role's
    actions: tuple[str, ...] | None = None  # None: every action of the role
    expires_in_days: int | None = 90
    daily_budgets: dict[str, int] | None = None  # minor units per currency; None: the member's


@dataclass(frozen=True)
class IssuedToken:
    """The one moment the secret exists outside the caller's hands."""

    id: str
    secret: str
    client_name: str
    expires_at: datetime | None


@dataclass(frozen=True)
class TokenView:
    """One token as Settings → Agents lists it (never its secret or hash)."""

    id: str
    member_id: int
    member_email: str
    client_name: str
    scope_words: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    last_used_from: str
    revoked_at: datetime | None
    frozen: bool = False  # the Owner froze it: it reads, and every change is refused

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > utcnow())


def _refuse_token_caller(actor: Actor) -> None:
    if actor.token_id:
        raise PermissionDenied("An agent token cannot issue or revoke tokens: sign in to Billy to do that.")


def clean_client_name(name: object) -> str:
    text = " ".join(str(name or "").split())[:CLIENT_NAME_MAX]
    if not text:
        raise ValidationFailed("Name the client this token is for, e.g. “Claude Desktop on Jane's laptop”.")
    return text


def check_scope(actor: Actor, scope: ScopeRequest) -> ScopeRequest:
    """A scope never reaches above the role: each named action must be one the role holds, each
    cap at most the role's. Refused in words, naming what is wrong."""
    role = role_of(actor)
    actions = None
    if scope.actions is not None:
        names = sorted({str(a) for a in scope.actions})
        unknown = [a for a in names if a not in ACTIONS]
        if unknown:
            raise ValidationFailed(f"There is no action {unknown[0][:60]!r}.")
        beyond = [a for a in names if ACTIONS[a] not in role.permissions]
        if beyond:
            raise ValidationFailed(f"Your role ({role.label}) cannot {beyond[0]!r}, so a token of yours cannot either.")
        if not names:
            raise ValidationFailed("Choose at least one action, or leave the token's actions unrestricted.")
        actions = tuple(names)
    caps = None
    if scope.refund_caps is not None:
        caps = _amounts_by_currency(scope.refund_caps, "A refund cap")
        for cur, amount in caps.items():
            ceiling = None if role.refund_caps is None else role.refund_caps.get(cur)
            if role.refund_caps is not None and (ceiling is None or amount > ceiling):
                limit = "no refunds" if ceiling is None else format_money(ceiling, cur)
                raise ValidationFailed(
                    f"A token's refund cap cannot be above your role's ({role.label}: {limit} per charge "
                    f"in {cur.upper()})."
                )
    if scope.expires_in_days is not None and scope.expires_in_days not in EXPIRY_CHOICES:
        raise ValidationFailed("A token expires after 1, 7, 30, 90 or 365 days, or when revoked.")
    return ScopeRequest(scope.read_only, caps, actions, scope.expires_in_days, _check_budgets(actor, scope))


def _amounts_by_currency(given: dict[str, int], what: str) -> dict[str, int]:
    """Minor-unit amounts per currency as asked, checked in shape: codes lowercased."""
    amounts: dict[str, int] = {}
    for currency, amount in given.items():
        cur = str(currency).lower()
        if not is_currency_code(cur) or not isinstance(amount, int) or amount < 0:
            raise ValidationFailed(f"{what} is a currency code and an amount of zero or more.")
        amounts[cur] = amount
    return amounts


def _check_budgets(actor: Actor, scope: ScopeRequest) -> dict[str, int] | None:
    """A token's daily refund budget: per currency, at most the member's own budget there."""
    if scope.daily_budgets is None:
        return None
    budgets = _amounts_by_currency(scope.daily_budgets, "A daily refund budget")
    with session_scope() as session:
        own = spend.budgets_of(session, actor)
    for cur, amount in budgets.items():
        ceiling = None if own is None else own.get(cur)
        if ceiling is not None and amount > ceiling:
            raise ValidationFailed(
                f"A token's daily refund budget cannot be above your own "
                f"({format_money(ceiling, cur)} in {cur.upper()})."
            )
    return budgets


def parse_form_amount(text: str, currency: str = "usd") -> dict[str, int] | None:
    """A cap or daily budget typed in a form ("50" or "50.00"; empty: the role's or the member's)
    as minor units per currency."""
    if not text.strip():
        return None
    try:
        return {currency: parse_money(text.strip(), currency)}
    except ValueError as exc:  # money's own words: how to type the amount
        raise ValidationFailed(str(exc)) from None


def budget_ceiling(actor: Actor) -> spend.Budgets | None:
    """The highest daily refund budget a new token of the member's may carry, per currency (their
    own; None: they have none, so a token's is optional and unbounded)."""
    authorize(actor, "agents.issue")
    with session_scope() as session:
        return spend.budgets_of(session, actor)


def issue_token(actor: Actor, client_name: str, scope: ScopeRequest) -> IssuedToken:
    """A new token for the signed-in member, scoped as asked (never above their role)."""
    with audit.audited(actor, "agents.issue") as draft:
        _refuse_token_caller(actor)
        authorize(actor, "agents.issue")
        name = clean_client_name(client_name)
        checked = check_scope(actor, scope)
        now = utcnow()
        token_id = "tok_" + secrets.token_hex(8)
        secret = SECRET_PREFIX + secrets.token_urlsafe(33)
        expires = now + timedelta(days=checked.expires_in_days) if checked.expires_in_days else None
        row = AgentToken(
            id=token_id,
            member_id=actor.user_id or 0,
            client_name=name,
            secret_hash=digest(secret),
            read_only=checked.read_only,
            refund_caps=checked.refund_caps,
            actions=list(checked.actions) if checked.actions is not None else None,
            daily_budgets=checked.daily_budgets,
            created_at=now,
            expires_at=expires,
        )
        with session_scope() as session:
            session.add(row)
        draft.targets.append(token_id)
        draft.details.update(client=name, scope=scope_words(_scope_of(row)))
    return IssuedToken(token_id, secret, name, expires)


def _scope_of(row: AgentToken) -> TokenScope:
    return TokenScope(
        read_only=row.read_only,
        refund_caps=dict(row.refund_caps) if row.refund_caps is not None else None,
        actions=frozenset(row.actions) if row.actions is not None else None,
        daily_budgets=dict(row.daily_budgets) if row.daily_budgets is not None else None,
        frozen=row.frozen_at is not None,
    )


def scope_words(scope: TokenScope) -> str:
    """A scope as the token list says it: "read-only", "refunds ≤ $50.00", "3 actions"."""
    parts = ["read-only" if scope.read_only else "as your role"]
    if scope.refund_caps is not None and not scope.read_only:
        parts.append(
            ", ".join(f"refunds ≤ {format_money(v, c)}" for c, v in sorted(scope.refund_caps.items())) or "no refunds"
        )
    if scope.daily_budgets is not None and not scope.read_only:
        parts.append(", ".join(f"{format_money(v, c)} a day" for c, v in sorted(scope.daily_budgets.items())))
    if scope.actions is not None:
        parts.append(f"{len(scope.actions)} action{'s' if len(scope.actions) != 1 else ''} only")
    return "; ".join(parts)


def list_tokens(actor: Actor) -> list[TokenView]:
    """The member's own tokens; the Owner (who manages the team) sees everyone's."""
    authorize(actor, "agents.view")
    everyone = not actor.token_id and Permission.MANAGE_TEAM in role_of(actor).permissions
    with session_scope() as session:
        query = select(AgentToken, Member).join(Member, col(Member.id) == col(AgentToken.member_id))
        if not everyone:
            query = query.where(col(AgentToken.member_id) == actor.user_id)
        rows = session.exec(query.order_by(col(AgentToken.created_at).desc())).all()
        return [_view(token, member) for token, member in rows]


def _view(row: AgentToken, member: Member) -> TokenView:
    return TokenView(
        row.id,
        row.member_id,
        member.email,
        row.client_name,
        scope_words(_scope_of(row)),
        row.created_at,
        row.expires_at,
        row.last_used_at,
        row.last_used_from,
        row.revoked_at,
        frozen=row.frozen_at is not None,
    )


def revoke_token(actor: Actor, token_id: str) -> None:
    """Revoke a token: the member's own, or anyone's by the Owner. Its next call fails."""
    with audit.audited(actor, "agents.revoke", str(token_id)[:40]) as draft:
        _refuse_token_caller(actor)
        authorize(actor, "agents.revoke")
        _revoke(actor, str(token_id)[:40], draft)


def revoke_own_token(actor: Actor) -> None:
    """`agent-billy logout`: the calling token revokes itself (the one revocation a token may make)."""
    with audit.audited(actor, "agents.revoke", actor.token_id) as draft:
        authorize(actor, "agents.revoke")
        if not actor.token_id:
            raise PermissionDenied("Only an agent token can sign itself out; revoke tokens in Settings → Agents.")
        _revoke(actor, actor.token_id, draft)


def _revoke(actor: Actor, token_id: str, draft: audit.AuditDraft) -> None:
    """Mark the token revoked by `actor` (once), if `actor` may: its member, or the Owner."""
    with session_scope() as session:
        row = session.get(AgentToken, token_id)
        if row is None:
            raise NotFound("There is no such agent token.")
        if row.member_id != actor.user_id and Permission.MANAGE_TEAM not in role_of(actor).permissions:
            raise PermissionDenied("Only the Owner can revoke another member's agent token.")
        draft.details["client"] = row.client_name
        if row.revoked_at is None:
            row.revoked_at, row.revoked_by = utcnow(), actor.user_id
            session.add(row)


def actor_for_token(secret: str | None, source: Source, client_address: str = "", user_agent: str = "") -> Actor:
    """The Actor behind a bearer agent token: not revoked, not expired, its member still active;
    the role, plan and trial read fresh, the token's scope applied. Notes when and from where it
    was used (at most once a minute per token)."""
    if not secret or not _SECRET.match(secret):
        raise NotAuthenticated("This agent token is not valid. Run `agent-billy login` to connect again.")
    now = utcnow()
    with session_scope() as session:
        row = session.exec(select(AgentToken).where(col(AgentToken.secret_hash) == digest(secret))).first()
        if row is None:
            raise NotAuthenticated("This agent token is not valid. Run `agent-billy login` to connect again.")
        if row.revoked_at is not None:
            raise NotAuthenticated("This agent token was revoked. Run `agent-billy login` to connect again.")
        if row.expires_at is not None and row.expires_at <= now:
            raise NotAuthenticated("This agent token has expired. Run `agent-billy login` to connect again.")
        member = session.get(Member, row.member_id)
        if member is None or not member.active:
            raise NotAuthenticated("The member this agent token belongs to can no longer sign in.")
        where = f"{source} · {client_address}"[:120]
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY or row.last_used_from != where:
            row.last_used_at, row.last_used_from = now, where
            session.add(row)
        actor = identity.member_actor(session, member, source, client_address, user_agent, now=now)
        return _scoped(actor, row)


def _scoped(actor: Actor, row: AgentToken) -> Actor:
    return replace(actor, token_id=row.id, token_client=row.client_name, scope=_scope_of(row))
