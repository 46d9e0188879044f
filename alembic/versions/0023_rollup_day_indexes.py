"""rollup_revenue_day, rollup_failed_day: an index on the day, for the dashboard's range of days
(issue 16: both keys start with the currency, so PostgreSQL read the whole table for a week or
a month: 10,500 rows for 54 of failed payments at a million charges, 0.6 ms of a 10 ms dashboard)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_rollup_revenue_day_day", "rollup_revenue_day", ["day"])
    op.create_index("ix_rollup_failed_day_day", "rollup_failed_day", ["day"])


def downgrade() -> None:
    op.drop_index("ix_rollup_failed_day_day", table_name="rollup_failed_day")
    op.drop_index("ix_rollup_revenue_day_day", table_name="rollup_revenue_day")
