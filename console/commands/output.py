"""Command output on its way to the database: checked in memory, written in batches.

An agent sends a command's output in numbered chunks of up to 64 KiB. Writing each
chunk in a transaction of its own held output to about 8 MB/s
(``benchmarks/commands.py``); here chunks are

* **de-duplicated in memory:** the next expected chunk number of each command is
  kept here, read from the store the first time a command is seen, so a console
  that restarted still drops the chunks it stored before;
* **handed to live watchers at once** by the caller, which gets the chunk back;
* **written in batches,** one transaction each: when a command's pending output
  reaches ``flush_bytes``, every ``interval`` seconds, and always before its exit is
  recorded (``finish``).

Nothing is lost when the console dies with output in memory: the agent keeps a
command's results until the console acknowledges its exit, and the exit is only
acknowledged after the output before it was written; after the agent reconnects
it sends everything again, and what the store has is dropped as a duplicate.

Readers that want everything so far use ``OutputBuffers.read``, which merges the
store with what is still in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Final

from .repository import CommandRepository
from .schemas import OutputChunk

__all__ = ["OutputBuffers"]

logger = logging.getLogger(__name__)

# A command whose buffer has been empty this long is forgotten (read again if needed).
IDLE_SECONDS: Final = 300.0
# How many unknown command ids are remembered.
_UNKNOWN_KEPT: Final = 1024


@dataclass(eq=False)
class _Pending:
    """One command's output that is not in the store yet."""

    device_id: str
    # The next chunk number expected; lower ones are duplicates.
    next_seq: int
    # Received, not yet being written.
    chunks: list[OutputChunk] = field(default_factory=list)
    # Being written now (still readable here until the transaction commits).
    writing: list[OutputChunk] = field(default_factory=list)
    # Bytes in ``chunks``.
    size: int = 0
    # One write at a time per command, so batches land in order.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # When a chunk last arrived (monotonic).
    touched: float = field(default_factory=time.monotonic)


class OutputBuffers:
    """Every running command's output between the agent and the store."""

    def __init__(
        self, store: CommandRepository, *, flush_bytes: int = 1 << 20, interval: float = 0.1
    ) -> None:
        self._store = store
        self._flush_bytes = flush_bytes
        self._interval = interval
        # Commands seen recently: command id -> its pending output.
        self._pending: dict[str, _Pending] = {}
        # Command ids the store does not know, oldest first (a bounded set).
        self._unknown: dict[str, None] = {}
        self._timer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Write pending output every ``interval`` seconds from now on."""
        self._timer = asyncio.create_task(self._flush_periodically(), name="deskside-output")

    async def stop(self) -> None:
        """Stop the timer and write everything still pending."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        await self._flush_all()

    async def add(
        self, device_id: str, command_id: str, seq: int, stream: str, data: bytes
    ) -> OutputChunk | None:
        """Take a chunk; None for a duplicate, or a chunk of a command not this device's."""
        pending = self._pending.get(command_id)
        if pending is None:
            if command_id in self._unknown:
                return None
            state = await self._store.output_state(command_id)
            if state is None:
                # Not asked of the store again: an agent sending chunks of a command
                # that does not exist must not cost a query each.
                self._unknown[command_id] = None
                if len(self._unknown) > _UNKNOWN_KEPT:
                    del self._unknown[next(iter(self._unknown))]
                return None
            # Another chunk of the command may have been added while the store answered.
            pending = self._pending.setdefault(command_id, _Pending(state[0], state[1]))
        if pending.device_id != device_id or seq < pending.next_seq:
            return None
        pending.next_seq = seq + 1
        chunk = OutputChunk(seq=seq, stream=stream, data=data)  # type: ignore[arg-type]
        pending.chunks.append(chunk)
        pending.size += len(data)
        pending.touched = time.monotonic()
        if pending.size >= self._flush_bytes:
            await self._flush(command_id, pending)
        return chunk

    async def finish(self, command_id: str) -> None:
        """Write the command's pending output now: its exit is about to be recorded."""
        pending = self._pending.get(command_id)
        if pending is not None:
            await self._flush(command_id, pending)  # on failure kept, to be written again
            if self._pending.get(command_id) is pending:
                del self._pending[command_id]

    def next_seq(self, command_id: str) -> int | None:
        """The number of the command's next chunk, if the command is in memory."""
        pending = self._pending.get(command_id)
        return None if pending is None else pending.next_seq

    async def read(
        self, command_id: str, from_seq: int = 0, *, stored: bool = True
    ) -> list[OutputChunk]:
        """Every chunk from ``from_seq`` on: the store's, then those still in memory.
        ``stored=False``: only those in memory (the caller knows the store has none)."""
        pending = self._pending.get(command_id)
        # Taken before the store is read: a batch that commits in between is in the
        # store's answer, and a chunk that arrives later reaches live watchers anyway.
        held = [] if pending is None else [*pending.writing, *pending.chunks]
        if not stored:
            return [c for c in held if c.seq >= from_seq]
        kept = await self._store.command_output(command_id, from_seq)
        after = kept[-1].seq + 1 if kept else from_seq
        return kept + [c for c in held if c.seq >= after]

    async def _flush(self, command_id: str, pending: _Pending) -> None:
        async with pending.lock:
            if not pending.chunks:
                return
            batch, pending.chunks, pending.size = pending.chunks, [], 0
            pending.writing = batch
            try:
                await self._store.add_command_outputs(pending.device_id, command_id, batch)
            except BaseException:
                # Kept for the next attempt: the duplicate check has passed them already.
                pending.chunks = batch + pending.chunks
                pending.size += sum(len(c.data) for c in batch)
                raise
            finally:
                pending.writing = []

    async def _flush_all(self) -> None:
        for command_id, pending in list(self._pending.items()):
            try:
                await self._flush(command_id, pending)
            except Exception:
                # The agent sends it again after a reconnect: its exit is not acknowledged.
                logger.exception("writing the output of command %s failed", command_id)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._flush_all()
            idle = time.monotonic() - IDLE_SECONDS
            for command_id, pending in list(self._pending.items()):
                if not pending.chunks and not pending.writing and pending.touched < idle:
                    del self._pending[command_id]
