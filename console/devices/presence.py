"""Devices at the gateway: who is online, their heartbeats, their diagnostics.

Presence: a device is online while it has a daemon channel (one that said
``Hello``). Heartbeats are kept in memory and written to the database in one
batch every ``HEARTBEAT_FLUSH_INTERVAL`` seconds, so thousands of agents cost a
handful of writes, not thousands; the same sweep disconnects devices revoked by
another process (the CLI).

Disconnects are written in batches too (``_Departures``): when thousands of agents
leave at once (their network went down, or they all follow a console that moved),
each would otherwise hold a database connection of its own for its one write, and
the pool runs dry for everyone else (the API answered 500 in benchmarks/fleet.py).

Several console nodes (``claims``, the cluster's presence registry): a device is
claimed by this node when its agent says ``Hello`` and released when its channel
ends; the departure is recorded only if this node still held it (a device that
moved on to another node is that node's to record). Nodes neither forget presence
at start nor at stop (the other nodes' devices are online); the registry's sweep
records the devices of a node that died offline.

Snapshots: one the agent sends on its own is kept; one the console asked for
(``request_snapshot``) is handed to its waiter, which keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gc
import logging
import uuid
from collections.abc import Collection
from typing import Any, Protocol

import msgspec

from deskside.console.agents import AgentHandlers, Agents, AgentSession
from deskside.console.db import utcnow
from deskside.console.errors import Conflict, GatewayTimeout
from deskside.protocol import messages as m
from deskside.protocol.errors import ConnectionClosed

from .repository import DeviceRepository
from .schemas import SnapshotInfo
from .snapshots import SnapshotRepository

__all__ = ["HEARTBEAT_FLUSH_INTERVAL", "Claims", "Presence"]

logger = logging.getLogger(__name__)

# How often buffered heartbeats are written to the database.
HEARTBEAT_FLUSH_INTERVAL = 5.0


class Claims(Protocol):
    """Which node holds which device, across console nodes (the presence registry)."""

    async def claim(self, device_id: str) -> None:
        """This node holds the device's daemon channel now."""
        ...

    async def release(self, device_ids: Collection[str]) -> set[str]:
        """Let go of devices; those this node still held."""
        ...


class _Departures:
    """Devices going offline, written one batch (one transaction) at a time.

    ``leave`` returns once its device's batch is written. A device that comes back
    (``back``) before its batch is written is left out of it, and its ``Hello`` is
    recorded after a batch being written, so that it ends online.
    """

    def __init__(self, devices: DeviceRepository, agents: Agents, claims: Claims | None) -> None:
        self._devices = devices
        self._agents = agents
        self._claims = claims
        # Devices waiting for the next batch, and what their callers wait on.
        self._next: set[str] = set()
        self._next_written: asyncio.Future[None] | None = None
        # The batch being written, if any.
        self._writing: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def leave(self, device_id: str) -> None:
        self._next.add(device_id)
        if self._next_written is None:
            self._next_written = asyncio.get_running_loop().create_future()
        written = self._next_written
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="deskside-departures")
        await asyncio.shield(written)

    async def back(self, device_id: str) -> None:
        """The device is connected again: not in a batch to come, and any batch being
        written is written before its ``Hello`` is."""
        self._next.discard(device_id)
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def _write(self) -> None:
        while self._next_written is not None:
            batch, self._next = self._next, set()
            self._writing, self._next_written = self._next_written, None
            gone = [d for d in batch if not self._agents.online(d)]
            try:
                if self._claims is not None:
                    gone = sorted(await self._claims.release(gone))
                await self._devices.mark_offline(gone)
            except Exception:
                logger.exception("recording %d devices offline failed", len(gone))
            finally:
                self._writing.set_result(None)
                self._writing = None

    async def stop(self) -> None:
        """Let the last batch be written."""
        if self._writer is not None:
            await self._writer


class Presence:
    """The devices capability at the gateway."""

    def __init__(
        self,
        devices: DeviceRepository,
        snapshots: SnapshotRepository,
        agents: Agents,
        claims: Claims | None = None,
    ) -> None:
        self._devices = devices
        # The cluster's presence registry; None on a single node.
        self._claims = claims
        self._snapshots = snapshots
        self._agents = agents
        # Heartbeats not yet written: device id -> (time, metrics).
        self._beats: dict[str, tuple[datetime.datetime, dict[str, Any] | None]] = {}
        self._flusher: asyncio.Task[None] | None = None
        # Revocations up to this time have been acted on (with a margin for clocks).
        self._revocations_checked = utcnow() - datetime.timedelta(minutes=1)
        # Snapshot requests awaiting an answer: request id -> (its channel, its future).
        self._pending: dict[str, tuple[AgentSession, asyncio.Future[m.Snapshot]]] = {}
        self._departures = _Departures(devices, agents, claims)

    def register(self, handlers: AgentHandlers) -> None:
        """Hello, heartbeats, snapshots and error answers come here."""
        handlers.register(m.Hello, self._hello)
        handlers.register(m.Heartbeat, self._heartbeat)
        handlers.register(m.DiagnosticsSnapshot, self._snapshot)
        handlers.register(m.Error, self._error)

    async def start(self) -> None:
        """Forget presence left by an earlier run (on a single node: among several, the
        registry's sweep does) and start writing heartbeats."""
        if self._claims is None:
            await self._devices.mark_all_offline()
        # What start-up allocated stays for good: keep it out of every collection
        # (a full one over 5,000 agents' objects stalled the loop for a second).
        gc.freeze()
        self._flusher = asyncio.create_task(self._flush_heartbeats(), name="deskside-heartbeats")

    async def stop(self) -> None:
        """Write the last heartbeats; nothing is connected to this process any more."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self._write_beats()
        await self._departures.stop()
        if self._claims is None:
            await self._devices.mark_all_offline()

    async def agent_gone(self, session: AgentSession) -> None:
        """Fail the snapshot requests of the channel; the device goes offline with its
        last daemon channel."""
        for request_id, (owner, waiter) in list(self._pending.items()):
            if owner is session and not waiter.done():
                waiter.set_exception(Conflict("the device disconnected"))
                del self._pending[request_id]
        if session.is_daemon and not self._agents.online(session.device_id):
            await self._departures.leave(session.device_id)

    async def request_snapshot(self, device_id: str, timeout: float) -> SnapshotInfo:
        """Ask the device for a fresh snapshot and store it."""
        session = self._agents.daemon_session(device_id)
        request_id = uuid.uuid4().hex
        waiter: asyncio.Future[m.Snapshot] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (session, waiter)
        try:
            await session.channel.send(m.SnapshotRequest(request_id=request_id))
            snapshot = await asyncio.wait_for(waiter, timeout)
        except TimeoutError as exc:
            raise GatewayTimeout(f"the device sent no snapshot within {timeout:g} s") from exc
        except ConnectionClosed as exc:
            raise Conflict("the device disconnected") from exc
        finally:
            self._pending.pop(request_id, None)
        return await self._snapshots.add_snapshot(device_id, snapshot)

    # -- Handlers --------------------------------------------------------------------------

    async def _hello(self, session: AgentSession, message: m.Hello) -> None:
        session.mark_daemon()
        await self._departures.back(session.device_id)
        if self._claims is not None:  # before the database: a sweep must see it held
            await self._claims.claim(session.device_id)
        await self._devices.record_hello(session.device_id, message)

    async def _heartbeat(self, session: AgentSession, message: m.Heartbeat) -> None:
        metrics = msgspec.to_builtins(message.metrics) if message.metrics else None
        self._beats[session.device_id] = (utcnow(), metrics)

    async def _snapshot(self, session: AgentSession, message: m.DiagnosticsSnapshot) -> None:
        pending = self._pending.get(message.request_id or "")
        if pending is not None and pending[0] is session and not pending[1].done():
            pending[1].set_result(message.snapshot)
        else:
            await self._snapshots.add_snapshot(session.device_id, message.snapshot)

    async def _error(self, session: AgentSession, message: m.Error) -> None:
        pending = self._pending.get(message.request_id or "")
        if pending is not None and pending[0] is session and not pending[1].done():
            pending[1].set_exception(Conflict(f"the agent answered: {message.message}"))
        else:
            logger.warning(
                "device %s reports: %s %s", session.device_id, message.code, message.message
            )

    # -- Heartbeats ------------------------------------------------------------------------

    async def _flush_heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_FLUSH_INTERVAL)
            try:
                await self._write_beats()
                # A device revoked by another process (the CLI) is cut off here.
                checked, self._revocations_checked = self._revocations_checked, utcnow()
                for device_id in await self._devices.revoked_since(checked):
                    if self._agents.online(device_id):
                        logger.info("device %s was revoked; disconnecting it", device_id)
                        await self._agents.disconnect(device_id, "device revoked")
            except Exception:
                logger.exception("writing heartbeats failed; will retry")

    async def _write_beats(self) -> None:
        beats, self._beats = self._beats, {}
        if beats:
            await self._devices.record_heartbeats(beats)
