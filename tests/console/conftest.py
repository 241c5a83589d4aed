"""Fixtures of the console tests: a migrated store on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deskside.console.db import migrate
from deskside.console.store import Store
from tests.postgres import create_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind the console supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'deskside.db'}"
    server: str = request.getfixturevalue("postgres_url")
    return create_database(server)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A store on a freshly migrated database."""
    migrate(database_url)
    store = Store.connect(database_url)
    try:
        yield store
    finally:
        await store.close()
