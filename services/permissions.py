"""The permission engine: roles as data, one `authorize` step for every service action.

Built-in roles are built cumulatively from the bottom, so each holds every permission
of the roles below it (DESIGN, Permission engine). Custom roles (Business plan) are
built from the same permissions; whatever their stored row says, `role_of` bounds them
by the Billing Manager here, so Owner-only powers and caps above the Manager's can never
be reached through one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from services.errors import PermissionDenied, PlanLimitReached, RefundCapExceeded, WritesFrozen
from services.money import format_money
from services.plans import PLANS, trial_ended_message


class Source(StrEnum):
    DASHBOARD = "dashboard"
    API = "api"
    AGENT = "agent"
    SYSTEM = "system"


class Permission(StrEnum):
    VIEW = "view"  # view and search all synced data
    EXPORT = "export"
    REFUND = "refund"
    UPDATE_CUSTOMER_CONTACT = "update_customer_contact"
    UPDATE_CUSTOMER = "update_customer"
    MANAGE_SUBSCRIPTIONS = "manage_subscriptions"
    MANAGE_INVOICES = "manage_invoices"
    MANAGE_PRODUCTS = "manage_products"
    APPROVE_REFUNDS = "approve_refunds"
    MANAGE_TEAM = "manage_team"
    VIEW_AUDIT = "view_audit"
    MANAGE_SETTINGS = "manage_settings"  # settings, integrations, the Stripe key, sync
    MANAGE_BILLY_PLAN = "manage_billy_plan"


# What each permission lets a person do, in the words a refusal uses.
PERMISSION_WORDS: dict[Permission, str] = {
    Permission.VIEW: "view billing data",
    Permission.EXPORT: "export reports",
    Permission.REFUND: "issue refunds",
    Permission.UPDATE_CUSTOMER_CONTACT: "change a customer's email or address",
    Permission.UPDATE_CUSTOMER: "change customer details",
    Permission.MANAGE_SUBSCRIPTIONS: "change, pause or cancel subscriptions",
    Permission.MANAGE_INVOICES: "create or send invoices",
    Permission.MANAGE_PRODUCTS: "manage products and prices",
    Permission.APPROVE_REFUNDS: "approve refund requests",
    Permission.MANAGE_TEAM: "see or manage the team",
    Permission.VIEW_AUDIT: "open the audit log",
    Permission.MANAGE_SETTINGS: "change settings or integrations",
    Permission.MANAGE_BILLY_PLAN: "change Billy's plan",
}


# What a read-only agent token keeps: looking and exporting (the plan still gates exports).
READ_PERMISSIONS = frozenset({Permission.VIEW, Permission.EXPORT})


@dataclass(frozen=True)
class Role:
    name: str
    label: str
    permissions: frozenset[Permission]
    # Refund cap per currency in minor units; None means no cap at all (Owner).
    refund_caps: dict[str, int] | None = field(default_factory=dict)


def _build_roles() -> dict[str, Role]:
    read_only = frozenset({Permission.VIEW, Permission.EXPORT})
    clerk = read_only | {Permission.REFUND, Permission.UPDATE_CUSTOMER_CONTACT, Permission.APPROVE_REFUNDS}
    manager = clerk | {
        Permission.UPDATE_CUSTOMER,
        Permission.MANAGE_SUBSCRIPTIONS,
        Permission.MANAGE_INVOICES,
        Permission.MANAGE_PRODUCTS,
    }
    owner = frozenset(Permission)
    return {
        "read_only": Role("read_only", "Read Only", read_only, {}),
        "billing_clerk": Role("billing_clerk", "Billing Clerk", clerk, {"usd": 100_00}),
        "billing_manager": Role("billing_manager", "Billing Manager", manager, {"usd": 5_000_00}),
        "owner": Role("owner", "Owner", owner, None),
    }


ROLES: dict[str, Role] = _build_roles()
OWNER = "owner"
BUILT_IN_ORDER = ("read_only", "billing_clerk", "billing_manager", "owner")

# Custom roles: `member.role` holds "custom:<id>". They may hold any of the Billing
# Manager's permissions and never one of the Owner's own.
CUSTOM_ROLE_PREFIX = "custom:"
CUSTOM_ROLE_CEILING = ROLES["billing_manager"]
GRANTABLE_PERMISSIONS = CUSTOM_ROLE_CEILING.permissions
OWNER_ONLY_PERMISSIONS = frozenset(Permission) - GRANTABLE_PERMISSIONS


def is_custom_role(role: str) -> bool:
    return role.startswith(CUSTOM_ROLE_PREFIX)


def bounded_custom_role(role: Role) -> Role:
    """A custom role as the engine applies it: viewing always, nothing beyond the Billing
    Manager's permissions, and each refund cap no higher than the Manager's in that currency."""
    ceiling = CUSTOM_ROLE_CEILING.refund_caps or {}
    caps = {cur: min(int(amount), ceiling[cur]) for cur, amount in (role.refund_caps or {}).items() if cur in ceiling}
    permissions = (role.permissions | {Permission.VIEW}) & GRANTABLE_PERMISSIONS
    return Role(role.name, role.label, frozenset(permissions), caps)


# Every service action and the permission it needs. A service function names its
# action here; an action missing from this table cannot be authorized at all.
ACTIONS: dict[str, Permission] = {
    "customers.search": Permission.VIEW,
    "customers.view": Permission.VIEW,
    "customers.update": Permission.UPDATE_CUSTOMER,  # name, phone, description, metadata (and contact)
    "customers.update_contact": Permission.UPDATE_CUSTOMER_CONTACT,  # email and address only
    "products.search": Permission.VIEW,  # the catalogue: products with their prices
    "products.create": Permission.MANAGE_PRODUCTS,  # a new product (name, description)
    "products.update": Permission.MANAGE_PRODUCTS,  # rename or describe a product
    "products.archive": Permission.MANAGE_PRODUCTS,  # archive or restore a product (its prices stay)
    "prices.create": Permission.MANAGE_PRODUCTS,  # a one-off or recurring price on a product
    "charges.view": Permission.VIEW,
    "charges.search": Permission.VIEW,  # the charges list: filters, sorts, pages
    "dashboard.view": Permission.VIEW,  # MRR, revenue, failed payments, open invoices, refunds
    "subscriptions.search": Permission.VIEW,
    "subscriptions.preview_change": Permission.MANAGE_SUBSCRIPTIONS,  # the manage dialog; a change's prorations
    "subscriptions.change": Permission.MANAGE_SUBSCRIPTIONS,  # another price or quantity, prorated
    "subscriptions.pause": Permission.MANAGE_SUBSCRIPTIONS,  # pause collection (draft, uncollectible or void)
    "subscriptions.resume": Permission.MANAGE_SUBSCRIPTIONS,  # end a pause of collection
    "subscriptions.cancel": Permission.MANAGE_SUBSCRIPTIONS,  # at the period end, or now
    "subscriptions.reactivate": Permission.MANAGE_SUBSCRIPTIONS,  # withdraw a pending cancellation
    "invoices.search": Permission.VIEW,
    "invoices.create": Permission.MANAGE_INVOICES,  # a draft from prices or custom lines, with a due date
    "invoices.send": Permission.MANAGE_INVOICES,  # finalize a draft, then have Stripe email it
    "invoices.remind": Permission.MANAGE_INVOICES,  # Billy emails the customer a payment reminder
    "invoices.void": Permission.MANAGE_INVOICES,  # an open or uncollectible invoice can no longer be paid
    "invoices.mark_uncollectible": Permission.MANAGE_INVOICES,  # written off as bad debt (still payable)
    "search.global": Permission.VIEW,  # the header search: customers, charges, invoices, subscriptions
    "customers.export": Permission.EXPORT,  # a list as CSV, its filters applied (Pro and Business)
    "charges.export": Permission.EXPORT,
    "subscriptions.export": Permission.EXPORT,
    "invoices.export": Permission.EXPORT,
    "reports.export": Permission.EXPORT,  # the dashboard's failed payments and overdue invoices as CSV
    "reports.failed_payments": Permission.VIEW,  # failed payments of a chosen period, by reason
    "charges.refund": Permission.REFUND,
    "refunds.request": Permission.REFUND,  # ask for an over-cap refund to be approved
    "refunds.withdraw": Permission.REFUND,  # take back one's own request
    "refunds.queue": Permission.VIEW,  # approvers see every request, others their own
    "refunds.approve": Permission.APPROVE_REFUNDS,  # up to the approver's own cap, never one's own
    "refunds.decline": Permission.APPROVE_REFUNDS,
    "refunds.confirmation_email": Permission.REFUND,  # email the customer that their refund is on its way
    "payments.update_email": Permission.MANAGE_INVOICES,  # ask customers whose payment failed to update their card
    "stripe.connect": Permission.MANAGE_SETTINGS,
    "stripe.view": Permission.MANAGE_SETTINGS,  # Settings → Stripe connection: which key, its permissions
    "stripe.recheck": Permission.MANAGE_SETTINGS,  # probe the connected key's permissions again
    "stripe.rotate": Permission.MANAGE_SETTINGS,  # replace the key with another of the same account and mode
    "stripe.disconnect": Permission.MANAGE_SETTINGS,  # delete the key and stop syncing (synced data stays)
    "sync.run": Permission.MANAGE_SETTINGS,
    "sync.view": Permission.VIEW,
    "onboarding.finish": Permission.MANAGE_SETTINGS,
    "team.view": Permission.MANAGE_TEAM,
    "team.invite": Permission.MANAGE_TEAM,
    "team.manage": Permission.MANAGE_TEAM,
    "team.transfer_ownership": Permission.MANAGE_TEAM,
    "spend.view": Permission.MANAGE_SETTINGS,  # Settings → Spend controls: budgets and what is spent
    "spend.manage": Permission.MANAGE_SETTINGS,  # set a role's or a member's daily refund budget
    "spend.freeze": Permission.MANAGE_SETTINGS,  # freeze a member, an agent token, or all billing changes
    "spend.unfreeze": Permission.MANAGE_SETTINGS,  # lift a freeze
    "audit.view": Permission.VIEW_AUDIT,  # search the log and open a row (reading is not itself logged)
    "audit.export": Permission.VIEW_AUDIT,  # the filtered rows as CSV (logged)
    "audit.verify": Permission.VIEW_AUDIT,  # walk the hash chain (logged)
    "billy.choose_plan": Permission.MANAGE_BILLY_PLAN,
    "roles.view": Permission.MANAGE_TEAM,  # Settings → Roles: every role and what it may do
    "roles.manage": Permission.MANAGE_TEAM,  # create, change or delete a custom role (Business)
    "agents.view": Permission.VIEW,  # Settings → Agents: one's own tokens (the Owner: everyone's)
    "agents.issue": Permission.VIEW,  # a token for the API or an agent, scoped at most to one's role
    "agents.revoke": Permission.VIEW,  # one's own token (the Owner: anyone's)
}

# Actions that need a feature of Billy's plan, checked in the same step as the role.
PLAN_FEATURE_ACTIONS: dict[str, str] = {"roles.manage": "custom_roles"}


@dataclass(frozen=True)
class TokenScope:
    """How far an agent token reaches below its member's role (DESIGN, Programmatic doors).
    Effective rights are the role's ∩ these, evaluated in `authorize` on every call."""

    read_only: bool = False
    # Lower refund caps per currency in minor units; None: the role's. A currency not named is
    # refused, as a role without a cap in a currency is.
    refund_caps: dict[str, int] | None = None
    actions: frozenset[str] | None = None  # None: every action of the role
    # A rolling 24-hour refund budget per currency, below the member's (`services.spend`); None:
    # the member's alone. A currency not named is refused.
    daily_budgets: dict[str, int] | None = None
    frozen: bool = False  # the Owner froze this token: it reads, and every change is refused

    def refusal(self, action: str, needed: Permission) -> str:
        """Why this scope refuses `action` ("" when it allows it)."""
        if self.read_only and needed not in READ_PERMISSIONS:
            return f"This agent token is read-only: it cannot {PERMISSION_WORDS[needed]}, whatever your role allows."
        if self.actions is not None and action not in self.actions:
            return f"This agent token is not allowed {action!r}; its member can issue one that is in Settings → Agents."
        return ""


@dataclass(frozen=True)
class Actor:
    """Who is acting, built at the edge from verified credentials only (DESIGN, Actor)."""

    user_id: int | None
    email: str
    role: str
    source: Source
    client_address: str = ""
    user_agent: str = ""
    # The organisation's plan as the store had it when the Actor was built, for plan gates.
    plan: str = "business"
    trial_ended_on: date | None = None  # set while an ended trial keeps Billy read-only
    # The custom role named by `role`, loaded from the store with the member (None for built-ins).
    custom_role: Role | None = None
    # The sign-in (refresh-token family) the credentials belong to; a tab's state is bound to it.
    session_family: str = ""
    # The programmatic doors: the agent token acting (its id and client's name) and its scope.
    token_id: str = ""
    token_client: str = ""
    scope: TokenScope | None = None
    # The Owner's freezes, read fresh with the member: theirs, and the whole organisation's.
    frozen: bool = False
    writes_frozen: bool = False

    @property
    def session_binding(self) -> str:
        """Who filled a tab's state: member, sign-in and role. Any change empties the tab."""
        return f"{self.user_id}:{self.session_family}:{self.role}"

    @classmethod
    def system(cls) -> Actor:
        return cls(None, "system", OWNER, Source.SYSTEM)


def role_of(actor: Actor) -> Role:
    if actor.role in ROLES:
        return ROLES[actor.role]
    if is_custom_role(actor.role) and actor.custom_role is not None and actor.custom_role.name == actor.role:
        return bounded_custom_role(actor.custom_role)
    raise PermissionDenied("Your role is not known to this instance; ask your Owner.")


def role_label(actor: Actor) -> str:
    """The actor's role as people read it, without raising for an unknown one."""
    try:
        return role_of(actor).label
    except PermissionDenied:
        return actor.role


def can(actor: Actor, action: str) -> bool:
    """Whether the role (and an agent token's scope) holds the action's permission, plan gates not
    considered: pages ask `control` instead, which also says when the plan or an ended trial blocks it."""
    needed = ACTIONS[action]
    return needed in role_of(actor).permissions and not (actor.scope and actor.scope.refusal(action, needed))


def refund_caps(actor: Actor) -> dict[str, int] | None:
    """The actor's refund caps per currency: the role's, lowered by an agent token's scope
    (None: no cap at all, the Owner without a scoped token)."""
    caps = role_of(actor).refund_caps
    scoped = actor.scope.refund_caps if actor.scope else None
    if scoped is None:
        return caps
    if caps is None:
        return dict(scoped)
    return {cur: min(amount, caps[cur]) for cur, amount in scoped.items() if cur in caps}


# What stays possible once a trial has ended without a plan: reading (the audit log
# included, since its verify and export only read), and choosing a plan.
READ_ONLY_PERMISSIONS = frozenset(
    {Permission.VIEW, Permission.EXPORT, Permission.VIEW_AUDIT, Permission.MANAGE_BILLY_PLAN}
)


# The changes an organisation-wide freeze stops: everything that writes to Stripe. The Owner keeps
# the team and the settings, to answer the incident and lift the freeze.
STRIPE_WRITES = frozenset(
    {
        Permission.REFUND,
        Permission.APPROVE_REFUNDS,
        Permission.UPDATE_CUSTOMER_CONTACT,
        Permission.UPDATE_CUSTOMER,
        Permission.MANAGE_SUBSCRIPTIONS,
        Permission.MANAGE_INVOICES,
        Permission.MANAGE_PRODUCTS,
    }
)


def _check_freezes(actor: Actor, needed: Permission) -> None:
    """The Owner's freezes (issue 15): reading goes on; a frozen token or member changes nothing,
    and while all writes are frozen nobody changes anything in Stripe."""
    if needed in READ_PERMISSIONS:
        return
    if actor.scope is not None and actor.scope.frozen:
        raise WritesFrozen(
            "The Owner has frozen this agent token: it can still read, but every change is refused until "
            "the Owner lifts the freeze."
        )
    if actor.frozen:
        raise WritesFrozen(
            "The Owner has frozen your changes: you can still look, but every change is refused until the "
            "Owner lifts the freeze."
        )
    if actor.writes_frozen and needed in STRIPE_WRITES:
        raise WritesFrozen(
            "The Owner has frozen all billing changes for now: you can still look, and changes resume when "
            "the Owner lifts the freeze."
        )


def _check_plan_gates(actor: Actor, action: str, needed: Permission) -> None:
    """Plan gates, in the same step as roles: an ended trial is read-only; exports need Pro+;
    custom roles (building them, and acting through one) need Business."""
    if actor.trial_ended_on is not None and needed not in READ_ONLY_PERMISSIONS:
        raise PlanLimitReached(trial_ended_message(actor.trial_ended_on))
    plan = PLANS.get(actor.plan)
    if needed is Permission.EXPORT and plan is not None and not plan.export:
        raise PlanLimitReached(
            f"Exports come with the Pro and Business plans; this organisation is on {plan.label}. "
            "The Owner can change plan in Settings → Plan."
        )
    feature = PLAN_FEATURE_ACTIONS.get(action)
    custom_needed = feature == "custom_roles" or (is_custom_role(actor.role) and needed is not Permission.VIEW)
    if custom_needed and plan is not None and not plan.custom_roles:
        raise PlanLimitReached(
            f"Custom roles come with the Business plan; this organisation is on {plan.label}. "
            "The Owner can change plan in Settings → Plan, or give members a built-in role in Settings → Team."
        )


@dataclass(frozen=True)
class Control:
    """How a page shows the control for an action (DESIGN, UI rule): hidden when the role can
    never do it; shown but disabled, with the reason, when a condition blocks it now (the plan,
    an ended trial). The service still refuses on its own: this only tells the page."""

    shown: bool
    blocked_by: str = ""  # why the control is disabled; "" when it can be used

    @property
    def usable(self) -> bool:
        return self.shown and not self.blocked_by


def control(actor: Actor, action: str) -> Control:
    """The state of `action`'s control for `actor`: role first, then the plan gates."""
    needed = ACTIONS[action]
    try:
        if not can(actor, action):
            return Control(shown=False)
        _check_freezes(actor, needed)
        _check_plan_gates(actor, action, needed)
    except (PlanLimitReached, WritesFrozen) as exc:
        return Control(shown=True, blocked_by=exc.message)
    except PermissionDenied:
        return Control(shown=False)
    return Control(shown=True)


def authorize(actor: Actor, action: str, *, refund_total: int | None = None, currency: str | None = None) -> None:
    """Refuse unless `actor` may do `action`; for refunds, `refund_total` is everything
    refunded on the charge including this refund, checked against the role's cap."""
    if action not in ACTIONS:
        raise PermissionDenied(f"Unknown action {action!r}.")
    role = role_of(actor)
    needed = ACTIONS[action]
    if needed not in role.permissions:
        holders = [r.label for r in ROLES.values() if needed in r.permissions]
        who = "only the Owner can" if holders == ["Owner"] else f"ask someone who can ({', '.join(holders)})"
        raise PermissionDenied(f"Your role ({role.label}) cannot {PERMISSION_WORDS[needed]}: {who}.")
    if actor.scope is not None and (why := actor.scope.refusal(action, needed)):
        raise PermissionDenied(why)
    _check_freezes(actor, needed)
    _check_plan_gates(actor, action, needed)
    caps = refund_caps(actor)
    if refund_total is None or caps is None:
        return
    cur = (currency or "").lower()
    cap = caps.get(cur)
    scoped = actor.scope is not None and actor.scope.refund_caps is not None
    whose = "this agent token's" if scoped and cap != (role.refund_caps or {}).get(cur) else f"your {role.label}"
    if cap is None:
        raise RefundCapExceeded(
            f"{'This agent token' if scoped else f'Your role ({role.label})'} has no refund limit set for "
            f"{cur.upper() or 'this currency'}; only the Owner can refund in it for now."
        )
    if refund_total > cap:
        raise RefundCapExceeded(
            f"This would bring refunds on this charge to {format_money(refund_total, cur)}, "
            f"over {whose} limit of {format_money(cap, cur)} per charge."
        )


# Actions whose amount is bounded by the role's refund cap (refunding, and approving a request).
CAPPED_ACTIONS = frozenset({"charges.refund", "refunds.approve"})


def matrix_markdown() -> str:
    """The README's action × role table, generated from ACTIONS and ROLES (so it cannot drift)."""
    order = BUILT_IN_ORDER
    head = "| action | permission | " + " | ".join(ROLES[r].label for r in order) + " |"
    rows = [head, "|---|---|" + "---|" * len(order)]
    for action, permission in sorted(ACTIONS.items()):
        cells = []
        for name in order:
            role = ROLES[name]
            if permission not in role.permissions:
                cells.append("–")
            elif action in CAPPED_ACTIONS:
                caps = role.refund_caps
                cells.append("no cap" if caps is None else " ".join(f"≤ {format_money(v, c)}" for c, v in caps.items()))
            else:
                cells.append("✓")
        rows.append(f"| `{action}` | {PERMISSION_WORDS[permission]} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
