"""account_link: the Owner's single-use sign-in links to the control plane's account pages

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from services.models import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_slug", AutoString(length=30), nullable=False),
        sa.Column("token_hash", AutoString(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["org_slug"], ["organisation.slug"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("account_link") as batch_op:
        batch_op.create_index(batch_op.f("ix_account_link_org_slug"), ["org_slug"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("account_link") as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_link_org_slug"))
    op.drop_table("account_link")
