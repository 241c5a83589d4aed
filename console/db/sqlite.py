"""SQLite for the asyncio store, run on the event loop instead of a thread.

aiosqlite gives every connection a thread and sends each call there and back: on
this kind of machine a hop costs 100-250 µs, while the statements the console
runs take 5-20 µs in SQLite itself. A command's round trip made about fifteen of
them. Here the same SQLAlchemy dialect (``sqlite+aiosqlite``) is given a driver
whose coroutines call ``sqlite3`` directly and return without suspending, so a
whole transaction runs in one go.

What could hold the event loop up is kept off it:

* **Waiting for a lock.** Connections have no busy time-out: a statement that
  finds the database locked (by another process, or by a transaction of this
  one that is waiting itself) is run again in a worker thread, with the usual
  10 s time-out. Under WAL only ``BEGIN IMMEDIATE`` ever waits.
* **Bulk work.** A transaction begun with ``bulk`` runs in a worker thread from
  its first statement to its end (command output, transcripts, recordings,
  heartbeat and departure batches), and waits there for the lock like any other.
* **Checkpoints.** Automatic checkpoints are off on these connections (a commit
  that crosses the threshold would copy the WAL into the database and fsync it
  on the loop); ``Checkpointer`` runs them in a thread a moment after writes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection, AsyncAdapt_dbapi_cursor
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi
from sqlalchemy.util.concurrency import await_

__all__ = ["BUSY_TIMEOUT", "RESTART_WAIT", "Checkpointer", "InlineConnection", "InlineSQLite"]

logger = logging.getLogger(__name__)

# How long a statement waits for another writer (in a worker thread), in ms.
BUSY_TIMEOUT: Final = 10_000

# How long a RESTART checkpoint waits for readers (holding writers back), in ms.
RESTART_WAIT: Final = 100

_T = TypeVar("_T")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error)


# The threads statements wait and work in: one for every connection the pool may
# hand out (SQLAlchemy's 5, and 10 more), and to spare. Not asyncio's default
# executor (6 threads on 2 cores, shared with everything else): with its threads
# all taken by transactions waiting for the write lock, the statements of the one
# holding the lock queued behind them, and nothing moved until the waits ran out
# (benchmarks/fleet.py, 5,000 agents leaving at once).
_THREADS: Final = concurrent.futures.ThreadPoolExecutor(
    max_workers=32, thread_name_prefix="deskside-sqlite"
)


async def _in_thread(function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)`` in a worker thread. A cancelled caller still waits for it
    to return: the connection must not be used again while the thread has it."""
    future = asyncio.get_running_loop().run_in_executor(_THREADS, function, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


class InlineConnection:
    """An aiosqlite-shaped connection whose calls run ``sqlite3`` in place.

    ``threaded`` sends every call to a worker thread instead (set per transaction
    for bulk reads). The connection is made with ``check_same_thread=False``: it
    is used by one task at a time, from the loop or from one worker thread.
    """

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw: sqlite3.Connection | None = raw
        self.threaded = False

    @property
    def raw(self) -> sqlite3.Connection:
        """The sqlite3 connection; ``ValueError`` once closed (as aiosqlite says it)."""
        if self._raw is None:
            raise ValueError("no active connection")
        return self._raw

    async def run(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)`` on this connection: in place, or in a thread when it
        must wait for a lock or the transaction is a bulk one."""
        if self.threaded:  # off the loop already: it may wait for the lock there
            return await _in_thread(self._waiting, function, args)
        try:
            return function(*args)
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        return await _in_thread(self._waiting, function, args)

    def _waiting(self, function: Callable[..., _T], args: Sequence[Any]) -> _T:
        raw = self.raw
        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT}")
        try:
            return function(*args)
        finally:
            raw.execute("PRAGMA busy_timeout=0")

    @property
    def isolation_level(self) -> str | None:
        """As sqlite3's."""
        return self.raw.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self.raw.isolation_level = value

    def cursor(self) -> InlineCursor:
        """A new cursor."""
        return InlineCursor(self, self.raw.cursor())

    async def commit(self) -> None:
        """Commit (a no-op outside a transaction)."""
        await self.run(self.raw.commit)

    async def rollback(self) -> None:
        """Roll back (a no-op outside a transaction)."""
        await self.run(self.raw.rollback)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        """As sqlite3's."""
        self.raw.create_function(*args, **kwargs)

    async def close(self) -> None:
        """Close; closing twice is harmless."""
        self.stop()

    def stop(self) -> None:
        """Close at once (SQLAlchemy's terminate)."""
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()


class InlineCursor:
    """An aiosqlite-shaped cursor over a ``sqlite3.Cursor``."""

    def __init__(self, connection: InlineConnection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        """As sqlite3's."""
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        """As sqlite3's."""
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        """As sqlite3's."""
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        """As sqlite3's."""
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        """Run one statement."""
        await self._connection.run(self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        """Run one statement for each set of parameters."""
        await self._connection.run(self._cursor.executemany, sql, list(parameters))
        return self

    async def fetchone(self) -> Any:
        """The next row, or None."""
        return await self._connection.run(self._cursor.fetchone)

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        """Up to ``size`` rows."""
        count = self._cursor.arraysize if size is None else size
        return await self._connection.run(self._cursor.fetchmany, count)

    async def fetchall(self) -> list[Any]:
        """The remaining rows."""
        return await self._connection.run(self._cursor.fetchall)

    async def close(self) -> None:
        """Close the cursor."""
        self._cursor.close()


class _Adapted(AsyncAdapt_dbapi_connection):
    """SQLAlchemy's side of an ``InlineConnection``."""

    __slots__ = ()

    _connection: InlineConnection  # type: ignore[assignment]
    _cursor_cls = AsyncAdapt_dbapi_cursor

    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._connection.isolation_level = value

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        await_(self._connection.create_function(*args, **kwargs))

    def close(self) -> None:
        self._connection.stop()

    def terminate(self) -> None:
        self._connection.stop()


class InlineSQLite(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module to give ``create_async_engine(..., module=InlineSQLite())``
    for a ``sqlite+aiosqlite`` URL: same dialect and types, no thread hops."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *args: Any, **kwargs: Any) -> _Adapted:  # type: ignore[override]
        """Open a connection: no busy time-out (see ``InlineConnection.run``), no
        automatic checkpoints (see ``Checkpointer``)."""
        kwargs.pop("async_creator_fn", None)
        kwargs["check_same_thread"] = False
        kwargs["timeout"] = 0
        raw = sqlite3.connect(*args, **kwargs)
        raw.execute("PRAGMA wal_autocheckpoint=0")
        return _Adapted(self, InlineConnection(raw))  # type: ignore[arg-type]


class Checkpointer:
    """Copies the WAL into the database in a worker thread, a moment after writes.

    ``written()`` after each write transaction. A PASSIVE checkpoint copies what it
    can without waiting for anyone. That is not enough under a steady stream of
    writes: SQLite starts the WAL over only when a writer finds it entirely copied,
    and by then new frames have always arrived, so it would grow without end (70 KB
    a command). Once it holds more than ``restart_pages``, a RESTART checkpoint
    holds writers back while it copies and waits (up to ``RESTART_WAIT``) for the
    readers to leave the WAL, so that the next writer starts it from its beginning;
    writers that find the database locked meanwhile wait in a thread
    (``InlineConnection.run``).
    ``close()`` runs a last one.
    """

    def __init__(self, path: str, *, delay: float = 0.5, restart_pages: int = 1000) -> None:
        self.path = path
        self.delay = delay
        self.restart_pages = restart_pages
        self._task: asyncio.Task[None] | None = None
        self._dirty = False
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def written(self) -> None:
        """A write was committed: checkpoint within ``delay``."""
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="deskside-sqlite-checkpoint"
            )

    async def _run(self) -> None:
        while self._dirty:
            await asyncio.sleep(self.delay)
            self._dirty = False
            try:
                await asyncio.to_thread(self.checkpoint)
            except sqlite3.Error as exc:  # tried again after the next write
                logger.warning("checkpoint of %s failed: %s", self.path, exc)

    def checkpoint(self) -> tuple[int, int, int]:
        """One checkpoint, PASSIVE or (past ``restart_pages``) RESTART: (busy, pages in
        the WAL, pages copied), as SQLite reports them."""
        with self._lock:
            if self._connection is None:
                self._connection = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT / 1000, check_same_thread=False
                )
            connection = self._connection
            busy, pages, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if pages > self.restart_pages:
                # Writers wait while it waits for the readers: not for long; if readers
                # keep coming, it gives up and is tried again after the next writes.
                connection.execute(f"PRAGMA busy_timeout={RESTART_WAIT}")
                try:
                    busy, pages, copied = connection.execute(
                        "PRAGMA wal_checkpoint(RESTART)"
                    ).fetchone()
                finally:
                    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT}")
        return int(busy), int(pages), int(copied)

    async def close(self) -> None:
        """Stop, then checkpoint what is left."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(sqlite3.Error):
            await asyncio.to_thread(self.checkpoint)
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
