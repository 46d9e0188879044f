"""dashboard rollups: running totals kept by triggers, so the dashboard reads a few rows

At 100k customers and 1M charges the dashboard summed ~27k charges (revenue, 30 days),
~24k subscriptions (MRR) and ~30k open invoices on every visit: ~60 ms even reading
covering indexes (bench/pages), against a 20 ms target. Three rollup tables now hold those
totals (services/models.py, "Dashboard rollups"):

- `rollup_revenue_day (currency, day)`: gross of succeeded, paid charges and refunds given
  back (not failed or canceled), per UTC day `created / 86400`; deleted rows left out.
- `rollup_mrr (currency, status)`: subscriptions and their monthly amount, not deleted.
- `rollup_open_invoices (currency, due_day)`: open invoices and what is owed, per UTC due day
  (-1: no due date); overdue ones are the days before today plus a small index range today.

The definitions live in services/rollups.py (`FEEDS`), shared with `billy rebuild-derived`.
Each mirror table that feeds one gets triggers: AFTER INSERT adds the new row's share, AFTER
DELETE takes the old row's back, and AFTER UPDATE of a column that matters (only when one
really changed) does both. The mirror's upsert (`INSERT … ON CONFLICT DO UPDATE`) fires the
UPDATE triggers for a row that existed and the INSERT ones for a new row. Every writer is
covered (sync, events, Billy's own refunds, a repair by hand) and each change lands in the
same transaction as the row it comes from. The add is an upsert `total = total + change`,
which PostgreSQL applies to the latest committed row under concurrent writers.

Not covered: `TRUNCATE` (PostgreSQL fires no row triggers for it); truncate the rollups too.
Rows in the store when this runs are summed in here.

The three covering indexes of 0009 that only the old sums read are dropped: every mirror
write paid for them. The dashboard's one remaining scan, failed payments this week, gets a
partial index holding failed charges only (a few percent of them) with every column it reads,
recent refunds an index on (created, id) so refunds made in the same second need no sort, and
the charges' (created, id) index also holds customer_id and deleted: a list filtered by a
common customer prefix walks it alone (SQLite; services/search.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from services.rollups import FEEDS as ALL_FEEDS
from services.rollups import drop_triggers, postgres_triggers, sqlite_triggers

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# 0009's covering indexes for the old sums: (name, table, columns), re-created on downgrade.
COVERING_INDEXES = (
    ("ix_stripe_charge_revenue", "stripe_charge", ["status", "created", "currency", "amount", "paid", "deleted"]),
    ("ix_stripe_subscription_mrr_totals", "stripe_subscription", ["status", "currency", "mrr", "deleted"]),
    (
        "ix_stripe_invoice_open_totals",
        "stripe_invoice",
        ["status", "currency", "due_date", "amount_remaining", "deleted"],
    ),
)

# The week of failed payments, from a partial index holding failed charges only.
FAILED_INDEX_COLUMNS = [
    "status", "created", "customer_id", "decline_reason", "outcome_type", "currency", "amount", "deleted"
]


# This revision's three tables only: later revisions add feeds of their own (0021).
FEEDS = tuple(f for f in ALL_FEEDS if f.target in ("rollup_revenue_day", "rollup_mrr", "rollup_open_invoices"))


def _dialect() -> str:
    name = op.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"no rollup triggers written for {name}")
    return name


def upgrade() -> None:
    dialect = _dialect()
    op.create_table(
        "rollup_revenue_day",
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("currency", "day"),
    )
    op.create_table(
        "rollup_mrr",
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("subscriptions", sa.BigInteger(), nullable=False),
        sa.Column("mrr", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("currency", "status"),
    )
    op.create_table(
        "rollup_open_invoices",
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("due_day", sa.Integer(), nullable=False),
        sa.Column("invoices", sa.BigInteger(), nullable=False),
        sa.Column("amount_remaining", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("currency", "due_day"),
    )
    for feed in FEEDS:
        op.execute(feed.initial_sum())
        for statement in (sqlite_triggers if dialect == "sqlite" else postgres_triggers)(feed):
            op.execute(statement)
    # Plain create/drop_index, never a batch rebuild: a rebuilt table would lose its triggers.
    for index, table, _ in COVERING_INDEXES:
        op.drop_index(index, table_name=table)
    op.create_index(
        "ix_stripe_charge_failed",
        "stripe_charge",
        FAILED_INDEX_COLUMNS,
        unique=False,
        sqlite_where=sa.text("status = 'failed'"),
        postgresql_where=sa.text("status = 'failed'"),
    )
    # Charges newest first carry the customer and `deleted`: a list filtered by a common
    # customer prefix walks this index alone, one customer lookup per charge (services/search.py).
    op.drop_index("ix_stripe_charge_created_id", table_name="stripe_charge")
    op.create_index(
        "ix_stripe_charge_created_walk", "stripe_charge", ["created", "id", "customer_id", "deleted"], unique=False
    )
    # Recent refunds, newest first: with the id in the index, ties in `created` need no sort.
    op.drop_index("ix_stripe_refund_created", table_name="stripe_refund")
    op.create_index("ix_stripe_refund_created_id", "stripe_refund", ["created", "id"], unique=False)


def downgrade() -> None:
    dialect = _dialect()
    op.drop_index("ix_stripe_charge_created_walk", table_name="stripe_charge")
    op.create_index("ix_stripe_charge_created_id", "stripe_charge", ["created", "id"], unique=False)
    op.drop_index("ix_stripe_refund_created_id", table_name="stripe_refund")
    op.create_index("ix_stripe_refund_created", "stripe_refund", ["created"], unique=False)
    op.drop_index("ix_stripe_charge_failed", table_name="stripe_charge")
    for index, table, columns in COVERING_INDEXES:
        op.create_index(index, table, columns, unique=False)
    for feed in FEEDS:
        for statement in drop_triggers(dialect, feed):
            op.execute(statement)
    op.drop_table("rollup_open_invoices")
    op.drop_table("rollup_mrr")
    op.drop_table("rollup_revenue_day")
