"""failed payments rollups: the dashboard's week of failed payments without reading the week

At 10,000,000 charges a week holds ~5,000 failed payments, and the dashboard grouped every
one of them by customer and reason on each fresh computation: 30-50 ms on PostgreSQL, more
than the 20 ms page target (bench/pages, issue 16). Two tables kept by triggers now answer it
(services/rollups.py):

- `rollup_failed_day (currency, day, reason)`: failed, undeleted charges per UTC day and
  dashboard reason, their amount, and how many name a customer. The week's whole days come
  from here; only its two partial days are read from the charges.
- `rollup_failed_customer (customer_id)`: when each customer's newest and second newest
  failure were made. Only a customer whose second newest failure is inside the week can have
  failed twice in it, so the repeat customers are a short index range plus their own rows.

Rows in the store when this runs are summed in here.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 14:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from services.rollups import FEEDS, REPEATS, drop_triggers, postgres_triggers, sqlite_triggers

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAILED_FEED = next(feed for feed in FEEDS if feed.target == "rollup_failed_day")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "rollup_failed_day",
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("failures", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("with_customer", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("currency", "day", "reason"),
    )
    op.create_table(
        "rollup_failed_customer",
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("newest", sa.BigInteger(), nullable=False),
        sa.Column("second_newest", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.execute(FAILED_FEED.initial_sum())
    op.execute(REPEATS.initial())
    op.create_index("ix_rollup_failed_customer_second", "rollup_failed_customer", ["second_newest"], unique=False)
    triggers = sqlite_triggers(FAILED_FEED) if dialect == "sqlite" else postgres_triggers(FAILED_FEED)
    triggers += REPEATS.sqlite_triggers() if dialect == "sqlite" else REPEATS.postgres_triggers()
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in [*drop_triggers(dialect, FAILED_FEED), *REPEATS.drop_triggers(dialect)]:
        op.execute(statement)
    op.drop_index("ix_rollup_failed_customer_second", table_name="rollup_failed_customer")
    op.drop_table("rollup_failed_customer")
    op.drop_table("rollup_failed_day")
