"""Terminal sessions record how they were allowed; commands may name an agent's script.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 22:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shell_sessions", schema=None) as batch_op:
        # Sessions recorded before this revision: how they were allowed is unknown.
        batch_op.add_column(
            sa.Column("consent", sa.String(length=32), nullable=False, server_default="")
        )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.add_column(sa.Column("script", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_column("script")
    with op.batch_alter_table("shell_sessions", schema=None) as batch_op:
        batch_op.drop_column("consent")
