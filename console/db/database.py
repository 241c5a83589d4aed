"""The console's database: an engine and its transactions, shared by every repository.

SQLite (embedded, the default) and PostgreSQL are both supported through
SQLAlchemy's asyncio layer: asyncpg, and for SQLite a driver that runs statements
on the event loop (``.sqlite``). The schema is created and upgraded by Alembic
(``deskside.console.db.migrate``), never by ``create_all``.

Repositories (one per capability: ``tickets/repository.py``, ...) run each public
method as one transaction: ``transaction()`` (may write), ``reading()`` (only
reads; no write lock on SQLite) or, on the paths a technician waits on (every API
call's token, a command's request and result), ``run()``: plain statements in one
go, because an ORM session's bookkeeping cost more than SQLite's own work.

Domain events (``deskside.console.events``) are published after the commit:
``transaction(events=...)`` takes a list the block appends to, and publishes it
once the block has committed; nothing is published for a rolled-back block.

Before that commit, the events are shown to the database's *stagers*
(``add_stager``): a stager writes what must survive a crash with the change, in
the same transaction (the webhooks' outbox rows, ``deskside.console.webhooks``),
so the change and its outbox rows commit, or roll back, together.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

from sqlalchemy import Connection, event, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import greenlet_spawn

from deskside.console.errors import InvalidRequest, NotFound
from deskside.console.events import DomainEvent, EventBus, LocalEventBus

from .sqlite import Checkpointer, InlineConnection, InlineSQLite

__all__ = ["Database", "Stager", "database_url", "get_row", "utcnow"]

_T = TypeVar("_T")

# Writes, in the transaction and before its commit, what its events call for.
Stager = Callable[[Connection, list[DomainEvent]], None]

# The execution option that marks a read-only transaction (see _begin_immediate).
_READ_ONLY: Final = "deskside_read_only"
# The execution option of a transaction that may read a lot (run off the event loop).
_BULK: Final = "deskside_bulk"


def utcnow() -> datetime.datetime:
    """The current time, in UTC, timezone-aware."""
    return datetime.datetime.now(datetime.UTC)


def database_url(url: str) -> URL:
    """The SQLAlchemy URL with the async driver: sqlite -> aiosqlite, postgresql -> asyncpg."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InvalidRequest(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    raise InvalidRequest(f"unsupported database {backend!r}: use sqlite or postgresql")


def _set_sqlite_pragmas(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # The driver's own BEGIN is off: _begin_immediate emits the one SQLite needs.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    # SQLite ignores SELECT ... FOR UPDATE; taking the write lock when the
    # transaction begins makes read-then-write (spending a token, changing a
    # ticket's status) as safe as row locks are on PostgreSQL. Transactions that
    # only read (Database.reading) take no lock: in WAL mode they see a snapshot and
    # neither wait for writers nor make them wait.
    options = connection.get_execution_options()
    driver = connection.connection.driver_connection
    if isinstance(driver, InlineConnection):
        driver.threaded = bool(options.get(_BULK))  # see deskside.console.db.sqlite
    if options.get(_READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine, its transactions, and the bus their events go to after commit."""

    def __init__(self, engine: AsyncEngine, bus: EventBus | None = None) -> None:
        self.engine = engine
        # Where domain events go once their transaction has committed.
        self.bus: EventBus = bus or LocalEventBus()
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Shown each transaction's events before its commit (see the module's docstring).
        self._stagers: list[Stager] = []
        self._checkpointer: Checkpointer | None = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._checkpointer = Checkpointer(engine.url.database)

    @classmethod
    def connect(cls, url: str, bus: EventBus | None = None) -> Database:
        """The database at ``url`` (already migrated; see ``migrate``)."""
        target = database_url(url)
        if target.get_backend_name() == "sqlite":
            # An embedded file, run on the event loop (see .sqlite): nothing to ping,
            # and every transaction ends in a commit or a rollback already.
            engine = create_async_engine(target, pool_reset_on_return=None, module=InlineSQLite())
        else:
            engine = create_async_engine(target, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
            event.listen(engine.sync_engine, "begin", _begin_immediate)
        return cls(engine, bus)

    async def close(self) -> None:
        """Close every database connection."""
        await self.engine.dispose()
        if self._checkpointer is not None:
            await self._checkpointer.close()

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        async with self.transaction() as session:
            await session.execute(select(1))

    def add_stager(self, stager: Stager) -> None:
        """Have ``stager`` write its rows in every transaction that has events, before
        the commit (on the transaction's own connection)."""
        self._stagers.append(stager)

    def _stage(self, connection: Connection, events: list[DomainEvent]) -> None:
        for stager in self._stagers:
            stager(connection, events)

    def publish(self, events: list[DomainEvent]) -> None:
        """Hand committed events to the bus."""
        for item in events:
            self.bus.publish(item)

    @asynccontextmanager
    async def transaction(
        self, *, bulk: bool = False, events: list[DomainEvent] | None = None
    ) -> AsyncIterator[AsyncSession]:
        """A transaction that may write. ``bulk``: it writes many rows or large values,
        so on SQLite it runs in a worker thread. ``events``: published after commit."""
        async with self._session() as session, session.begin():
            if bulk:
                await session.connection(execution_options={_BULK: True})
            yield session
            if events and self._stagers:
                await session.flush()
                connection = await session.connection()
                await connection.run_sync(self._stage, events)
        if self._checkpointer is not None:
            self._checkpointer.written()
        if events:
            self.publish(events)

    @asynccontextmanager
    async def reading(self, *, bulk: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction that only reads: on SQLite it does not take the write lock.
        ``bulk``: it may read a lot, so on SQLite it runs in a worker thread."""
        async with self._session() as session, session.begin():
            await session.connection(execution_options={_READ_ONLY: True, _BULK: bulk})
            yield session

    async def run(
        self,
        transaction: Callable[[Connection], _T],
        *,
        read_only: bool = False,
        events: list[DomainEvent] | None = None,
    ) -> _T:
        """Run ``transaction`` (plain statements on a connection) as one transaction,
        in one go: for the paths a technician waits on (a command's request and
        result, every API call's token). An ORM session costs a greenlet and a
        round of bookkeeping per statement; this costs them once. ``events``, filled
        by ``transaction``, are published after commit."""

        def run() -> _T:
            with self.engine.sync_engine.connect() as connection:
                if read_only:
                    connection.execution_options(**{_READ_ONLY: True})
                with connection.begin():
                    result = transaction(connection)
                    if events and self._stagers:
                        self._stage(connection, events)
                    return result

        result: _T = await greenlet_spawn(run)
        if not read_only and self._checkpointer is not None:
            self._checkpointer.written()
        if events:
            self.publish(events)
        return result

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        if self._checkpointer is None:
            async with self._sessions() as session:  # closed in a task of its own
                yield session
            return
        # On SQLite, closing only gives the connection back to the pool, without a
        # statement (pool_reset_on_return=None), so it cannot be interrupted: it
        # needs no task of its own to finish in (which costs two turns of the loop).
        session = self._sessions()
        try:
            yield session
        finally:
            await session.close()


async def get_row(
    session: AsyncSession, model: type[_T], key: object, what: str, *, lock: bool = False
) -> _T:
    """The row of ``model`` with this key; ``NotFound`` ("no <what> <key>") if none."""
    row = await session.get(model, key, with_for_update=lock)
    if row is None:
        raise NotFound(f"no {what} {key}")
    return row
