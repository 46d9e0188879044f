"""Settings → Roles: the built-in roles as they are, and custom roles on the Business plan.

A custom role is a name, a set of permissions taken from the Billing Manager's, and a
refund cap per currency no higher than the Manager's. The rules are checked here when a
role is saved and again by `permissions.role_of` whenever one is used, so a row changed
out of band still cannot reach an Owner-only power. Members pick up a change on their
next action: every request loads the role with the member.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from services import audit
from services.db import session_scope, transaction
from services.errors import NotFound, PlanLimitReached, ValidationFailed
from services.models import CustomRole, MagicLink, Member, Organization, stored_id, utcnow
from services.money import format_money
from services.permissions import (
    BUILT_IN_ORDER,
    CUSTOM_ROLE_CEILING,
    CUSTOM_ROLE_PREFIX,
    GRANTABLE_PERMISSIONS,
    PERMISSION_WORDS,
    ROLES,
    Actor,
    Permission,
    Role,
    authorize,
    is_custom_role,
)
from services.plans import PLANS

LABEL_MAX = 40
MAX_CUSTOM_ROLES = 50

# What a custom role may be given, in the order the builder lists them. VIEW is not a
# choice: every role can view and search.
CHOOSABLE_PERMISSIONS: tuple[Permission, ...] = tuple(
    p for p in Permission if p in GRANTABLE_PERMISSIONS and p is not Permission.VIEW
)
# Permissions that only make sense with another one.
REQUIRES: dict[Permission, Permission] = {
    Permission.APPROVE_REFUNDS: Permission.REFUND,
    Permission.UPDATE_CUSTOMER: Permission.UPDATE_CUSTOMER_CONTACT,
}


@dataclass(frozen=True)
class RoleView:
    key: str
    label: str
    built_in: bool
    permissions: tuple[Permission, ...]
    refund_caps: dict[str, int] | None  # None: no cap (Owner)
    members: int


def custom_role_key(role_id: int) -> str:
    return f"{CUSTOM_ROLE_PREFIX}{role_id}"


def _role_from_row(row: CustomRole) -> Role:
    permissions = frozenset(Permission(p) for p in row.permissions if p in Permission._value2member_map_)
    return Role(custom_role_key(stored_id(row)), row.label, permissions, dict(row.refund_caps))


def _row_for_key(session: Session, key: str) -> CustomRole | None:
    if not is_custom_role(key):
        return None
    try:
        role_id = int(key.removeprefix(CUSTOM_ROLE_PREFIX))
    except ValueError:
        return None
    return session.get(CustomRole, role_id)


def load_custom_role(session: Session, key: str) -> Role | None:
    """The custom role behind a member's `role`, for building their Actor (None if none)."""
    row = _row_for_key(session, key)
    return _role_from_row(row) if row is not None else None


def labels(session: Session) -> dict[str, str]:
    """Every role key → label, built-in and custom, for lists that show members' roles."""
    found = {key: role.label for key, role in ROLES.items()}
    for row in session.exec(select(CustomRole)):
        found[custom_role_key(stored_id(row))] = row.label
    return found


def assignable_roles(session: Session) -> list[tuple[str, str]]:
    """Roles a member can be invited to or given: the built-in ones below the Owner, and
    custom roles while the plan includes them."""
    choices = [(key, ROLES[key].label) for key in reversed(BUILT_IN_ORDER) if key != "owner"]
    if _plan_allows_custom_roles(session):
        rows = session.exec(select(CustomRole).order_by(col(CustomRole.label_key))).all()
        choices += [(custom_role_key(stored_id(r)), r.label) for r in rows]
    return choices


def check_assignable(session: Session, role: str) -> None:
    """Refuse a role that cannot be given to a member right now, naming what can."""
    choices = dict(assignable_roles(session))
    if role in choices:
        return
    if is_custom_role(role) and _row_for_key(session, role) is not None:
        _check_plan(session)
    raise ValidationFailed("Choose a role: " + ", ".join(choices.values()) + ".")


def _plan_allows_custom_roles(session: Session) -> bool:
    org = session.get(Organization, 1)
    return org is not None and PLANS[org.plan].custom_roles


def custom_roles_in_use(session: Session) -> int:
    """Members and pending invites holding a custom role (a plan change away from Business waits for them)."""
    members = session.exec(
        select(Member).where(col(Member.active).is_(True), col(Member.role).startswith(CUSTOM_ROLE_PREFIX))
    ).all()
    invites = session.exec(
        select(MagicLink).where(
            col(MagicLink.role).startswith(CUSTOM_ROLE_PREFIX),
            col(MagicLink.used_at).is_(None),
            col(MagicLink.revoked_at).is_(None),
            MagicLink.expires_at > utcnow(),
        )
    ).all()
    return len(members) + len(invites)


def list_roles(actor: Actor) -> list[RoleView]:
    """Built-in roles first (lowest to highest), then custom roles by name."""
    audit.authorize_read(actor, "roles.view")
    with session_scope() as session:
        counts: dict[str, int] = {}
        for member in session.exec(select(Member).where(col(Member.active).is_(True))):
            counts[member.role] = counts.get(member.role, 0) + 1
        views = [
            RoleView(
                key,
                ROLES[key].label,
                True,
                tuple(p for p in Permission if p in ROLES[key].permissions),
                ROLES[key].refund_caps,
                counts.get(key, 0),
            )
            for key in BUILT_IN_ORDER
        ]
        for row in session.exec(select(CustomRole).order_by(col(CustomRole.label_key))):
            role = _role_from_row(row)
            views.append(
                RoleView(
                    role.name,
                    role.label,
                    False,
                    tuple(p for p in Permission if p in role.permissions | {Permission.VIEW}),
                    dict(role.refund_caps or {}),
                    counts.get(role.name, 0),
                )
            )
    return views


def _clean(label: str, permissions: list[str], refund_caps: dict[str, int]) -> tuple[str, list[str], dict[str, int]]:
    """Validate a role as the Owner typed it; every refusal says what to change."""
    label = " ".join(str(label).split())
    if not label:
        raise ValidationFailed("Give the role a name, for example “Support lead”.")
    if len(label) > LABEL_MAX:
        raise ValidationFailed(f"Keep the role's name to {LABEL_MAX} characters.")
    if label.lower() in {r.label.lower() for r in ROLES.values()}:
        raise ValidationFailed(f"“{label}” is a built-in role's name; choose another.")
    chosen: set[Permission] = set()
    for raw in permissions:
        try:
            permission = Permission(str(raw))
        except ValueError:
            raise ValidationFailed(f"“{raw}” is not a permission Billy knows.") from None
        if permission not in GRANTABLE_PERMISSIONS:
            raise ValidationFailed(
                f"Only the Owner can {PERMISSION_WORDS[permission]}; a custom role cannot be given that."
            )
        chosen.add(permission)
    for permission, needs in REQUIRES.items():
        if permission in chosen and needs not in chosen:
            raise ValidationFailed(
                f"A role that can {PERMISSION_WORDS[permission]} must also be able to {PERMISSION_WORDS[needs]}."
            )
    caps: dict[str, int] = {}
    ceiling = CUSTOM_ROLE_CEILING.refund_caps or {}
    if Permission.REFUND in chosen:
        for raw_currency, raw_amount in refund_caps.items():
            currency = str(raw_currency).lower()
            if currency not in ceiling:
                raise ValidationFailed(
                    f"Refund limits can be set in {', '.join(c.upper() for c in ceiling)} only, "
                    "as for the Billing Manager."
                )
            if isinstance(raw_amount, bool) or not isinstance(raw_amount, int):
                raise ValidationFailed("A refund limit is a whole amount in cents.")
            if raw_amount <= 0:
                raise ValidationFailed("A role that can refund needs a refund limit above zero.")
            if raw_amount > ceiling[currency]:
                raise ValidationFailed(
                    f"A custom role's refund limit can be at most the Billing Manager's, "
                    f"{format_money(ceiling[currency], currency)} per charge."
                )
            caps[currency] = raw_amount
        if not caps:
            raise ValidationFailed("A role that can refund needs a refund limit per charge.")
    chosen.add(Permission.VIEW)
    return label, sorted(p.value for p in chosen), caps


def _check_plan(session: Session) -> None:
    """The store's plan decides (the Actor's copy may be a request old)."""
    if not _plan_allows_custom_roles(session):
        raise PlanLimitReached(
            "Custom roles come with the Business plan; the Owner can change plan in Settings → Plan."
        )


def _check_label_free(session: Session, label: str, own_id: int | None = None) -> None:
    row = session.exec(select(CustomRole).where(CustomRole.label_key == label.lower())).first()
    if row is not None and row.id != own_id:
        raise ValidationFailed(f"There is already a role called “{row.label}”.")


def create_custom_role(
    actor: Actor, label: str, permissions: list[str], refund_caps: dict[str, int], *, session: Session | None = None
) -> str:
    """Save a new custom role; returns its key for assigning members."""
    with audit.audited(actor, "roles.create", session=session) as draft:
        authorize(actor, "roles.manage")
        label, chosen, caps = _clean(label, permissions, refund_caps)
        draft.details.update(label=label, permissions=chosen, refund_caps=caps)
        with transaction(session) as tx:
            _check_plan(tx)
            _check_label_free(tx, label)
            count = len(tx.exec(select(CustomRole.id)).all())
            if count >= MAX_CUSTOM_ROLES:
                raise ValidationFailed(f"An organisation can have up to {MAX_CUSTOM_ROLES} custom roles.")
            row = CustomRole(
                label=label, label_key=label.lower(), permissions=chosen, refund_caps=caps, created_by=actor.user_id
            )
            tx.add(row)
            tx.flush()
            key = custom_role_key(stored_id(row))
        draft.targets.append(key)
        return key


def update_custom_role(
    actor: Actor,
    key: str,
    label: str,
    permissions: list[str],
    refund_caps: dict[str, int],
    *,
    session: Session | None = None,
) -> None:
    """Change a custom role; its members act under the new rules from their next action."""
    with audit.audited(actor, "roles.update", key, session=session) as draft:
        authorize(actor, "roles.manage")
        label, chosen, caps = _clean(label, permissions, refund_caps)
        with transaction(session) as tx:
            _check_plan(tx)
            row = _row_for_key(tx, key)
            if row is None:
                raise NotFound("That role no longer exists.")
            _check_label_free(tx, label, row.id)
            draft.details.update(
                old={"label": row.label, "permissions": row.permissions, "refund_caps": row.refund_caps},
                new={"label": label, "permissions": chosen, "refund_caps": caps},
            )
            row.label, row.label_key, row.permissions, row.refund_caps = label, label.lower(), chosen, caps
            row.updated_at = utcnow()


def delete_custom_role(actor: Actor, key: str, *, session: Session | None = None) -> None:
    """Delete a custom role nobody holds (members and pending invites move to another role first)."""
    with audit.audited(actor, "roles.delete", key, session=session) as draft:
        authorize(actor, "roles.manage")
        with transaction(session) as tx:
            row = _row_for_key(tx, key)
            if row is None:
                raise NotFound("That role no longer exists.")
            draft.details.update(label=row.label)
            holders = tx.exec(select(Member.email).where(col(Member.active).is_(True), Member.role == key)).all()
            invited = tx.exec(
                select(MagicLink.email).where(
                    MagicLink.role == key,
                    col(MagicLink.used_at).is_(None),
                    col(MagicLink.revoked_at).is_(None),
                    MagicLink.expires_at > utcnow(),
                )
            ).all()
            if holders or invited:
                names = ", ".join([*holders, *(f"{e} (invited)" for e in invited)])
                raise ValidationFailed(
                    f"“{row.label}” is still given to {names}. Give them another role in Settings → Team first."
                )
            tx.delete(row)
