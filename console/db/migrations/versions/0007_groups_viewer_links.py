"""Technicians' groups with rights on device groups; viewer links.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "technician_groups",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_technician_groups")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_name", sa.String(length=128), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_name"],
            ["technician_groups.name"],
            name=op.f("fk_group_members_group_name_technician_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["username"],
            ["users.username"],
            name=op.f("fk_group_members_username_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_name", "username", name=op.f("pk_group_members")),
    )
    op.create_table(
        "group_device_rights",
        sa.Column("group_name", sa.String(length=128), nullable=False),
        sa.Column("device_group", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_name"],
            ["technician_groups.name"],
            name=op.f("fk_group_device_rights_group_name_technician_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_name", "device_group", name=op.f("pk_group_device_rights")),
    )
    op.create_table(
        "viewer_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("capability", sa.String(length=16), nullable=False),
        sa.Column("screen_session", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_viewer_links_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_viewer_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_viewer_links_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("viewer_links")
    op.drop_table("group_device_rights")
    op.drop_table("group_members")
    op.drop_table("technician_groups")
