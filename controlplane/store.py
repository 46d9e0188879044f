"""The control plane's own database: organisations, their append-only event log, Stripe events seen.

Its models hang on their own SQLAlchemy registry (`ControlPlaneModel.metadata`), never on
`SQLModel.metadata`: that one is the instance's schema, which the instance's migrations are
checked against, and no instance database should ever grow an `organisation` table of every
customer. The schema is made by the control plane's own alembic environment
(`controlplane/migrations`), whose version table has its own name as a second guard.

`org_event` is append-only in the database itself (migration 0001's triggers): what the control
plane did to an organisation (reminded, suspended, deleted its data) stays on record even if
code with a bug, or a person with a SQL prompt, tries to rewrite it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel, col, select

from services.db import make_engine
from services.models import UTCDateTime

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"
VERSION_TABLE = "controlplane_alembic_version"


class ControlPlaneModel(SQLModel, registry=registry()):
    """Base of the control plane's tables: their own metadata, apart from the instance's."""


class OrgState(StrEnum):
    """Where an organisation is in its life. The instance itself knows only its plan and trial."""

    PROVISIONING = "provisioning"  # signup under way
    PROVISIONING_FAILED = "provisioning_failed"  # a step failed; the same form again continues
    TRIALING = "trialing"
    ACTIVE = "active"  # a plan is chosen
    READ_ONLY = "read_only"  # the trial ended without a plan
    PAST_DUE = "past_due"  # Billy's invoice to them failed
    CANCELLED = "cancelled"  # suspended, data kept until delete_after
    DELETED = "deleted"  # tombstone: instance, database, backups and secrets are gone


def _utc(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime(), **kwargs)


class Organisation(ControlPlaneModel, table=True):
    """One customer organisation and its instance. The row outlives the instance as a tombstone."""

    __tablename__ = "organisation"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=30, unique=True)
    name: str = Field(max_length=120)
    plan: str = Field(max_length=20)
    owner_name: str = Field(max_length=120)
    owner_email: str = Field(max_length=254)
    # argon2, kept only while signup is unfinished (to let the same person resume it); never in clear.
    owner_password_hash: str | None = Field(default=None, max_length=255)
    state: str = Field(max_length=30, index=True)
    instance_url: str | None = Field(default=None, max_length=300)
    trial_ends_at: datetime = _utc()
    reminder_3d_sent_at: datetime | None = _utc(default=None, nullable=True)
    reminder_1d_sent_at: datetime | None = _utc(default=None, nullable=True)
    plan_chosen_at: datetime | None = _utc(default=None, nullable=True)
    cancelled_at: datetime | None = _utc(default=None, nullable=True)
    delete_after: datetime | None = _utc(default=None, nullable=True)
    deleted_at: datetime | None = _utc(default=None, nullable=True)
    stripe_customer_id: str | None = Field(default=None, max_length=255, index=True)
    stripe_subscription_id: str | None = Field(default=None, max_length=255, index=True)
    subscription_cancelled_at: datetime | None = _utc(default=None, nullable=True)
    created_at: datetime = _utc()


class OrgEvent(ControlPlaneModel, table=True):
    """One thing that happened to an organisation. Append-only; details carry no personal data,
    so the log can outlive the deletion of everything else."""

    __tablename__ = "org_event"

    id: int | None = Field(default=None, primary_key=True)
    org_slug: str = Field(max_length=30, foreign_key="organisation.slug", index=True)
    at: datetime = _utc()
    kind: str = Field(max_length=60)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class StripeEventSeen(ControlPlaneModel, table=True):
    """A Stripe event from Billy's account already handled: Stripe delivers at least once."""

    __tablename__ = "stripe_event_seen"

    id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=100)
    received_at: datetime = _utc()


class AccountLink(ControlPlaneModel, table=True):
    """A sign-in link mailed to an organisation's Owner for its account pages (controlplane.account).

    Only the token's hash is kept, so a copy of the database opens no account; `used_at` makes it
    single-use, set by compare-and-set so two clicks racing spend it once."""

    __tablename__ = "account_link"

    id: int | None = Field(default=None, primary_key=True)
    org_slug: str = Field(max_length=30, foreign_key="organisation.slug", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _utc()
    expires_at: datetime = _utc()
    used_at: datetime | None = _utc(default=None, nullable=True)


class Store:
    """The control plane's database at `url` (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def migrate(self, revision: str = "head") -> None:
        """The schema up to `revision` (head: the newest), by the control plane's own migrations."""
        from alembic import command

        previous = logging.root.manager.disable
        logging.disable(logging.INFO)  # alembic's per-step INFO lines read like faults on a healthy start
        try:
            command.upgrade(alembic_config(self.url), revision)
        finally:
            logging.disable(previous)

    def downgrade(self, revision: str) -> None:
        from alembic import command

        command.downgrade(alembic_config(self.url), revision)

    def dispose(self) -> None:
        self.engine.dispose()

    def org(self, slug: str) -> Organisation | None:
        with self.session() as session:
            return session.exec(select(Organisation).where(col(Organisation.slug) == slug)).first()

    def events(self, slug: str) -> list[OrgEvent]:
        """An organisation's events, oldest first."""
        with self.session() as session:
            query = select(OrgEvent).where(col(OrgEvent.org_slug) == slug).order_by(col(OrgEvent.id))
            return list(session.exec(query).all())

    def orgs_in(self, *states: OrgState) -> list[Organisation]:
        with self.session() as session:
            query = select(Organisation).where(col(Organisation.state).in_(states)).order_by(col(Organisation.id))
            return list(session.exec(query).all())


def record(session: Session, slug: str, kind: str, at: datetime, **detail: Any) -> None:
    """Append one event to `slug`'s log, in the caller's transaction (with the change it records)."""
    session.add(OrgEvent(org_slug=slug, at=at, kind=kind, detail=detail))


def alembic_config(database_url: str) -> Any:
    """alembic's configuration for the control plane's database at `database_url`."""
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["configure_logging"] = False
    return cfg
