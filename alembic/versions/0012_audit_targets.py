"""audit targets: which audit rows name a customer, a charge or a refund

`audit_target (target_id, audit_id)` is an index beside the append-only `audit_log`: services.audit
writes one row per target of each audit row, in the same transaction, so the customer page and
the charge page read "what Billy did here" by key instead of scanning the log (issue 12). The
upgrade fills it from the rows already in the log. `audit_log` itself is not touched.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5_000


def upgrade() -> None:
    targets = op.create_table(
        "audit_target",
        sa.Column("target_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("audit_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("target_id", "audit_id"),
    )
    log = sa.table("audit_log", sa.column("id", sa.Integer), sa.column("target_ids", sa.JSON))
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.select(log.c.id, log.c.target_ids).where(log.c.id > last).order_by(log.c.id).limit(_BATCH)
        ).all()
        if not rows:
            break
        pairs = set()
        for audit_id, target_ids in rows:
            values = json.loads(target_ids) if isinstance(target_ids, str) else target_ids or []
            pairs.update((str(t)[:255], audit_id) for t in values if t)
        if pairs:
            conn.execute(sa.insert(targets), [{"target_id": t, "audit_id": a} for t, a in sorted(pairs)])
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_table("audit_target")
