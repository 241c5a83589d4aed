"""Commands at the gateway: sent to their device, their start, output and end recorded.

Theory of operation::

    API: create_command (recorded) ──> run_command ──> CommandRequest to the agent
    agent: CommandStarted ──> held START_DELAY, then recorded (CommandStarted event)
           CommandOutput  ──> OutputBuffers (de-duplicated, batched) and, at once,
                              a CommandOutputReceived event
           CommandExit    ──> its output written first, then the start (if still
                              held) and the end in one transaction (CommandFinished
                              event), then Ack to the agent

A short command's start is written with its exit: one transaction instead of two,
and the exit is not held up behind the first. Nothing is lost if the console
stops meanwhile: the agent sends the start again until the console acknowledges
the exit. Those who follow a command live (the API's stream, a runbook's step)
subscribe to its events on the bus (``follow``).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass

from deskside.console.agents import AgentHandlers, Agents, AgentSession
from deskside.console.db import utcnow
from deskside.console.errors import Conflict
from deskside.console.events import EventBus, Subscription
from deskside.protocol import messages as m
from deskside.protocol.errors import ConnectionClosed

from .events import COMMAND_EVENTS, CommandOutputReceived
from .output import OutputBuffers
from .repository import CommandRepository
from .schemas import CommandView

__all__ = ["START_DELAY", "CommandRelay"]

logger = logging.getLogger(__name__)

# How long a command's start waits to be written with its exit (see _start_later).
START_DELAY = 0.25


@dataclass(eq=False)
class _Start:
    """A command's start, received and not yet written."""

    device_id: str
    consent: str
    at: datetime.datetime
    # Writes it after START_DELAY unless the exit comes first.
    task: asyncio.Task[None] | None = None
    # True once that write has begun (the exit then waits for it), and once it is done.
    writing: bool = False
    written: bool = False


class CommandRelay:
    """The commands capability at the gateway."""

    def __init__(self, commands: CommandRepository, bus: EventBus, agents: Agents) -> None:
        self._commands = commands
        self._bus = bus
        self._agents = agents
        # Commands' output on its way to the store.
        self.output = OutputBuffers(commands)
        # Commands' starts on their way to the store: (device id, command id) -> start.
        self._starts: dict[tuple[str, str], _Start] = {}

    def register(self, handlers: AgentHandlers) -> None:
        """A command's start, output and exit come here."""
        handlers.register(m.CommandStarted, self._started)
        handlers.register(m.CommandOutput, self._output)
        handlers.register(m.CommandExit, self._exit)

    async def start(self) -> None:
        """Start writing output in batches."""
        self.output.start()

    async def stop(self) -> None:
        """Drop the starts not written (the agents send them again); write the output."""
        for start in self._starts.values():
            if start.task is not None and not start.writing:
                start.task.cancel()
        await self.output.stop()

    async def agent_gone(self, session: AgentSession) -> None:
        """Nothing: a command outlives its channel (its result is spooled)."""

    def follow(self, command_id: str) -> Subscription:
        """The command's events from now on; close the subscription when done."""
        return self._bus.subscribe(*COMMAND_EVENTS, topic=command_id)

    async def run_command(self, view: CommandView, reason: str) -> None:
        """Send a recorded command to its device."""
        try:
            session = self._agents.daemon_session(view.device_id)
            await session.channel.send(
                m.CommandRequest(
                    command_id=view.id,
                    ticket_id=view.ticket_id,
                    argv=view.argv,
                    requested_by=view.requested_by[:256],
                    shell=view.shell,
                    timeout=view.timeout,
                    reason=reason[:4096],
                    script=view.script,
                )
            )
        except (Conflict, ConnectionClosed) as exc:
            await self._commands.fail_command(view.id, f"could not reach the device: {exc}")
            raise Conflict(f"could not reach device {view.device_id}") from exc

    async def cancel_command(self, view: CommandView) -> None:
        """Ask the device to end a running command's process tree."""
        session = self._agents.daemon_session(view.device_id)
        await session.channel.send(m.CommandCancel(command_id=view.id))

    # -- Handlers --------------------------------------------------------------------------

    async def _started(self, session: AgentSession, message: m.CommandStarted) -> None:
        self._start_later(session.device_id, message)

    async def _output(self, session: AgentSession, message: m.CommandOutput) -> None:
        chunk = await self.output.add(
            session.device_id, message.command_id, message.seq, str(message.stream), message.data
        )
        if chunk is not None:
            self._bus.publish(CommandOutputReceived(command_id=message.command_id, chunk=chunk))

    async def _exit(self, session: AgentSession, message: m.CommandExit) -> None:
        device_id = session.device_id
        started = await self._take_start(device_id, message.command_id)
        end_seq = self.output.next_seq(message.command_id)
        await self.output.finish(message.command_id)  # the output first, then the exit
        view = await self._commands.finish_command(
            device_id, message, started=started, next_seq=end_seq
        )
        if view is not None:
            # Acknowledged once recorded: the agent may forget its spooled result.
            await session.channel.send(m.Ack(request_id=message.command_id))

    # -- Starts ----------------------------------------------------------------------------

    def _start_later(self, device_id: str, message: m.CommandStarted) -> None:
        """Record a command's start in a moment, or with its exit if that comes first."""
        key = (device_id, message.command_id)  # another device cannot stand in its way
        if key in self._starts:
            return  # sent again after a reconnect
        start = _Start(device_id, message.consent, utcnow())
        self._starts[key] = start
        start.task = asyncio.create_task(
            self._record_start(message.command_id, start), name="deskside-command-start"
        )

    async def _record_start(self, command_id: str, start: _Start) -> None:
        await asyncio.sleep(START_DELAY)
        start.writing = True
        try:
            await self._commands.command_started(
                command_id, start.consent, start.at, device_id=start.device_id
            )
            start.written = True
        except Exception:
            logger.exception("recording the start of command %s failed", command_id)
            return  # the agent sends it again with the exit after a reconnect
        finally:
            if self._starts.get((start.device_id, command_id)) is start:
                del self._starts[(start.device_id, command_id)]

    async def _take_start(
        self, device_id: str, command_id: str
    ) -> tuple[str, datetime.datetime] | None:
        """The start of a command not written yet, to be written with its exit."""
        start = self._starts.pop((device_id, command_id), None)
        if start is None:
            return None
        if start.writing:
            assert start.task is not None
            await asyncio.shield(start.task)
            return None if start.written else (start.consent, start.at)
        if start.task is not None:
            start.task.cancel()
        return start.consent, start.at
