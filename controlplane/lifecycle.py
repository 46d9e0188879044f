"""An organisation's life: signup, trial, plan, cancel, reactivation and deletion after 30 days.

What PRODUCT_DOCS promises, and where it is kept here:

- "No credit card required for the 14-day trial": signup subscribes the organisation to Billy in
  Billy's Stripe account with a trial ending with the instance's own trial, and no card.
- Reminders at 3 days and 1 day before the trial ends (`tick`), each mailed once to the Owner;
  then the instance turns read-only by itself (it knows its `trial_ends_at`) unless a plan was
  chosen, and the control plane records that it did.
- A plan change applies at once: the instance is told (`InstanceWriter.set_plan`) and Billy's
  subscription moves to the plan's price.
- "Your container is scaled to zero replicas immediately" on cancel: `Provisioner.suspend` runs
  before anything else is written; "we keep your data for 30 days": `delete_after`; "after 30
  days, everything is permanently deleted": `tick` calls `Provisioner.destroy` (instance,
  database, backups, vault secrets) and records that it did.

Every step appends an `org_event` row in the transaction that changes the organisation's row.
Time is always given (`now`), never read here, so tests run the whole life on a test clock.
Provisioner and Stripe calls happen outside database transactions, and each is idempotent, so a
step that failed midway converges when run again; a row changes state only by compare-and-set
on the state it was read in, so two control plane processes cannot both act on one change.

Deleted organisations stay as tombstones: slug, plan, dates and the event log, with the Owner's
name and email wiped. The slug stays taken for good: `{slug}.<base domain>` keeps reaching old
bookmarks, mail links, agents' configured servers and the webhook endpoints the old organisation
set in its own Stripe account, and none of those should ever land on a stranger's instance.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select

from controlplane import billing as billing_module
from controlplane.billing import BillingFailed, BillyStripe
from controlplane.config import ControlPlaneSettings
from controlplane.mail import Mailer, trial_reminder
from controlplane.provisioning import (
    SLUG_MAX,
    InstanceWriter,
    OrgSpec,
    OwnerSeed,
    Provisioner,
    slug_problem,
)
from controlplane.store import Organisation, OrgEvent, OrgState, Store, record
from services.errors import BillyError, NotFound, ValidationFailed
from services.identity import check_password_policy, hash_password, normalize_email, password_context
from services.mailer import MailDeliveryFailed
from services.plans import PLANS, TRIAL_DAYS

log = logging.getLogger("billy.controlplane")

KEEP_AFTER_CANCEL = timedelta(days=30)
REMINDER_DAYS = (3, 1)
REMOVED_ON_DELETE = ("instance", "database", "backups", "vault secrets")
NAME_MAX = 120

LIVE = (OrgState.TRIALING, OrgState.ACTIVE, OrgState.READ_ONLY, OrgState.PAST_DUE)
UNFINISHED = (OrgState.PROVISIONING, OrgState.PROVISIONING_FAILED)


class OrgNotFound(NotFound):
    """No organisation has that slug."""


class NotAllowed(BillyError):
    """The organisation's state does not allow that now; the message says why and what instead."""

    code = "not_allowed"


class SignupInvalid(ValidationFailed):
    """One field of the signup form is not acceptable; `field` names it for the form."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ProvisioningFailed(BillyError):
    """Signup stopped midway. Nothing is lost: the same form submitted again continues it."""

    code = "provisioning_failed"


@dataclass(frozen=True)
class SignedUp:
    slug: str
    instance_url: str
    handover_url: str  # signs the Owner in once, within 60 seconds: redirect to it at once
    trial_ends_at: datetime


@dataclass
class TickReport:
    """What one `tick` did, for its log line and for tests."""

    reminders: list[tuple[str, int]] = field(default_factory=list)
    read_only: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def suggest_slug(org_name: str) -> str:
    """A slug from an organisation's name, for the form to offer ("Société Générale" → "societe-generale");
    empty when nothing allowed comes of it, and the person chooses one."""
    plain = unicodedata.normalize("NFKD", org_name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", plain)
    slug = re.sub(r"^[^a-z]+", "", slug)[:SLUG_MAX].strip("-")
    return "" if slug_problem(slug) else slug


def _words(state: str) -> str:
    return {
        OrgState.PROVISIONING: "still being set up",
        OrgState.PROVISIONING_FAILED: "not set up yet (its signup stopped midway)",
        OrgState.CANCELLED: "cancelled",
        OrgState.DELETED: "deleted",
    }.get(OrgState(state), state.replace("_", " "))


def _day(moment: datetime | None) -> str:
    return moment.strftime("%-d %B %Y") if moment else "an unknown day"


class ControlPlane:
    """The lifecycle of every organisation, against any provisioner."""

    def __init__(
        self,
        store: Store,
        provisioner: Provisioner,
        writer: InstanceWriter,
        billing: BillyStripe,
        mailer: Mailer,
        settings: ControlPlaneSettings,
    ) -> None:
        self.store = store
        self.provisioner = provisioner
        self.writer = writer
        self.billing = billing
        self.mailer = mailer
        self.settings = settings

    # --- reading -------------------------------------------------------------------------

    def org(self, slug: str) -> Organisation:
        found = self.store.org(slug)
        if found is None:
            raise OrgNotFound(f"No organisation is called {slug!r}.")
        return found

    def spec(self, org: Organisation, plan: str | None = None) -> OrgSpec:
        return OrgSpec(
            slug=org.slug,
            plan=plan or org.plan,
            owner_email=org.owner_email,
            base_domain=self.settings.base_domain,
            region=self.settings.region,
        )

    # --- writing -------------------------------------------------------------------------

    def _change(
        self,
        slug: str,
        expect: Collection[OrgState],
        now: datetime,
        kind: str,
        detail: dict[str, Any] | None = None,
        **values: Any,
    ) -> bool:
        """Set `values` on the row if its state is still one of `expect`, with its event; False if not."""
        with self.store.session() as session:
            statement = (
                sa.update(Organisation)
                .where(col(Organisation.slug) == slug, col(Organisation.state).in_(list(expect)))
                .values(**values)
            )
            result = cast(sa.CursorResult[Any], session.execute(statement))
            if result.rowcount != 1:
                return False
            record(session, slug, kind, now, **(detail or {}))
        return True

    def _note(self, slug: str, now: datetime, kind: str, **detail: Any) -> None:
        with self.store.session() as session:
            record(session, slug, kind, now, **detail)

    def _save(self, slug: str, now: datetime, kind: str, detail: dict[str, Any], **values: Any) -> None:
        """Set `values` whatever the state (ids learnt from Stripe or the provisioner), with its event."""
        self._change(slug, list(OrgState), now, kind, detail, **values)

    # --- signup --------------------------------------------------------------------------

    def sign_up(
        self,
        *,
        org_name: str,
        slug: str,
        plan: str,
        owner_name: str,
        email: str,
        password: str,
        now: datetime,
    ) -> SignedUp:
        """Check the form, claim the slug, subscribe, provision and seed the instance.

        Raises `SignupInvalid` (nothing done) or `ProvisioningFailed` (the row says where it
        stopped; the same form again, same email and password, continues from there)."""
        name = " ".join(org_name.split())
        person = " ".join(owner_name.split())
        address = self._checked(name, slug, plan, person, email, password)
        org = self._claim(name, slug, plan, person, address, password, now)
        return self._provision(org, password, now)

    def _checked(self, name: str, slug: str, plan: str, person: str, email: str, password: str) -> str:
        """Each field checked in the form's order; the first problem, in words for the person typing."""
        if not name:
            raise SignupInvalid("org_name", "Enter your organisation's name.")
        if len(name) > NAME_MAX:
            raise SignupInvalid("org_name", f"Organisation names are limited to {NAME_MAX} characters.")
        problem = slug_problem(slug)
        if problem:
            raise SignupInvalid("slug", problem)
        if plan not in PLANS:
            raise SignupInvalid("plan", "Choose a plan: Starter, Pro or Business.")
        if not person:
            raise SignupInvalid("owner_name", "Enter your name, as your team will see it.")
        if len(person) > NAME_MAX:
            raise SignupInvalid("owner_name", f"Names are limited to {NAME_MAX} characters.")
        try:
            address = normalize_email(email)
        except ValidationFailed as exc:
            raise SignupInvalid("email", str(exc)) from None
        try:
            check_password_policy(password, related=[address, name, slug, *person.split()])
        except ValidationFailed as exc:
            raise SignupInvalid("password", str(exc)) from None
        return address

    def _taken(self, slug: str) -> SignupInvalid:
        return SignupInvalid("slug", self._taken_words(slug))

    def _taken_words(self, slug: str) -> str:
        return f"{slug}.{self.settings.base_domain} is taken: choose another name."

    def address_problem(self, slug: str) -> str:
        """What is wrong with `slug` as a new organisation's address, as signup would say it ("" if
        nothing): the signup form checks it as the person types."""
        problem = slug_problem(slug)
        if not problem and self.store.org(slug) is not None:
            problem = self._taken_words(slug)
        return problem

    def _claim(
        self, name: str, slug: str, plan: str, person: str, address: str, password: str, now: datetime
    ) -> Organisation:
        """A new row for `slug`, or the row of this same person's unfinished signup."""
        existing = self.store.org(slug)
        if existing is None:
            org = Organisation(
                slug=slug,
                name=name,
                plan=plan,
                owner_name=person,
                owner_email=address,
                owner_password_hash=hash_password(password),
                state=OrgState.PROVISIONING,
                trial_ends_at=now + timedelta(days=TRIAL_DAYS),
                created_at=now,
            )
            try:
                with self.store.session() as session:
                    session.add(org)
                    session.flush()
                    record(session, slug, "signup.started", now, plan=plan)
            except IntegrityError:
                raise self._taken(slug) from None  # the same slug signed up a moment ago
            return org
        resumable = (
            existing.state in UNFINISHED
            and existing.owner_email == address
            and existing.owner_password_hash is not None
            and password_context.verify(password, existing.owner_password_hash)
        )
        if not resumable:
            raise self._taken(slug)
        self._note(slug, now, "signup.resumed", from_state=existing.state)
        return existing

    def _provision(self, org: Organisation, password: str, now: datetime) -> SignedUp:
        slug, step = org.slug, "billing"
        try:
            if not org.stripe_customer_id:
                org.stripe_customer_id = self.billing.create_customer(org)
                self._save(
                    slug,
                    now,
                    "billing.customer",
                    {"customer": org.stripe_customer_id},
                    stripe_customer_id=org.stripe_customer_id,
                )
            if not org.stripe_subscription_id:
                org.stripe_subscription_id = self.billing.create_subscription(
                    org, org.stripe_customer_id, org.trial_ends_at, "subscription"
                )
                detail = {"subscription": org.stripe_subscription_id, "trial_end": org.trial_ends_at.isoformat()}
                self._save(slug, now, "billing.subscribed", detail, stripe_subscription_id=org.stripe_subscription_id)
            step = "instance"
            spec = self.spec(org)
            info = self.provisioner.provision(spec)
            org.instance_url = info.url
            self._save(slug, now, "instance.provisioned", {"url": info.url}, instance_url=info.url)
            step = "seed"
            handover = self.writer.seed(
                spec,
                OwnerSeed(
                    org_name=org.name,
                    owner_name=org.owner_name,
                    owner_email=org.owner_email,
                    password=password,
                    trial_ends_at=org.trial_ends_at,
                ),
            )
        except Exception as exc:
            log.exception("signup of %s stopped at %s", slug, step)
            self._change(
                slug,
                UNFINISHED,
                now,
                "signup.failed",
                {"step": step, "error": type(exc).__name__},
                state=OrgState.PROVISIONING_FAILED,
            )
            raise ProvisioningFailed(
                f"Setting up {slug}'s Billy stopped midway ({step}). Nothing is lost: submit the same form again, "
                "with the same email and password, to continue."
            ) from exc
        # The hash was only kept to let the same person resume; the instance holds the Owner's own from now on.
        self._change(
            slug,
            UNFINISHED,
            now,
            "signup.completed",
            {"plan": org.plan},
            state=OrgState.TRIALING,
            owner_password_hash=None,
        )
        return SignedUp(slug, org.instance_url or "", handover, org.trial_ends_at)

    # --- the clock -----------------------------------------------------------------------

    def tick(self, now: datetime) -> TickReport:
        """What is due at `now`: reminders, trials ending, deletions. Run it often; it does each thing once."""
        report = TickReport()
        for org in self.store.orgs_in(OrgState.TRIALING):
            self._trial(org, now, report)
        for org in self.store.orgs_in(OrgState.CANCELLED):
            self._retention(org, now, report)
        if report.reminders or report.read_only or report.deleted or report.failures:
            log.info("control plane tick: %s", report)
        return report

    def _trial(self, org: Organisation, now: datetime, report: TickReport) -> None:
        if org.plan_chosen_at is not None:
            return
        if now >= org.trial_ends_at:
            detail = {"plan": org.plan, "trial_ended_at": org.trial_ends_at.isoformat()}
            if self._change(
                org.slug, [OrgState.TRIALING], now, "trial.ended_read_only", detail, state=OrgState.READ_ONLY
            ):
                report.read_only.append(org.slug)
            return
        left = org.trial_ends_at - now
        # The nearest reminder only: a control plane that was down on day 11 sends the 1-day one, not both.
        due = next((days for days in sorted(REMINDER_DAYS) if left <= timedelta(days=days)), None)
        if due is not None:
            self._remind(org, due, now, report)

    def _remind(self, org: Organisation, days: int, now: datetime, report: TickReport) -> None:
        """Claim the reminder (so no other tick sends it), send it, and give the claim back if it failed."""
        column = col(Organisation.reminder_1d_sent_at if days == 1 else Organisation.reminder_3d_sent_at)
        with self.store.session() as session:
            claimed = cast(
                sa.CursorResult[Any],
                session.execute(
                    sa.update(Organisation)
                    .where(col(Organisation.slug) == org.slug, column.is_(None))
                    .values({column: now})
                ),
            )
        if claimed.rowcount != 1:
            return
        try:
            self.mailer.send(trial_reminder(org, days))
        except MailDeliveryFailed as exc:
            with self.store.session() as session:
                session.execute(
                    sa.update(Organisation)
                    .where(col(Organisation.slug) == org.slug, column == now)
                    .values({column: None})
                )
                record(session, org.slug, "trial.reminder_failed", now, days_left=days, retryable=exc.retryable)
            report.failures.append((org.slug, f"{days}-day reminder: {exc}"))
            return
        self._note(org.slug, now, "trial.reminder_sent", days_left=days)
        report.reminders.append((org.slug, days))

    def _retention(self, org: Organisation, now: datetime, report: TickReport) -> None:
        if org.stripe_subscription_id and org.subscription_cancelled_at is None:
            self._cancel_subscription(org, now, report)
        if org.delete_after is not None and now >= org.delete_after:
            self._delete(org, now, report)

    def _delete(self, org: Organisation, now: datetime, report: TickReport) -> None:
        try:
            self.provisioner.destroy(self.spec(org))
        except Exception as exc:  # one organisation's failure must not stop the others' deletion
            log.exception("deleting %s failed; the next tick tries again", org.slug)
            self._note(org.slug, now, "deletion.failed", error=type(exc).__name__)
            report.failures.append((org.slug, f"deletion: {type(exc).__name__}"))
            return
        detail = {
            "removed": list(REMOVED_ON_DELETE),
            "by": type(self.provisioner).__name__,
            "cancelled_at": org.cancelled_at.isoformat() if org.cancelled_at else None,
            "due": org.delete_after.isoformat() if org.delete_after else None,
        }
        # The tombstone keeps no personal data: the Owner's name and email go with the instance.
        if self._change(
            org.slug,
            [OrgState.CANCELLED],
            now,
            "deleted",
            detail,
            state=OrgState.DELETED,
            deleted_at=now,
            owner_name="",
            owner_email="",
            owner_password_hash=None,
        ):
            report.deleted.append(org.slug)

    # --- plan, cancel, reactivate --------------------------------------------------------

    def change_plan(self, slug: str, plan: str, now: datetime) -> Organisation:
        """The Owner chose `plan`: Billy's subscription moves to its price, the instance applies its
        limits at once, and a trial that ended read-only opens again."""
        if plan not in PLANS:
            raise ValidationFailed("Choose a plan: Starter, Pro or Business.")
        org = self.org(slug)
        if org.state not in LIVE:
            raise NotAllowed(f"{slug}'s Billy is {_words(org.state)}: its plan cannot change now.")
        if org.plan == plan and org.plan_chosen_at is not None:
            return org
        with self.store.session() as session:
            changes = session.exec(
                select(func.count()).where(col(OrgEvent.org_slug) == slug, col(OrgEvent.kind) == "plan.changed")
            ).one()
        # The n-th change has one key, however often it is retried after a failure.
        self.billing.change_plan(org, plan, f"plan-{changes + 1}-{plan}")
        self.writer.set_plan(self.spec(org, plan), plan, trial_ends_at=org.trial_ends_at, plan_chosen=True)
        state = OrgState.ACTIVE if org.state in (OrgState.TRIALING, OrgState.READ_ONLY) else OrgState(org.state)
        detail = {"from": org.plan, "to": plan, "state": state.value}
        if not self._change(
            slug,
            [OrgState(org.state)],
            now,
            "plan.changed",
            detail,
            plan=plan,
            plan_chosen_at=org.plan_chosen_at or now,
            state=state,
        ):
            raise NotAllowed(f"{slug}'s Billy changed meanwhile: try again.")
        return self.org(slug)

    def cancel(
        self, slug: str, now: datetime, *, reason: str = "requested", subscription_ended: bool = False
    ) -> Organisation:
        """Scaled to zero at once, data kept 30 days, Billy's subscription cancelled.

        `subscription_ended`: Stripe already ended the subscription (its webhook), so it is not asked again."""
        org = self.org(slug)
        if org.state == OrgState.CANCELLED:
            return org
        if org.state == OrgState.DELETED:
            raise NotAllowed(f"{slug}'s Billy was deleted on {_day(org.deleted_at)}: there is nothing to cancel.")
        if org.state == OrgState.PROVISIONING:
            raise NotAllowed(f"{slug}'s Billy is still being set up: cancel once it is ready.")
        self.provisioner.suspend(self.spec(org))
        delete_after = now + KEEP_AFTER_CANCEL
        detail = {"reason": reason, "from": org.state, "delete_after": delete_after.isoformat()}
        if not self._change(
            slug,
            [OrgState(org.state)],
            now,
            "cancelled",
            detail,
            state=OrgState.CANCELLED,
            cancelled_at=now,
            delete_after=delete_after,
            subscription_cancelled_at=now if subscription_ended else None,
        ):
            raise NotAllowed(f"{slug}'s Billy changed meanwhile: try again.")
        org = self.org(slug)
        if org.stripe_subscription_id and not subscription_ended:
            self._cancel_subscription(org, now, TickReport())
        return self.org(slug)

    def _cancel_subscription(self, org: Organisation, now: datetime, report: TickReport) -> None:
        """Billy stops billing a cancelled organisation. If Stripe does not answer, the next tick asks again:
        the cancellation itself (suspended, deletion scheduled) already stands."""
        subscription = org.stripe_subscription_id or ""
        try:
            self.billing.cancel_subscription(subscription)
        except BillingFailed as exc:
            self._note(org.slug, now, "billing.cancel_failed", subscription=subscription)
            report.failures.append((org.slug, str(exc)))
            return
        self._change(
            org.slug,
            [OrgState.CANCELLED, OrgState.DELETED],
            now,
            "billing.subscription_cancelled",
            {"subscription": subscription},
            subscription_cancelled_at=now,
        )

    def reactivate(self, slug: str, now: datetime) -> Organisation:
        """Within 30 days of cancelling: served again with its data as it was, and billed again."""
        org = self.org(slug)
        if org.state in LIVE:
            return org
        if org.state == OrgState.DELETED:
            raise NotAllowed(
                f"{slug}'s Billy was deleted on {_day(org.deleted_at)}, 30 days after it was cancelled: its data is "
                "gone for good and cannot be restored. Sign up again to start afresh."
            )
        if org.state != OrgState.CANCELLED or org.delete_after is None:
            raise NotAllowed(f"{slug}'s Billy is {_words(org.state)}: there is nothing to reactivate.")
        if now >= org.delete_after:
            raise NotAllowed(
                f"{slug}'s Billy was cancelled on {_day(org.cancelled_at)} and its data was kept until "
                f"{_day(org.delete_after)}: it is being deleted and cannot be restored. Sign up again to start afresh."
            )
        subscription = org.stripe_subscription_id
        if org.subscription_cancelled_at is not None and org.stripe_customer_id:
            # A cancelled Stripe subscription cannot be revived: a new one, keyed to this cancellation.
            trial_end = org.trial_ends_at if org.plan_chosen_at is None and org.trial_ends_at > now else None
            purpose = f"resubscribe-{int((org.cancelled_at or now).timestamp())}"
            subscription = self.billing.create_subscription(org, org.stripe_customer_id, trial_end, purpose)
        self.provisioner.resume(self.spec(org))
        if org.plan_chosen_at is not None:
            state = OrgState.ACTIVE
        else:
            state = OrgState.TRIALING if now < org.trial_ends_at else OrgState.READ_ONLY
        detail = {"state": state.value, "subscription": subscription}
        if not self._change(
            slug,
            [OrgState.CANCELLED],
            now,
            "reactivated",
            detail,
            state=state,
            cancelled_at=None,
            delete_after=None,
            stripe_subscription_id=subscription,
            subscription_cancelled_at=None,
        ):
            raise NotAllowed(f"{slug}'s Billy changed meanwhile: try again.")
        return self.org(slug)

    # --- what Billy's Stripe account tells (billing.handle_webhook) ------------------------

    def handle_webhook(self, payload: bytes, signature_header: str, now: datetime) -> str:
        return billing_module.handle_webhook(self, payload, signature_header, now)

    def _by_stripe(self, column: Any, value: str) -> Organisation | None:
        if not value:
            return None
        with self.store.session() as session:
            return session.exec(select(Organisation).where(column == value)).first()

    def subscription_ended(self, subscription_id: str, now: datetime) -> str:
        """Stripe ended an organisation's subscription (unpaid after retries, or ended in Stripe's
        dashboard): the same cancel as the Owner's own. An older subscription's end changes nothing."""
        org = self._by_stripe(col(Organisation.stripe_subscription_id), subscription_id)
        if org is None:
            return f"ignored: {subscription_id} is no organisation's current subscription"
        if org.state in (OrgState.CANCELLED, OrgState.DELETED):
            if org.subscription_cancelled_at is None:
                self._change(
                    org.slug,
                    [OrgState(org.state)],
                    now,
                    "billing.subscription_cancelled",
                    {"subscription": subscription_id},
                    subscription_cancelled_at=now,
                )
            return f"{org.slug} was already cancelled"
        self.cancel(org.slug, now, reason="subscription ended in Stripe", subscription_ended=True)
        return f"cancelled {org.slug}"

    def subscription_changed(self, subscription_id: str, status: str, now: datetime) -> str:
        """A paying organisation whose subscription fell past due is marked so, and back when paid."""
        org = self._by_stripe(col(Organisation.stripe_subscription_id), subscription_id)
        if org is None:
            return f"ignored: {subscription_id} is no organisation's current subscription"
        if status in ("past_due", "unpaid") and org.state == OrgState.ACTIVE:
            self._change(
                org.slug, [OrgState.ACTIVE], now, "billing.past_due", {"status": status}, state=OrgState.PAST_DUE
            )
            return f"{org.slug} is past due"
        if status == "active" and org.state == OrgState.PAST_DUE:
            self._change(org.slug, [OrgState.PAST_DUE], now, "billing.paid", {"status": status}, state=OrgState.ACTIVE)
            return f"{org.slug} is active again"
        return f"{org.slug}: subscription {status}, nothing to change"

    def payment_failed(self, customer_id: str, invoice_id: str, now: datetime) -> str:
        """Billy's invoice to an organisation failed: on record, and a paying organisation is past due."""
        org = self._by_stripe(col(Organisation.stripe_customer_id), customer_id)
        if org is None:
            return f"ignored: {customer_id} is no organisation's customer"
        if self._change(
            org.slug,
            [OrgState.ACTIVE],
            now,
            "billing.payment_failed",
            {"invoice": invoice_id, "state": OrgState.PAST_DUE.value},
            state=OrgState.PAST_DUE,
        ):
            return f"{org.slug} is past due"
        self._note(org.slug, now, "billing.payment_failed", invoice=invoice_id, state=org.state)
        return f"{org.slug}: payment failed, on record"


__all__ = [
    "ControlPlane",
    "NotAllowed",
    "OrgNotFound",
    "ProvisioningFailed",
    "SignedUp",
    "SignupInvalid",
    "TickReport",
    "suggest_slug",
]
