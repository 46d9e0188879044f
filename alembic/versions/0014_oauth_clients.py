"""oauth clients: MCP clients registered by OAuth Dynamic Client Registration (issue 13)

`oauth_client (client_id, client_name, info, created_at)`: an MCP client that connects to `/mcp`
by URL registers itself (RFC 7591) before a member approves it on Billy's sign-in page.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.models

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_client",
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("client_name", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("created_at", services.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id"),
    )
    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oauth_client_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_client_created_at"))
    op.drop_table("oauth_client")
