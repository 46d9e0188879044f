"""stripe_charge: a partial index of refunded charges, newest first, for the charges list's
"Refunded" filter and its total (issue 16: at a million charges that page walked 1,900 rows to
find 50, and its total could not be counted within a page's budget)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUNDED = sa.text("amount_refunded > 0")


def upgrade() -> None:
    op.create_index(
        "ix_stripe_charge_refunded",
        "stripe_charge",
        ["created", "id", "deleted"],
        sqlite_where=REFUNDED,
        postgresql_where=REFUNDED,
    )


def downgrade() -> None:
    op.drop_index("ix_stripe_charge_refunded", table_name="stripe_charge")
