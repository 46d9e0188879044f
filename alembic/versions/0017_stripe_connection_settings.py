"""Settings → Stripe connection: rotation, re-checks, disconnection, a rejected key (issue 17)

`stripe_connection` gains the Stripe account the key belongs to (when Stripe said), when its
permissions were last checked, who rotated it last and when, when Stripe rejected it (the
banner's flag), and who disconnected it and when. All nullable: the row is written by code,
never seeded here.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 00:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.models

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDED = (
    "account_id",
    "permissions_checked_at",
    "rotated_at",
    "rotated_by",
    "rejected_at",
    "disconnected_at",
    "disconnected_by",
)


def upgrade() -> None:
    with op.batch_alter_table("stripe_connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("permissions_checked_at", services.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("rotated_at", services.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("rotated_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rejected_at", services.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("disconnected_at", services.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("disconnected_by", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stripe_connection", schema=None) as batch_op:
        for column in reversed(ADDED):
            batch_op.drop_column(column)
