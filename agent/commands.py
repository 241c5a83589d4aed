"""Remote commands: each id at most once, results that survive disconnects.

Theory of operation::

    CommandRequest ──> record <id>.json ("accepted", fsync) ──> policy ──> consent
                                                                   │refused   │allowed
                                                                   v          v
                   <id>.results <── CommandExit(refused) ... CommandStarted, CommandOutput...,
                        │                                     CommandExit (fsync)
                        └──> sender: every message, in order, to the current channel
    Ack(command_id) ──> <id>.results deleted, record "delivered"

* **At most once.** The record is written (and synced) before anything else, so
  a command id that is known on disk is never started again, whether it is
  running, finished, or finished long ago (the newest ``keep_records`` delivered
  records are kept for that). A repeated ``CommandRequest`` for a command that is
  running, or finished with its results waiting for their Ack, starts nothing:
  the results go to the current channel, once per channel, as they do anyway.
  Only that first write is synced: the record's later states ("finished",
  "delivered") are not, and after a power loss ``recover()`` trusts the spool
  (an exit in it means the command finished).
  For an acknowledged one the answer is ``Error(bad_request, "... is not run
  again")``.
* **Results survive disconnects.** Every message of a command's result
  (``CommandStarted``, each ``CommandOutput``, ``CommandExit``) is appended to its
  result spool ``<id>.results`` before it is sent (4-byte big-endian length, then
  the MessagePack message), and synced once the exit is sent (syncing before
  cost every command a disk flush of delay). A sender task per command
  sends the spool in order to the current channel; after a reconnect it starts
  again from the beginning, since what reached the console before the
  connection broke is unknown. The console de-duplicates output by
  ``(command_id, seq)`` and the exit by ``command_id``, and acknowledges a
  finished command with ``Ack(request_id=command_id)``; only then is the spool
  deleted. So the console gets everything at least once and records it once.
* **Refusals are answers.** A refused request is a ``CommandExit(refused=True,
  error=...)`` delivered the same way, and an audit entry.
* **Restarts.** ``recover()`` finds records of commands that were running when
  the agent died: their result ends with ``CommandExit(exit_code=None,
  error="the agent stopped ...")`` and an ``interrupted`` audit entry. A stopping
  agent (``shutdown()``) ends running commands' trees itself and records them.

Files are read, written and synced on worker threads, except appends of small
result messages to the spool (no sync: a write to the page cache, cheaper than the
hop to a thread); output bytes are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from deskside.channel import Channel
from deskside.channel.dispatch import HandlerTable
from deskside.protocol import codec
from deskside.protocol.errors import ConnectionClosed, DesksideError
from deskside.protocol.messages import (
    CommandCancel,
    CommandExit,
    CommandOutput,
    CommandRequest,
    CommandStarted,
    Error,
    ErrorCode,
    Message,
    OutputStream,
)

from . import consent
from .audit import AuditLog
from .executor import ProcessResult, StopReason, run_process
from .files import create_durable, ensure_private_dir, write_atomic
from .policy import CommandPolicy, Refusal, RunPlan, plan_command

__all__ = [
    "CommandRecord",
    "CommandService",
    "ResultSpool",
    "decide_consent",
    "file_stem",
    "is_root",
]

logger = logging.getLogger(__name__)

RECORD_SUFFIX: Final = ".json"
RESULTS_SUFFIX: Final = ".results"
_SAFE_STEM: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LENGTH: Final = 4
# Messages kept in memory for a sender that keeps up.
_LIVE_MESSAGES: Final = 32
# Output chunks larger than this are appended to the spool on a worker thread.
_INLINE_WRITE: Final = 64 << 10
# While connected, output is read no faster than it is sent, past this many unsent
# bytes: meanwhile it gathers in the pipe, and the next read takes a large chunk, so
# fast output goes in fewer, larger messages (the console limits their rate).
_BACKLOG: Final = 1 << 20
# Bytes of spool read per batch by a sender.
_READ_BATCH: Final = 4 << 20
# Results never acknowledged are dropped after this long (an old console never acks).
_RESULTS_MAX_AGE: Final = 30 * 86400.0
# Longest text of an ``Error`` or ``CommandExit.error`` (``Line`` in the wire messages).
_LINE_LIMIT: Final = 4096


def file_stem(command_id: str) -> str:
    """The file name stem of a command id: itself when safe everywhere, else a hash.

    Ids may hold ``.`` and ``:`` (not safe on Windows); the hashed form starts with
    ``~``, which a safe id cannot.
    """
    if _SAFE_STEM.match(command_id):
        return command_id
    return "~" + hashlib.sha256(command_id.encode()).hexdigest()[:40]


def is_root() -> bool:
    """True when the agent runs as root (POSIX), the only case ``run_as`` works."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def _line(text: str) -> str:
    return text if len(text) <= _LINE_LIMIT else text[: _LINE_LIMIT - 3] + "..."


class CommandRecord(msgspec.Struct, kw_only=True):
    """What the agent remembers of a command id: ``commands/<id>.json``."""

    command_id: str
    ticket_id: int
    argv: list[str]
    requested_by: str
    received_at: float
    shell: bool = False
    script: str | None = None
    reason: str = ""  # the request's reason (the ticket's title), shown for consent
    state: str = "accepted"  # "accepted" -> "finished" -> "delivered"
    finished_at: float | None = None
    exit_code: int | None = None
    refused: bool = False


class ResultSpool:
    """One command's result messages on disk, appended in order (blocking file I/O)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The file opened for appending; None until ``open``.
        self._fd: int | None = None
        # Bytes of complete messages in the file.
        self.size = 0

    def open(self) -> None:
        """Open (create, 0600) for appending; a torn last message is cut off first."""
        messages, end = self.read_from(0, None)
        del messages
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        if os.fstat(fd).st_size != end:
            os.ftruncate(fd, end)
        self._fd = fd
        self.size = end

    def append(self, message: Message) -> int:
        """Append one message; the new size."""
        assert self._fd is not None, "open() first"
        data = codec.encode(message)
        view = memoryview(len(data).to_bytes(_LENGTH, "big") + data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += _LENGTH + len(data)
        return self.size

    def sync(self) -> None:
        """Make what was appended durable."""
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        """Close the file (it stays on disk)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Close and delete the file."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def read_from(
        self, offset: int, end: int | None, limit: int = _READ_BATCH
    ) -> tuple[list[Message], int]:
        """Messages from byte ``offset`` up to ``end`` (None: the end of the file), about
        ``limit`` bytes of them; and the offset after the last one read.

        A torn or undecodable message ends the reading there.
        """
        messages: list[Message] = []
        try:
            file = self.path.open("rb")
        except FileNotFoundError:
            return messages, offset
        with file:
            file.seek(offset)
            read = 0
            while (end is None or offset < end) and (read < limit or not messages):
                header = file.read(_LENGTH)
                if len(header) < _LENGTH:
                    break
                length = int.from_bytes(header, "big")
                if length > codec.DEFAULT_MAX_MESSAGE_SIZE:
                    logger.warning("%s is damaged at byte %d", self.path, offset)
                    break
                data = file.read(length)
                if len(data) < length:
                    break
                try:
                    message = codec.decode(data)
                except DesksideError:
                    message = None
                if message is None or isinstance(message, codec.UnknownMessage):
                    logger.warning("%s is damaged at byte %d", self.path, offset)
                    break
                messages.append(message)
                offset += _LENGTH + length
                read += _LENGTH + length
        return messages, offset


@dataclass(eq=False)
class _Run:
    """A command whose results are not yet acknowledged: running, or waiting for its Ack."""

    record: CommandRecord
    spool: ResultSpool
    # Set when there is something new to send (a message, a new channel).
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # The channel ``offset`` refers to; None: nothing sent on the current one yet.
    channel: Channel | None = None
    # Bytes of the spool sent on ``channel``.
    offset: int = 0
    # Set while the unsent part of the spool is small enough to read more output.
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    # True once the exit is in the spool (and synced): it may be sent and acknowledged.
    exited: bool = False
    # True once the exit is also audited and recorded: an Ack may delete the spool.
    finished: bool = False
    # An Ack came between ``exited`` and ``finished``: forget it once finished.
    acked: bool = False
    # Acknowledged and forgotten: the sender ends (never cancelled mid-send).
    forgotten: bool = False
    # Resolves to why the command must end early (cancel, agent stopping).
    stop: asyncio.Future[StopReason] | None = None
    # The task that decides, asks and runs; None for results recovered from disk.
    task: asyncio.Task[None] | None = None
    # The task that sends the spool.
    sender: asyncio.Task[None] | None = None
    # Output chunks numbered so far.
    seq: int = 0
    # The newest messages appended, (start, end, message), so the sender need not read
    # back what it is about to send while it keeps up; older ones are read from disk.
    live: deque[tuple[int, int, Message]] = field(default_factory=deque)

    @property
    def command_id(self) -> str:
        """The command's id."""
        return self.record.command_id


class CommandService:
    """Runs the console's commands under the local policy, and delivers their results."""

    def __init__(
        self,
        directory: Path,
        audit: AuditLog,
        policy: Callable[[], CommandPolicy],
        *,
        root: Callable[[], bool] = is_root,
        consent_lock: asyncio.Lock | None = None,
        policy_file: Path | None = None,
        max_running: int = 16,
        keep_records: int = 1000,
        kill_grace: float = 2.0,
    ) -> None:
        # commands/: records and result spools.
        self._directory = directory
        self._audit = audit
        # The policy in force (the daemon reads agent.toml again when it changes).
        self._policy = policy
        # Where the policy is written, for the refusals that need the owner's change.
        self._policy_file = policy_file
        self._root = root
        self._max_running = max_running
        self._keep_records = keep_records
        self._kill_grace = kill_grace
        # The channel results go to; None while disconnected.
        self._channel: Channel | None = None
        # Commands whose results are not acknowledged yet, by id.
        self._runs: dict[str, _Run] = {}
        # One consent dialog at a time (shared with the terminals).
        self._consent_lock = consent_lock or asyncio.Lock()
        # Delivered records on disk, roughly: pruned when it passes keep_records by 10 %.
        self._delivered = 0
        # Set by shutdown(): no new commands.
        self._stopping = False

    # -- Paths ---------------------------------------------------------------------------

    def _record_path(self, command_id: str) -> Path:
        return self._directory / f"{file_stem(command_id)}{RECORD_SUFFIX}"

    def _results_path(self, command_id: str) -> Path:
        return self._directory / f"{file_stem(command_id)}{RESULTS_SUFFIX}"

    def _write_record(self, record: CommandRecord, *, durable: bool = True) -> None:
        ensure_private_dir(self._directory)
        path = self._record_path(record.command_id)
        write_atomic(path, msgspec.json.encode(record), durable=durable)

    def _open(self, run: _Run) -> CommandRecord | None:
        """Record a new command (synced) and open its spool; a known one's record instead.

        An unreadable record of a known command counts as known, with nothing in it.
        """
        path = self._record_path(run.command_id)
        data = msgspec.json.encode(run.record)
        try:
            try:
                create_durable(path, data)
            except FileNotFoundError:
                ensure_private_dir(self._directory)
                create_durable(path, data)
        except FileExistsError:
            return _load_record(path) or CommandRecord(
                command_id=run.command_id, ticket_id=0, argv=[], requested_by="", received_at=0.0
            )
        run.spool.open()
        return None

    # -- Channel -------------------------------------------------------------------------

    def attach(self, channel: Channel) -> None:
        """Send results to ``channel`` from now on; pending results are sent again."""
        self._channel = channel
        for run in self._runs.values():
            run.wake.set()

    def detach(self, channel: Channel) -> None:
        """``channel`` closed: results wait in their spools."""
        if self._channel is channel:
            self._channel = None
        for run in self._runs.values():
            run.drained.set()  # output goes on into the spool

    @property
    def pending(self) -> int:
        """Commands running or waiting for their Ack."""
        return len(self._runs)

    # -- Messages from the console -------------------------------------------------------

    def register(self, table: HandlerTable[Channel]) -> None:
        """Route the console's ``CommandRequest`` and ``CommandCancel`` to this service.

        ``Ack`` is not among them: it also acknowledges help requests, so the daemon
        owns it and asks ``acknowledged()`` first."""
        table.register(CommandRequest, self.request)
        table.register(CommandCancel, self.cancel)

    async def request(self, channel: Channel, request: CommandRequest) -> None:
        """A ``CommandRequest``: start it, unless its id is known (never runs twice)."""
        command_id = request.command_id
        run = self._runs.get(command_id)
        if run is not None:
            # Not started again; its results reach this channel once, as they do anyway.
            state = "finished, its results wait for their Ack" if run.exited else "running"
            logger.info("command %s asked again: it is %s; not started again", command_id, state)
            run.wake.set()
            return
        if self._stopping:
            await self._answer(channel, ErrorCode.BUSY, "the agent is stopping", command_id)
            return
        running = sum(1 for r in self._runs.values() if not r.exited)
        busy: Refusal | None = None
        if running >= self._max_running:
            busy = Refusal(f"{running} commands are running here already; try again later")
        record = CommandRecord(
            command_id=command_id,
            ticket_id=request.ticket_id,
            argv=list(request.argv),
            requested_by=request.requested_by,
            received_at=time.time(),
            shell=request.shell,
            script=request.script,
            reason=request.reason,
        )
        run = _Run(record=record, spool=ResultSpool(self._results_path(command_id)))
        run.stop = asyncio.get_running_loop().create_future()
        self._runs[command_id] = run  # before any await: a duplicate sees it
        run.task = asyncio.create_task(
            self._start(channel, run, request, busy), name=f"deskside-command-{command_id}"
        )

    async def cancel(self, channel: Channel, message: CommandCancel) -> None:
        """A ``CommandCancel``: end the command's process tree (or its consent prompt)."""
        command_id = message.command_id
        run = self._runs.get(command_id)
        if run is None or run.exited or run.stop is None or run.stop.done():
            logger.info("cancel for command %s, which is not running here", command_id)
            return
        logger.info("command %s cancelled by the console", command_id)
        run.stop.set_result(StopReason.CANCELLED)

    async def acknowledged(self, command_id: str) -> bool:
        """An ``Ack``: True if it was for a command (then its results are deleted)."""
        run = self._runs.get(command_id)
        if run is None:
            return await asyncio.to_thread(self._record_path(command_id).exists)
        if not run.finished:
            if run.exited:
                run.acked = True  # forgotten as soon as its exit is audited and recorded
            else:
                logger.debug("Ack for command %s before its exit; results kept", command_id)
            return True
        await self._forget(run)
        return True

    async def _forget(self, run: _Run) -> None:
        """The console has the whole result: delete the spool, keep the record."""
        command_id = run.command_id
        self._runs.pop(command_id, None)
        run.forgotten = True
        run.wake.set()
        run.record.state = "delivered"
        try:
            await asyncio.to_thread(self._delivered_files, run)
        except DesksideError as exc:
            logger.warning("cannot update the record of command %s: %s", command_id, exc)
        logger.info("results of command %s delivered", command_id)
        self._delivered += 1
        if self._delivered > self._keep_records * 1.1:
            await asyncio.to_thread(self._prune)

    def _delivered_files(self, run: _Run) -> None:
        run.spool.remove()
        self._write_record(run.record, durable=False)

    async def _answer(self, channel: Channel, code: ErrorCode, text: str, command_id: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await channel.send(Error(code=code, message=_line(text), request_id=command_id))

    # -- One command ---------------------------------------------------------------------

    async def _start(
        self, channel: Channel, run: _Run, request: CommandRequest, busy: Refusal | None
    ) -> None:
        """Record, decide, ask, run; every outcome lands in the result spool."""
        command_id = run.command_id
        try:
            record = await asyncio.to_thread(self._open, run)
            if record is not None:
                del self._runs[command_id]
                how = "it was handled"
                if record.exit_code is not None:
                    how = f"it ran, exit code {record.exit_code}"
                elif record.refused:
                    how = "it was refused"
                logger.warning("command %s asked again after it ended; not run again", command_id)
                await self._answer(
                    channel,
                    ErrorCode.BAD_REQUEST,
                    f"command {command_id} is known on this device ({how}); "
                    "a command id runs at most once, so it is not run again",
                    command_id,
                )
                return
        except (OSError, DesksideError) as exc:
            self._runs.pop(command_id, None)
            logger.error("cannot record command %s, so it does not run: %s", command_id, exc)
            await self._answer(
                channel,
                ErrorCode.INTERNAL,
                f"the agent cannot record the command: {exc}",
                command_id,
            )
            return
        run.sender = asyncio.create_task(self._send_loop(run), name=f"deskside-send-{command_id}")
        run.wake.set()
        try:
            if busy is not None:
                await self._refuse(run, busy.reason)
            else:
                await self._decide_and_run(run, request)
        except Exception as exc:
            logger.exception("command %s failed in the agent", command_id)
            if not run.exited:
                try:
                    await self._finish(
                        run,
                        CommandExit(
                            command_id=command_id,
                            exit_code=None,
                            duration=0.0,
                            error=_line(f"the agent failed: {type(exc).__name__}: {exc}"),
                        ),
                        event="ran",
                    )
                except Exception:
                    # Broad: the run is in an unknown state after the first failure,
                    # which is logged above; this one must not hide it.
                    logger.exception("command %s: cannot record its end either", command_id)

    async def _decide_and_run(self, run: _Run, request: CommandRequest) -> None:
        policy = self._policy()
        plan = plan_command(policy, request, is_root=self._root())
        if isinstance(plan, Refusal):
            await self._refuse(run, plan.reason)
            return
        logger.info(
            "command %s for ticket #%d from %s: %d arguments, time-out %g s",
            run.command_id,
            request.ticket_id,
            request.requested_by,
            len(plan.argv),
            plan.timeout,
        )
        assert run.stop is not None
        asking = asyncio.create_task(self._consent(policy, plan, request))
        waiting: set[asyncio.Future[Any]] = {asking, run.stop}
        ready, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if asking not in ready:
            asking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asking
            why = run.stop.result()
            text = (
                "cancelled before it started"
                if why is StopReason.CANCELLED
                else "the agent stopped before the command started"
            )
            await self._finish(
                run,
                CommandExit(
                    command_id=run.command_id,
                    exit_code=None,
                    duration=0.0,
                    cancelled=why is StopReason.CANCELLED,
                    error=text,
                ),
                event="cancelled",
                argv=list(plan.argv),
                reason=text,
            )
            return
        decision = asking.result()
        if isinstance(decision, Refusal):
            await self._refuse(run, decision.reason, argv=plan.argv)
            return
        await self._append(run, CommandStarted(command_id=run.command_id, consent=decision))

        async def sink(stream: OutputStream, data: bytes) -> None:
            message = CommandOutput(
                command_id=run.command_id, seq=run.seq, stream=stream, data=data
            )
            run.seq += 1
            await self._append(run, message)
            while (
                self._channel is not None
                and run.channel is self._channel
                and run.spool.size - run.offset > _BACKLOG
            ):
                run.drained.clear()
                await run.drained.wait()

        result = await run_process(plan, sink, stop=run.stop, kill_grace=self._kill_grace)
        await self._finish(
            run,
            self._exit_message(run, result),
            event="ran",
            argv=list(plan.argv),
            consent=decision,
            exit_code=result.exit_code,
            duration=round(result.duration, 3),
            timed_out=result.stopped is StopReason.TIMED_OUT or None,
            cancelled=result.stopped is StopReason.CANCELLED or None,
            output_truncated=result.output_truncated or None,
            error=result.error or None,
            run_as=plan.run_as,
            cwd=plan.cwd,
        )

    @staticmethod
    def _exit_message(run: _Run, result: ProcessResult) -> CommandExit:
        error = result.error
        if result.stopped is StopReason.AGENT_STOPPING:
            error = "the agent stopped; the command was ended"
        elif result.stopped is StopReason.OUTPUT_CAP:
            error = "the output passed this device's cap; the command was ended"
        exit_code = result.exit_code
        return CommandExit(
            command_id=run.command_id,
            exit_code=exit_code,
            duration=max(0.0, result.duration),
            timed_out=result.stopped is StopReason.TIMED_OUT,
            cancelled=result.stopped is StopReason.CANCELLED,
            output_truncated=result.output_truncated,
            error=_line(error),
        )

    async def _consent(
        self, policy: CommandPolicy, plan: RunPlan, request: CommandRequest
    ) -> str | Refusal:
        """How the command is allowed ("user", "notify", "policy"), or the refusal."""
        question = consent.ConsentRequest(
            requested_by=request.requested_by,
            ticket_id=request.ticket_id,
            reason=request.reason,
            argv=plan.argv,
            run_as=plan.run_as,
            timeout=policy.consent_timeout,
        )
        return await decide_consent(policy, question, self._consent_lock, self._policy_file)

    async def _refuse(self, run: _Run, reason: str, *, argv: tuple[str, ...] | None = None) -> None:
        logger.warning("command %s refused: %s", run.command_id, reason)
        await self._finish(
            run,
            CommandExit(
                command_id=run.command_id,
                exit_code=None,
                duration=0.0,
                refused=True,
                error=_line(reason),
            ),
            event="refused",
            argv=list(argv) if argv is not None else run.record.argv,
            reason=reason,
        )

    async def _append(self, run: _Run, message: Message, *, exited: bool = False) -> None:
        """Spool a message of the command's result and let the sender send it."""
        start = run.spool.size
        if isinstance(message, CommandOutput) and len(message.data) > _INLINE_WRITE:
            end = await asyncio.to_thread(run.spool.append, message)
        else:
            # A small append goes to the page cache at once (no sync), as log lines
            # do; a thread hop cost more than the write itself.
            end = run.spool.append(message)
        run.live.append((start, end, message))
        if len(run.live) > _LIVE_MESSAGES:
            run.live.popleft()
        # Set before the sender can run, so the console's Ack finds the command ended.
        run.exited = run.exited or exited
        run.wake.set()

    async def _finish(self, run: _Run, exit: CommandExit, *, event: str, **fields: object) -> None:
        """Spool the exit (synced), let it be sent, then audit and update the record."""
        await self._append(run, exit, exited=True)
        # Sent already: syncing first cost every command a disk flush of delay. After a
        # power loss before this sync, recover() reports the command as interrupted.
        with contextlib.suppress(OSError):
            await asyncio.to_thread(run.spool.sync)
        record = run.record
        record.state = "finished"
        record.finished_at = time.time()
        record.exit_code = exit.exit_code
        record.refused = exit.refused
        logger.info(
            "command %s %s%s",
            run.command_id,
            "refused" if exit.refused else "ended",
            f" with exit code {exit.exit_code}" if exit.exit_code is not None else "",
        )
        entry: dict[str, object] = {
            "command_id": run.command_id,
            "ticket_id": record.ticket_id,
            "requested_by": record.requested_by,
            "argv": record.argv,
            "shell": record.shell or None,
            "script": record.script,
            "request_reason": record.reason or None,
        }
        entry.update(fields)
        try:
            await self._audit.append(event, **entry)
        except DesksideError as exc:
            logger.error("command %s is not in the audit log: %s", run.command_id, exc)
        try:
            await asyncio.to_thread(functools.partial(self._write_record, record, durable=False))
        except DesksideError as exc:
            logger.warning("cannot update the record of command %s: %s", run.command_id, exc)
        run.finished = True
        if run.acked:
            await self._forget(run)

    # -- Sending -------------------------------------------------------------------------

    async def _send_loop(self, run: _Run) -> None:
        """Send the spool to the current channel, in order; start over on a new channel."""
        while not run.forgotten:
            await run.wake.wait()
            run.wake.clear()
            channel = self._channel
            if channel is None or channel.closed:
                continue
            if run.channel is not channel:
                run.channel, run.offset = channel, 0
            try:
                while (
                    run.offset < run.spool.size and self._channel is channel and not run.forgotten
                ):
                    while run.live and run.live[0][0] < run.offset:
                        run.live.popleft()  # sent already, from disk
                    if run.live and run.live[0][0] == run.offset:
                        _, end, message = run.live.popleft()
                        await channel.send(message)
                        run.offset = end
                        if run.spool.size - run.offset <= _BACKLOG:
                            run.drained.set()
                        continue
                    messages, offset = await asyncio.to_thread(
                        run.spool.read_from, run.offset, run.spool.size
                    )
                    if not messages:
                        logger.error(
                            "the results of command %s cannot be read back", run.command_id
                        )
                        run.drained.set()
                        break
                    for message in messages:
                        await channel.send(message)
                    run.offset = offset
                    if run.spool.size - run.offset <= _BACKLOG:
                        run.drained.set()
            except ConnectionClosed:
                run.drained.set()
                continue  # attach() wakes us on the next channel
            except DesksideError as exc:
                logger.error("cannot send the results of command %s: %s", run.command_id, exc)
                run.drained.set()  # never hold the command's output up for it

    # -- Start and stop ------------------------------------------------------------------

    def _read_record(self, command_id: str) -> CommandRecord | None:
        return _load_record(self._record_path(command_id))

    async def recover(self) -> None:
        """At start: pick up results not yet acknowledged, and commands the agent lost."""
        try:
            found = await asyncio.to_thread(self._scan)
        except (OSError, DesksideError) as exc:
            logger.error("cannot read the command records in %s: %s", self._directory, exc)
            return
        for record, spool, started in found:
            run = _Run(record=record, spool=spool, exited=True, finished=True)
            if record.state == "accepted":
                text = (
                    "the agent stopped while the command ran; it was not ended by the agent "
                    "and its outcome is unknown"
                    if started
                    else "the agent stopped before it started this command; it did not run"
                )
                logger.warning("command %s: %s", record.command_id, text)
                await self._finish(
                    run,
                    CommandExit(
                        command_id=record.command_id, exit_code=None, duration=0.0, error=text
                    ),
                    event="interrupted",
                    reason=text,
                )
            run.sender = asyncio.create_task(
                self._send_loop(run), name=f"deskside-send-{record.command_id}"
            )
            run.wake.set()
            self._runs[record.command_id] = run
        if found:
            logger.info("%d command results wait for delivery", len(found))

    def _scan(self) -> list[tuple[CommandRecord, ResultSpool, bool]]:
        """Records whose results are not delivered, with their spools opened, and whether
        each command had started (blocking)."""
        found: list[tuple[CommandRecord, ResultSpool, bool]] = []
        try:
            names = sorted(os.listdir(self._directory))
        except FileNotFoundError:
            return found
        now = time.time()
        delivered = 0
        for name in names:
            if not name.endswith(RECORD_SUFFIX) or name.startswith("."):
                continue
            record = _load_record(self._directory / name)
            if record is None:
                continue
            if record.state == "delivered":
                delivered += 1
                continue
            spool = ResultSpool(self._results_path(record.command_id))
            if record.state == "finished" and not spool.path.exists():
                record.state = "delivered"
                self._write_record(record)
                delivered += 1
                continue
            if record.state == "finished" and now - (record.finished_at or now) > _RESULTS_MAX_AGE:
                logger.warning(
                    "dropping the results of command %s: never acknowledged in 30 days",
                    record.command_id,
                )
                spool.remove()
                record.state = "delivered"
                self._write_record(record)
                delivered += 1
                continue
            spool.open()
            started, exited = _spooled(spool)
            if record.state == "accepted" and exited:
                # Ended and spooled; the record's update (not synced) was lost.
                record.state = "finished"
            found.append((record, spool, started))
        self._delivered = delivered
        if delivered > self._keep_records:
            self._prune()
        found.sort(key=lambda item: item[0].received_at)
        return found

    def _prune(self) -> None:
        """Keep the newest ``keep_records`` delivered records; delete older ones (blocking)."""
        delivered: list[tuple[float, Path]] = []
        for name in os.listdir(self._directory):
            if not name.endswith(RECORD_SUFFIX):
                continue
            path = self._directory / name
            record = _load_record(path)
            if record is not None and record.state == "delivered":
                delivered.append((record.finished_at or record.received_at, path))
        delivered.sort()
        excess = len(delivered) - self._keep_records
        for _, path in delivered[: max(0, excess)]:
            with contextlib.suppress(OSError):
                path.unlink()
        self._delivered = min(len(delivered), self._keep_records)
        if excess > 0:
            logger.info("forgot %d old command records", excess)

    async def shutdown(self, *, flush: float = 1.0) -> None:
        """The agent stops: end running commands (recorded, results spooled), flush a bit."""
        self._stopping = True
        running = [
            run for run in self._runs.values() if run.task is not None and not run.task.done()
        ]
        for run in running:
            if run.stop is not None and not run.stop.done():
                run.stop.set_result(StopReason.AGENT_STOPPING)
        tasks = [run.task for run in running if run.task is not None]
        if tasks:
            logger.info("ending %d running commands", len(tasks))
            await asyncio.wait(tasks, timeout=self._kill_grace + 3.0)
        # Give the senders a moment to deliver the exits on a channel still open.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + flush
        while self._channel is not None and loop.time() < deadline:
            if all(
                run.offset >= run.spool.size and run.channel is self._channel
                for run in self._runs.values()
            ):
                break
            await asyncio.sleep(0.02)
        senders = [run.sender for run in self._runs.values() if run.sender is not None]
        leftovers = [t for t in tasks if not t.done()]
        for task in (*senders, *leftovers):
            task.cancel()
        await asyncio.gather(*senders, *leftovers, return_exceptions=True)
        for run in self._runs.values():
            with contextlib.suppress(OSError):
                await asyncio.to_thread(run.spool.close)


def _spooled(spool: ResultSpool) -> tuple[bool, bool]:
    """Whether the spool holds a ``CommandStarted``, and a ``CommandExit`` (blocking)."""
    started = exited = False
    offset = 0
    while offset < spool.size:
        messages, offset = spool.read_from(offset, spool.size)
        if not messages:
            break
        started = started or any(isinstance(m, CommandStarted) for m in messages)
        exited = exited or any(isinstance(m, CommandExit) for m in messages)
    return started, exited


def _load_record(path: Path) -> CommandRecord | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read %s: %s", path, exc.strerror or exc)
        return None
    try:
        return msgspec.json.decode(data, type=CommandRecord)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        logger.warning("%s is damaged: %s", path, exc)
        return None


async def decide_consent(
    policy: CommandPolicy,
    question: consent.ConsentRequest,
    lock: asyncio.Lock,
    policy_file: Path | None = None,
) -> str | Refusal:
    """Apply the command policy's consent to ``question``: how it was allowed, or the
    refusal (naming ``policy_file``'s setting that would allow it). ``lock`` keeps
    prompts one at a time."""
    decision = await consent.decide(
        policy.consent,
        question,
        lock,
        unattended=policy.unattended,
        hint=consent.policy_hint("commands", policy_file),
    )
    return Refusal(decision.reason) if isinstance(decision, consent.Declined) else decision
