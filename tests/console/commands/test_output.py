"""Command output between the agent and the store (``commands/output.py``), on both
databases."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest

from deskside.console.auth.identity import ApiIdentity
from deskside.console.commands import output
from deskside.console.commands.output import OutputBuffers
from deskside.console.commands.repository import COMMAND_OUTPUT_CAP, CommandRepository
from deskside.console.commands.schemas import NewCommand, OutputChunk
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource
from deskside.console.tickets.schemas import NewTicket
from tests.console.test_store import enrolled

ADMIN = ApiIdentity(actor="user:admin", scopes=frozenset({"commands:run"}), role="admin")


async def new_command(store: Store) -> tuple[str, str]:
    """(device id, command id) of a command recorded for a new ticket."""
    device = await enrolled(store)
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title="slow", description="slow", device_id=device),
        actor="test",
        source=TicketSource.API,
    )
    command, _ = await store.commands.create_command(
        ticket.id, NewCommand(argv=["ls"]), identity=ADMIN, online=lambda _: True
    )
    return device, command.id


async def test_output_is_written_in_batches_and_readable_before(store: Store) -> None:
    device, command = await new_command(store)
    buffers = OutputBuffers(store.commands, flush_bytes=10)
    assert await buffers.add(device, command, 0, "stdout", b"one ") is not None
    assert await buffers.add(device, command, 1, "stderr", b"two ") is not None
    assert await store.commands.command_output(command) == []  # still in memory, under 10 bytes
    assert [c.data for c in await buffers.read(command)] == [b"one ", b"two "]
    await buffers.add(device, command, 2, "stdout", b"three")  # 13 bytes: written
    stored = await store.commands.command_output(command)
    assert [(c.seq, c.stream, c.data) for c in stored] == [
        (0, "stdout", b"one "),
        (1, "stderr", b"two "),
        (2, "stdout", b"three"),
    ]
    await buffers.add(device, command, 3, "stdout", b"!")
    assert [c.seq for c in await buffers.read(command, from_seq=2)] == [2, 3]
    await buffers.finish(command)
    assert [c.seq for c in await store.commands.command_output(command)] == [0, 1, 2, 3]
    assert (await store.commands.get_command(command)).output_bytes == 14


async def test_duplicates_are_dropped_even_by_a_console_that_restarted(store: Store) -> None:
    device, command = await new_command(store)
    buffers = OutputBuffers(store.commands)
    for seq in range(3):
        assert await buffers.add(device, command, seq, "stdout", b"x") is not None
    assert await buffers.add(device, command, 1, "stdout", b"again") is None
    await buffers.stop()  # writes what is pending
    restarted = OutputBuffers(store.commands)  # knows only what the store says
    assert await restarted.add(device, command, 2, "stdout", b"again") is None
    assert await restarted.add(device, command, 3, "stdout", b"y") is not None
    await restarted.finish(command)
    assert [c.data for c in await store.commands.command_output(command)] == [
        b"x",
        b"x",
        b"x",
        b"y",
    ]


async def test_chunks_of_another_device_or_command_are_refused(store: Store) -> None:
    device, command = await new_command(store)
    other = await enrolled(store)
    buffers = OutputBuffers(store.commands)
    assert await buffers.add(other, command, 0, "stdout", b"not yours") is None
    assert await buffers.add(device, "0" * 32, 0, "stdout", b"no such command") is None
    assert await buffers.add(device, "0" * 32, 1, "stdout", b"still none") is None
    assert await buffers.add(device, command, 0, "stdout", b"mine") is not None
    assert await buffers.add(other, command, 1, "stdout", b"still not yours") is None
    await buffers.finish(command)
    assert [c.data for c in await store.commands.command_output(command)] == [b"mine"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_output_past_the_cap_is_counted_but_not_kept(store: Store) -> None:
    device, command = await new_command(store)
    buffers = OutputBuffers(store.commands)
    big = b"z" * (COMMAND_OUTPUT_CAP // 2 + 1)
    await buffers.add(device, command, 0, "stdout", big)
    await buffers.add(device, command, 1, "stdout", big)  # past the cap
    await buffers.finish(command)
    view = await store.commands.get_command(command)
    assert view.output_bytes == len(big)
    assert view.output_truncated
    assert [c.seq for c in await store.commands.command_output(command)] == [0]
    assert await OutputBuffers(store.commands).add(device, command, 1, "stdout", b"z") is None


# -- Against a store that fails or waits, and with the timer running -------------------------


class StoreDown(Exception):
    """The fake store's failed write."""


class FakeStore:
    """The three calls OutputBuffers makes of a store, in memory; writes can fail or wait."""

    def __init__(self) -> None:
        # Known commands: command id -> (device id, next chunk number).
        self.commands: dict[str, tuple[str, int]] = {"c": ("d", 0)}
        # What was written, per command.
        self.stored: dict[str, list[OutputChunk]] = {}
        # How many of the next writes fail.
        self.failures = 0
        # Commands whose writes all fail.
        self.broken: set[str] = set()
        # While set, each write waits for this event.
        self.gate: asyncio.Event | None = None
        # When true, a write that waits at the gate commits while output is being read.
        self.commit_during_read = False
        self.writes = 0
        self.state_queries = 0

    async def output_state(self, command_id: str) -> tuple[str, int] | None:
        self.state_queries += 1
        return self.commands.get(command_id)

    async def add_command_outputs(
        self, device_id: str, command_id: str, chunks: Sequence[OutputChunk]
    ) -> int:
        self.writes += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failures or command_id in self.broken:
            self.failures = max(0, self.failures - 1)
            raise StoreDown("the database is gone")
        self.stored.setdefault(command_id, []).extend(chunks)
        self.commands[command_id] = (device_id, chunks[-1].seq + 1)
        return len(chunks)

    async def command_output(self, command_id: str, from_seq: int = 0) -> list[OutputChunk]:
        if self.commit_during_read and self.gate is not None:
            written = len(self.stored.get(command_id, []))
            self.gate.set()
            await eventually(lambda: len(self.stored.get(command_id, [])) > written)
        return [c for c in self.stored.get(command_id, []) if c.seq >= from_seq]


def buffers_on(store: FakeStore, **settings: Any) -> OutputBuffers:
    return OutputBuffers(cast(CommandRepository, store), **settings)


def seqs(chunks: Sequence[OutputChunk]) -> list[int]:
    return [c.seq for c in chunks]


async def eventually(check: Callable[[], object], within: float = 5.0) -> None:
    """Wait until ``check()`` is true, polling; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within time"
        await asyncio.sleep(0.005)


class Clock:
    """Stands in for the ``time`` module of console/output.py: monotonic, moved on at will."""

    def __init__(self) -> None:
        self.skew = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.skew


async def test_a_failed_write_keeps_the_chunks_and_raises() -> None:
    store = FakeStore()
    buffers = buffers_on(store, flush_bytes=10)
    store.failures = 1
    with pytest.raises(StoreDown):
        await buffers.add("d", "c", 0, "stdout", b"0123456789")  # 10 bytes: written, fails
    assert seqs(await buffers.read("c", stored=False)) == [0]
    assert await buffers.add("d", "c", 0, "stdout", b"again") is None  # still a duplicate
    # Still counted as pending: one more byte and both are written, in order.
    await buffers.add("d", "c", 1, "stdout", b"!")
    assert seqs(store.stored["c"]) == [0, 1]
    assert await buffers.read("c", stored=False) == []
    assert store.writes == 2


async def test_a_failed_finish_keeps_the_output_for_the_next_try() -> None:
    store = FakeStore()
    buffers = buffers_on(store)
    await buffers.add("d", "c", 0, "stdout", b"x")
    store.failures = 1
    with pytest.raises(StoreDown):
        await buffers.finish("c")
    assert buffers.next_seq("c") == 1
    assert seqs(await buffers.read("c")) == [0]
    await buffers.finish("c")
    assert seqs(store.stored["c"]) == [0]
    assert buffers.next_seq("c") is None  # finished: forgotten


async def test_chunks_are_readable_while_being_written_and_kept_in_order() -> None:
    store = FakeStore()
    buffers = buffers_on(store, flush_bytes=10)
    store.gate = asyncio.Event()
    writing = asyncio.create_task(buffers.add("d", "c", 0, "stdout", b"0123456789"))
    await eventually(lambda: store.writes == 1)
    assert seqs(await buffers.read("c")) == [0]  # in the transaction, not committed
    assert await buffers.add("d", "c", 1, "stderr", b"y") is not None
    assert seqs(await buffers.read("c", stored=False)) == [0, 1]
    store.failures = 1
    store.gate.set()
    with pytest.raises(StoreDown):
        await writing
    assert seqs(await buffers.read("c", stored=False)) == [0, 1]  # put back before 1
    store.gate = None
    await buffers.finish("c")
    assert seqs(store.stored["c"]) == [0, 1]
    assert seqs(await buffers.read("c")) == [0, 1]


async def test_a_committed_write_is_read_from_the_store_only() -> None:
    store = FakeStore()
    buffers = buffers_on(store, flush_bytes=10)
    await buffers.add("d", "c", 0, "stdout", b"0123456789")
    await buffers.add("d", "c", 1, "stdout", b"z")
    assert seqs(await buffers.read("c", stored=False)) == [1]
    assert seqs(await buffers.read("c")) == [0, 1]
    assert seqs(await buffers.read("c", from_seq=1)) == [1]


async def test_a_batch_that_commits_while_output_is_read_is_read_once() -> None:
    store = FakeStore()
    buffers = buffers_on(store, flush_bytes=10)
    await buffers.add("d", "c", 0, "stdout", b"0123456789")  # stored already
    store.gate = asyncio.Event()
    writing = asyncio.create_task(buffers.add("d", "c", 1, "stdout", b"0123456789"))
    await eventually(lambda: store.writes == 2)
    store.commit_during_read = True  # held in memory, then found in the store as well
    assert seqs(await buffers.read("c")) == [0, 1]
    await writing


async def test_the_count_of_pending_bytes_starts_over_after_a_write() -> None:
    store = FakeStore()
    buffers = buffers_on(store, flush_bytes=10)
    await buffers.add("d", "c", 0, "stdout", b"0123456789")
    assert store.writes == 1
    await buffers.add("d", "c", 1, "stdout", b"012345678")  # 9 bytes: kept
    assert store.writes == 1
    await buffers.add("d", "c", 2, "stdout", b"9")  # 10: written
    assert store.writes == 2
    assert seqs(store.stored["c"]) == [0, 1, 2]


async def test_output_is_written_once_a_mebibyte_is_pending_by_default() -> None:
    store = FakeStore()
    buffers = buffers_on(store)
    await buffers.add("d", "c", 0, "stdout", bytes((1 << 20) - 1))
    assert store.writes == 0
    await buffers.add("d", "c", 1, "stdout", b"x")
    assert seqs(store.stored["c"]) == [0, 1]


async def test_unknown_commands_are_remembered_within_a_bound() -> None:
    store = FakeStore()
    buffers = buffers_on(store)
    for i in range(1025):
        assert await buffers.add("d", f"u{i}", 0, "stdout", b"x") is None
    assert store.state_queries == 1025
    assert await buffers.add("d", "u1", 1, "stdout", b"x") is None
    assert store.state_queries == 1025  # remembered: the store is not asked again
    assert await buffers.add("d", "u0", 1, "stdout", b"x") is None
    assert store.state_queries == 1026  # the oldest of 1025 was forgotten


async def test_the_timer_writes_pending_output_and_stop_ends_it() -> None:
    store = FakeStore()
    buffers = buffers_on(store, interval=0.01)
    buffers.start()
    await buffers.add("d", "c", 0, "stdout", b"x")  # far under flush_bytes
    await eventually(lambda: "c" in store.stored)
    await buffers.add("d", "c", 1, "stdout", b"y")
    await eventually(lambda: len(store.stored["c"]) == 2)
    await buffers.stop()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "deskside-output"]


async def test_the_default_interval_is_a_tenth_of_a_second() -> None:
    store = FakeStore()
    buffers = buffers_on(store)
    buffers.start()
    try:
        await buffers.add("d", "c", 0, "stdout", b"x")
        await eventually(lambda: "c" in store.stored, within=0.5)
    finally:
        await buffers.stop()


async def test_stop_writes_what_the_timer_has_not_yet() -> None:
    store = FakeStore()
    buffers = buffers_on(store, interval=3600)
    buffers.start()
    await buffers.add("d", "c", 0, "stdout", b"x")
    await asyncio.sleep(0.01)
    assert store.writes == 0
    await buffers.stop()
    assert seqs(store.stored["c"]) == [0]
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "deskside-output"]


async def test_the_timer_goes_on_after_a_failed_write(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    buffers = buffers_on(store, interval=0.01)
    store.failures = 2
    buffers.start()
    try:
        with caplog.at_level(logging.ERROR):
            await buffers.add("d", "c", 0, "stdout", b"x")
            await eventually(lambda: "c" in store.stored)
    finally:
        await buffers.stop()
    assert seqs(store.stored["c"]) == [0]
    assert caplog.text.count("writing the output of command c failed") == 2


async def test_idle_commands_are_forgotten_but_not_their_pending_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(output, "time", clock)
    store = FakeStore()
    store.commands["busy"] = ("d", 0)
    buffers = buffers_on(store, interval=0.01)
    buffers.start()
    try:
        await buffers.add("d", "c", 0, "stdout", b"x")
        await buffers.add("d", "busy", 0, "stdout", b"x")
        await eventually(lambda: len(store.stored) == 2)
        await asyncio.sleep(0.05)
        assert buffers.next_seq("c") == buffers.next_seq("busy") == 1  # not idle yet
        store.broken.add("busy")  # "busy" gets output that cannot be written
        await buffers.add("d", "busy", 1, "stdout", b"y")
        clock.skew = output.IDLE_SECONDS - 1
        await buffers.add("d", "c", 1, "stdout", b"y")  # c is touched 299 s on
        clock.skew = output.IDLE_SECONDS + 1
        await asyncio.sleep(0.05)
        assert buffers.next_seq("c") == 2  # touched 2 s ago
        clock.skew = 2 * output.IDLE_SECONDS + 1
        await eventually(lambda: buffers.next_seq("c") is None)
        assert buffers.next_seq("busy") == 2  # its output is still to be written
        store.broken.clear()
        await eventually(lambda: len(store.stored["busy"]) == 2)
        await eventually(lambda: buffers.next_seq("busy") is None)
    finally:
        await buffers.stop()
    # Forgotten, not lost: the store says where each command was.
    assert await buffers.add("d", "c", 1, "stdout", b"y") is None
    assert await buffers.add("d", "c", 2, "stdout", b"z") is not None
