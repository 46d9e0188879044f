"""Every table of the instance's store, in one place.

Two families: Billy's own records (organisation, members, sessions, audit, Stripe
connection, sync progress) and the mirror of Stripe objects (`stripe_*`), which has
typed columns for what pages filter, sort and search on plus the raw object as JSON.
Stripe's `created` stays an integer Unix time, as Stripe gives it: it sorts the same
on SQLite and PostgreSQL and needs no conversion on the sync path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from services import clock


def utcnow() -> datetime:
    """Now, in UTC, from the one clock tests can move (services.clock)."""
    return clock.now()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (which stores naive) as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- typed views of SQLModel classes --------------------------------------------------------
# SQLModel types a model's class attributes as the field's value (`StripeCharge.raw` is a
# dict to a type checker, an ORM attribute at run time) and does not declare `__table__`.
# These three say what the ORM really hands over, so their callers need no suppressions.


def table_of(model: type[SQLModel]) -> sa.Table:
    """The table a `table=True` model is mapped to, for Core statements on it."""
    return model.__table__  # type: ignore[attr-defined]  # SQLModel's metaclass sets it, undeclared


def orm_attribute(field: object) -> QueryableAttribute[Any]:
    """A model's class attribute as the ORM attribute it is at run time (for `defer`, which
    wants one); `field` is written `Model.name`, which SQLModel types as the field's value."""
    if not isinstance(field, QueryableAttribute):
        raise TypeError(f"not a mapped attribute of a model: {field!r}")
    return field


class _Keyed(Protocol):
    @property
    def id(self) -> int | None: ...


def stored_id(row: _Keyed) -> int:
    """The primary key of a row that is in the store. SQLModel types it `int | None` because a
    new object has none before its first flush; every row read or flushed has one."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet: it was never flushed")
    return row.id


class Organization(SQLModel, table=True):
    """The one organisation this instance serves (DESIGN, Tenancy)."""

    __tablename__ = "organization"
    # The primary key is pinned to 1: the database itself refuses a second organisation.
    __table_args__ = (sa.CheckConstraint("id = 1", name="ck_organization_single"),)
    id: int = Field(default=1, primary_key=True)
    name: str = Field(max_length=120)
    plan: str = Field(max_length=20)
    trial_ends_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # Set when the Owner chooses a plan; until then the trial's end turns Billy read-only.
    plan_chosen_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # Set while the Owner has frozen every billing change (an incident): issue 15, migration 0015.
    writes_frozen_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # The organisation's IANA time zone: working hours for the spend alerts (migration 0016).
    time_zone: str = Field(default="UTC", max_length=64, sa_column_kwargs={"server_default": "UTC"})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Member(SQLModel, table=True):
    __tablename__ = "member"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(default="", max_length=120)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=40)
    active: bool = Field(default=True)
    # Bumped when every token minted before must die: removal, password reset, ownership moves.
    token_version: int = Field(default=0)
    # Set while the Owner has frozen this member's changes (reads go on): issue 15, migration 0015.
    frozen_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_active_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class SessionFamily(SQLModel, table=True):
    """One sign-in: every refresh token rotated from it belongs to this family, and revoking
    the family (sign-out, reuse of a spent refresh token, removal) ends them all at once."""

    __tablename__ = "session_family"
    id: str = Field(primary_key=True, max_length=36)
    member_id: int = Field(foreign_key="member.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    revoked_reason: str | None = Field(default=None, max_length=40)
    client_address: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=400)


class RefreshToken(SQLModel, table=True):
    """An opaque refresh token, stored only as its SHA-256; usable once (rotated on use)."""

    __tablename__ = "refresh_token"
    id: int | None = Field(default=None, primary_key=True)
    family_id: str = Field(foreign_key="session_family.id", index=True, max_length=36)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class MagicLink(SQLModel, table=True):
    """A single-use link (team invite, password reset, Owner hand-over), bound to one email and role."""

    __tablename__ = "magic_link"
    id: int | None = Field(default=None, primary_key=True)
    purpose: str = Field(max_length=10, index=True)  # "invite" | "reset" | "handover"
    token_hash: str = Field(max_length=64, unique=True, index=True)
    email: str = Field(max_length=254, index=True)
    role: str = Field(default="", max_length=40)
    created_by: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class AuditEntry(SQLModel, table=True):
    """One row per action attempt: who, what, when, from where, and how it ended (DESIGN, Audit log)."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    actor_id: int | None = Field(default=None, index=True)
    actor_email: str = Field(default="", max_length=254)
    actor_role: str = Field(default="", max_length=40)
    source: str = Field(max_length=20)
    client_address: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=400)
    action: str = Field(max_length=60, index=True)
    target_ids: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    amount: int | None = Field(default=None, sa_type=sa.BigInteger)
    currency: str | None = Field(default=None, max_length=3)
    outcome: str = Field(max_length=10)
    error: str | None = Field(default=None, max_length=1000)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    # The hash chain, filled in by services.audit only: hash = sha256(prev_hash || canonical row).
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditTarget(SQLModel, table=True):
    """Which audit rows name an object (a customer, a charge, a refund): an index beside the
    append-only `audit_log`, written in the same transaction as the row, so a customer's or a
    charge's trail is an index lookup instead of a scan of the whole log (migration 0012)."""

    __tablename__ = "audit_target"
    target_id: str = Field(primary_key=True, max_length=255)
    audit_id: int = Field(primary_key=True, sa_type=sa.BigInteger)


class AuditDeniedWindow(SQLModel, table=True):
    """Denied attempts of one member in one UTC minute, per action: the audit log's flood
    throttle (services.audit). Past the first AUDIT_DENIED_LIMIT attempts in the minute, an
    attempt is counted here (`counted`) instead of getting a row; after the minute one summary
    row is appended and the window marked flushed. Mutable, unlike `audit_log`."""

    __tablename__ = "audit_denied_window"
    member_id: int = Field(primary_key=True, sa_type=sa.Integer, sa_column_kwargs={"autoincrement": False})
    window_start: datetime = Field(primary_key=True, sa_type=UTCDateTime, index=True)
    action: str = Field(primary_key=True, max_length=60)
    attempts: int = Field(default=0)  # every denied attempt of this action in the minute
    counted: int = Field(default=0)  # those of them that got no row of their own
    # Who and from where, as the window's first attempt of this action said.
    actor_email: str = Field(default="", max_length=254)
    actor_role: str = Field(default="", max_length=40)
    source: str = Field(default="", max_length=20)
    client_address: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=400)
    flushed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class StripeConnection(SQLModel, table=True):
    """Which Stripe key is connected, described without the key itself (that is in the secret store)."""

    __tablename__ = "stripe_connection"
    id: int | None = Field(default=None, primary_key=True)
    mode: str = Field(max_length=4)
    secret_name: str = Field(max_length=80)
    key_hint: str = Field(max_length=16)
    permissions: dict[str, bool] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    connected_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    connected_by: int | None = Field(default=None, foreign_key="member.id")
    onboarding_done: bool = Field(default=False)
    # Settings → Stripe connection (issue 17). Member ids without a foreign key, as in
    # `velocity_rule.updated_by`: members are deactivated, never deleted.
    account_id: str | None = Field(default=None, max_length=64)  # when Stripe said which account
    permissions_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    rotated_by: int | None = Field(default=None)
    # Stripe answered 401 to the connected key (revoked, rolled, expired): the banner's one flag.
    rejected_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    disconnected_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    disconnected_by: int | None = Field(default=None)


class SyncState(SQLModel, table=True):
    """Backfill progress per resource: the saved cursor makes a killed run resumable."""

    __tablename__ = "sync_state"
    resource: str = Field(primary_key=True, max_length=40)
    status: str = Field(default="pending", max_length=20)
    cursor: str | None = Field(default=None, max_length=255)
    synced_count: int = Field(default=0)
    # How often Stripe answered 429 during the run: a slowed run says so, it is not a clean one.
    throttled_count: int = Field(default=0)
    # For the "events" row: the newest event seen (its id is `cursor`), as Stripe's Unix time.
    last_event_created: int | None = Field(default=None, sa_type=sa.BigInteger)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_error: str | None = Field(default=None, max_length=1000)


class SyncRange(SQLModel, table=True):
    """One `created` range of a resource's backfill, walked on its own with its own cursor, so a
    killed run resumes each range where it stopped and never re-reads a finished one. A walk
    still under way may hand the older half of what it has left to an idle walker: its
    `created_from` then moves up and a new range takes the rest (services/sync.py)."""

    __tablename__ = "sync_range"
    resource: str = Field(primary_key=True, max_length=40)
    position: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    # The range is `created_from <= created < created_before`; None: open on that side.
    created_from: int | None = Field(default=None, sa_type=sa.BigInteger)
    created_before: int | None = Field(default=None, sa_type=sa.BigInteger)
    status: str = Field(default="pending", max_length=20)  # pending | running | done
    cursor: str | None = Field(default=None, max_length=255)  # the last object stored
    cursor_created: int | None = Field(default=None, sa_type=sa.BigInteger)  # and its `created`
    synced_count: int = Field(default=0)


class MirrorBase(SQLModel):
    """Columns every mirrored Stripe object keeps besides its own typed ones: when Stripe made
    it, whether it was deleted there, the Stripe time the copy reflects (`version_at`, which
    orders events: services/mirror.py), the object as Stripe sent it, and when it was stored."""

    created: int = Field(sa_type=sa.BigInteger)
    deleted: bool = Field(default=False)
    version_at: int = Field(default=0, sa_type=sa.BigInteger)
    raw: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    synced_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class MirrorBaseWithLivemode(MirrorBase):
    """MirrorBase and `livemode`, which every mirrored object but a refund carries."""

    livemode: bool = Field(default=False)


class StripeCustomer(MirrorBaseWithLivemode, table=True):
    __tablename__ = "stripe_customer"
    # Newest first; on PostgreSQL with `deleted` included, so a walk that tests each customer
    # against a set of ids (a common card's owners, services.search) reads the index alone
    # (migration 0025). Included, not a key column: as a key it drew plans away from the trigram
    # indexes.
    __table_args__ = (sa.Index("ix_stripe_customer_created_id", "created", "id", postgresql_include=["deleted"]),)
    id: str = Field(primary_key=True, max_length=255)
    email: str | None = Field(default=None, max_length=512)
    name: str | None = Field(default=None, max_length=512)
    email_lower: str | None = Field(default=None, max_length=512, index=True)
    name_lower: str | None = Field(default=None, max_length=512, index=True)
    phone: str | None = Field(default=None, max_length=64)


def partial_index(name: str, *columns: str, where: str) -> sa.Index:
    """An index of the rows `where` holds for, on both stores (each dialect takes the condition
    under its own keyword; a query must state it word for word for SQLite to use the index)."""
    condition = sa.text(where)
    return sa.Index(name, *columns, sqlite_where=condition, postgresql_where=condition)


class StripeCharge(MirrorBaseWithLivemode, table=True):
    __tablename__ = "stripe_charge"
    __table_args__ = (
        # Newest/oldest first (0010: with the customer and `deleted`, so a list filtered by a
        # common customer prefix walks the index alone until its page is full).
        sa.Index("ix_stripe_charge_created_walk", "created", "id", "customer_id", "deleted"),
        sa.Index("ix_stripe_charge_customer_created", "customer_id", "created"),
        # Reports (0008): a status's charges in a time window; the list sorted by amount.
        sa.Index("ix_stripe_charge_status_created", "status", "created", "id"),
        sa.Index("ix_stripe_charge_amount_id", "amount", "id"),
        # Global search (0009): card last four, newest first.
        sa.Index("ix_stripe_charge_card_last4_created", "card_last4", "created", "id"),
        # The dashboard's failed payments this week (0010): failed charges only (a few percent
        # of all), with every column the query reads (status too, or SQLite reads each row).
        partial_index(
            "ix_stripe_charge_failed",
            *("status", "created", "customer_id", "decline_reason", "outcome_type", "currency", "amount", "deleted"),
            where="status = 'failed'",
        ),
        # The list's "Refunded" filter (0020): refunded charges only (a few percent of all), newest
        # first, so its page and its total read this index alone. The list's condition is written
        # with the literal 0 (`reports.REFUNDED`): SQLite uses a partial index only for a query
        # whose WHERE says what the index's does.
        partial_index("ix_stripe_charge_refunded", "created", "id", "deleted", where="amount_refunded > 0"),
    )
    id: str = Field(primary_key=True, max_length=255)
    customer_id: str | None = Field(default=None, max_length=255)
    amount: int = Field(sa_type=sa.BigInteger)
    amount_refunded: int = Field(default=0, sa_type=sa.BigInteger)
    currency: str = Field(max_length=3)
    status: str = Field(max_length=20, index=True)
    paid: bool = Field(default=False)
    refunded: bool = Field(default=False)
    failure_code: str | None = Field(default=None, max_length=64)
    failure_message: str | None = Field(default=None, max_length=1000)
    outcome_type: str | None = Field(default=None, max_length=40)
    # Why a payment failed, in Stripe's words: the issuer's decline code (insufficient_funds,
    # expired_card, …) or Radar's reason, falling back to failure_code for older shapes.
    decline_reason: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=1000)
    order_number: str | None = Field(default=None, max_length=64, index=True)
    card_brand: str | None = Field(default=None, max_length=32)
    card_last4: str | None = Field(default=None, max_length=4)
    payment_intent_id: str | None = Field(default=None, max_length=255, index=True)  # search by pi_ (0009)


class StripeRefund(MirrorBase, table=True):
    __tablename__ = "stripe_refund"
    __table_args__ = (
        sa.Index("ix_stripe_refund_charge_created", "charge_id", "created"),
        sa.Index("ix_stripe_refund_created_id", "created", "id"),  # newest first, ties by id (0010)
    )
    id: str = Field(primary_key=True, max_length=255)
    charge_id: str | None = Field(default=None, max_length=255)
    amount: int = Field(sa_type=sa.BigInteger)
    currency: str = Field(max_length=3)
    status: str | None = Field(default=None, max_length=20)
    reason: str | None = Field(default=None, max_length=40)


class IdempotencyRecord(SQLModel, table=True):
    """A write already carried out under this key, so a repeated submit returns its result
    instead of acting twice (the same key is sent to Stripe as its Idempotency-Key)."""

    __tablename__ = "idempotency_record"
    # By age (0019): the reconciliation reads the last day's, the hourly pruning the expired.
    __table_args__ = (sa.Index("ix_idempotency_record_created_at", "created_at"),)
    key: str = Field(primary_key=True, max_length=255)
    action: str = Field(max_length=60)
    actor_id: int | None = Field(default=None)
    result_id: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class RefundRequest(SQLModel, table=True):
    """A refund over its requester's cap, waiting for someone whose cap covers it (issue 4).

    `amount` is always the amount meant at submission (a full refund stores what remained
    then). Approval executes it in the approver's name with `idempotency_key`, so a double
    approve or a retry makes one refund; the status moves from pending exactly once."""

    __tablename__ = "refund_request"
    __table_args__ = (
        sa.Index("ix_refund_request_status_created", "status", "created_at"),
        sa.Index("ix_refund_request_requested_by_created", "requested_by", "created_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'declined', 'failed', 'withdrawn')", name="ck_refund_request_status"
        ),
        sa.CheckConstraint("amount > 0", name="ck_refund_request_amount"),
    )
    id: int | None = Field(default=None, primary_key=True)
    charge_id: str = Field(max_length=255, index=True)
    customer_id: str | None = Field(default=None, max_length=255)
    amount: int = Field(sa_type=sa.BigInteger)
    currency: str = Field(max_length=3)
    reason: str | None = Field(default=None, max_length=40)
    note: str = Field(max_length=1000)
    requested_by: int = Field(foreign_key="member.id")
    requester_email: str = Field(max_length=254)
    status: str = Field(default="pending", max_length=10)  # pending | approved | declined | failed | withdrawn
    decided_by: int | None = Field(default=None, foreign_key="member.id")
    decider_email: str | None = Field(default=None, max_length=254)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    decision_note: str | None = Field(default=None, max_length=1000)
    error: str | None = Field(default=None, max_length=1000)  # why the refund failed, in Stripe's words
    refund_id: str | None = Field(default=None, max_length=255)
    idempotency_key: str = Field(max_length=255, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class CustomRole(SQLModel, table=True):
    """A role the Owner built on the Business plan from the same permissions as the built-in
    ones (DESIGN, Permission engine). Members refer to it by `key` ("custom:<id>") in
    `member.role`; the permission engine re-checks its bounds on every use, so a row
    edited out of band still cannot exceed the Billing Manager."""

    __tablename__ = "custom_role"
    id: int | None = Field(default=None, primary_key=True)
    label: str = Field(max_length=40)
    # Lower-cased label: two roles a person could confuse are refused by the database too.
    label_key: str = Field(max_length=40, unique=True)
    permissions: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    # Refund cap per currency in minor units (never above the Billing Manager's).
    refund_caps: dict[str, int] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    created_by: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


# --- the rest of the Stripe mirror (issue 5) ------------------------------------------------
# Every mirror row carries `version_at`: the Stripe time its data reflects (the event's
# `created` when an event wrote it, the fetch time when it was read from the API). An event
# older than the row is ignored; one from the same second makes the sync refetch the object.


class StripePaymentIntent(MirrorBaseWithLivemode, table=True):
    __tablename__ = "stripe_payment_intent"
    __table_args__ = (sa.Index("ix_stripe_payment_intent_created_id", "created", "id"),)
    id: str = Field(primary_key=True, max_length=255)
    customer_id: str | None = Field(default=None, max_length=255, index=True)
    amount: int = Field(default=0, sa_type=sa.BigInteger)
    currency: str = Field(default="usd", max_length=3)
    status: str = Field(max_length=40, index=True)
    latest_charge_id: str | None = Field(default=None, max_length=255)
    last_error_code: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=1000)


class StripePaymentMethod(MirrorBaseWithLivemode, table=True):
    __tablename__ = "stripe_payment_method"
    # A card's owners as one index-only range (the search by last four; migration 0025).
    __table_args__ = (sa.Index("ix_stripe_payment_method_card_owner", "card_last4", "customer_id", "deleted"),)
    id: str = Field(primary_key=True, max_length=255)
    customer_id: str | None = Field(default=None, max_length=255, index=True)
    type: str = Field(default="card", max_length=40)
    card_brand: str | None = Field(default=None, max_length=32)
    card_last4: str | None = Field(default=None, max_length=4)
    exp_month: int | None = Field(default=None)
    exp_year: int | None = Field(default=None)


class StripeProduct(MirrorBaseWithLivemode, table=True):
    __tablename__ = "stripe_product"
    id: str = Field(primary_key=True, max_length=255)
    name: str = Field(default="", max_length=512)
    active: bool = Field(default=True)


class StripePrice(MirrorBaseWithLivemode, table=True):
    __tablename__ = "stripe_price"
    id: str = Field(primary_key=True, max_length=255)
    product_id: str | None = Field(default=None, max_length=255, index=True)
    nickname: str | None = Field(default=None, max_length=255)
    unit_amount: int | None = Field(default=None, sa_type=sa.BigInteger)
    currency: str = Field(default="usd", max_length=3)
    recurring_interval: str | None = Field(default=None, max_length=10)  # day | week | month | year
    recurring_interval_count: int | None = Field(default=None)
    active: bool = Field(default=True)


class StripeSubscription(MirrorBaseWithLivemode, table=True):
    __tablename__ = "stripe_subscription"
    __table_args__ = (
        sa.Index("ix_stripe_subscription_created_id", "created", "id"),
        sa.Index("ix_stripe_subscription_status_created", "status", "created", "id"),
        sa.Index("ix_stripe_subscription_customer_created", "customer_id", "created"),
        sa.Index("ix_stripe_subscription_mrr_id", "mrr", "id"),  # the list sorted by amount (0008)
    )
    id: str = Field(primary_key=True, max_length=255)
    customer_id: str | None = Field(default=None, max_length=255)
    status: str = Field(max_length=20)
    currency: str = Field(default="usd", max_length=3)
    # What the subscription brings in per month, in minor units (yearly prices divided by 12).
    mrr: int = Field(default=0, sa_type=sa.BigInteger)
    cancel_at_period_end: bool = Field(default=False)
    current_period_end: int | None = Field(default=None, sa_type=sa.BigInteger)
    canceled_at: int | None = Field(default=None, sa_type=sa.BigInteger)


class StripeSubscriptionItem(SQLModel, table=True):
    """Items arrive inside their subscription; the sync replaces a subscription's items together."""

    __tablename__ = "stripe_subscription_item"
    id: str = Field(primary_key=True, max_length=255)
    subscription_id: str = Field(max_length=255, index=True)
    price_id: str | None = Field(default=None, max_length=255, index=True)
    product_id: str | None = Field(default=None, max_length=255)
    quantity: int = Field(default=1)
    unit_amount: int | None = Field(default=None, sa_type=sa.BigInteger)
    currency: str = Field(default="usd", max_length=3)
    recurring_interval: str | None = Field(default=None, max_length=10)
    recurring_interval_count: int | None = Field(default=None)
    raw: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)


class StripeInvoice(MirrorBaseWithLivemode, table=True):
    __tablename__ = "stripe_invoice"
    __table_args__ = (
        sa.Index("ix_stripe_invoice_created_id", "created", "id"),
        sa.Index("ix_stripe_invoice_status_due", "status", "due_date"),
        sa.Index("ix_stripe_invoice_status_created", "status", "created", "id"),
        sa.Index("ix_stripe_invoice_customer_created", "customer_id", "created"),
        sa.Index("ix_stripe_invoice_total_id", "total", "id"),  # the list sorted by amount (0008)
    )
    id: str = Field(primary_key=True, max_length=255)
    customer_id: str | None = Field(default=None, max_length=255)
    subscription_id: str | None = Field(default=None, max_length=255, index=True)
    number: str | None = Field(default=None, max_length=64, index=True)
    status: str | None = Field(default=None, max_length=20)
    collection_method: str | None = Field(default=None, max_length=30)
    currency: str = Field(default="usd", max_length=3)
    total: int = Field(default=0, sa_type=sa.BigInteger)
    amount_due: int = Field(default=0, sa_type=sa.BigInteger)
    amount_paid: int = Field(default=0, sa_type=sa.BigInteger)
    amount_remaining: int = Field(default=0, sa_type=sa.BigInteger)
    due_date: int | None = Field(default=None, sa_type=sa.BigInteger)
    customer_email: str | None = Field(default=None, max_length=512)


class StripeInvoiceLine(SQLModel, table=True):
    """Lines arrive inside their invoice; the sync replaces an invoice's lines together."""

    __tablename__ = "stripe_invoice_line"
    invoice_id: str = Field(primary_key=True, max_length=255)
    id: str = Field(primary_key=True, max_length=255)
    amount: int = Field(default=0, sa_type=sa.BigInteger)
    currency: str = Field(default="usd", max_length=3)
    description: str | None = Field(default=None, max_length=1000)
    price_id: str | None = Field(default=None, max_length=255)
    quantity: int | None = Field(default=None)
    raw: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)


class StripeDispute(MirrorBaseWithLivemode, table=True):
    __tablename__ = "stripe_dispute"
    __table_args__ = (sa.Index("ix_stripe_dispute_created_id", "created", "id"),)
    id: str = Field(primary_key=True, max_length=255)
    charge_id: str | None = Field(default=None, max_length=255, index=True)
    amount: int = Field(default=0, sa_type=sa.BigInteger)
    currency: str = Field(default="usd", max_length=3)
    status: str | None = Field(default=None, max_length=40, index=True)
    reason: str | None = Field(default=None, max_length=64)


class StripeEvent(SQLModel, table=True):
    """Every Stripe event received (webhook or polling), once: the primary key is Stripe's
    event id, so a duplicate delivery finds its row and changes nothing."""

    __tablename__ = "stripe_event"
    __table_args__ = (sa.Index("ix_stripe_event_created_id", "created", "id"),)
    id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=100, index=True)
    created: int = Field(sa_type=sa.BigInteger)
    object_type: str | None = Field(default=None, max_length=60)
    object_id: str | None = Field(default=None, max_length=255, index=True)
    received_via: str = Field(max_length=10)  # webhook | poll | backfill
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # applied | older (a newer copy was already stored) | refetched | ignored (a type Billy does not mirror)
    outcome: str = Field(max_length=12)
    raw: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)


# --- Dashboard rollups --------------------------------------------------------------------------
# Running totals the dashboard reads instead of summing tens of thousands of mirror rows on each
# visit. Database triggers (migration 0010) keep them in step with every write to the mirror
# tables, whoever makes it: sync, events, refunds, a repair by hand. Nothing in Python writes them.

NO_DUE_DAY = -1  # rollup_open_invoices.due_day of open invoices without a due date


class RollupRevenueDay(SQLModel, table=True):
    """Per UTC day (`created // 86400`) and currency: succeeded, paid charges (`gross`) and
    refunds given back (`refunded`), deleted rows left out."""

    __tablename__ = "rollup_revenue_day"
    __table_args__ = (sa.Index("ix_rollup_revenue_day_day", "day"),)  # the dashboard reads a range of days
    currency: str = Field(primary_key=True, max_length=3)
    day: int = Field(primary_key=True)
    gross: int = Field(default=0, sa_type=sa.BigInteger)
    refunded: int = Field(default=0, sa_type=sa.BigInteger)


class RollupMrr(SQLModel, table=True):
    """Per currency and subscription status: how many subscriptions, and their monthly amount."""

    __tablename__ = "rollup_mrr"
    currency: str = Field(primary_key=True, max_length=3)
    status: str = Field(primary_key=True, max_length=20)
    subscriptions: int = Field(default=0, sa_type=sa.BigInteger)
    mrr: int = Field(default=0, sa_type=sa.BigInteger)


class RollupOpenInvoices(SQLModel, table=True):
    """Per currency and UTC due day (`NO_DUE_DAY` without one): open invoices and what is
    still owed on them."""

    __tablename__ = "rollup_open_invoices"
    currency: str = Field(primary_key=True, max_length=3)
    due_day: int = Field(primary_key=True)
    invoices: int = Field(default=0, sa_type=sa.BigInteger)
    amount_remaining: int = Field(default=0, sa_type=sa.BigInteger)


class RollupFailedDay(SQLModel, table=True):
    """Per UTC day, currency and dashboard reason (`services.reports.failure_reason`): failed,
    undeleted charges, their amount, and how many of them name a customer."""

    __tablename__ = "rollup_failed_day"
    __table_args__ = (sa.Index("ix_rollup_failed_day_day", "day"),)  # the dashboard reads the week's days
    currency: str = Field(primary_key=True, max_length=3)
    day: int = Field(primary_key=True)
    reason: str = Field(primary_key=True, max_length=40)
    failures: int = Field(default=0, sa_type=sa.BigInteger)
    amount: int = Field(default=0, sa_type=sa.BigInteger)
    with_customer: int = Field(default=0, sa_type=sa.BigInteger)


class RollupFailedCustomer(SQLModel, table=True):
    """Per customer with a failed, undeleted charge: when the newest and the second newest
    were made (`second_newest` NULL with only one). A customer whose `second_newest` is inside a period
    may have failed twice in it (services.rollups.Repeats)."""

    __tablename__ = "rollup_failed_customer"
    __table_args__ = (sa.Index("ix_rollup_failed_customer_second", "second_newest"),)
    customer_id: str = Field(primary_key=True, max_length=255)
    newest: int = Field(sa_type=sa.BigInteger)
    second_newest: int | None = Field(default=None, sa_type=sa.BigInteger)


class AgentToken(SQLModel, table=True):
    """A member's credential for the programmatic doors (REST API, MCP agent): it acts as that
    member, never above their role, and may be scoped lower (read-only, a lower refund cap, a
    subset of actions, an expiry). Only the SHA-256 of the secret is kept; the secret is shown
    once (migration 0013)."""

    __tablename__ = "agent_token"
    id: str = Field(primary_key=True, max_length=40)  # "tok_…": public, shown in lists and the audit log
    member_id: int = Field(foreign_key="member.id", index=True)
    client_name: str = Field(max_length=80)
    secret_hash: str = Field(max_length=64, unique=True)
    read_only: bool = Field(default=False)
    # Lower refund caps per currency in minor units; None: the role's own caps.
    refund_caps: dict[str, int] | None = Field(default=None, sa_type=sa.JSON, nullable=True)
    # The actions the token may call; None: every action of the member's role.
    actions: list[str] | None = Field(default=None, sa_type=sa.JSON, nullable=True)
    # A rolling 24-hour refund budget per currency, below the member's own; None: the member's.
    daily_budgets: dict[str, int] | None = Field(default=None, sa_type=sa.JSON, nullable=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_used_from: str = Field(default="", max_length=120)  # "agent · 203.0.113.7"
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    revoked_by: int | None = Field(default=None)
    frozen_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)  # reads only, until lifted


class RefundBudget(SQLModel, table=True):
    """A rolling 24-hour refund budget the Owner set, per currency in minor units (issue 15),
    for a role (`scope` "role:billing_clerk", "role:custom:3") or one member ("member:12"),
    whose own then replaces the role's. Built-in defaults live in `services.spend`; a row here
    replaces the default for its currency. `amount` None: no budget at all (migration 0015)."""

    __tablename__ = "refund_budget"
    __table_args__ = (
        sa.UniqueConstraint("scope", "currency", name="uq_refund_budget_scope_currency"),
        sa.CheckConstraint("amount IS NULL OR amount >= 0", name="ck_refund_budget_amount"),
    )
    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=60)
    currency: str = Field(max_length=3)
    amount: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    set_by: int | None = Field(default=None)
    set_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class RefundSpend(SQLModel, table=True):
    """One refund counted against budgets: the member who made it (an approval: the approver)
    and the agent token that carried it. Written before Stripe is called, under the member's
    spend lock, so concurrent refunds see each other; removed if Stripe refuses, kept (and so
    counted) if the answer is lost. One row per refund intent (`idempotency_key`)."""

    __tablename__ = "refund_spend"
    __table_args__ = (
        sa.Index("ix_refund_spend_member_at", "member_id", "at"),
        sa.Index("ix_refund_spend_token_at", "token_id", "at"),
        sa.CheckConstraint("amount > 0", name="ck_refund_spend_amount"),
    )
    idempotency_key: str = Field(primary_key=True, max_length=255)
    member_id: int = Field(foreign_key="member.id")
    token_id: str | None = Field(default=None, max_length=40)
    charge_id: str = Field(max_length=255)
    refund_id: str | None = Field(default=None, max_length=255)  # set once Stripe confirms
    amount: int = Field(sa_type=sa.BigInteger)
    currency: str = Field(max_length=3)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class VelocityRule(SQLModel, table=True):
    """One spend-alert rule as the Owner tuned it (issue 15): its kind, its threshold, on or off.
    A kind without a row runs at its default (`services.spend_alerts.DEFAULT_RULES`)."""

    __tablename__ = "velocity_rule"
    kind: str = Field(primary_key=True, max_length=30)
    threshold: int = Field(sa_type=sa.BigInteger)
    enabled: bool = Field(default=True)
    updated_by: int | None = Field(default=None)
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class SpendAlert(SQLModel, table=True):
    """An alert a velocity rule raised, for the Owner: who, what, and the audit rows behind it.
    `dedupe_key` makes evaluating the same rows again (after a restart) raise it once."""

    __tablename__ = "spend_alert"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=30)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    member_id: int | None = Field(default=None)
    member_email: str = Field(default="", max_length=254)
    token_id: str | None = Field(default=None, max_length=40)
    customer_id: str | None = Field(default=None, max_length=255)
    summary: str = Field(max_length=500)
    audit_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    dedupe_key: str = Field(max_length=160, unique=True)
    emailed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class AlertCursor(SQLModel, table=True):
    """How far the spend alerts have read the audit log (one row): rows after it are evaluated
    at the next write, or by the periodic catch-up after a crash."""

    __tablename__ = "alert_cursor"
    id: int = Field(default=1, primary_key=True)
    last_audit_id: int = Field(default=0, sa_type=sa.BigInteger)


class AgentConfirmation(SQLModel, table=True):
    """A preview's confirmation: bound to one member, one agent token, one action and the exact
    parameters previewed (their digest); valid for minutes and spent by the first confirm.
    Only the SHA-256 of the confirmation token is kept (migration 0013)."""

    __tablename__ = "agent_confirmation"
    token_hash: str = Field(primary_key=True, max_length=64)
    member_id: int = Field(index=True)
    agent_token_id: str = Field(default="", max_length=40)
    action: str = Field(max_length=60)
    params_digest: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class ApiIdempotency(SQLModel, table=True):
    """A REST write's answer under its `Idempotency-Key`, per caller: a repeat with the same body
    gets this answer again (no second Stripe call); a repeat with another body is refused
    (migration 0013)."""

    __tablename__ = "api_idempotency"
    caller: str = Field(primary_key=True, max_length=60)  # "m<member id>" or "m<id>/tok_…"
    key: str = Field(primary_key=True, max_length=255)
    request_digest: str = Field(max_length=64)  # method, path and body
    status_code: int = Field(default=0)  # 0 while the first request is still running
    response: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)


class OAuthClient(SQLModel, table=True):
    """An MCP client registered by OAuth 2.0 Dynamic Client Registration (RFC 7591), so it can
    connect to `/mcp` by URL and have a member approve it on Billy's own page (migration 0014).
    `info` is the registration as the MCP SDK models it (redirect URIs, name, auth method)."""

    __tablename__ = "oauth_client"
    client_id: str = Field(primary_key=True, max_length=64)
    client_name: str = Field(default="", max_length=80)
    info: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
