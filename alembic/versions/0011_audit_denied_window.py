"""audit denied throttle: per member and minute, denied attempts past the first 20 are counted

One small mutable table, `audit_denied_window (member_id, window_start, action)`, beside the
append-only `audit_log` (issue 10, F5 "Audit flooding"). services.audit counts every denied
attempt of a member in a fixed UTC minute here; past the first 20 an attempt is counted
(`counted`) instead of getting a row of its own, and once the minute has ended one summary row
(`audit.denied_summary`) is appended with the count and the window marked flushed.

`audit_log` itself is not touched, so its append-only triggers (0003) stay as they are.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_denied_window",
        sa.Column("member_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("window_start", services.models.UTCDateTime(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("counted", sa.Integer(), nullable=False),
        sa.Column("actor_email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("actor_role", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("client_address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_agent", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("flushed_at", services.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("member_id", "window_start", "action"),
    )
    with op.batch_alter_table("audit_denied_window", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_denied_window_window_start"), ["window_start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_denied_window", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_denied_window_window_start"))
    op.drop_table("audit_denied_window")
