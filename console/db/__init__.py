"""The console's database: engine and transactions, table base, migrations.

Each capability owns its tables (``<capability>/models.py``) and its repository;
this package is what they share. ``deskside.console.schema`` imports every
capability's tables for Alembic and the schema test.
"""

from __future__ import annotations

import threading

from alembic import command
from alembic.config import Config

from .base import Base, BigId, UTCDateTime
from .database import Database, database_url, get_row, utcnow

__all__ = [
    "Base",
    "BigId",
    "Database",
    "UTCDateTime",
    "alembic_config",
    "database_url",
    "get_row",
    "migrate",
    "utcnow",
]


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the database at ``url`` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", "deskside.console.db:migrations")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema; safe to run every start.

    Alembic's environment runs its own event loop, so this is called outside any
    running loop (or it runs in a thread of its own).
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            command.upgrade(alembic_config(url), "head")
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="deskside-migrate")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
