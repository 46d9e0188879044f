"""sync ranges: each resource's backfill walked as `created` ranges, each with its own cursor (issue 16)

`sync_range (resource, position)`: one range `created_from <= created < created_before` (None:
open on that side), its status, the last object stored and that object's `created`, and how
many it stored. A killed backfill resumes every range that was not done from its own cursor.
Rows are written by the backfill only, never seeded here.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-10 00:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_range",
        sa.Column("resource", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_from", sa.BigInteger(), nullable=True),
        sa.Column("created_before", sa.BigInteger(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("cursor", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("cursor_created", sa.BigInteger(), nullable=True),
        sa.Column("synced_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("resource", "position"),
    )


def downgrade() -> None:
    op.drop_table("sync_range")
