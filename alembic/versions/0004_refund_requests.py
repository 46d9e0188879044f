"""refund requests: over-cap refunds waiting for someone whose cap covers them

One table, `refund_request`. The queue reads it by (status, created_at), a member's own
requests by (requested_by, created_at). The status moves from `pending` exactly once
(services.refund_requests claims it with a conditional UPDATE); the CHECK constraints keep
out statuses and amounts the service would never write.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.models

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('refund_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('charge_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=False),
    sa.Column('requester_email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('decider_email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('decided_at', services.models.UTCDateTime(), nullable=True),
    sa.Column('decision_note', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('refund_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('created_at', services.models.UTCDateTime(), nullable=False),
    sa.CheckConstraint(
        "status IN ('pending', 'approved', 'declined', 'failed', 'withdrawn')", name='ck_refund_request_status'
    ),
    sa.CheckConstraint('amount > 0', name='ck_refund_request_amount'),
    sa.ForeignKeyConstraint(['decided_by'], ['member.id'], ),
    sa.ForeignKeyConstraint(['requested_by'], ['member.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('refund_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_request_charge_id'), ['charge_id'], unique=False)
        batch_op.create_index('ix_refund_request_requested_by_created', ['requested_by', 'created_at'], unique=False)
        batch_op.create_index('ix_refund_request_status_created', ['status', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('refund_request', schema=None) as batch_op:
        batch_op.drop_index('ix_refund_request_status_created')
        batch_op.drop_index('ix_refund_request_requested_by_created')
        batch_op.drop_index(batch_op.f('ix_refund_request_charge_id'))

    op.drop_table('refund_request')
