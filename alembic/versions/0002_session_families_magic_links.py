"""sessions as refresh-token families, magic links, member token version

Plain session tokens give way to refresh-token families (1-hour JWTs ride on them):
existing sign-ins are dropped, so members sign in once more after this upgrade.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:15:44.018444
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.models

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('magic_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('used_at', services.models.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', services.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['member.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('magic_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_magic_link_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_magic_link_purpose'), ['purpose'], unique=False)
        batch_op.create_index(batch_op.f('ix_magic_link_token_hash'), ['token_hash'], unique=True)

    op.create_table('session_family',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('created_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', services.models.UTCDateTime(), nullable=True),
    sa.Column('revoked_reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('client_address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('session_family', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_session_family_member_id'), ['member_id'], unique=False)

    op.create_table('refresh_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('family_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('used_at', services.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['family_id'], ['session_family.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_token_family_id'), ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_token_token_hash'), ['token_hash'], unique=True)

    with op.batch_alter_table('auth_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_session_member_id'))
        batch_op.drop_index(batch_op.f('ix_auth_session_token_hash'))

    op.drop_table('auth_session')
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_version', sa.Integer(), nullable=False, server_default='0'))




def downgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_column('token_version')

    op.create_table('auth_session',
    sa.Column('id', sa.INTEGER(), nullable=False),
    sa.Column('member_id', sa.INTEGER(), nullable=False),
    sa.Column('token_hash', sa.VARCHAR(length=64), nullable=False),
    sa.Column('created_at', sa.DATETIME(), nullable=False),
    sa.Column('last_seen_at', sa.DATETIME(), nullable=False),
    sa.Column('expires_at', sa.DATETIME(), nullable=False),
    sa.Column('revoked_at', sa.DATETIME(), nullable=True),
    sa.Column('client_address', sa.VARCHAR(length=64), nullable=False),
    sa.Column('user_agent', sa.VARCHAR(length=400), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('auth_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_session_token_hash'), ['token_hash'], unique=1)
        batch_op.create_index(batch_op.f('ix_auth_session_member_id'), ['member_id'], unique=False)

    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_token_token_hash'))
        batch_op.drop_index(batch_op.f('ix_refresh_token_family_id'))

    op.drop_table('refresh_token')
    with op.batch_alter_table('session_family', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_session_family_member_id'))

    op.drop_table('session_family')
    with op.batch_alter_table('magic_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_magic_link_token_hash'))
        batch_op.drop_index(batch_op.f('ix_magic_link_purpose'))
        batch_op.drop_index(batch_op.f('ix_magic_link_email'))

    op.drop_table('magic_link')

