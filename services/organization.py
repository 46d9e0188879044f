"""The organisation this instance serves, and the first-run signup that creates it.

`signup` is deliberately free of web concerns so the control plane can call it when it
provisions an instance (DESIGN, Tenancy).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services import audit, roles
from services.config import get_settings
from services.db import session_scope, transaction
from services.errors import SignupClosed, ValidationFailed
from services.identity import check_password_policy, hash_password, normalize_email
from services.models import Member, Organization, StripeConnection, utcnow
from services.permissions import OWNER, Actor, Source, authorize
from services.plans import PLANS, TRIAL_DAYS
from services.seats import seats_used


@dataclass(frozen=True)
class OrgSummary:
    name: str
    plan: str
    plan_label: str
    trial_ends_at: datetime
    plan_chosen: bool = False  # chosen in Settings → Plan (else: still the trial's plan)
    # Stripe rejected the connected key (`services.key_watch`): every page's banner, read here with the
    # organisation when a page loads rather than by a query of its own.
    stripe_key_rejected: bool = False


def get_organization() -> OrgSummary | None:
    with session_scope() as session:
        org = session.get(Organization, 1)
        if org is None:
            return None
        stripe = session.exec(select(StripeConnection)).first()
        rejected = stripe is not None and bool(stripe.secret_name) and stripe.rejected_at is not None
        return OrgSummary(
            org.name, org.plan, PLANS[org.plan].label, org.trial_ends_at, org.plan_chosen_at is not None, rejected
        )


def signup_open() -> bool:
    return get_settings().first_run_signup and get_organization() is None


def onboarding_done() -> bool:
    with session_scope() as session:
        row = session.exec(select(StripeConnection)).first()
        return bool(row and row.onboarding_done)


def signup(
    org_name: str,
    plan: str,
    email: str,
    password: str,
    *,
    client_address: str = "",
    user_agent: str = "",
    allow_when_closed: bool = False,
    owner_name: str | None = None,
) -> Member:
    """Create the organisation, its Owner and a 14-day trial, in one transaction. `owner_name`:
    the Owner's own name as the signup form asks it (None: a caller that has none, e.g. a script)."""
    now = utcnow()
    if not allow_when_closed and not get_settings().first_run_signup:
        raise SignupClosed("Signup is not offered on this instance.")
    name = " ".join(org_name.split())
    if not name:
        raise ValidationFailed("Enter your organisation's name.")
    if len(name) > 120:
        raise ValidationFailed("Organisation names are limited to 120 characters.")
    if plan not in PLANS:
        raise ValidationFailed("Choose a plan: Starter, Pro or Business.")
    person = " ".join((owner_name or "").split())
    if owner_name is not None and not person:
        raise ValidationFailed("Enter your name, as your team will see it.")
    if len(person) > 120:
        raise ValidationFailed("Names are limited to 120 characters.")
    address = normalize_email(email)
    check_password_policy(password, related=[address, name, *person.split()])
    try:
        with session_scope() as session:
            if session.get(Organization, 1) is not None:
                raise SignupClosed("This instance already has an organisation: sign in instead.")
            session.add(
                Organization(id=1, name=name, plan=plan, trial_ends_at=now + timedelta(days=TRIAL_DAYS), created_at=now)
            )
            owner = Member(
                email=address,
                name=person,
                password_hash=hash_password(password),
                role=OWNER,
                created_at=now,
                last_active_at=now,
            )
            session.add(owner)
            session.flush()
    except IntegrityError:
        # A second signup racing the first: the single-organisation key refused it.
        raise SignupClosed("This instance already has an organisation: sign in instead.") from None
    actor = Actor(owner.id, owner.email, OWNER, Source.DASHBOARD, client_address, user_agent)
    audit.record(actor, "organization.signup", "ok", audit.AuditDraft(details={"plan": plan, "name": name}))
    return owner


def choose_plan(actor: Actor, plan: str, *, session: Session | None = None) -> OrgSummary:
    """The Owner picks Billy's plan; an ended trial stops being read-only. (Paying for it
    arrives with the control plane; until then choosing is enough.)"""
    now = utcnow()
    with audit.audited(actor, "billy.choose_plan", session=session) as draft:
        authorize(actor, "billy.choose_plan")
        if plan not in PLANS:
            raise ValidationFailed("Choose a plan: Starter, Pro or Business.")
        with transaction(session) as tx:
            org = tx.get(Organization, 1)
            if org is None:
                raise ValidationFailed("This instance has no organisation yet.")
            chosen = PLANS[plan]
            seats = seats_used(tx, now)
            if chosen.member_limit is not None and seats > chosen.member_limit:
                raise ValidationFailed(
                    f"{chosen.label} allows {chosen.member_limit} members, counting pending invites, and this team "
                    f"uses {seats}: remove members or withdraw invites in Settings → Team before moving to "
                    f"{chosen.label}."
                )
            holders = roles.custom_roles_in_use(tx)
            if not chosen.custom_roles and holders:
                raise ValidationFailed(
                    f"Custom roles come with Business only, and {holders} member(s) or invite(s) hold one: "
                    "give them a built-in role in Settings → Team first."
                )
            draft.details.update(old_plan=org.plan, new_plan=plan)
            org.plan, org.plan_chosen_at = plan, now
            return OrgSummary(org.name, org.plan, PLANS[org.plan].label, org.trial_ends_at, True)
