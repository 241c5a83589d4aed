"""The console's database: models, migrations and the ``Store``."""

from __future__ import annotations

import threading

from alembic import command
from alembic.config import Config

from .store import SCOPES, ApiIdentity, Store, database_url, utcnow

__all__ = ["SCOPES", "ApiIdentity", "Store", "alembic_config", "database_url", "migrate", "utcnow"]


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the database at ``url`` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", "deskside.console:migrations")
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
