"""Runbook runs: a runbook's steps run as commands, one after the other, in the background.

A run is recorded on its ticket when it starts (``runbook``) and when it ends
(``runbook_result``, finished or failed, with the step that stopped it). Each step
is a command checked by the same device-action rule as any other; a step that
fails stops the run unless it says ``continue_on_error``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Protocol

from deskside.console.agents import Agents
from deskside.console.auth.identity import ApiIdentity
from deskside.console.devices.schemas import DeviceView
from deskside.console.errors import ConsoleError
from deskside.console.timeline.kinds import EventData, RunbookResult, RunbookStarted, TimelineEntry

from .events import CommandFinished
from .relay import CommandRelay
from .repository import CommandRepository
from .runbooks import Runbook
from .schemas import CommandStatus, CommandView, NewCommand

__all__ = ["RunbookRunner"]

logger = logging.getLogger(__name__)

# Finished runbook runs remembered (their commands stay in the store regardless).
_KEPT_RUNS = 1000


class Devices(Protocol):
    """Where a run learns its device's OS (the devices' repository)."""

    async def get_device(self, device_id: str) -> DeviceView:
        """One device; ``NotFound`` if unknown."""
        ...


class Timeline(Protocol):
    """Where a run records its start and end (the tickets' repository)."""

    async def add_timeline_event(
        self, ticket_id: int, entry: EventData, *, actor: str
    ) -> TimelineEntry:
        """Record something on a ticket's timeline."""
        ...


class RunbookRunner:
    """The runbook runs of this console process."""

    def __init__(
        self,
        commands: CommandRepository,
        tickets: Timeline,
        devices: Devices,
        relay: CommandRelay,
        agents: Agents,
    ) -> None:
        self._commands = commands
        self._tickets = tickets
        self._devices = devices
        self._relay = relay
        self._agents = agents
        # Runs of this process: run id -> the task running its steps.
        self.runs: dict[str, asyncio.Task[None]] = {}

    async def start_runbook(
        self,
        ticket_id: int,
        runbook: Runbook,
        values: dict[str, str],
        *,
        identity: ApiIdentity,
        device_id: str | None,
        reason: str,
    ) -> str:
        """Run a runbook's steps one after the other in the background; the run's id.

        Who asks is checked, and a refusal recorded and raised, before the run starts.
        """
        run_id = uuid.uuid4().hex
        device_id = await self._commands.start_runbook(
            ticket_id,
            device_id,
            RunbookStarted(
                run=run_id,
                runbook=runbook.name,
                params=values,
                steps=tuple(s.name for s in runbook.steps),
            ),
            identity=identity,
            online=self._agents.online,
        )
        task = asyncio.create_task(
            self._run_steps(run_id, ticket_id, runbook, values, identity, device_id, reason),
            name=f"deskside-runbook-{run_id}",
        )
        self.runs[run_id] = task
        if len(self.runs) > _KEPT_RUNS:  # forget the oldest finished runs
            for old_id in [i for i, t in self.runs.items() if t.done()][:-_KEPT_RUNS]:
                del self.runs[old_id]
        return run_id

    def runbook_done(self, run_id: str) -> bool:
        """Whether the run has ended (or is not one of this console process's)."""
        return run_id not in self.runs or self.runs[run_id].done()

    def stop(self) -> None:
        """Cancel the runs in progress (the console stops)."""
        for task in self.runs.values():
            task.cancel()

    async def _run_steps(
        self,
        run_id: str,
        ticket_id: int,
        runbook: Runbook,
        values: dict[str, str],
        identity: ApiIdentity,
        device_id: str,
        reason: str,
    ) -> None:
        status, detail = "finished", ""
        try:
            os_family = (await self._devices.get_device(device_id)).os_family
            for index, step in enumerate(runbook.steps):
                argv = runbook.argv(step, os_family, values)
                if argv is None:
                    status, detail = "failed", f"step {step.name!r} has no {os_family} variant"
                    break
                try:
                    view, _ = await self._commands.create_command(
                        ticket_id,
                        NewCommand(argv=argv, timeout=step.timeout, device_id=device_id),
                        identity=identity,
                        online=self._agents.online,
                        runbook_run=run_id,
                        runbook_step=index,
                    )
                    end = await self._run_to_end(view, f"{reason} (runbook {runbook.name})")
                except ConsoleError as exc:
                    status, detail = "failed", f"step {step.name!r}: {exc}"
                    break
                finished = end.status == CommandStatus.FINISHED
                if (not finished or end.exit_code != 0) and not step.continue_on_error:
                    status = "failed" if finished else str(end.status)
                    detail = f"step {step.name!r} ended {end.status}"
                    if end.exit_code is not None:
                        detail += f" with exit code {end.exit_code}"
                    break
        except Exception as exc:  # the run ends, recorded, whatever went wrong
            logger.exception("runbook run %s failed", run_id)
            status, detail = "failed", f"console error: {type(exc).__name__}"
        try:
            await self._tickets.add_timeline_event(
                ticket_id,
                RunbookResult(run=run_id, runbook=runbook.name, status=status, detail=detail),
                actor="system",
            )
        except Exception:
            logger.exception("cannot record the end of runbook run %s", run_id)

    async def _run_to_end(self, view: CommandView, reason: str) -> CommandView:
        """Send a command and wait for its end (bounded by its time-out and a margin)."""
        with self._relay.follow(view.id) as events:  # before it is sent: its end is seen
            await self._relay.run_command(view, reason)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + view.timeout + 60
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return await self._commands.get_command(view.id)
                try:
                    event = await asyncio.wait_for(events.get(), min(remaining, 5.0))
                except TimeoutError:
                    current = await self._commands.get_command(view.id)
                    if current.finished_at is not None:
                        return current
                    continue
                if isinstance(event, CommandFinished):
                    return event.command
