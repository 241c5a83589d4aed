"""The store's SQLite driver: statements on the event loop, waits and bulk reads off it,
checkpoints in a thread (deskside.console.db.sqlite). Real SQLite files."""

from __future__ import annotations

import asyncio
import datetime
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from deskside.console.auth.identity import ApiIdentity
from deskside.console.commands.schemas import NewCommand, OutputChunk
from deskside.console.db.sqlite import Checkpointer, InlineSQLite
from deskside.console.devices.models import Device
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource
from deskside.console.tickets.schemas import NewTicket
from deskside.console.timeline.kinds import Note

ADMIN = ApiIdentity(actor="api:test", scopes=frozenset({"commands:run"}))


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only (conftest's ``store`` takes it): its driver is what is tested here."""
    return f"sqlite:///{tmp_path / 'deskside.db'}"


def trace_threads(store: Store) -> list[tuple[int, str]]:
    """(thread id, statement) of every statement the store's connections run."""
    seen: list[tuple[int, str]] = []

    def on_connect(dbapi_connection: Any, record: object) -> None:
        raw: sqlite3.Connection = dbapi_connection._connection.raw
        raw.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql)))

    event.listen(store.db.engine.sync_engine, "connect", on_connect)
    return seen


async def new_command(store: Store) -> tuple[str, str, int]:
    """(device id, command id, ticket id) of a command recorded for a new ticket."""
    token = await store.devices.create_enrollment_token(
        ttl=datetime.timedelta(hours=1), uses=1, group=None, created_by="test"
    )
    device = (await store.devices.enroll(os.urandom(32), token.token)).id
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title="t", description="d", device_id=device),
        actor="test",
        source=TicketSource.API,
    )
    command, _ = await store.commands.create_command(
        ticket.id, NewCommand(argv=["ls"]), identity=ADMIN, online=lambda _: True
    )
    return device, command.id, ticket.id


async def test_statements_run_on_the_loop_and_bulk_reads_in_a_thread(store: Store) -> None:
    seen = trace_threads(store)
    device, command, _ = await new_command(store)
    loop_thread = threading.get_ident()
    assert seen
    assert {thread for thread, _ in seen} == {loop_thread}  # no hop for ordinary statements
    seen.clear()
    await store.commands.add_command_outputs(
        device, command, [OutputChunk(seq=0, stream="stdout", data=b"output\n")]
    )
    seen.clear()
    assert [c.data for c in await store.commands.command_output(command)] == [b"output\n"]
    reads = [(thread, sql) for thread, sql in seen if "command_output" in sql]
    assert reads
    assert all(thread != loop_thread for thread, _ in reads)  # output may be large
    seen.clear()
    await store.commands.get_command(command)
    assert seen
    assert {thread for thread, _ in seen} == {loop_thread}  # the flag lasts one transaction


async def test_writes_of_many_rows_run_in_a_thread(store: Store) -> None:
    seen = trace_threads(store)
    device, _, _ = await new_command(store)
    seen.clear()
    now = datetime.datetime.now(datetime.UTC)
    await store.devices.record_heartbeats({device: (now, {"cpu_percent": 3.5})})
    writes = [(thread, sql) for thread, sql in seen if sql.startswith("UPDATE devices")]
    assert writes
    assert all(thread != threading.get_ident() for thread, _ in writes)
    assert (await store.devices.get_device(device)).last_seen == now


async def test_a_locked_database_is_waited_for_off_the_loop(store: Store, tmp_path: Path) -> None:
    _, command, ticket = await new_command(store)
    other = sqlite3.connect(tmp_path / "deskside.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        writing = asyncio.create_task(
            store.tickets.add_note(ticket, "written once the lock is free", actor="user:alice")
        )
        await asyncio.sleep(0.3)
        assert not writing.done()
        # Meanwhile the loop goes on: a read answers while the write waits.
        assert (await store.commands.get_command(command)).id == command
        assert not writing.done()
    finally:
        other.execute("COMMIT")
        other.close()
    note = await asyncio.wait_for(writing, 10)
    timeline = (await store.tickets.get_ticket(ticket)).timeline
    assert timeline[-1].id == note.id
    assert timeline[-1].data == Note(text="written once the lock is free")


async def test_a_bulk_write_waits_for_the_lock_too(store: Store, tmp_path: Path) -> None:
    # Bulk transactions run in a thread from their first statement, and used to run
    # there without a busy time-out: thousands of agents' heartbeats or departures
    # failed with "database is locked" whenever another writer held the lock.
    device, _, _ = await new_command(store)
    other = sqlite3.connect(tmp_path / "deskside.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        writing = asyncio.create_task(store.devices.mark_offline([device]))
        await asyncio.sleep(0.3)
        assert not writing.done()
    finally:
        other.execute("COMMIT")
        other.close()
    await asyncio.wait_for(writing, 10)
    assert not (await store.devices.get_device(device)).online


async def test_the_lock_holder_is_not_queued_behind_its_waiters(store: Store) -> None:
    # With asyncio's default executor (6 threads on 2 cores), a dozen writers waiting
    # for the lock took every thread; the holder's next statement queued behind them
    # until their waits ran out, and they all failed with "database is locked".
    devices = [(await new_command(store))[0] for _ in range(12)]
    async with store.db.transaction(bulk=True) as session:
        await session.execute(update(Device).values(online=True))  # holds the lock
        waiting = [asyncio.create_task(store.devices.mark_offline([d])) for d in devices]
        await asyncio.sleep(0.5)  # they wait in their threads
        assert not any(task.done() for task in waiting)
        await session.execute(update(Device).values(metrics=None))  # a thread of its own
    await asyncio.gather(*waiting)  # each got the lock in turn, none gave up
    assert not any(d.online for d in await store.devices.list_devices())


async def test_a_cancelled_wait_leaves_the_connection_usable(store: Store, tmp_path: Path) -> None:
    _, command, ticket = await new_command(store)
    other = sqlite3.connect(tmp_path / "deskside.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    writing = asyncio.create_task(store.tickets.add_note(ticket, "never", actor="user:alice"))
    await asyncio.sleep(0.2)
    writing.cancel()
    other.execute("COMMIT")
    other.close()
    with pytest.raises(asyncio.CancelledError):
        await writing
    note = await store.tickets.add_note(ticket, "afterwards", actor="user:alice")
    notes = [e.data for e in (await store.tickets.get_ticket(ticket)).timeline]
    assert Note(text="afterwards") in notes
    assert note.data == Note(text="afterwards")
    assert (await store.commands.get_command(command)).id == command


def wal_pages(path: Path) -> int:
    size = (path.parent / (path.name + "-wal")).stat().st_size
    return max(0, size - 32) // (4096 + 24)


async def test_the_wal_stays_bounded_under_steady_writes(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}", module=InlineSQLite(), pool_reset_on_return=None
    )
    checkpointer = Checkpointer(str(path), delay=0.01, restart_pages=64)
    async with engine.begin() as connection:
        await connection.execute(text("PRAGMA journal_mode=WAL"))
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)"))
    stop = threading.Event()

    def read() -> None:  # readers that come and go all the time, as the API's do
        reader = sqlite3.connect(path, isolation_level=None)
        while not stop.is_set():
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM t").fetchone()
            stop.wait(0.001)
            reader.execute("COMMIT")
        reader.close()

    reading = threading.Thread(target=read)
    reading.start()
    blob = os.urandom(4000)
    try:
        for index in range(2000):  # about 16 MB of WAL frames written in all
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO t (data) VALUES (:d)"), {"d": blob})
            checkpointer.written()
            if index % 10 == 0:
                await asyncio.sleep(0.002)
        assert wal_pages(path) < 1000  # 4 MB; without restarts it grows to 4000 pages
        stop.set()
        reading.join()
        await checkpointer.close()
        busy, pages, copied = (
            sqlite3.connect(path).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        )
        assert busy == 0
        assert copied == pages  # everything copied when it closed
    finally:
        stop.set()
        reading.join()
        await engine.dispose()


async def test_a_streamed_result_reads_every_row(tmp_path: Path) -> None:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'stream.db'}", module=InlineSQLite()
    )
    count = text(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) "
        "SELECT i FROM n"
    )
    try:
        async with engine.connect() as connection:
            streamed = await connection.stream(count)
            assert [row[0] async for row in streamed] == list(range(1, 2501))
            batches = await connection.stream(count.execution_options(yield_per=100))
            assert sum([len(b) async for b in batches.partitions()]) == 2500
    finally:
        await engine.dispose()
