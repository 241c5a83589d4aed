"""The queue: tickets owned by a technicians' group, a row version, the queue's
indexes; saved views; whether a device has a display.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 16:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A ticket's group was free text: the groups it names become technicians' groups
    # (empty ones), so that no ticket loses its owner to the new foreign key.
    op.execute(
        sa.text(
            "INSERT INTO technician_groups (name, created_at) "
            "SELECT DISTINCT group_name, CURRENT_TIMESTAMP FROM tickets "
            "WHERE group_name IS NOT NULL AND group_name NOT IN "
            "(SELECT name FROM technician_groups)"
        )
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_tickets_group_name_technician_groups"),
            "technician_groups",
            ["group_name"],
            ["name"],
            ondelete="SET NULL",
        )
        batch_op.create_index(batch_op.f("ix_tickets_group_name"), ["group_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_tickets_assignee"), ["assignee"], unique=False)
        batch_op.create_index("ix_tickets_updated_at", ["updated_at"], unique=False)
        batch_op.create_index("ix_tickets_resolution_due", ["resolution_due"], unique=False)
        batch_op.create_index("ix_tickets_priority_id", ["priority", "id"], unique=False)
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display", sa.Boolean(), nullable=True))
    op.create_table(
        "saved_views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["username"],
            ["users.username"],
            name=op.f("fk_saved_views_username_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_views")),
        sa.UniqueConstraint("username", "name", name=op.f("uq_saved_views_username")),
    )


def downgrade() -> None:
    op.drop_table("saved_views")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("display")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_priority_id")
        batch_op.drop_index("ix_tickets_resolution_due")
        batch_op.drop_index("ix_tickets_updated_at")
        batch_op.drop_index(batch_op.f("ix_tickets_assignee"))
        batch_op.drop_index(batch_op.f("ix_tickets_group_name"))
        batch_op.drop_constraint(
            batch_op.f("fk_tickets_group_name_technician_groups"), type_="foreignkey"
        )
        batch_op.drop_column("version")
