"""The `Provisioner` interface: one isolated Billy instance per organisation, whatever hosts it.

An organisation is known by its slug, which becomes its address (`{slug}.{base domain}`), its
container app, and the root of every per-organisation resource name. `check_slug` is the one
place that says which slugs are allowed: signup, the control plane's API and every provisioner
call it, so a name refused in one place is refused everywhere.

Lifecycle (PRODUCT_DOCS, "What happens if I cancel"): `provision` on signup, `suspend` on
cancel (scaled to zero, data kept), `resume` if they come back within 30 days, `destroy` after
30 days (instance, database, backups, vault secrets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from email_validator import EmailNotValidError, validate_email

from services.errors import BillyError, ValidationFailed
from services.plans import PLANS

SLUG_MIN, SLUG_MAX = 3, 30
_SLUG = re.compile(r"[a-z0-9-]+")

# Subdomains of the base domain that belong to Billy itself, to mail and DNS conventions, or would
# mislead a reader of the address (an organisation at admin.agentbilly.ai). Compared whole.
RESERVED_SLUGS = frozenset(
    {
        "www", "api", "admin", "app", "mail", "billing",
        "abuse", "account", "accounts", "agent", "agentbilly", "assets", "asuid", "auth", "autoconfig",
        "autodiscover", "billy", "blog", "cdn", "console", "control", "controlplane", "dashboard", "demo",
        "dev", "dns", "docs", "ftp", "help", "hostmaster", "imap", "internal", "localhost", "login", "mcp",
        "mx", "ns1", "ns2", "oauth", "pop", "portal", "postmaster", "root", "sandbox", "security", "signup",
        "smtp", "sso", "staging", "static", "status", "stripe", "support", "system", "test", "webmail",
    }
)  # fmt: skip

# One replica per organisation: several need Redis for Reflex's per-tab state (DESIGN, Tenancy,
# scale-out), which is not provisioned per organisation yet. `OrgSpec.max_replicas` overrides.
MAX_REPLICAS_BY_PLAN = {"starter": 1, "pro": 1, "business": 1}
MAX_REPLICAS_CEILING = 10

_DOMAIN_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_REGION = re.compile(r"[a-z][a-z0-9]{1,39}")


class ProvisioningError(BillyError):
    """Provisioning could not be done as asked (a missing prerequisite, a refused request)."""

    code = "provisioning_failed"


class InvalidOrg(ValidationFailed):
    """An organisation's specification that no provisioner would accept, in words for the person who typed it."""


def slug_problem(slug: str) -> str:
    """What is wrong with `slug` as an organisation's name in its address (empty: nothing)."""
    shown = repr(slug)
    if not isinstance(slug, str) or not slug:
        return "Choose a name for your Billy address (3 to 30 lowercase letters, digits and dashes)."
    if not SLUG_MIN <= len(slug) <= SLUG_MAX:
        return f"{shown} has {len(slug)} characters: use {SLUG_MIN} to {SLUG_MAX}."
    if slug != slug.lower() and _SLUG.fullmatch(slug.lower()):
        return f"{shown} has capital letters: use lowercase ({slug.lower()!r})."
    if not _SLUG.fullmatch(slug):
        return f"{shown} has characters other than lowercase letters, digits and dashes."
    if not slug[0].isalpha():
        return f"{shown} must start with a letter."
    if slug.endswith("-"):
        return f"{shown} must end with a letter or a digit."
    if "--" in slug:
        return f"{shown} has two dashes in a row: use single dashes."
    if slug in RESERVED_SLUGS:
        return f"{shown} is reserved for Billy's own addresses: choose another name."
    return ""


def check_slug(slug: str) -> str:
    """`slug` if it is an allowed organisation name; else `InvalidOrg` saying why."""
    problem = slug_problem(slug)
    if problem:
        raise InvalidOrg(problem)
    return slug


LOCAL_DOMAIN = "localhost"  # the local provisioner's `{slug}.localhost` (browsers resolve it to loopback)


def _check_domain(domain: str) -> None:
    if domain == LOCAL_DOMAIN:
        return
    labels = domain.split(".")
    if len(domain) > 200 or len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise InvalidOrg(f"Base domain {domain!r} is not a lowercase DNS name such as agentbilly.ai.")


@dataclass(frozen=True)
class OrgSpec:
    """One organisation's instance, as the control plane asks for it. Checked on creation."""

    slug: str
    plan: str
    owner_email: str
    base_domain: str
    region: str
    max_replicas: int | None = None  # None: `MAX_REPLICAS_BY_PLAN[plan]`

    def __post_init__(self) -> None:
        check_slug(self.slug)
        if self.plan not in PLANS:
            raise InvalidOrg(f"Plan {self.plan!r} is not one of Billy's plans ({', '.join(PLANS)}).")
        try:
            validate_email(self.owner_email, check_deliverability=False)
        except EmailNotValidError as exc:
            raise InvalidOrg(f"The owner's email address does not look right: {exc}") from None
        _check_domain(self.base_domain)
        if not _REGION.fullmatch(self.region):
            raise InvalidOrg(f"Region {self.region!r} is not an Azure region name such as westeurope.")
        if self.max_replicas is not None and not 1 <= self.max_replicas <= MAX_REPLICAS_CEILING:
            raise InvalidOrg(f"Max replicas is {self.max_replicas}: use 1 to {MAX_REPLICAS_CEILING}.")

    @property
    def host(self) -> str:
        return f"{self.slug}.{self.base_domain}"

    @property
    def public_url(self) -> str:
        return f"https://{self.host}"

    @property
    def replicas_ceiling(self) -> int:
        return self.max_replicas if self.max_replicas is not None else MAX_REPLICAS_BY_PLAN[self.plan]


class InstanceState(StrEnum):
    RUNNING = "running"
    SUSPENDED = "suspended"  # scaled to zero, data kept
    DESTROYED = "destroyed"


@dataclass(frozen=True)
class InstanceInfo:
    """What a provisioner reports about an organisation's instance."""

    slug: str
    url: str
    state: InstanceState
    min_replicas: int
    max_replicas: int
    # Where each part lives, by the provisioner's own words: {"app": <resource id>, "vault": <url>, ...}
    resources: dict[str, str] = field(default_factory=dict)


Instance = InstanceInfo


@runtime_checkable
class Provisioner(Protocol):
    """Creates, scales, suspends, resumes and destroys one organisation's isolated instance.

    Every method is idempotent: calling it again converges on the same state (the control plane
    retries after a crash midway)."""

    def provision(self, org: OrgSpec) -> InstanceInfo:
        """Instance, database, identity, secrets and address, running with at least one replica."""
        ...

    def scale(self, org: OrgSpec, replicas: int) -> InstanceInfo:
        """Keep at least `replicas` running (0: scale to zero, still reachable on the next request)."""
        ...

    def suspend(self, org: OrgSpec) -> InstanceInfo:
        """Scale to zero and stop serving; the database and secrets are kept (cancellation)."""
        ...

    def resume(self, org: OrgSpec) -> InstanceInfo:
        """Serve again after `suspend`, with the data as it was."""
        ...

    def destroy(self, org: OrgSpec) -> None:
        """Delete the instance, its database, its backups and its vault secrets, for good."""
        ...


@dataclass(frozen=True)
class OwnerSeed:
    """What signup wrote down for a new instance: its organisation, its Owner and the trial.

    The password travels only from the signup form to the instance's seeding command (on its
    standard input), where it is hashed; it is never stored, logged or shown (`repr=False`)."""

    org_name: str
    owner_name: str
    owner_email: str
    password: str = field(repr=False)
    trial_ends_at: datetime


@runtime_checkable
class InstanceWriter(Protocol):
    """Provisioning's one way to write into an instance (DESIGN, Tenancy): the organisation, its plan
    and trial, and the Owner's single-use hand-over sign-in."""

    def seed(self, org: OrgSpec, owner: OwnerSeed) -> str:
        """Organisation, Owner, plan and trial written into the instance (again: nothing doubled);
        returns the hand-over address that signs the Owner in once, within 60 seconds."""
        ...

    def set_plan(self, org: OrgSpec, plan: str, *, trial_ends_at: datetime | None, plan_chosen: bool) -> None:
        """The plan and trial as the control plane has them now; the instance applies limits at once."""
        ...

    def handover(self, org: OrgSpec) -> str:
        """A fresh hand-over address for the Owner (signing in from the control plane's account page)."""
        ...
