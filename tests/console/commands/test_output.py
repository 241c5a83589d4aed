"""Command output between the agent and the store (console/output.py), on both databases."""

from __future__ import annotations

import pytest

from deskside.console.auth.identity import ApiIdentity
from deskside.console.commands.output import OutputBuffers
from deskside.console.commands.repository import COMMAND_OUTPUT_CAP
from deskside.console.commands.schemas import NewCommand
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
