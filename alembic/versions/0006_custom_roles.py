"""custom roles: roles the Owner builds on the Business plan

One table, `custom_role`. Members point at a custom role through `member.role`
("custom:<id>"), so no column changes elsewhere. `label_key` (the lower-cased label) is
unique, so two roles a person could mistake for each other cannot both exist.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "custom_role",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("label_key", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("refund_caps", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", services.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", services.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["member.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("label_key"),
    )


def downgrade() -> None:
    op.drop_table("custom_role")
