"""The organisation this instance serves, and the first-run signup that creates it.

`signup` is deliberately free of web concerns so the control plane can call it when it
provisions an instance (DESIGN, Tenancy).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

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
    trial_ends_at: datetime | None = None,
    source: Source = Source.DASHBOARD,
) -> Member:
    """Create the organisation, its Owner and a 14-day trial, in one transaction. `owner_name`:
    the Owner's own name as the signup form asks it (None: a caller that has none, e.g. a script).
    `trial_ends_at`: the trial's end as the control plane counts it (None: 14 days from now)."""
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
    if trial_ends_at is not None and trial_ends_at.tzinfo is None:
        raise ValidationFailed("Give the trial's end with a time zone (UTC), e.g. 2027-01-31T12:00:00+00:00.")
    trial_end = trial_ends_at or now + timedelta(days=TRIAL_DAYS)
    try:
        with session_scope() as session:
            if session.get(Organization, 1) is not None:
                raise SignupClosed("This instance already has an organisation: sign in instead.")
            session.add(Organization(id=1, name=name, plan=plan, trial_ends_at=trial_end, created_at=now))
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
    actor = Actor(owner.id, owner.email, OWNER, source, client_address, user_agent)
    audit.record(actor, "organization.signup", "ok", audit.AuditDraft(details={"plan": plan, "name": name}))
    return owner


def choose_plan(actor: Actor, plan: str, *, session: Session | None = None) -> OrgSummary:
    """The Owner picks Billy's plan; an ended trial stops being read-only. Only where no control
    plane runs (first-run signup): a provisioned instance's plan is paid for in Billy's own Stripe
    account on the control plane's account page, and provisioning writes it here, so choosing it
    locally would give a plan nobody pays for. Refusing it here refuses it at every edge (page, API, agent)."""
    now = utcnow()
    with audit.audited(actor, "billy.choose_plan", session=session) as draft:
        authorize(actor, "billy.choose_plan")
        account_url = get_settings().account_url
        if account_url:
            raise ValidationFailed(f"Billy's plan is managed on your account page: {account_url}")
        if plan not in PLANS:
            raise ValidationFailed("Choose a plan: Starter, Pro or Business.")
        with transaction(session) as tx:
            org = tx.get(Organization, 1)
            if org is None:
                raise ValidationFailed("This instance has no organisation yet.")
            _check_team_fits(tx, plan, now)
            draft.details.update(old_plan=org.plan, new_plan=plan)
            org.plan, org.plan_chosen_at = plan, now
            return OrgSummary(org.name, org.plan, PLANS[org.plan].label, org.trial_ends_at, True)


def _check_team_fits(session: Session, plan: str, now: datetime) -> None:
    """Refuse a plan the team does not fit in (members and pending invites, custom roles): the one
    rule for the Owner's choice and the control plane's change alike, so neither strands a member."""
    chosen = PLANS[plan]
    seats = seats_used(session, now)
    if chosen.member_limit is not None and seats > chosen.member_limit:
        raise ValidationFailed(
            f"{chosen.label} allows {chosen.member_limit} members, counting pending invites, and this team "
            f"uses {seats}: remove members or withdraw invites in Settings → Team before moving to "
            f"{chosen.label}."
        )
    holders = roles.custom_roles_in_use(session)
    if not chosen.custom_roles and holders:
        raise ValidationFailed(
            f"Custom roles come with Business only, and {holders} member(s) or invite(s) hold one: "
            "give them a built-in role in Settings → Team first."
        )


# --- written by the control plane (DESIGN, Tenancy) ------------------------------------------


def seed_organization(
    org_name: str, plan: str, owner_email: str, owner_name: str, password: str, trial_ends_at: datetime
) -> Member:
    """The organisation and its Owner as the control plane's signup collected them; returns the Owner.

    Idempotent for the same Owner (the control plane retries after a crash midway): the second
    run changes nothing, not even a password the Owner may have changed since. An organisation
    that belongs to another Owner is refused (`SignupClosed`): a wrong instance must not be taken over."""
    try:
        return signup(
            org_name,
            plan,
            owner_email,
            password,
            allow_when_closed=True,
            owner_name=owner_name,
            trial_ends_at=trial_ends_at,
            source=Source.SYSTEM,
        )
    except SignupClosed:
        address = normalize_email(owner_email)
        with session_scope() as session:
            owner = session.exec(select(Member).where(Member.role == OWNER, col(Member.active).is_(True))).first()
            if owner is None or owner.email != address:
                raise SignupClosed(
                    "This instance already has an organisation with another Owner: nothing was changed."
                ) from None
            return owner


def set_plan_from_control_plane(
    plan: str, *, trial_ends_at: datetime | None = None, plan_chosen: bool | None = None
) -> OrgSummary:
    """The plan and trial as the control plane now has them (a plan change, a trial extended, a plan
    paid for or not). Limits apply at once: every door reads them from this row. None: unchanged.

    The control plane answers to the customer, not to a member, so no role is checked; the team
    must still fit the plan (as for the Owner's choice) and the change is audited as the system's."""
    now = utcnow()
    if trial_ends_at is not None and trial_ends_at.tzinfo is None:
        raise ValidationFailed("Give the trial's end with a time zone (UTC), e.g. 2027-01-31T12:00:00+00:00.")
    with audit.audited(Actor.system(), "billy.set_plan") as draft, session_scope() as session:
        if plan not in PLANS:
            raise ValidationFailed(f"{plan!r} is not one of Billy's plans ({', '.join(PLANS)}).")
        org = session.get(Organization, 1)
        if org is None:
            raise ValidationFailed("This instance has no organisation yet: run provision-org first.")
        if plan != org.plan:
            _check_team_fits(session, plan, now)
        draft.details.update(old_plan=org.plan, new_plan=plan, by="control plane")
        org.plan = plan
        if trial_ends_at is not None:
            draft.details["trial_ends_at"] = trial_ends_at.isoformat()
            org.trial_ends_at = trial_ends_at
        if plan_chosen is not None:
            draft.details["plan_chosen"] = plan_chosen
            org.plan_chosen_at = (org.plan_chosen_at or now) if plan_chosen else None
        return OrgSummary(org.name, org.plan, PLANS[org.plan].label, org.trial_ends_at, org.plan_chosen_at is not None)
