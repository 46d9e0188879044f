"""Spend controls (issue 15): rolling 24-hour refund budgets per member and per agent token,
and the Owner's freezes (of a member, a token, or every billing change; enforced in
`permissions.authorize`).

A per-charge cap stops one big refund; a budget stops many small ones (a Clerk, or an agent in
a loop, refunding $99 on each of 200 charges). Every refund counts against the budget of the
member who made it (for an approved request: the approver, who executes it) and of the agent
token that carried it.

Which budget applies, per currency (minor units):
- the member's own, if the Owner set one ("member:<id>" rows of `refund_budget`);
- else their role's: a row the Owner set ("role:<key>"), else the built-in default
  (`DEFAULT_BUDGETS`; custom roles take the Billing Clerk's);
- an agent token may carry its own, lower budget (`agent_token.daily_budgets`), checked too.
A role with refund caps has budgets only in the currencies named; a refund in another currency
is refused, as caps are. A role without caps (the Owner) has no budget unless one is set.

The check runs right after the cap check, under the member's spend lock (`services.locks`):
the refund is counted (a `refund_spend` row, committed) before the lock is released and Stripe
is called, so twenty concurrent refunds see each other and cannot overshoot. A refund Stripe
refuses is uncounted; one whose answer was lost stays counted (it may have been made).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from services import audit, clock, roles
from services.db import session_scope
from services.errors import RefundBudgetExceeded, StripeRequestFailed, ValidationFailed
from services.locks import named_lock
from services.models import AgentToken, Member, Organization, RefundBudget, RefundSpend
from services.money import format_money, is_currency_code
from services.permissions import OWNER, Actor, authorize, is_custom_role, role_of

WINDOW = timedelta(hours=24)
# Built-in roles' budgets per currency (None: no budget). A Clerk's $100 cap allows five full
# refunds a day; a Manager's $5,000 cap, five. Custom roles inherit the Clerk's.
DEFAULT_BUDGETS: dict[str, dict[str, int] | None] = {
    "read_only": {},
    "billing_clerk": {"usd": 500_00},
    "billing_manager": {"usd": 25_000_00},
    OWNER: None,
}
CUSTOM_ROLE_BUDGETS_FROM = "billing_clerk"

# Per currency: an amount, or None for "no budget in this currency". A currency missing from a
# capped role's budgets is refused; missing from an uncapped role's, it has no budget.
Budgets = dict[str, int | None]


def member_scope(member_id: int) -> str:
    return f"member:{member_id}"


def role_scope(role: str) -> str:
    return f"role:{role}"


def _default_budgets(role: str) -> dict[str, int] | None:
    key = CUSTOM_ROLE_BUDGETS_FROM if is_custom_role(role) else role
    found = DEFAULT_BUDGETS.get(key, {})
    return None if found is None else dict(found)


def _rows(session: Session, scope: str) -> dict[str, int | None]:
    rows = session.exec(select(RefundBudget).where(RefundBudget.scope == scope)).all()
    return {row.currency: row.amount for row in rows}


def _budgets_and_own(session: Session, actor: Actor) -> tuple[Budgets | None, frozenset[str]]:
    """The member's budgets per currency (None: none in any), and the currencies in which the
    budget is the member's own rather than their role's."""
    defaults = _default_budgets(actor.role)
    found: Budgets | None = None if defaults is None else dict(defaults)
    role_set = _rows(session, role_scope(actor.role))
    own = _rows(session, member_scope(actor.user_id or 0))
    if role_set or own:
        found = {**(found or {}), **role_set, **own}
    return found, frozenset(own)


def budgets_of(session: Session, actor: Actor) -> Budgets | None:
    """The member's budgets per currency (None: no budget in any currency)."""
    return _budgets_and_own(session, actor)[0]


def _capped(actor: Actor) -> bool:
    return role_of(actor).refund_caps is not None


@dataclass(frozen=True)
class Standing:
    """One budget that applies to a refund: whose words, its limit, and the window's spends."""

    whose: str  # "your Billing Clerk" / "your own" / "this agent token's"
    limit: int
    currency: str
    spends: tuple[tuple[datetime, int], ...]  # within the window, oldest first

    @property
    def spent(self) -> int:
        return sum(amount for _, amount in self.spends)

    @property
    def left(self) -> int:
        return max(self.limit - self.spent, 0)

    def fits_at(self, amount: int) -> datetime | None:
        """When enough of the window's spends will have rolled out for `amount` to fit: now if it
        fits already, None if it never can (it is over the whole budget)."""
        if amount > self.limit:
            return None
        to_free = self.spent + amount - self.limit
        frees_at = clock.now()
        for at, spent in self.spends:  # oldest first: the first to roll out
            if to_free <= 0:
                break
            to_free -= spent
            frees_at = at + WINDOW
        return frees_at

    def words(self) -> str:
        """ "$401.00 of your Billing Clerk daily refund budget of $500.00 left" """
        return (
            f"{format_money(self.left, self.currency)} of {self.whose} daily refund budget of "
            f"{format_money(self.limit, self.currency)} left"
        )


def _spends(session: Session, column: sa.ColumnElement[bool], currency: str) -> tuple[tuple[datetime, int], ...]:
    since = clock.now() - WINDOW
    rows = session.exec(
        select(RefundSpend.at, RefundSpend.amount)
        .where(column, RefundSpend.currency == currency, col(RefundSpend.at) > since)
        .order_by(col(RefundSpend.at))
    ).all()
    return tuple((at, int(amount)) for at, amount in rows)


def standings(session: Session, actor: Actor, currency: str) -> list[Standing]:
    """The budgets a refund by `actor` in `currency` counts against, with what is spent; raises
    `RefundBudgetExceeded` when a budget is required and none is set in that currency."""
    cur = currency.lower()
    found: list[Standing] = []
    if actor.user_id is not None:
        budgets, own_currencies = _budgets_and_own(session, actor)
        if budgets is not None:
            if cur not in budgets and _capped(actor):
                raise RefundBudgetExceeded(
                    f"Your role ({role_of(actor).label}) has no daily refund budget set for {cur.upper()}; "
                    "only the Owner can set one (Settings → Spend controls)."
                )
            limit = budgets.get(cur)
            if limit is not None:
                whose = "your own" if cur in own_currencies else f"your {role_of(actor).label}"
                spends = _spends(session, col(RefundSpend.member_id) == actor.user_id, cur)
                found.append(Standing(whose, limit, cur, spends))
    token_budgets = actor.scope.daily_budgets if actor.scope is not None else None
    if actor.token_id and token_budgets is not None:
        if cur not in token_budgets:
            raise RefundBudgetExceeded(f"This agent token has no daily refund budget for {cur.upper()}.")
        spends = _spends(session, col(RefundSpend.token_id) == actor.token_id, cur)
        found.append(Standing("this agent token's", token_budgets[cur], cur, spends))
    return found


def _refusal(standing: Standing, amount: int) -> RefundBudgetExceeded:
    money = lambda value: format_money(value, standing.currency)  # noqa: E731 - a local shorthand
    fits = standing.fits_at(amount)
    if fits is None:
        when = "It is more than the whole budget: ask for approval instead."
    else:
        when = f"Enough frees up at {fits:%Y-%m-%d %H:%M} UTC, or ask for approval."
    return RefundBudgetExceeded(
        f"This refund of {money(amount)} would bring refunds in the last 24 hours to "
        f"{money(standing.spent + amount)}, over {standing.whose} daily refund budget of "
        f"{money(standing.limit)}. {money(standing.left)} is left. {when}"
    )


def check_budget(actor: Actor, amount: int, currency: str, session: Session | None = None) -> list[Standing]:
    """Refuse (`RefundBudgetExceeded`) if `amount` would take any of the actor's budgets past its
    limit; else the standings, for a preview to show what is left."""
    if session is None:
        with session_scope() as own:
            return check_budget(actor, amount, currency, own)
    found = standings(session, actor, currency)
    for standing in found:
        if standing.spent + amount > standing.limit:
            raise _refusal(standing, amount)
    return found


def spend_lock_key(member_id: int) -> str:
    return f"billy:spend:{member_id}"


@dataclass
class Reservation:
    """A refund counted against its budgets before Stripe is asked to make it."""

    idempotency_key: str
    made: bool = False  # Stripe confirmed the refund (it stays counted whatever happens next)

    def made_as(self, refund_id: str) -> None:
        with session_scope() as session:
            row = session.get(RefundSpend, self.idempotency_key)
            if row is not None:
                row.refund_id = refund_id
                session.add(row)
        self.made = True


@contextmanager
def counted(actor: Actor, amount: int, currency: str, idempotency_key: str, charge_id: str) -> Iterator[Reservation]:
    """Check the budgets and count the refund, under the member's spend lock, for the block that
    asks Stripe to make it. A retried intent (same key) is already counted and is not checked
    again. Uncounted if the block fails before Stripe made it, unless Stripe's answer was lost."""
    reservation = Reservation(idempotency_key)
    if actor.user_id is None:  # the system (sync, periodic jobs) makes no refunds of its own
        yield reservation
        return
    with named_lock(spend_lock_key(actor.user_id)), session_scope() as session:
        if session.get(RefundSpend, idempotency_key) is None:
            check_budget(actor, amount, currency, session)
            session.add(
                RefundSpend(
                    idempotency_key=idempotency_key,
                    member_id=actor.user_id,
                    token_id=actor.token_id or None,
                    charge_id=charge_id,
                    amount=amount,
                    currency=currency.lower(),
                    at=clock.now(),
                )
            )
    try:
        yield reservation
    except BaseException as exc:
        lost = isinstance(exc, StripeRequestFailed) and exc.outcome_unknown
        if not reservation.made and not lost:
            with session_scope() as session:
                row = session.get(RefundSpend, idempotency_key)
                if row is not None and row.refund_id is None:
                    session.delete(row)
        raise


# --- the Owner's settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetRow:
    """One budget as Settings → Spend controls lists it."""

    scope: str  # "role:billing_clerk", "member:12"
    label: str  # "Billing Clerk", "clerk@example.com"
    currency: str
    amount: int | None  # None: no budget
    is_default: bool  # the built-in default, not set by the Owner


def _check_currency(currency: object) -> str:
    cur = str(currency or "").strip().lower()
    if not is_currency_code(cur):
        raise ValidationFailed("Name the currency by its three-letter code, e.g. USD.")
    return cur


def _check_scope(session: Session, scope: object) -> tuple[str, str]:
    """A budget's scope as given ("role:<key>" or "member:<id>"), checked; and its label."""
    text = str(scope or "")
    kind, _, target = text.partition(":")
    if kind == "role":
        labels = roles.labels(session)
        if target not in labels or target == "read_only":
            raise ValidationFailed("Choose a role that can refund: Billing Clerk, Billing Manager or a custom role.")
        return text, labels[target]
    if kind == "member" and target.isdigit():
        member = session.get(Member, int(target))
        if member is not None and member.active:
            return text, member.email
    raise ValidationFailed("Choose a role or a member of this team.")


def set_budget(actor: Actor, scope: str, currency: str, amount: int | None) -> BudgetRow:
    """The Owner sets a role's or a member's rolling 24-hour refund budget in one currency
    (`amount` in minor units; None: no budget in that currency)."""
    with audit.audited(actor, "spend.manage", str(scope)[:60]) as draft:
        authorize(actor, "spend.manage")
        cur = _check_currency(currency)
        if amount is not None and (not isinstance(amount, int) or amount < 0):
            raise ValidationFailed("A daily refund budget is an amount of zero or more, or none at all.")
        with session_scope() as session:
            checked, label = _check_scope(session, scope)
            row = session.exec(
                select(RefundBudget).where(RefundBudget.scope == checked, RefundBudget.currency == cur)
            ).first() or RefundBudget(scope=checked, currency=cur)
            draft.details.update(currency=cur, before=row.amount if row.id else "default", after=amount)
            row.amount, row.set_by, row.set_at = amount, actor.user_id, clock.now()
            session.add(row)
        draft.amount, draft.currency = amount, cur
    return BudgetRow(checked, label, cur, amount, is_default=False)


def reset_budget(actor: Actor, scope: str, currency: str) -> None:
    """Back to the default: the role's for a member, the built-in one for a role."""
    with audit.audited(actor, "spend.manage", str(scope)[:60]) as draft:
        authorize(actor, "spend.manage")
        cur = _check_currency(currency)
        with session_scope() as session:
            checked, _ = _check_scope(session, scope)
            row = session.exec(
                select(RefundBudget).where(RefundBudget.scope == checked, RefundBudget.currency == cur)
            ).first()
            draft.details.update(currency=cur, before=row.amount if row else "default", after="default")
            if row is not None:
                session.delete(row)


def list_budgets(actor: Actor) -> list[BudgetRow]:
    """Every role's budgets (the built-in defaults and what the Owner set), then each member's own."""
    authorize(actor, "spend.view")
    with session_scope() as session:
        labels = roles.labels(session)
        set_rows = {(r.scope, r.currency): r.amount for r in session.exec(select(RefundBudget))}
        emails = {m.id: m.email for m in session.exec(select(Member))}
    rows: list[BudgetRow] = []
    for role, label in labels.items():
        if role == "read_only":
            continue
        defaults = _default_budgets(role) or {}
        scope = role_scope(role)
        currencies = sorted(set(defaults) | {cur for s, cur in set_rows if s == scope})
        for cur in currencies:
            is_set = (scope, cur) in set_rows
            rows.append(BudgetRow(scope, label, cur, set_rows[(scope, cur)] if is_set else defaults[cur], not is_set))
    for (scope, cur), amount in sorted(set_rows.items()):
        if scope.startswith("member:"):
            member_id = int(scope.partition(":")[2])
            rows.append(BudgetRow(scope, emails.get(member_id, scope), cur, amount, is_default=False))
    return rows


# --- freezes ---------------------------------------------------------------------------------------


ALL_WRITES = "all"  # `set_freeze`'s target for the whole organisation


def set_freeze(actor: Actor, target: str, frozen: bool = True) -> None:
    """Freeze, or lift the freeze on, `target`: "member:<id>" (they and their agent tokens go on
    reading; every change they ask for, through any door, is refused from their next request),
    "token:<id>" (one agent token), or "all" (every change to Stripe, for everyone, the Owner
    included: for an incident; team and settings stay open to the Owner)."""
    action = "spend.freeze" if frozen else "spend.unfreeze"
    with audit.audited(actor, action, str(target)[:60]) as draft:
        if frozen:
            authorize(actor, "spend.freeze")
        else:
            authorize(actor, "spend.unfreeze")
        kind, _, key = str(target).partition(":")
        at = clock.now() if frozen else None
        with session_scope() as session:
            if kind == "member" and key.isdigit():
                member = session.get(Member, int(key))
                if member is None or not member.active:
                    raise ValidationFailed("There is no such member in this team.")
                if member.role == OWNER:
                    raise ValidationFailed("The Owner cannot be frozen: freeze all writes instead.")
                draft.details["member"] = member.email
                member.frozen_at = at
                session.add(member)
            elif kind == "token" and key:
                token = session.get(AgentToken, key[:40])
                if token is None or token.revoked_at is not None:
                    raise ValidationFailed("There is no such agent token (it may have been revoked).")
                draft.details["client"] = token.client_name
                token.frozen_at = at
                session.add(token)
            elif target == ALL_WRITES:
                org = session.get(Organization, 1)
                if org is None:
                    raise ValidationFailed("This instance has no organisation yet.")
                draft.details["scope"] = "all writes"
                org.writes_frozen_at = at
                session.add(org)
            else:
                raise ValidationFailed("Freeze a member, an agent token, or all writes.")


# --- what Settings → Spend controls shows -------------------------------------------------------------


@dataclass(frozen=True)
class MemberStanding:
    """A member as the spend page lists them: whether frozen, and what they refunded in 24 hours."""

    id: int
    email: str
    role_label: str
    is_owner: bool
    frozen: bool
    spent: str  # "$198.00" per currency over the last 24 hours, or "" when nothing


@dataclass(frozen=True)
class SpendOverview:
    writes_frozen: bool
    budgets: list[BudgetRow]
    members: list[MemberStanding]


def overview(actor: Actor) -> SpendOverview:
    """Budgets, members (frozen or not, with what they refunded in the window) and the
    organisation-wide freeze, for the Owner."""
    budgets = list_budgets(actor)  # authorizes `spend.view`
    since = clock.now() - WINDOW
    with session_scope() as session:
        labels = roles.labels(session)
        org = session.get(Organization, 1)
        spent: dict[int, dict[str, int]] = {}
        for member_id, currency, total in session.exec(
            select(RefundSpend.member_id, RefundSpend.currency, sa.func.sum(RefundSpend.amount))
            .where(col(RefundSpend.at) > since)
            .group_by(col(RefundSpend.member_id), col(RefundSpend.currency))
        ):
            spent.setdefault(member_id, {})[currency] = int(total)
        members = [
            MemberStanding(
                id=m.id or 0,
                email=m.email,
                role_label=labels.get(m.role, m.role),
                is_owner=m.role == OWNER,
                frozen=m.frozen_at is not None,
                spent=", ".join(format_money(v, c) for c, v in sorted(spent.get(m.id or 0, {}).items())),
            )
            for m in session.exec(select(Member).where(col(Member.active)).order_by(col(Member.id)))
        ]
    return SpendOverview(org is not None and org.writes_frozen_at is not None, budgets, members)
