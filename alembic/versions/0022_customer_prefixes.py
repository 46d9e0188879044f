"""customer prefixes (PostgreSQL): lists filtered by a customer prefix without reading customers

A list filtered by the start of a customer's email or name ("jam") walks its own order and
tested each row's customer row by primary key: at 1,000,000 customers that read 5,000
customer rows for a page of 50 (24 ms against the 10 ms target; bench/pages, issue 16).

`stripe_customer_prefix (prefix, customer_id)` holds every text such a filter may start at:
the email, the name, and the name from each later word on ("ann lee" → "ann lee", "lee").
Its primary key, under the "C" collation, answers a prefix as one index-only range of
customer ids, which the list hashes once and tests each row against
(`services.search.pg_walk_plan`). A trigger on `stripe_customer` keeps it, leaving deleted
customers out; `billy rebuild-derived` re-fills it after a TRUNCATE or a restore. Customers
already stored are filled in here.

SQLite needs none of it: its FTS trigram table (0009) and the list walk already meet the
target there. The table is outside services/models.py, like 0009's search objects.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 20:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from services.search import PG_CUSTOMER_PREFIX_DOWN, PG_CUSTOMER_PREFIX_FILL, PG_CUSTOMER_PREFIX_UP

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in (*PG_CUSTOMER_PREFIX_UP, *PG_CUSTOMER_PREFIX_FILL):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in PG_CUSTOMER_PREFIX_DOWN:
        op.execute(statement)
