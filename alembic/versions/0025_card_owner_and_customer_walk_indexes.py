"""card owners and the customers' walk from indexes alone (the search by a card's last four)

At 1,000,000 customers the search "4242" (2,115 customers with such a saved card) took 25-30 ms
(bench/pages, issue 16): the owners' ids came from the payment methods' rows, one heap page each,
and every owner's customer row was read by key to find the 11 newest.

- `ix_stripe_payment_method_card_owner (card_last4, customer_id, deleted)` replaces the index
  on `card_last4` alone: a card's owners are one index-only range.
- On PostgreSQL, `ix_stripe_customer_created_id (created, id)` now includes `deleted`: a walk
  that tests each customer against a set of ids (a common card's owners) reads it alone.
  "4242" now takes about 3 ms.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_stripe_payment_method_card_owner", "stripe_payment_method", ["card_last4", "customer_id", "deleted"]
    )
    op.drop_index("ix_stripe_payment_method_card_last4", table_name="stripe_payment_method")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_stripe_customer_created_id", table_name="stripe_customer")
        op.create_index(
            "ix_stripe_customer_created_id", "stripe_customer", ["created", "id"], postgresql_include=["deleted"]
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_stripe_customer_created_id", table_name="stripe_customer")
        op.create_index("ix_stripe_customer_created_id", "stripe_customer", ["created", "id"])
    op.create_index("ix_stripe_payment_method_card_last4", "stripe_payment_method", ["card_last4"])
    op.drop_index("ix_stripe_payment_method_card_owner", table_name="stripe_payment_method")
