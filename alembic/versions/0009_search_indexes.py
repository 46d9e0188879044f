"""search indexes: contains-search on customer email/name and charge description

The global search (services/search.py) finds text *inside* emails, names and charge
descriptions, which no B-tree can answer. Each backend gets its own trigram index:

- **SQLite**: two FTS5 tables with the `trigram` tokenizer (SQLite 3.34+),
  `stripe_customer_search (id, email, name)` and `stripe_charge_search (id, description)`.
  Each FTS row's rowid is its base row's rowid, so the triggers below find it without a scan;
  `id` is stored (not indexed) so a search joins back by primary key. Deleted rows are left
  out. Triggers keep them in step: AFTER INSERT, AFTER DELETE, and AFTER UPDATE of the
  searched columns or `deleted` (only when one of them really changed). The mirror's upsert
  (`INSERT … ON CONFLICT DO UPDATE`) fires the UPDATE triggers for a row that existed and the
  INSERT ones for a new row, so both paths are covered. Rows already in the store are indexed
  here. No table with these triggers may be rebuilt by batch mode later (a rebuild drops its
  triggers): add indexes with plain `op.create_index`, or re-create the triggers after.
  `VACUUM` may renumber rowids of tables without an INTEGER PRIMARY KEY; after one, run
  `services.search.rebuild_search_index()` (searches stay correct rows, joined by id, but an
  update could miss its old FTS row).
- **PostgreSQL**: the `pg_trgm` extension and GIN trigram indexes on
  `stripe_customer.email_lower`, `stripe_customer.name_lower` and `stripe_charge.description`;
  they answer `LIKE '%…%'` / `ILIKE '%…%'` from the index; and `varchar_pattern_ops` B-trees
  on `email_lower` / `name_lower` for prefix `LIKE '…%'` under any collation.

Plain B-tree indexes the benchmark (`python -m bench.pages`, 100k customers / 1M charges)
showed missing, on both backends and in services/models.py (created with `op.create_index`,
never a batch rebuild, so the triggers above survive):

- `stripe_charge (payment_intent_id)`: a `pi_…` search (a full scan: ~0.4 s at 200k charges).
- `stripe_charge (card_last4, created, id)`: a last-four search, newest first (a full scan).
- `stripe_charge (status, created, currency, amount, paid, deleted)`,
  `stripe_subscription (status, currency, mrr, deleted)`,
  `stripe_invoice (status, currency, due_date, amount_remaining, deleted)`: the dashboard's
  revenue, MRR and open-invoice totals read from the index alone instead of one table row
  per charge/subscription/invoice in the window.

The FTS tables and trigram indexes are not in services/models.py: alembic's comparison skips exactly them
(services.search.is_search_object, used by alembic/env.py and the migrations test).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UP = (
    """CREATE VIRTUAL TABLE stripe_customer_search USING fts5(
        id UNINDEXED, email, name, tokenize = 'trigram')""",
    """CREATE TRIGGER stripe_customer_search_ai AFTER INSERT ON stripe_customer
    WHEN NOT new.deleted
    BEGIN
        INSERT INTO stripe_customer_search (rowid, id, email, name)
        VALUES (new.rowid, new.id, new.email, new.name);
    END""",
    """CREATE TRIGGER stripe_customer_search_ad AFTER DELETE ON stripe_customer
    BEGIN
        DELETE FROM stripe_customer_search WHERE rowid = old.rowid;
    END""",
    """CREATE TRIGGER stripe_customer_search_au AFTER UPDATE OF email, name, deleted ON stripe_customer
    WHEN old.email IS NOT new.email OR old.name IS NOT new.name OR old.deleted IS NOT new.deleted
    BEGIN
        DELETE FROM stripe_customer_search WHERE rowid = old.rowid;
        INSERT INTO stripe_customer_search (rowid, id, email, name)
        SELECT new.rowid, new.id, new.email, new.name WHERE NOT new.deleted;
    END""",
    """INSERT INTO stripe_customer_search (rowid, id, email, name)
    SELECT rowid, id, email, name FROM stripe_customer WHERE NOT deleted""",
    """CREATE VIRTUAL TABLE stripe_charge_search USING fts5(
        id UNINDEXED, description, tokenize = 'trigram')""",
    """CREATE TRIGGER stripe_charge_search_ai AFTER INSERT ON stripe_charge
    WHEN NOT new.deleted AND new.description IS NOT NULL
    BEGIN
        INSERT INTO stripe_charge_search (rowid, id, description)
        VALUES (new.rowid, new.id, new.description);
    END""",
    """CREATE TRIGGER stripe_charge_search_ad AFTER DELETE ON stripe_charge
    BEGIN
        DELETE FROM stripe_charge_search WHERE rowid = old.rowid;
    END""",
    """CREATE TRIGGER stripe_charge_search_au AFTER UPDATE OF description, deleted ON stripe_charge
    WHEN old.description IS NOT new.description OR old.deleted IS NOT new.deleted
    BEGIN
        DELETE FROM stripe_charge_search WHERE rowid = old.rowid;
        INSERT INTO stripe_charge_search (rowid, id, description)
        SELECT new.rowid, new.id, new.description WHERE NOT new.deleted AND new.description IS NOT NULL;
    END""",
    """INSERT INTO stripe_charge_search (rowid, id, description)
    SELECT rowid, id, description FROM stripe_charge WHERE NOT deleted AND description IS NOT NULL""",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS stripe_charge_search_au",
    "DROP TRIGGER IF EXISTS stripe_charge_search_ad",
    "DROP TRIGGER IF EXISTS stripe_charge_search_ai",
    "DROP TABLE IF EXISTS stripe_charge_search",
    "DROP TRIGGER IF EXISTS stripe_customer_search_au",
    "DROP TRIGGER IF EXISTS stripe_customer_search_ad",
    "DROP TRIGGER IF EXISTS stripe_customer_search_ai",
    "DROP TABLE IF EXISTS stripe_customer_search",
)

POSTGRES_UP = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_stripe_customer_email_trgm ON stripe_customer USING gin (email_lower gin_trgm_ops)",
    "CREATE INDEX ix_stripe_customer_name_trgm ON stripe_customer USING gin (name_lower gin_trgm_ops)",
    "CREATE INDEX ix_stripe_charge_description_trgm ON stripe_charge USING gin (description gin_trgm_ops)",
    # Prefix search (`LIKE 'abc%'`): a plain B-tree serves it only under the "C" collation;
    # pattern_ops serves it under any (EXPLAIN at 100k customers: 12k trigram rechecks → 1 range).
    "CREATE INDEX ix_stripe_customer_email_prefix ON stripe_customer (email_lower varchar_pattern_ops)",
    "CREATE INDEX ix_stripe_customer_name_prefix ON stripe_customer (name_lower varchar_pattern_ops)",
)
POSTGRES_DOWN = (
    "DROP INDEX IF EXISTS ix_stripe_customer_name_prefix",
    "DROP INDEX IF EXISTS ix_stripe_customer_email_prefix",
    "DROP INDEX IF EXISTS ix_stripe_charge_description_trgm",
    "DROP INDEX IF EXISTS ix_stripe_customer_name_trgm",
    "DROP INDEX IF EXISTS ix_stripe_customer_email_trgm",
    # pg_trgm stays: other objects may use it, and it is harmless.
)


def _dialect() -> str:
    name = op.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"no search indexes written for {name}")
    if name == "sqlite" and sqlite3.sqlite_version_info < (3, 34, 0):
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} has no FTS5 trigram tokenizer (3.34 or newer is needed): "
            "upgrade SQLite (Python's sqlite3 module) or use PostgreSQL."
        )
    return name


BTREE_INDEXES = (
    ("ix_stripe_charge_payment_intent_id", "stripe_charge", ["payment_intent_id"]),
    ("ix_stripe_charge_card_last4_created", "stripe_charge", ["card_last4", "created", "id"]),
    ("ix_stripe_charge_revenue", "stripe_charge", ["status", "created", "currency", "amount", "paid", "deleted"]),
    ("ix_stripe_subscription_mrr_totals", "stripe_subscription", ["status", "currency", "mrr", "deleted"]),
    (
        "ix_stripe_invoice_open_totals",
        "stripe_invoice",
        ["status", "currency", "due_date", "amount_remaining", "deleted"],
    ),
)


def upgrade() -> None:
    for statement in SQLITE_UP if _dialect() == "sqlite" else POSTGRES_UP:
        op.execute(statement)
    for name, table, columns in BTREE_INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _columns in reversed(BTREE_INDEXES):
        op.drop_index(name, table_name=table)
    for statement in SQLITE_DOWN if _dialect() == "sqlite" else POSTGRES_DOWN:
        op.execute(statement)
