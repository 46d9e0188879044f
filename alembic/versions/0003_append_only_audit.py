"""append-only audit log: hash chain columns, rows before it chained, triggers refusing changes

Adds `prev_hash` and `hash` to `audit_log`, chains the rows already there in id order
(with services.audit.chain_hash, the one definition the app uses too), makes both columns
NOT NULL, and only then adds the triggers that refuse UPDATE and DELETE (and TRUNCATE on
PostgreSQL; on SQLite also an INSERT OR REPLACE over an existing row, which would delete
it without firing the DELETE trigger).

A later migration that rebuilds `audit_log` on SQLite (alembic's batch mode copies the
table) loses these triggers with the old table: it must drop and re-create them around
the rebuild, as this migration's downgrade does.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.audit import CONTENT_FIELDS, GENESIS, chain_hash
from services.models import UTCDateTime

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGERS = (
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
    WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
)
SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS audit_log_no_replace",
    "DROP TRIGGER IF EXISTS audit_log_no_delete",
    "DROP TRIGGER IF EXISTS audit_log_no_update",
)

POSTGRES_TRIGGERS = (
    """CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
    END
    $$""",
    """CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()""",
)
POSTGRES_DROP = (
    "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log",
    "DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log",
    "DROP FUNCTION IF EXISTS audit_log_refuse_change()",
)

# The table as this revision knows it, typed so values read back as the app reads them.
audit_log = sa.table(
    'audit_log',
    sa.column('id', sa.Integer),
    sa.column('at', UTCDateTime()),
    sa.column('actor_id', sa.Integer),
    sa.column('actor_email', sa.String),
    sa.column('actor_role', sa.String),
    sa.column('source', sa.String),
    sa.column('client_address', sa.String),
    sa.column('user_agent', sa.String),
    sa.column('action', sa.String),
    sa.column('target_ids', sa.JSON),
    sa.column('amount', sa.BigInteger),
    sa.column('currency', sa.String),
    sa.column('outcome', sa.String),
    sa.column('error', sa.String),
    sa.column('details', sa.JSON),
    sa.column('prev_hash', sa.String),
    sa.column('hash', sa.String),
)


def _dialect() -> str:
    name = op.get_bind().dialect.name
    if name not in ('sqlite', 'postgresql'):
        raise NotImplementedError(f'no append-only triggers written for {name}')
    return name


def _chain_existing_rows() -> None:
    bind = op.get_bind()
    columns = [audit_log.c[name] for name in CONTENT_FIELDS]
    rows = bind.execute(sa.select(*columns).order_by(audit_log.c.id)).mappings().all()
    links = []
    prev_hash = GENESIS
    for row in rows:
        row_hash = chain_hash(prev_hash, row)
        links.append({'row_id': row['id'], 'new_prev_hash': prev_hash, 'new_hash': row_hash})
        prev_hash = row_hash
    if links:
        bind.execute(
            sa.update(audit_log)
            .where(audit_log.c.id == sa.bindparam('row_id'))
            .values(prev_hash=sa.bindparam('new_prev_hash'), hash=sa.bindparam('new_hash')),
            links,
        )


def upgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))

    _chain_existing_rows()

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)

    for statement in SQLITE_TRIGGERS if _dialect() == 'sqlite' else POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for statement in SQLITE_DROP if _dialect() == 'sqlite' else POSTGRES_DROP:
        op.execute(statement)
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
