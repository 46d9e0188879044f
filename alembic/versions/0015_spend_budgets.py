"""spend controls: rolling 24-hour refund budgets, the refunds counted against them, freezes (issue 15)

`refund_budget`: budgets the Owner set for a role or a member (`scope`), per currency (built-in defaults
live in `services.spend`). `refund_spend`: each refund intent counted against its member's and
agent token's budgets, written before Stripe is called. `agent_token.daily_budgets`: a token's
own, lower budget. `frozen_at` on `member` and `agent_token`, `writes_frozen_at` on
`organization`: the Owner's freezes (reads go on, changes are refused).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.models

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refund_budget",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("set_by", sa.Integer(), nullable=True),
        sa.Column("set_at", services.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint("amount IS NULL OR amount >= 0", name="ck_refund_budget_amount"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "currency", name="uq_refund_budget_scope_currency"),
    )
    op.create_table(
        "refund_spend",
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("charge_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("refund_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("at", services.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_refund_spend_amount"),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )
    with op.batch_alter_table("refund_spend", schema=None) as batch_op:
        batch_op.create_index("ix_refund_spend_member_at", ["member_id", "at"], unique=False)
        batch_op.create_index("ix_refund_spend_token_at", ["token_id", "at"], unique=False)
    with op.batch_alter_table("agent_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("daily_budgets", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("frozen_at", services.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("frozen_at", services.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.add_column(sa.Column("writes_frozen_at", services.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("writes_frozen_at")
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_column("frozen_at")
    with op.batch_alter_table("agent_token", schema=None) as batch_op:
        batch_op.drop_column("frozen_at")
        batch_op.drop_column("daily_budgets")
    with op.batch_alter_table("refund_spend", schema=None) as batch_op:
        batch_op.drop_index("ix_refund_spend_token_at")
        batch_op.drop_index("ix_refund_spend_member_at")
    op.drop_table("refund_spend")
    op.drop_table("refund_budget")
