"""Terminals at the gateway: keystrokes to the device's PTY, its output to the technician.

Theory of operation::

    technician's WebSocket ──> open_terminal (recorded) ──> ShellOpen to the agent
    agent: ShellStarted ──> consent recorded; "started" to the technician
           ShellData    ──> transcript; bytes to the technician
           ShellClosed  ──> recorded with the transcript; the end to the technician
    technician: keystrokes ──> ShellData to the agent (transcript), resize ──> ShellResize
    technician left / agent gone ──> ShellClosed, recorded

A session is recorded as an asciinema v2 cast: a header line, then one JSON array
a line: ``[seconds, "o", output]``, ``[seconds, "i", input]`` or ``[seconds, "r",
"COLSxROWS"]``, up to ``TRANSCRIPT_CAP`` bytes.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import time

from deskside.console.agents import AgentHandlers, Agents, AgentSession
from deskside.console.errors import Conflict
from deskside.protocol import messages as m
from deskside.protocol.errors import ConnectionClosed

from .repository import TerminalRepository
from .schemas import TerminalStatus, TerminalView

__all__ = ["TRANSCRIPT_CAP", "TerminalHub", "TerminalRelay"]

logger = logging.getLogger(__name__)

# Largest transcript kept per terminal session; the rest is relayed, not recorded.
TRANSCRIPT_CAP = 16 << 20


class TerminalRelay:
    """One terminal session between a technician's client and a device's PTY."""

    def __init__(self, view: TerminalView, session: AgentSession, cols: int, rows: int) -> None:
        self.view = view
        self.session = session
        # What goes to the technician: terminal bytes, or the start and the end.
        self.to_client: asyncio.Queue[bytes | m.ShellStarted | m.ShellClosed] = asyncio.Queue()
        # Numbering of the bytes sent to the device.
        self.next_seq = 0
        # Set once the session has ended and been recorded.
        self.ended = False
        self._start = time.monotonic()
        self._out = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._in = codecs.getincrementaldecoder("utf-8")(errors="replace")
        header = {
            "version": 2,
            "width": cols,
            "height": rows,
            "timestamp": int(time.time()),
            "title": f"ticket #{view.ticket_id} on {view.device_id} by {view.requested_by}",
        }
        # The cast so far; recording stops at TRANSCRIPT_CAP.
        self.transcript = bytearray(json.dumps(header).encode() + b"\n")
        self.truncated = False

    def record(self, kind: str, data: bytes | str) -> None:
        """Add an event to the transcript."""
        if self.truncated:
            return
        if isinstance(data, bytes):
            decoder = self._out if kind == "o" else self._in
            data = decoder.decode(data)
        if not data:
            return
        line = json.dumps([round(time.monotonic() - self._start, 6), kind, data]).encode() + b"\n"
        if len(self.transcript) + len(line) > TRANSCRIPT_CAP:
            self.truncated = True
            return
        self.transcript += line


class TerminalHub:
    """The terminal capability at the gateway: every session relayed by this process."""

    def __init__(self, terminals: TerminalRepository, agents: Agents) -> None:
        self._terminals = terminals
        self._agents = agents
        # Sessions being relayed: session id -> relay.
        self.relays: dict[str, TerminalRelay] = {}

    def register(self, handlers: AgentHandlers) -> None:
        """A terminal's start, output and end come here."""
        handlers.register(m.ShellStarted, self._started)
        handlers.register(m.ShellData, self._data)
        handlers.register(m.ShellClosed, self._closed)

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop: sessions end with their channels."""

    async def agent_gone(self, session: AgentSession) -> None:
        """The sessions of that channel end, recorded."""
        for relay in [r for r in self.relays.values() if r.session is session]:
            try:
                await self._end(
                    relay, m.ShellClosed(session_id=relay.view.id, error="the device disconnected")
                )
            except Exception:
                logger.exception("cannot record the end of terminal %s", relay.view.id)

    async def open(self, view: TerminalView, cols: int, rows: int, reason: str) -> TerminalRelay:
        """Ask the device for a terminal; the relay to read from and write to."""
        try:
            session = self._agents.daemon_session(view.device_id)
        except Conflict:
            await self._terminals.close_terminal(
                view.id, status=TerminalStatus.FAILED, exit_code=None,
                error="device not connected", transcript=b"", truncated=False,
            )  # fmt: skip
            raise
        relay = TerminalRelay(view, session, cols, rows)
        self.relays[view.id] = relay
        await session.channel.send(
            m.ShellOpen(
                session_id=view.id,
                ticket_id=view.ticket_id,
                requested_by=view.requested_by[:256],
                cols=cols,
                rows=rows,
                reason=reason[:4096],
            )
        )
        return relay

    async def input(self, relay: TerminalRelay, data: bytes) -> None:
        """Keystrokes from the technician, to the device."""
        if relay.ended:
            return
        for start in range(0, len(data), 65536):
            piece = data[start : start + 65536]
            relay.record("i", piece)
            await relay.session.channel.send(
                m.ShellData(session_id=relay.view.id, seq=relay.next_seq, data=piece)
            )
            relay.next_seq += 1

    async def resize(self, relay: TerminalRelay, cols: int, rows: int) -> None:
        """The technician's terminal changed size."""
        if not relay.ended:
            relay.record("r", f"{cols}x{rows}")
            await relay.session.channel.send(
                m.ShellResize(session_id=relay.view.id, cols=cols, rows=rows)
            )

    async def close(self, relay: TerminalRelay, reason: str) -> None:
        """The technician left: end the terminal on the device and record it."""
        if relay.ended:
            return
        with contextlib.suppress(ConnectionClosed):  # gone already: nothing to tell it
            await relay.session.channel.send(m.ShellClosed(session_id=relay.view.id, error=reason))
        await self._end(relay, m.ShellClosed(session_id=relay.view.id, error=reason))

    # -- Handlers --------------------------------------------------------------------------

    def _relay_of(self, session: AgentSession, session_id: str) -> TerminalRelay | None:
        relay = self.relays.get(session_id)
        return relay if relay is not None and relay.session is session else None

    async def _started(self, session: AgentSession, message: m.ShellStarted) -> None:
        relay = self._relay_of(session, message.session_id)
        if relay is not None:
            await self._terminals.terminal_started(
                session.device_id, message.session_id, message.consent
            )
            relay.to_client.put_nowait(message)

    async def _data(self, session: AgentSession, message: m.ShellData) -> None:
        relay = self._relay_of(session, message.session_id)
        if relay is not None:
            relay.record("o", message.data)
            relay.to_client.put_nowait(message.data)

    async def _closed(self, session: AgentSession, message: m.ShellClosed) -> None:
        relay = self._relay_of(session, message.session_id)
        if relay is not None:
            await self._end(relay, message)

    async def _end(self, relay: TerminalRelay, closed: m.ShellClosed) -> None:
        if relay.ended:
            return
        relay.ended = True
        self.relays.pop(relay.view.id, None)
        if closed.refused:
            status = TerminalStatus.REFUSED
        elif closed.error and closed.exit_code is None:
            status = TerminalStatus.FAILED
        else:
            status = TerminalStatus.CLOSED
        relay.view = await self._terminals.close_terminal(
            relay.view.id,
            status=status,
            exit_code=closed.exit_code,
            error=closed.error,
            transcript=bytes(relay.transcript),
            truncated=relay.truncated,
        )
        relay.to_client.put_nowait(closed)
