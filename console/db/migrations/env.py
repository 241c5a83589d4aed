"""Alembic environment: runs the console's migrations on its async engine."""

from __future__ import annotations

import asyncio
from typing import Literal

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from deskside.console.db.base import Base, UTCDateTime
from deskside.console.db.database import database_url
from deskside.console.schema import TABLES

config = context.config
target_metadata = Base.metadata
assert TABLES  # every capability's tables are on Base.metadata


def _render_item(kind: str, item: object, autogen_context: object) -> str | Literal[False]:
    """Write UTCDateTime as plain DateTime(timezone=True): migrations import no models."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_async_engine(database_url(url), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run them against a database")
asyncio.run(_run_async())
