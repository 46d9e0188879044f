"""customer prefixes on SQLite too: lists filtered by a customer prefix from one index range

Until now SQLite answered a customer-prefix filter ("jam") from two B-tree ranges on the
lower-cased email and name plus its FTS trigram table for a later word of the name, and walked
the list testing each row's customer when many matched. At 100,000 customers that cost 8-14 ms
a page in the middle band (1,300-2,400 matches; bench/pages, issue 16), over the 10 ms target:
the trigram phrase " jam" alone took most of it.

This adds PostgreSQL's table of migration 0022 to SQLite: `stripe_customer_prefix (prefix,
customer_id)`, every text a filter may start at (the email, the name, and the name from each
later word on), kept by triggers on `stripe_customer`, deleted customers left out. A prefix is
then one index-only range, which a list gathers by or hashes once and tests on its own walk
(`services.search.walk_plan`), as on PostgreSQL. SQLite's triggers cannot use a CTE, so the
later words come from a join with `stripe_prefix_position`, the integers 1..1024. Customers
already stored are filled in here; `billy rebuild-derived` re-fills the table.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from services.search import SQLITE_CUSTOMER_PREFIX_DOWN, SQLITE_CUSTOMER_PREFIX_FILL, SQLITE_CUSTOMER_PREFIX_UP

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in (*SQLITE_CUSTOMER_PREFIX_UP, *SQLITE_CUSTOMER_PREFIX_FILL):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in SQLITE_CUSTOMER_PREFIX_DOWN:
        op.execute(statement)
