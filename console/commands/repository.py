"""Commands for tickets: requested, started, their output and their end.

A command is asked for by a technician or a system (``create_command``, after the
device-action rule of ``deskside.console.auth.access``), started and ended by its
agent (``command_started``, ``finish_command``), its output kept in batches
(``add_command_outputs``, fed by ``output.py``). The request, the start and the
end are the paths a technician waits on: plain statements built once and run in
one go (``Database.run``), not the ORM's unit of work.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, Final

from msgspec import UNSET
from sqlalchemy import Connection, bindparam, insert, select, update

from deskside.console.audit import chain as audit
from deskside.console.auth.access import (
    DeviceAction,
    check_device_action,
    record_action,
    record_refusal,
)
from deskside.console.auth.identity import ApiIdentity
from deskside.console.db import Database, utcnow
from deskside.console.errors import Conflict, ConsoleError, InvalidRequest, NotFound
from deskside.console.events import DomainEvent
from deskside.console.timeline import add as add_entry
from deskside.console.timeline import add_sync, kinds
from deskside.protocol import messages as m

from .events import CommandFinished, CommandStarted
from .models import Command, CommandOutput
from .schemas import CommandStatus, CommandView, NewCommand, OutputChunk

__all__ = ["COMMAND_OUTPUT_CAP", "CommandRepository", "command_view"]

# Output a command may leave on the console; more is streamed but not kept.
COMMAND_OUTPUT_CAP: Final = 16 << 20


class CommandRepository:
    """Commands and their output."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_command(
        self,
        ticket_id: int,
        new: NewCommand,
        *,
        identity: ApiIdentity,
        online: Callable[[str], bool],
        runbook_run: str | None = None,
        runbook_step: int | None = None,
    ) -> tuple[CommandView, str]:
        """Record a command to run for an open ticket, after checking who asks; the
        command and its ticket's title.

        See ``deskside.console.auth.access`` for the rules. A refusal is recorded (audit
        log, and the ticket's timeline when there is a ticket) before it is raised.
        """
        if not new.argv and new.script is None:
            raise InvalidRequest("argv is empty: give a command, or the name of a script")
        if new.script is not None and new.shell:
            raise InvalidRequest("a script is not run through a shell: drop shell")
        now = utcnow()
        command_id = uuid.uuid4().hex
        events: list[DomainEvent] = []

        def transaction(conn: Connection) -> tuple[CommandView, str] | ConsoleError:
            ticket, device_id, refusal = check_device_action(
                conn,
                ticket_id,
                new.device_id,
                identity,
                online,
                action=DeviceAction.RUNBOOK if runbook_run else DeviceAction.COMMAND,
            )
            data = {
                "command": command_id,
                "ticket": ticket_id,
                "device": device_id,
                "argv": new.argv,
                "shell": new.shell,
                **({"script": new.script} if new.script is not None else {}),
            }
            if refusal is not None:
                record_refusal(conn, ticket, identity, refusal, data, now, events)
                return refusal  # raised once the refusal is committed
            assert ticket is not None
            assert device_id is not None
            values: dict[str, Any] = {
                "id": command_id,
                "ticket_id": ticket_id,
                "device_id": device_id,
                "argv": list(new.argv),
                "shell": new.shell,
                "timeout": new.timeout,
                "requested_by": identity.actor,
                "requested_at": now,
                "status": str(CommandStatus.PENDING),
                "consent": "",
                "error": "",
                "output_truncated": False,
                "output_bytes": 0,
                "next_seq": 0,
                "runbook_run": runbook_run,
                "runbook_step": runbook_step,
                "script": new.script,
                "started_at": None,
                "finished_at": None,
                "exit_code": None,
                "duration": None,
            }
            record_action(conn, ticket, device_id, identity, now, events)
            conn.execute(_INSERT_COMMAND, values)
            add_sync(
                conn,
                ticket_id,
                kinds.Command(
                    command=command_id,
                    argv=tuple(new.argv),
                    device=device_id,
                    shell=new.shell,
                    timeout=new.timeout,
                    runbook_run=runbook_run or UNSET,
                    script=UNSET if new.script is None else new.script,
                ),
                actor=identity.actor,
                at=now,
                events=events,
            )
            audit.append_sync(
                conn, actor=identity.actor, action="command.requested", data=data, at=now
            )
            return command_view(SimpleNamespace(**values)), ticket.title

        outcome = await self._db.run(transaction, events=events)
        if isinstance(outcome, ConsoleError):
            raise outcome
        return outcome

    async def start_runbook(
        self,
        ticket_id: int,
        device_id: str | None,
        started: kinds.RunbookStarted,
        *,
        identity: ApiIdentity,
        online: Callable[[str], bool],
    ) -> str:
        """Check who asks, then record a runbook run's start on its ticket: the device
        it runs on. A refusal is recorded and raised before anything else is written.
        """
        now = utcnow()
        events: list[DomainEvent] = []

        def transaction(conn: Connection) -> str | ConsoleError:
            ticket, device, refusal = check_device_action(
                conn, ticket_id, device_id, identity, online, action=DeviceAction.RUNBOOK
            )
            data = {"ticket": ticket_id, "device": device, "runbook": started.runbook}
            if refusal is not None:
                record_refusal(
                    conn, ticket, identity, refusal, data, now, events, shown=("runbook",)
                )
                return refusal
            assert device is not None
            record_action(conn, ticket, device, identity, now, events)
            add_sync(conn, ticket_id, started, actor=identity.actor, at=now, events=events)
            audit.append_sync(
                conn,
                actor=identity.actor,
                action="runbook.started",
                data={**data, "run": started.run},
                at=now,
            )
            return device

        outcome = await self._db.run(transaction, events=events)
        if isinstance(outcome, ConsoleError):
            raise outcome
        return outcome

    async def cancel_command(
        self, command_id: str, *, identity: ApiIdentity, online: Callable[[str], bool]
    ) -> CommandView:
        """Check who asks to cancel a running command (the rule of starting one), and
        record who did; the command. ``Conflict`` if it has ended already."""
        now = utcnow()
        events: list[DomainEvent] = []

        def transaction(conn: Connection) -> CommandView | ConsoleError:
            found = conn.execute(_COMMAND, {"command": command_id}).one_or_none()
            if found is None:
                return NotFound(f"no command {command_id}")
            ticket, _, refusal = check_device_action(
                conn, found.ticket_id, found.device_id, identity, online, action=DeviceAction.CANCEL
            )
            data = {"command": command_id, "ticket": found.ticket_id, "device": found.device_id}
            if refusal is None and found.finished_at is not None:
                return Conflict(f"command {command_id} has ended already")
            if refusal is not None:
                record_refusal(
                    conn,
                    ticket,
                    identity,
                    refusal,
                    {**data, "cancel": command_id},
                    now,
                    events,
                    shown=("cancel",),
                )
                return refusal
            add_sync(
                conn,
                found.ticket_id,
                kinds.CommandCancel(command=command_id),
                actor=identity.actor,
                at=now,
                events=events,
            )
            audit.append_sync(
                conn, actor=identity.actor, action="command.cancel", data=data, at=now
            )
            return command_view(found)

        outcome = await self._db.run(transaction, events=events)
        if isinstance(outcome, ConsoleError):
            raise outcome
        return outcome

    async def runbook_commands(self, run_id: str) -> list[CommandView]:
        """The commands of a runbook run, in step order."""
        async with self._db.reading() as session:
            rows = (
                await session.execute(
                    select(Command)
                    .where(Command.runbook_run == run_id)
                    .order_by(Command.runbook_step)
                )
            ).scalars()
            return [command_view(r) for r in rows]

    async def command_started(
        self,
        command_id: str,
        consent: str,
        at: datetime.datetime | None = None,
        *,
        device_id: str | None = None,
    ) -> CommandView | None:
        """The agent started the command (at ``at``); None if the command is unknown (or
        not ``device_id``'s)."""

        events: list[DomainEvent] = []

        def transaction(conn: Connection) -> CommandView | None:
            found = conn.execute(_COMMAND_LOCKED, {"command": command_id}).one_or_none()
            if found is None or (device_id is not None and found.device_id != device_id):
                return None
            row = SimpleNamespace(**found._asdict())
            started = _mark_started(conn, row, consent, at or utcnow())
            if started:
                conn.execute(
                    _UPDATE_COMMAND,
                    {
                        "command": command_id,
                        "status": row.status,
                        "started_at": row.started_at,
                        "consent": row.consent,
                    },
                )
            view = command_view(row)
            if started:
                events.append(CommandStarted(command_id=command_id, command=view))
            return view

        return await self._db.run(transaction, events=events)

    async def output_state(self, command_id: str) -> tuple[str, int] | None:
        """(device id, next expected chunk number) of a command; None if unknown."""
        async with self._db.reading() as session:
            row = (
                await session.execute(
                    select(Command.device_id, Command.next_seq).where(Command.id == command_id)
                )
            ).one_or_none()
            return None if row is None else (row[0], row[1])

    async def add_command_outputs(
        self, device_id: str, command_id: str, chunks: Sequence[OutputChunk]
    ) -> int:
        """Keep chunks of output in one transaction; how many were new (not seen before).

        Output past ``COMMAND_OUTPUT_CAP`` is counted as seen but not kept, and marks
        the command's output truncated.
        """
        async with self._db.transaction() as session:
            row = await session.get(Command, command_id, with_for_update=True)
            if row is None or row.device_id != device_id:
                return 0
            rows: list[dict[str, object]] = []
            new = 0
            for chunk in chunks:
                if chunk.seq < row.next_seq:
                    continue
                new += 1
                row.next_seq = chunk.seq + 1
                if row.output_bytes + len(chunk.data) > COMMAND_OUTPUT_CAP:
                    row.output_truncated = True
                    continue
                row.output_bytes += len(chunk.data)
                rows.append(
                    {
                        "command_id": command_id,
                        "seq": chunk.seq,
                        "stream": chunk.stream,
                        "data": chunk.data,
                    }
                )
            if rows:
                await session.execute(insert(CommandOutput), rows)
            return new

    async def finish_command(
        self,
        device_id: str,
        result: m.CommandExit,
        *,
        started: tuple[str, datetime.datetime] | None = None,
        next_seq: int | None = None,
    ) -> CommandView | None:
        """The command ended (or was refused by the agent); recorded once on the ticket.

        ``started`` is (consent, time) of a start not recorded yet: both are written
        in this one transaction. Plain statements, not the ORM's unit of work: the
        technician is waiting for this. ``next_seq``: the number after the last chunk
        of output, if known, for the ``CommandFinished`` event.
        """
        now = utcnow()
        events: list[DomainEvent] = []

        def transaction(conn: Connection) -> CommandView | None:
            found = conn.execute(_COMMAND_LOCKED, {"command": result.command_id}).one_or_none()
            if found is None or found.device_id != device_id:
                return None
            if found.finished_at is not None:
                return command_view(found)  # a duplicate after a reconnect
            row = SimpleNamespace(**found._asdict())
            if started is not None:
                _mark_started(conn, row, *started)
            row.status = str(CommandStatus.of_exit(result))
            row.finished_at = now
            row.exit_code = result.exit_code
            row.duration = result.duration
            row.error = result.error
            row.output_truncated = row.output_truncated or result.output_truncated
            conn.execute(
                _UPDATE_COMMAND,
                {
                    "command": row.id,
                    "status": row.status,
                    "started_at": row.started_at,
                    "consent": row.consent,
                    "finished_at": now,
                    "exit_code": row.exit_code,
                    "duration": row.duration,
                    "error": row.error,
                    "output_truncated": row.output_truncated,
                },
            )
            tail = _output_tail(conn, row.id) if row.output_bytes else ""
            add_sync(
                conn,
                row.ticket_id,
                kinds.CommandResult(
                    command=row.id,
                    argv=tuple(row.argv),
                    status=row.status,
                    exit_code=row.exit_code,
                    duration=row.duration,
                    consent=row.consent,
                    error=row.error,
                    output_bytes=row.output_bytes,
                    output_tail=tail,
                    output_truncated=row.output_truncated,
                ),
                actor=f"agent:{device_id}",
                at=now,
                events=events,
            )
            audit.append_sync(
                conn,
                actor=f"agent:{device_id}",
                action="command.refused_by_agent" if result.refused else "command.finished",
                data={
                    "command": row.id,
                    "status": row.status,
                    "exit_code": row.exit_code,
                    "error": row.error,
                },
                at=now,
            )
            view = command_view(row)
            events.append(CommandFinished(command_id=row.id, command=view, next_seq=next_seq))
            return view

        return await self._db.run(transaction, events=events)

    async def fail_command(self, command_id: str, error: str) -> None:
        """The command could not be sent to the device."""
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            row = await session.get(Command, command_id, with_for_update=True)
            if row is not None and row.finished_at is None:
                row.status = str(CommandStatus.FAILED)
                row.error = error[:4096]
                row.finished_at = utcnow()
                await add_entry(
                    session,
                    row.ticket_id,
                    kinds.CommandResult(command=row.id, status=row.status, error=row.error),
                    actor="system",
                    at=row.finished_at,
                    events=events,
                )
                events.append(CommandFinished(command_id=row.id, command=command_view(row)))

    async def get_command(self, command_id: str) -> CommandView:
        """One command; ``NotFound`` if unknown."""
        row = await self._db.run(
            lambda c: c.execute(_COMMAND, {"command": command_id}).one_or_none(), read_only=True
        )
        if row is None:
            raise NotFound(f"no command {command_id}")
        return command_view(row)

    async def command_output(self, command_id: str, from_seq: int = 0) -> list[OutputChunk]:
        """The output the console kept, from chunk ``from_seq`` on."""
        async with self._db.reading(bulk=True) as session:
            rows = (
                await session.execute(
                    select(CommandOutput)
                    .where(CommandOutput.command_id == command_id, CommandOutput.seq >= from_seq)
                    .order_by(CommandOutput.seq)
                )
            ).scalars()
            return [
                OutputChunk(seq=r.seq, stream=r.stream, data=r.data)  # type: ignore[arg-type]
                for r in rows
            ]

    async def ticket_commands(self, ticket_id: int) -> list[CommandView]:
        """The commands of a ticket, oldest first."""
        async with self._db.reading() as session:
            rows = (
                await session.execute(
                    select(Command)
                    .where(Command.ticket_id == ticket_id)
                    .order_by(Command.requested_at)
                )
            ).scalars()
            return [command_view(r) for r in rows]


_INSERT_COMMAND: Final = insert(Command)
_COMMAND: Final = select(*Command.__table__.columns).where(Command.id == bindparam("command"))
_COMMAND_LOCKED: Final = _COMMAND.with_for_update()
_UPDATE_COMMAND: Final = update(Command).where(Command.id == bindparam("command"))
_OUTPUT_TAIL: Final = (
    select(CommandOutput.data)
    .where(CommandOutput.command_id == bindparam("command"))
    .order_by(CommandOutput.seq.desc())
    .limit(4)
)


def _output_tail(conn: Connection, command_id: str) -> str:
    """The last lines of a command's output, as text, for the timeline."""
    rows = conn.execute(_OUTPUT_TAIL, {"command": command_id}).scalars()
    data = b"".join(reversed(list(rows)))[-2048:]
    return data.decode("utf-8", "replace")


def _mark_started(
    conn: Connection, row: SimpleNamespace, consent: str, at: datetime.datetime
) -> bool:
    """A pending command started, allowed by ``consent``: ``row`` (the command's
    columns) changed and the start audited, once; the caller writes ``row``. False
    if it had started already."""
    if row.status != CommandStatus.PENDING:
        return False
    row.status = str(CommandStatus.RUNNING)
    row.started_at = at
    row.consent = consent[:32]
    audit.append_sync(
        conn,
        actor=f"agent:{row.device_id}",
        action="command.consented",
        data={"command": row.id, "consent": row.consent},
        at=at,
    )
    return True


def command_view(row: Any) -> CommandView:
    """The view of a command: an ORM object, a row of its columns, or a namespace."""
    return CommandView(
        id=row.id,
        ticket_id=row.ticket_id,
        device_id=row.device_id,
        argv=list(row.argv),
        shell=row.shell,
        timeout=row.timeout,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        status=CommandStatus(row.status),
        consent=row.consent,
        started_at=row.started_at,
        finished_at=row.finished_at,
        exit_code=row.exit_code,
        duration=row.duration,
        error=row.error,
        output_truncated=row.output_truncated,
        output_bytes=row.output_bytes,
        runbook_run=row.runbook_run,
        runbook_step=row.runbook_step,
        script=row.script,
    )
