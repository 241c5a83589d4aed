"""Interactive terminal sessions and their transcripts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 20:25:26.265294
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shell_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.String(length=160), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("transcript", sa.LargeBinary(), nullable=False),
        sa.Column("transcript_truncated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_shell_sessions_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_shell_sessions_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shell_sessions")),
    )
    with op.batch_alter_table("shell_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_shell_sessions_ticket", ["ticket_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shell_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_shell_sessions_ticket")

    op.drop_table("shell_sessions")
