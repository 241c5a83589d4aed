"""Runbooks added by administrators; commands know the runbook run they belong to.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 20:34:01.013782
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runbooks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_runbooks")),
    )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runbook_run", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("runbook_step", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_commands_runbook_run"), ["runbook_run"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commands_runbook_run"))
        batch_op.drop_column("runbook_step")
        batch_op.drop_column("runbook_run")

    op.drop_table("runbooks")
