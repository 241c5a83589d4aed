"""Alembic environment: runs the console's migrations on its async engine.

On PostgreSQL, several console nodes may start at once: each takes the same
session-level advisory lock before it looks at the schema, so one migrates while
the others wait, and then find the schema at head and have nothing to do.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from deskside.console.db.base import Base, UTCDateTime
from deskside.console.db.database import database_url
from deskside.console.schema import TABLES

config = context.config
target_metadata = Base.metadata
assert TABLES  # every capability's tables are on Base.metadata

# The advisory lock the nodes of one database migrate under (any fixed 64-bit number;
# this is "deskside" in ASCII).
MIGRATION_LOCK = 0x6465736B73696465


def _render_item(kind: str, item: object, autogen_context: object) -> str | Literal[False]:
    """Write UTCDateTime as plain DateTime(timezone=True): migrations import no models."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Held by the connection, not a transaction: it spans Alembic's own transaction
        # (and goes with the connection if this process dies).
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()
        try:
            _migrate(connection)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
        return
    _migrate(connection)


def _migrate(connection: Connection) -> None:
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
