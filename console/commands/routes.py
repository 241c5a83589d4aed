"""The commands API: run a command for a ticket, follow it, cancel it; runbooks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Annotated, Final, Protocol, runtime_checkable

import msgspec
from litestar import Controller, get, post
from litestar.params import Parameter
from litestar.response import Stream

from deskside.console.agents import Agents
from deskside.console.api import content, errors
from deskside.console.auth.guards import requires
from deskside.console.auth.identity import ApiIdentity, Scope
from deskside.console.errors import InvalidRequest, NotFound
from deskside.console.events import Subscription
from deskside.console.tickets.schemas import TicketView
from deskside.protocol.errors import DesksideError

from .events import CommandFinished, CommandOutputReceived, CommandStarted
from .relay import CommandRelay
from .repository import CommandRepository
from .runbooks import Runbook
from .runbooks.repository import RunbookRepository
from .runner import RunbookRunner
from .schemas import CommandEvent, CommandView, NewCommand, OutputChunk, RunbookRunView, RunRunbook

__all__ = ["MAX_WAIT", "CommandController", "RunbookController"]

# Longest a POST of a command may wait for the command's end (``wait``), in seconds.
MAX_WAIT: Final = 300.0

TicketId = Annotated[int, Parameter(ge=1, le=2**31 - 1)]


@runtime_checkable
class Tickets(Protocol):
    """Where commands learn their ticket (the tickets' repository)."""

    async def ticket(self, ticket_id: int) -> TicketView:
        """A ticket; ``NotFound`` if unknown."""
        ...


CommandId = Annotated[str, Parameter(max_length=64)]


class CommandController(Controller):
    """Commands on a ticket's device: run, read, follow, cancel."""

    path = "/api/v1"
    tags = ["commands"]  # noqa: RUF012 - Litestar's API

    @post("/tickets/{ticket_id:int}/commands", responses=errors(400, 404, 409))
    async def run_command(
        self,
        identity: ApiIdentity,
        commands: CommandRepository,
        command_relay: CommandRelay,
        agents: Agents,
        ticket_id: TicketId,
        data: NewCommand,
        wait: Annotated[float, Parameter(ge=0, le=MAX_WAIT)] = 0.0,
    ) -> CommandView:
        """Run a command on the ticket's device (201); follow it with ``/stream``.

        With ``wait`` (seconds, up to 300), answer once the command has ended and its
        result is recorded, or when ``wait`` runs out (then ``finished_at`` is null):
        one call for a short command. Its output is at ``/output``.

        Needs ``commands:run``; a technician must be an admin or the ticket's assignee
        (``deskside.console.auth.access``: a refusal is recorded, so it is checked
        there, not by a guard). The device's own policy and its user have the last
        word: a refusal there ends the command with status ``refused``.
        """
        view, title = await commands.create_command(
            ticket_id, data, identity=identity, online=agents.online
        )
        if not wait:
            await command_relay.run_command(view, reason=f"#{ticket_id} {title}")
            return view
        with command_relay.follow(view.id) as events:  # before it is sent: its end is seen
            await command_relay.run_command(view, reason=f"#{ticket_id} {title}")
            with contextlib.suppress(TimeoutError):  # then the command as it is now
                async with asyncio.timeout(wait):
                    while True:
                        event = await events.get()
                        if isinstance(event, CommandFinished):
                            return event.command
        return await commands.get_command(view.id)

    @get(
        "/tickets/{ticket_id:int}/commands",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def ticket_commands(
        self, commands: CommandRepository, tickets: Tickets, ticket_id: TicketId
    ) -> list[CommandView]:
        """The commands run for a ticket, oldest first."""
        await tickets.ticket(ticket_id)
        return await commands.ticket_commands(ticket_id)

    @get(
        "/commands/{command_id:str}",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def get_command(self, commands: CommandRepository, command_id: CommandId) -> CommandView:
        """A command and how it went."""
        return await commands.get_command(command_id)

    @get(
        "/commands/{command_id:str}/output",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def command_output(
        self, commands: CommandRepository, command_relay: CommandRelay, command_id: CommandId
    ) -> list[OutputChunk]:
        """The output the console kept (bytes in base64), in order."""
        await commands.get_command(command_id)
        return await command_relay.output.read(command_id)

    @get(
        "/commands/{command_id:str}/stream",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404) | content(200, CommandEvent, "text/event-stream"),
    )
    async def stream_command(
        self, commands: CommandRepository, command_relay: CommandRelay, command_id: CommandId
    ) -> Stream:
        """Server-sent events: ``output`` (``{"seq", "stream", "data"}``, data in
        base64), ``started``, then ``exit`` with the command. Output kept so far
        comes first."""
        # Followed before it is read: an end recorded after the read is on its way.
        events = command_relay.follow(command_id)
        try:
            view = await commands.get_command(command_id)
        except BaseException:
            events.close()
            raise
        stream = _command_events(commands, command_relay, view, events)
        # The stream closes the subscription when it ends; this, if it never starts.
        weakref.finalize(stream, events.close)
        return Stream(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @post(
        "/commands/{command_id:str}/cancel",
        status_code=202,
        guards=[requires(Scope.COMMANDS_RUN)],
        responses=errors(400, 404, 409),
    )
    async def cancel_command(
        self,
        identity: ApiIdentity,
        commands: CommandRepository,
        command_relay: CommandRelay,
        agents: Agents,
        command_id: CommandId,
    ) -> CommandView:
        """Ask the device to end a running command's process tree (202).

        The rule of starting a command applies; who asked is recorded on the ticket
        and the audit log.
        """
        view = await commands.cancel_command(command_id, identity=identity, online=agents.online)
        await command_relay.cancel_command(view)
        return view


class RunbookController(Controller):
    """Runbooks: list them, run one on a ticket's device, follow a run."""

    path = "/api/v1"
    tags = ["runbooks"]  # noqa: RUF012 - Litestar's API

    @get("/runbooks", guards=[requires(Scope.TICKETS_READ)], responses=errors())
    async def list_runbooks(self, runbooks: RunbookRepository) -> list[Runbook]:
        """Every runbook: built-in and added ones."""
        return sorted((await runbooks.runbooks()).values(), key=lambda r: r.name)

    @post(
        "/tickets/{ticket_id:int}/runbooks/{name:str}",
        status_code=202,
        guards=[requires(Scope.COMMANDS_RUN)],
        responses=errors(400, 404, 409),
    )
    async def run_runbook(
        self,
        identity: ApiIdentity,
        runbooks: RunbookRepository,
        runbook_runner: RunbookRunner,
        tickets: Tickets,
        ticket_id: TicketId,
        name: Annotated[str, Parameter(max_length=64)],
        data: RunRunbook,
    ) -> RunbookRunView:
        """Run a runbook's steps on the ticket's device, one after the other (202).

        Each step is a command with the same rights and records as any other; a
        step that fails stops the run unless it says ``continue_on_error``.
        """
        runbook = await runbooks.get_runbook(name)
        try:
            values = runbook.resolve(data.params)
        except DesksideError as exc:
            raise InvalidRequest(str(exc)) from exc
        ticket = await tickets.ticket(ticket_id)
        run_id = await runbook_runner.start_runbook(
            ticket_id,
            runbook,
            values,
            identity=identity,
            device_id=data.device_id,
            reason=f"#{ticket_id} {ticket.title}",
        )
        return RunbookRunView(id=run_id, runbook=name, done=False, commands=[])

    @get(
        "/runbook-runs/{run_id:str}",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def runbook_run(
        self,
        commands: CommandRepository,
        runbook_runner: RunbookRunner,
        run_id: Annotated[str, Parameter(max_length=64)],
    ) -> RunbookRunView:
        """A runbook run: its steps' commands so far, and whether it has ended."""
        done = runbook_runner.runbook_done(run_id)  # read first: a step may end in between
        steps = await commands.runbook_commands(run_id)
        if not steps and run_id not in runbook_runner.runs:
            raise NotFound(f"no runbook run {run_id}")
        return RunbookRunView(id=run_id, runbook="", done=done, commands=steps)


_encoder = msgspec.json.Encoder()


def _event(kind: str, data: bytes) -> bytes:
    """One server-sent event; ``data`` is JSON, which has no line breaks."""
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def _chunk_event(chunk: OutputChunk) -> bytes:
    # Encoded here rather than by Litestar's ServerSentEventMessage, whose line
    # splitting of each 87 KB line cost a third of the console's time at full output.
    data = {"seq": chunk.seq, "stream": chunk.stream, "data": base64.b64encode(chunk.data).decode()}
    return _event("output", _encoder.encode(data))


# A comment line: keeps proxies from closing a quiet stream.
_KEEP_ALIVE = b": keep-alive\n\n"


async def _command_events(
    commands: CommandRepository, relay: CommandRelay, view: CommandView, events: Subscription
) -> AsyncIterator[bytes]:
    """Everything kept so far, then the live events, until the command ends.

    ``view`` was read after ``events`` began, so its end is either in ``view`` or on
    its way. A chunk missed in between shows as a gap in the chunk numbers, filled
    from the store.
    """
    command_id = view.id
    try:
        next_seq = 0
        # Nothing stored yet (the common case for a command just started): only
        # what is in memory, without a query.
        stored = view.output_bytes > 0 or view.output_truncated
        for chunk in await relay.output.read(command_id, stored=stored):
            next_seq = chunk.seq + 1
            yield _chunk_event(chunk)
        end_seq: int | None = None
        while view.finished_at is None:
            try:
                event = await asyncio.wait_for(events.get(), 15.0)
            except TimeoutError:
                yield _KEEP_ALIVE
                view = await commands.get_command(command_id)
                continue
            if isinstance(event, CommandOutputReceived):
                if event.chunk.seq < next_seq:
                    continue
                if event.chunk.seq > next_seq:  # fell behind: the store has the rest
                    for missed in await relay.output.read(command_id, next_seq):
                        if missed.seq < event.chunk.seq:
                            yield _chunk_event(missed)
                next_seq = event.chunk.seq + 1
                yield _chunk_event(event.chunk)
            elif isinstance(event, CommandStarted):
                yield _event("started", _encoder.encode(event.command))
            elif isinstance(event, CommandFinished):
                view, end_seq = event.command, event.next_seq
        silent = view.output_bytes == 0 and not view.output_truncated
        if not silent and (end_seq is None or next_seq < end_seq):
            for chunk in await relay.output.read(command_id, next_seq):
                yield _chunk_event(chunk)
        yield _event("exit", _encoder.encode(view))
    finally:
        events.close()
