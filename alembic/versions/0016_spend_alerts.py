"""spend alerts: velocity rules as data, the alerts they raise, the audit cursor (issue 15)

`velocity_rule (kind, threshold, enabled)`: the rules as the Owner tuned them (the others run at
their defaults, `services.spend_alerts.DEFAULT_RULES`);
`spend_alert`: each alert, with the audit rows behind it and a key that keeps a re-evaluation
from raising it twice; `alert_cursor`: the last audit row evaluated; `organization.time_zone`
for working hours.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 00:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.models

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

def upgrade() -> None:
    op.create_table(
        "velocity_rule",
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", services.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("kind"),
    )
    op.create_table(
        "spend_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("at", services.models.UTCDateTime(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("member_email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("token_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("summary", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("audit_ids", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column("emailed_at", services.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    with op.batch_alter_table("spend_alert", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_spend_alert_at"), ["at"], unique=False)
    cursor = op.create_table(
        "alert_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_audit_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # Alerts look at what happens from now on, not at the history before this migration.
    last = op.get_bind().execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM audit_log")).scalar() or 0
    op.bulk_insert(cursor, [{"id": 1, "last_audit_id": int(last)}])
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("time_zone", sqlmodel.sql.sqltypes.AutoString(length=64), server_default="UTC", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
    op.drop_table("alert_cursor")
    with op.batch_alter_table("spend_alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spend_alert_at"))
    op.drop_table("spend_alert")
    op.drop_table("velocity_rule")
