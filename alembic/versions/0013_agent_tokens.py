"""agent tokens, preview confirmations and REST idempotency (issue 13)

- `agent_token`: a member's credential for the REST API and the MCP agent, kept as the SHA-256 of
  its secret, with its scope (read-only, lower refund caps, allowed actions, expiry), when and
  from where it was last used, and its revocation.
- `agent_confirmation`: a write preview's single-use confirmation, bound to member, token, action
  and the digest of the exact parameters, with its expiry.
- `api_idempotency`: a REST write's answer per caller and `Idempotency-Key`, with the digest of
  the request it answered.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.models

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_UTC = services.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "agent_token",
        sa.Column("id", _TEXT(length=40), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("client_name", _TEXT(length=80), nullable=False),
        sa.Column("secret_hash", _TEXT(length=64), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("refund_caps", sa.JSON(), nullable=True),
        sa.Column("actions", sa.JSON(), nullable=True),
        sa.Column("created_at", _UTC(), nullable=False),
        sa.Column("expires_at", _UTC(), nullable=True),
        sa.Column("last_used_at", _UTC(), nullable=True),
        sa.Column("last_used_from", _TEXT(length=120), nullable=False),
        sa.Column("revoked_at", _UTC(), nullable=True),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
    )
    with op.batch_alter_table("agent_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_token_member_id"), ["member_id"], unique=False)

    op.create_table(
        "agent_confirmation",
        sa.Column("token_hash", _TEXT(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("agent_token_id", _TEXT(length=40), nullable=False),
        sa.Column("action", _TEXT(length=60), nullable=False),
        sa.Column("params_digest", _TEXT(length=64), nullable=False),
        sa.Column("created_at", _UTC(), nullable=False),
        sa.Column("expires_at", _UTC(), nullable=False),
        sa.Column("used_at", _UTC(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("agent_confirmation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_confirmation_member_id"), ["member_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_agent_confirmation_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "api_idempotency",
        sa.Column("caller", _TEXT(length=60), nullable=False),
        sa.Column("key", _TEXT(length=255), nullable=False),
        sa.Column("request_digest", _TEXT(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", _UTC(), nullable=False),
        sa.PrimaryKeyConstraint("caller", "key"),
    )
    with op.batch_alter_table("api_idempotency", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_idempotency_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_idempotency", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_idempotency_created_at"))
    op.drop_table("api_idempotency")
    with op.batch_alter_table("agent_confirmation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_confirmation_expires_at"))
        batch_op.drop_index(batch_op.f("ix_agent_confirmation_member_id"))
    op.drop_table("agent_confirmation")
    with op.batch_alter_table("agent_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_token_member_id"))
    op.drop_table("agent_token")
