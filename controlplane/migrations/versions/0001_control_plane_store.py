"""control plane store: organisations, their append-only event log, Stripe events seen

`org_event` refuses UPDATE and DELETE in the database (and TRUNCATE on PostgreSQL; on SQLite also
an INSERT OR REPLACE over an existing row, which deletes it without firing the DELETE trigger).
A later migration that rebuilds `org_event` on SQLite (batch mode copies the table) loses the
triggers with the old table and must create them again.

Revision ID: 0001
Revises:
Create Date: 2026-12-06 03:20:51
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from services.models import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGERS = (
    """CREATE TRIGGER org_event_no_update BEFORE UPDATE ON org_event
    BEGIN SELECT RAISE(ABORT, 'org_event is append-only'); END""",
    """CREATE TRIGGER org_event_no_delete BEFORE DELETE ON org_event
    BEGIN SELECT RAISE(ABORT, 'org_event is append-only'); END""",
    """CREATE TRIGGER org_event_no_replace BEFORE INSERT ON org_event
    WHEN EXISTS (SELECT 1 FROM org_event WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'org_event is append-only'); END""",
)
SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS org_event_no_replace",
    "DROP TRIGGER IF EXISTS org_event_no_delete",
    "DROP TRIGGER IF EXISTS org_event_no_update",
)
POSTGRES_TRIGGERS = (
    """CREATE OR REPLACE FUNCTION org_event_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'org_event is append-only' USING ERRCODE = 'insufficient_privilege';
    END
    $$""",
    """CREATE TRIGGER org_event_no_update_delete BEFORE UPDATE OR DELETE ON org_event
    FOR EACH ROW EXECUTE FUNCTION org_event_refuse_change()""",
    """CREATE TRIGGER org_event_no_truncate BEFORE TRUNCATE ON org_event
    FOR EACH STATEMENT EXECUTE FUNCTION org_event_refuse_change()""",
)
POSTGRES_DROP = (
    "DROP TRIGGER IF EXISTS org_event_no_truncate ON org_event",
    "DROP TRIGGER IF EXISTS org_event_no_update_delete ON org_event",
    "DROP FUNCTION IF EXISTS org_event_refuse_change()",
)


def _dialect() -> str:
    name = op.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"no append-only triggers written for {name}")
    return name


def upgrade() -> None:
    op.create_table(
        "organisation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", AutoString(length=30), nullable=False),
        sa.Column("name", AutoString(length=120), nullable=False),
        sa.Column("plan", AutoString(length=20), nullable=False),
        sa.Column("owner_name", AutoString(length=120), nullable=False),
        sa.Column("owner_email", AutoString(length=254), nullable=False),
        sa.Column("owner_password_hash", AutoString(length=255), nullable=True),
        sa.Column("state", AutoString(length=30), nullable=False),
        sa.Column("instance_url", AutoString(length=300), nullable=True),
        sa.Column("trial_ends_at", UTCDateTime(), nullable=False),
        sa.Column("reminder_3d_sent_at", UTCDateTime(), nullable=True),
        sa.Column("reminder_1d_sent_at", UTCDateTime(), nullable=True),
        sa.Column("plan_chosen_at", UTCDateTime(), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("delete_after", UTCDateTime(), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("stripe_customer_id", AutoString(length=255), nullable=True),
        sa.Column("stripe_subscription_id", AutoString(length=255), nullable=True),
        sa.Column("subscription_cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    with op.batch_alter_table("organisation") as batch_op:
        batch_op.create_index(batch_op.f("ix_organisation_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_organisation_stripe_customer_id"), ["stripe_customer_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_organisation_stripe_subscription_id"), ["stripe_subscription_id"], unique=False
        )

    op.create_table(
        "stripe_event_seen",
        sa.Column("id", AutoString(length=255), nullable=False),
        sa.Column("type", AutoString(length=100), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "org_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_slug", AutoString(length=30), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", AutoString(length=60), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["org_slug"], ["organisation.slug"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("org_event") as batch_op:
        batch_op.create_index(batch_op.f("ix_org_event_org_slug"), ["org_slug"], unique=False)

    for statement in SQLITE_TRIGGERS if _dialect() == "sqlite" else POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for statement in SQLITE_DROP if _dialect() == "sqlite" else POSTGRES_DROP:
        op.execute(statement)
    with op.batch_alter_table("org_event") as batch_op:
        batch_op.drop_index(batch_op.f("ix_org_event_org_slug"))
    op.drop_table("org_event")
    op.drop_table("stripe_event_seen")
    with op.batch_alter_table("organisation") as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisation_stripe_subscription_id"))
        batch_op.drop_index(batch_op.f("ix_organisation_stripe_customer_id"))
        batch_op.drop_index(batch_op.f("ix_organisation_state"))
    op.drop_table("organisation")
