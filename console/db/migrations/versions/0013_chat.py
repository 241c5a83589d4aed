"""Chat between technician and user: every line of a ticket's conversation.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-03 16:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("reply_id", sa.String(length=64), nullable=True),
        sa.Column("author", sa.String(length=160), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_chat_lines_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_chat_lines_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_lines")),
    )
    with op.batch_alter_table("chat_lines", schema=None) as batch_op:
        batch_op.create_index("ix_chat_lines_ticket", ["ticket_id", "id"], unique=False)
        batch_op.create_index("ix_chat_lines_device_seq", ["device_id", "seq"], unique=True)
        batch_op.create_index("ix_chat_lines_device_reply", ["device_id", "reply_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("chat_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_lines_device_reply")
        batch_op.drop_index("ix_chat_lines_device_seq")
        batch_op.drop_index("ix_chat_lines_ticket")
    op.drop_table("chat_lines")
