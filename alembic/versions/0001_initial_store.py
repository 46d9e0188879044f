"""initial store: organisation, members, sessions, audit, stripe mirror

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 07:36:44.072567
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.models

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', services.models.UTCDateTime(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('actor_role', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('client_address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('target_ids', sa.JSON(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=True),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('idempotency_record',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('result_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('created_at', services.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('last_active_at', services.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_email'), ['email'], unique=True)

    op.create_table('organization',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('plan', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('trial_ends_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('created_at', services.models.UTCDateTime(), nullable=False),
    sa.CheckConstraint('id = 1', name='ck_organization_single'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('stripe_charge',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('amount_refunded', sa.BigInteger(), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('paid', sa.Boolean(), nullable=False),
    sa.Column('refunded', sa.Boolean(), nullable=False),
    sa.Column('failure_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('failure_message', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('outcome_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('decline_reason', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('order_number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('card_brand', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('card_last4', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=True),
    sa.Column('payment_intent_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.Column('synced_at', services.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stripe_charge', schema=None) as batch_op:
        batch_op.create_index('ix_stripe_charge_created_id', ['created', 'id'], unique=False)
        batch_op.create_index('ix_stripe_charge_customer_created', ['customer_id', 'created'], unique=False)
        batch_op.create_index(batch_op.f('ix_stripe_charge_order_number'), ['order_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_stripe_charge_status'), ['status'], unique=False)

    op.create_table('stripe_customer',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
    sa.Column('email_lower', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
    sa.Column('name_lower', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.Column('synced_at', services.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stripe_customer', schema=None) as batch_op:
        batch_op.create_index('ix_stripe_customer_created_id', ['created', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stripe_customer_email_lower'), ['email_lower'], unique=False)
        batch_op.create_index(batch_op.f('ix_stripe_customer_name_lower'), ['name_lower'], unique=False)

    op.create_table('stripe_refund',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('charge_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.Column('synced_at', services.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stripe_refund', schema=None) as batch_op:
        batch_op.create_index('ix_stripe_refund_charge_created', ['charge_id', 'created'], unique=False)
        batch_op.create_index(batch_op.f('ix_stripe_refund_created'), ['created'], unique=False)

    op.create_table('sync_state',
    sa.Column('resource', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('cursor', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('synced_count', sa.Integer(), nullable=False),
    sa.Column('started_at', services.models.UTCDateTime(), nullable=True),
    sa.Column('finished_at', services.models.UTCDateTime(), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.PrimaryKeyConstraint('resource')
    )
    op.create_table('auth_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', services.models.UTCDateTime(), nullable=True),
    sa.Column('client_address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('auth_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_session_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_auth_session_token_hash'), ['token_hash'], unique=True)

    op.create_table('stripe_connection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('secret_name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('key_hint', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('permissions', sa.JSON(), nullable=False),
    sa.Column('connected_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('connected_by', sa.Integer(), nullable=True),
    sa.Column('onboarding_done', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['connected_by'], ['member.id'], ),
    sa.PrimaryKeyConstraint('id')
    )



def downgrade() -> None:

    op.drop_table('stripe_connection')
    with op.batch_alter_table('auth_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_session_token_hash'))
        batch_op.drop_index(batch_op.f('ix_auth_session_member_id'))

    op.drop_table('auth_session')
    op.drop_table('sync_state')
    with op.batch_alter_table('stripe_refund', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stripe_refund_created'))
        batch_op.drop_index('ix_stripe_refund_charge_created')

    op.drop_table('stripe_refund')
    with op.batch_alter_table('stripe_customer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stripe_customer_name_lower'))
        batch_op.drop_index(batch_op.f('ix_stripe_customer_email_lower'))
        batch_op.drop_index('ix_stripe_customer_created_id')

    op.drop_table('stripe_customer')
    with op.batch_alter_table('stripe_charge', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stripe_charge_status'))
        batch_op.drop_index(batch_op.f('ix_stripe_charge_order_number'))
        batch_op.drop_index('ix_stripe_charge_customer_created')
        batch_op.drop_index('ix_stripe_charge_created_id')

    op.drop_table('stripe_charge')
    op.drop_table('organization')
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_email'))

    op.drop_table('member')
    op.drop_table('idempotency_record')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_actor_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))

    op.drop_table('audit_log')

