"""organisation: when the Owner chose a plan (an ended trial without one is read-only)

Adds a nullable column; SQLite's batch mode adds it in place (no table rebuild).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 09:05:24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan_chosen_at", services.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("plan_chosen_at")
