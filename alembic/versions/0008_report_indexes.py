"""report indexes: the dashboard's windows and the lists' amount sorts

- `stripe_charge (status, created, id)`: the dashboard reads succeeded charges of the last
  30 days and failed charges of the last 7 as one index range each, and the charges list
  filtered by status pages along it (keyset on (created, id)).
- `stripe_charge (amount, id)`, `stripe_subscription (mrr, id)`, `stripe_invoice (total, id)`:
  the lists sorted by amount page with a keyset cursor on (amount, id), which needs the
  rows in that order without sorting the whole table for every page.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stripe_charge", schema=None) as batch_op:
        batch_op.create_index("ix_stripe_charge_status_created", ["status", "created", "id"], unique=False)
        batch_op.create_index("ix_stripe_charge_amount_id", ["amount", "id"], unique=False)
    with op.batch_alter_table("stripe_subscription", schema=None) as batch_op:
        batch_op.create_index("ix_stripe_subscription_mrr_id", ["mrr", "id"], unique=False)
    with op.batch_alter_table("stripe_invoice", schema=None) as batch_op:
        batch_op.create_index("ix_stripe_invoice_total_id", ["total", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stripe_invoice", schema=None) as batch_op:
        batch_op.drop_index("ix_stripe_invoice_total_id")
    with op.batch_alter_table("stripe_subscription", schema=None) as batch_op:
        batch_op.drop_index("ix_stripe_subscription_mrr_id")
    with op.batch_alter_table("stripe_charge", schema=None) as batch_op:
        batch_op.drop_index("ix_stripe_charge_amount_id")
        batch_op.drop_index("ix_stripe_charge_status_created")
