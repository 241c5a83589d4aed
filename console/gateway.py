"""The agents' door: the ``/agent`` WebSocket, the sessions of connected devices.

Each agent connection runs the secure channel (``deskside.channel.Channel``) over
Litestar's WebSocket. The authorizer enrolls a new key that brings a valid token
and admits only enrolled, unrevoked keys otherwise; refusals carry a reason the
agent shows its user.

Presence: a device is online while it has a session. Heartbeats are kept in
memory and written to the database in one batch every few seconds, so thousands
of agents cost a handful of writes, not thousands.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import datetime
import gc
import json
import logging
import time
import uuid
from dataclasses import dataclass, field

import msgspec
from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from deskside.channel import Channel
from deskside.protocol import messages as m
from deskside.protocol.connection import ChannelConfig, CloseCode, ServerConnection
from deskside.protocol.enrollment import device_id as device_id_for
from deskside.protocol.errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    RemoteProtocolError,
)

from .errors import Conflict, ConsoleError, EnrollmentRefused, GatewayTimeout
from .output import OutputBuffers
from .runbooks import Runbook
from .schemas import CommandView, NewCommand, NewTicket, OutputChunk, ShellView, SnapshotInfo
from .screenrelay import ScreenHub
from .store import ApiIdentity, Store, utcnow

__all__ = ["CommandEvent", "Gateway", "LitestarTransport"]

logger = logging.getLogger(__name__)

# How often buffered heartbeats are written to the database.
HEARTBEAT_FLUSH_INTERVAL = 5.0
# How long a command's start waits to be written with its exit (see _start_later).
START_DELAY = 0.25


class LitestarTransport:
    """A ``FrameTransport`` over a Litestar (ASGI) WebSocket."""

    def __init__(self, socket: WebSocket) -> None:  # type: ignore[type-arg]
        self.socket = socket

    async def send_frame(self, frame: bytes) -> None:
        """Send one binary message."""
        try:
            await self.socket.send_bytes(frame)
        except (WebSocketDisconnect, OSError, RuntimeError) as exc:
            raise ConnectionClosedError(
                CloseCode.ABNORMAL, "agent went away", by_peer=True
            ) from exc

    async def recv_frame(self) -> bytes:
        """Receive one binary message."""
        try:
            event = await self.socket.receive()
        except WebSocketDisconnect as exc:
            raise ConnectionClosedError(
                CloseCode.ABNORMAL, "agent went away", by_peer=True
            ) from exc
        if event["type"] == "websocket.disconnect":
            code = int(event.get("code", CloseCode.ABNORMAL))
            cls = ConnectionClosedOK if code in (1000, 1001) else ConnectionClosedError
            raise cls(code, str(event.get("reason") or ""), by_peer=True)
        data = event.get("bytes")
        if not isinstance(data, bytes | bytearray):
            raise RemoteProtocolError("text frame on a binary channel")
        return bytes(data)

    async def close(self, code: int, reason: str) -> None:
        """Close the WebSocket, unless it is closed already."""
        if self.socket.connection_state != "disconnect":
            with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
                await self.socket.close(code, reason)


@dataclass(frozen=True)
class CommandEvent:
    """Something that happened to a command, for those watching it live."""

    kind: str  # "started", "output", "exit"
    view: CommandView | None = None
    chunk: OutputChunk | None = None
    # With "exit": the number after the command's last chunk, if known.
    next_seq: int | None = None


# Finished runbook runs remembered (their commands stay in the store regardless).
_KEPT_RUNS = 1000

# Largest transcript kept per terminal session; the rest is relayed, not recorded.
TRANSCRIPT_CAP = 16 << 20


class ShellRelay:
    """One terminal session between a technician's client and a device's PTY.

    It records the session as an asciinema v2 cast: a header line, then one JSON
    array a line: ``[seconds, "o", output]``, ``[seconds, "i", input]`` or
    ``[seconds, "r", "COLSxROWS"]``.
    """

    def __init__(self, view: ShellView, session: Session, cols: int, rows: int) -> None:
        self.view = view
        self.session = session
        # What goes to the technician: terminal bytes, or the end (a ShellClosed).
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


@dataclass(eq=False)
class Session:
    """One connected agent channel."""

    device_id: str
    channel: Channel
    # Set once the agent said Hello: a daemon, not a one-off CLI connection.
    hello: bool = False
    # Snapshot requests awaiting an answer: request id -> future of the snapshot.
    pending: dict[str, asyncio.Future[m.Snapshot]] = field(default_factory=dict)


class Gateway:
    """The connected agents, and the work they bring and are given."""

    def __init__(self, store: Store, static_private: bytes, *, software_version: str = "") -> None:
        self.store = store
        self._static_private = static_private
        self.channel_config = ChannelConfig(
            software_version=software_version,
            # Per agent. Agents pace themselves below it (it is announced in the
            # handshake); at 80 % of it, 64 KiB chunks of command output pass at 75
            # MB/s, and a screen at 30 frames a second has room to spare. Each
            # message costs a decryption and a dispatch: a misbehaving agent costs at
            # most this much.
            max_receive_rate=1500.0,
            receive_burst=3000,
            # Agents send a heartbeat every 30 s; pinging them more often than that
            # cost a fifth of the console's CPU with 5,000 agents (benchmarks/fleet.py).
            keepalive_interval=45.0,
            idle_timeout=100.0,
        )
        # Sessions per device, newest last.
        self.sessions: dict[str, list[Session]] = {}
        # Runbook runs of this process: run id -> the task running its steps.
        self.runbook_runs: dict[str, asyncio.Task[None]] = {}
        # Terminal sessions being relayed: session id -> relay.
        self.shells: dict[str, ShellRelay] = {}
        # Commands' output on its way to the store.
        self.output = OutputBuffers(store)
        # Commands' starts on their way to the store: (device id, command id) -> start.
        self._starts: dict[tuple[str, str], _Start] = {}
        # Screen sessions being relayed.
        self.screens = ScreenHub(store)
        # Live watchers of commands (API streams): command id -> their queues.
        self._watchers: dict[str, set[asyncio.Queue[CommandEvent]]] = {}
        # Heartbeats not yet written: device id -> (time, metrics).
        self._beats: dict[str, tuple[datetime.datetime, dict[str, object] | None]] = {}
        self._flusher: asyncio.Task[None] | None = None
        # Revocations up to this time have been acted on (with a margin for clocks).
        self._revocations_checked = utcnow() - datetime.timedelta(minutes=1)

    # -- Life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Forget presence left by an earlier run and start writing heartbeats."""
        await self.store.mark_all_offline()
        # What start-up allocated stays for good: keep it out of every collection
        # (a full one over 5,000 agents' objects stalled the loop for a second).
        gc.freeze()
        self._flusher = asyncio.create_task(self._flush_heartbeats(), name="deskside-heartbeats")
        self.output.start()

    async def stop(self) -> None:
        """Close every agent channel (agents reconnect to the next console) and flush."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for task in self.runbook_runs.values():
            task.cancel()
        for start in self._starts.values():  # the agents send them again
            if start.task is not None and not start.writing:
                start.task.cancel()
        sessions = [s for group in self.sessions.values() for s in group]
        await asyncio.gather(
            *(s.channel.close(CloseCode.GOING_AWAY, "console stopping") for s in sessions),
            return_exceptions=True,
        )
        await self._write_beats()
        await self.output.stop()
        await self.store.mark_all_offline()  # none of them is connected to us any more

    async def _flush_heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_FLUSH_INTERVAL)
            try:
                await self._write_beats()
                # A device revoked by another process (the CLI) is cut off here.
                checked, self._revocations_checked = self._revocations_checked, utcnow()
                for device_id in await self.store.revoked_since(checked) & set(self.sessions):
                    logger.info("device %s was revoked; disconnecting it", device_id)
                    await self.disconnect(device_id, "device revoked")
            except Exception:
                logger.exception("writing heartbeats failed; will retry")

    async def _write_beats(self) -> None:
        beats, self._beats = self._beats, {}
        if beats:
            await self.store.record_heartbeats(beats)

    def online(self, device_id: str) -> bool:
        """Whether the device has a channel open now."""
        return bool(self.sessions.get(device_id))

    # -- Handshake -----------------------------------------------------------------------

    async def authorize(self, public_key: bytes, params: m.ClientParams) -> bool:
        """Enroll a key that brings a valid token; otherwise admit only enrolled keys."""
        if params.enrollment_token is not None:
            try:
                device = await self.store.enroll(public_key, params.enrollment_token)
            except EnrollmentRefused as exc:
                logger.info("enrollment refused: %s", exc)
                raise HandshakeError(str(exc), close_code=CloseCode.UNKNOWN_PEER) from exc
            logger.info("device %s enrolled", device.id)
            return True
        return await self.store.device_for_key(public_key) is not None

    # -- The /agent endpoint -------------------------------------------------------------

    async def handle(self, socket: WebSocket) -> None:  # type: ignore[type-arg]
        """Serve one agent connection until it closes."""
        await socket.accept()
        loop = asyncio.get_running_loop()
        connection = ServerConnection(self._static_private, None, loop.time(), self.channel_config)
        try:
            channel = await Channel.open(LitestarTransport(socket), connection, self.authorize)
        except (HandshakeError, ConnectionClosed) as exc:
            logger.info("agent handshake failed: %s", exc)
            return
        device_id = device_id_for(channel.remote_static)
        session = Session(device_id, channel)
        self.sessions.setdefault(device_id, []).append(session)
        try:
            async for message in channel:
                await self._dispatch(session, message)
        except ConnectionClosed as exc:
            logger.info("device %s disconnected: %s", device_id, exc)
        finally:
            group = self.sessions.get(device_id, [])
            if session in group:
                group.remove(session)
            if not group:
                self.sessions.pop(device_id, None)
            for waiter in session.pending.values():
                if not waiter.done():
                    waiter.set_exception(Conflict("the device disconnected"))
            for relay in [r for r in self.shells.values() if r.session is session]:
                with contextlib.suppress(Exception):
                    await self._end_shell(
                        relay,
                        m.ShellClosed(session_id=relay.view.id, error="the device disconnected"),
                    )
            with contextlib.suppress(Exception):
                await self.screens.agent_gone(session)
            if session.hello and not self.online(device_id):
                with contextlib.suppress(Exception):
                    await self.store.set_online(device_id, False)
            await channel.close()

    async def _dispatch(self, session: Session, message: m.Message) -> None:
        device_id = session.device_id
        try:
            if isinstance(message, m.Hello):
                session.hello = True
                await self.store.record_hello(device_id, message)
            elif isinstance(message, m.Heartbeat):
                metrics = msgspec.to_builtins(message.metrics) if message.metrics else None
                self._beats[device_id] = (utcnow(), metrics)
            elif isinstance(message, m.DiagnosticsSnapshot):
                await self._on_snapshot(session, message)
            elif isinstance(message, m.HelpRequest):
                await self._on_help_request(session, message)
            elif isinstance(message, m.CommandStarted):
                self._start_later(device_id, message)
            elif isinstance(message, m.CommandOutput):
                chunk = await self.output.add(
                    device_id, message.command_id, message.seq, str(message.stream), message.data
                )
                if chunk is not None:
                    self._notify(message.command_id, CommandEvent("output", chunk=chunk))
            elif isinstance(message, m.CommandExit):
                started = await self._take_start(device_id, message.command_id)
                end_seq = self.output.next_seq(message.command_id)
                await self.output.finish(message.command_id)  # the output first, then the exit
                view = await self.store.finish_command(device_id, message, started=started)
                if view is not None:
                    self._notify(
                        message.command_id, CommandEvent("exit", view=view, next_seq=end_seq)
                    )
                    # Acknowledged once recorded: the agent may forget its spooled result.
                    await session.channel.send(m.Ack(request_id=message.command_id))
            elif isinstance(message, m.ShellStarted):
                relay = self.shells.get(message.session_id)
                if relay is not None and relay.session is session:
                    await self.store.shell_started(device_id, message.session_id, message.consent)
                    relay.to_client.put_nowait(message)
            elif isinstance(message, m.ShellData):
                relay = self.shells.get(message.session_id)
                if relay is not None and relay.session is session:
                    relay.record("o", message.data)
                    relay.to_client.put_nowait(message.data)
            elif isinstance(message, m.ShellClosed):
                relay = self.shells.get(message.session_id)
                if relay is not None and relay.session is session:
                    await self._end_shell(relay, message)
            elif isinstance(
                message,
                m.ScreenFrame
                | m.ScreenStarted
                | m.ScreenRefused
                | m.ScreenEnded
                | m.ScreenGuideStatus
                | m.ScreenControlGranted
                | m.ScreenControlRefused
                | m.ScreenControlEnded
                | m.ScreenControlPaused,
            ):
                await self.screens.from_agent(session, message)
            elif isinstance(message, m.Error):
                self._on_error(session, message)
            else:
                logger.info("device %s sent an unexpected %s", device_id, type(message).__name__)
        except ConsoleError as exc:
            logger.warning("device %s: %s refused: %s", device_id, type(message).__name__, exc)
            request_id = getattr(message, "request_id", None)
            await session.channel.send(
                m.Error(
                    code=m.ErrorCode.BAD_REQUEST, message=str(exc)[:4096], request_id=request_id
                )
            )

    async def _on_snapshot(self, session: Session, message: m.DiagnosticsSnapshot) -> None:
        waiter = session.pending.get(message.request_id or "")
        if waiter is not None and not waiter.done():
            waiter.set_result(message.snapshot)
        else:
            await self.store.add_snapshot(session.device_id, message.snapshot)

    def _on_error(self, session: Session, message: m.Error) -> None:
        waiter = session.pending.get(message.request_id or "")
        if waiter is not None and not waiter.done():
            waiter.set_exception(Conflict(f"the agent answered: {message.message}"))
        else:
            logger.warning(
                "device %s reports: %s %s", session.device_id, message.code, message.message
            )

    async def _on_help_request(self, session: Session, request: m.HelpRequest) -> None:
        description = request.description.strip() or "(no description)"
        first_line = description.splitlines()[0]
        title = first_line if len(first_line) <= 80 else first_line[:79] + "…"
        ticket, created = await self.store.create_ticket(
            NewTicket(
                title=title,
                description=description,
                requester=request.requester[:256],
                device_id=session.device_id,
                impact=int(request.impact),
                urgency=int(request.urgency),
            ),
            actor=f"agent:{session.device_id}",
            source="agent",
            help_request_id=request.request_id,
            snapshot=request.snapshot,
        )
        if created:
            logger.info("device %s filed ticket #%d", session.device_id, ticket.id)
        await session.channel.send(m.Ack(request_id=request.request_id, ticket_id=ticket.id))

    # -- Requests to agents ----------------------------------------------------------------

    async def request_snapshot(self, device_id: str, timeout: float) -> SnapshotInfo:
        """Ask the device for a fresh snapshot and store it."""
        session = self._daemon_session(device_id)
        request_id = uuid.uuid4().hex
        waiter: asyncio.Future[m.Snapshot] = asyncio.get_running_loop().create_future()
        session.pending[request_id] = waiter
        try:
            await session.channel.send(m.SnapshotRequest(request_id=request_id))
            snapshot = await asyncio.wait_for(waiter, timeout)
        except TimeoutError as exc:
            raise GatewayTimeout(f"the device sent no snapshot within {timeout:g} s") from exc
        except ConnectionClosed as exc:
            raise Conflict("the device disconnected") from exc
        finally:
            session.pending.pop(request_id, None)
        return await self.store.add_snapshot(device_id, snapshot)

    # -- Commands --------------------------------------------------------------------------

    async def run_command(self, view: CommandView, reason: str) -> None:
        """Send a recorded command to its device."""
        try:
            session = self._daemon_session(view.device_id)
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
            await self.store.fail_command(view.id, f"could not reach the device: {exc}")
            raise Conflict(f"could not reach device {view.device_id}") from exc

    # -- Runbooks ---------------------------------------------------------------------------

    async def start_runbook(
        self,
        ticket_id: int,
        runbook: Runbook,
        values: dict[str, str],
        *,
        identity: ApiIdentity,
        device_id: str,
        reason: str,
    ) -> str:
        """Run a runbook's steps one after the other in the background; the run's id."""
        run_id = uuid.uuid4().hex
        await self.store.add_timeline_event(
            ticket_id,
            "runbook",
            actor=identity.actor,
            data={
                "run": run_id,
                "runbook": runbook.name,
                "params": values,
                "steps": [s.name for s in runbook.steps],
            },
        )
        task = asyncio.create_task(
            self._run_steps(run_id, ticket_id, runbook, values, identity, device_id, reason),
            name=f"deskside-runbook-{run_id}",
        )
        self.runbook_runs[run_id] = task
        if len(self.runbook_runs) > _KEPT_RUNS:  # forget the oldest finished runs
            for old_id in [i for i, t in self.runbook_runs.items() if t.done()][:-_KEPT_RUNS]:
                del self.runbook_runs[old_id]
        return run_id

    def runbook_done(self, run_id: str) -> bool:
        """Whether the run has ended (or is not one of this console process's)."""
        return run_id not in self.runbook_runs or self.runbook_runs[run_id].done()

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
            os_family = (await self.store.get_device(device_id)).os_family
            for index, step in enumerate(runbook.steps):
                argv = runbook.argv(step, os_family, values)
                if argv is None:
                    status, detail = "failed", f"step {step.name!r} has no {os_family} variant"
                    break
                try:
                    view, _ = await self.store.create_command(
                        ticket_id,
                        NewCommand(argv=argv, timeout=step.timeout, device_id=device_id),
                        identity=identity,
                        online=self.online,
                        runbook_run=run_id,
                        runbook_step=index,
                    )
                    end = await self._run_to_end(view, f"{reason} (runbook {runbook.name})")
                except ConsoleError as exc:
                    status, detail = "failed", f"step {step.name!r}: {exc}"
                    break
                if (end.status, end.exit_code) != ("finished", 0) and not step.continue_on_error:
                    status = "failed" if end.status == "finished" else end.status
                    detail = f"step {step.name!r} ended {end.status}"
                    if end.exit_code is not None:
                        detail += f" with exit code {end.exit_code}"
                    break
        except Exception as exc:  # the run ends, recorded, whatever went wrong
            logger.exception("runbook run %s failed", run_id)
            status, detail = "failed", f"console error: {type(exc).__name__}"
        with contextlib.suppress(Exception):
            await self.store.add_timeline_event(
                ticket_id,
                "runbook_result",
                actor="system",
                data={"run": run_id, "runbook": runbook.name, "status": status, "detail": detail},
            )

    async def _run_to_end(self, view: CommandView, reason: str) -> CommandView:
        """Send a command and wait for its end (bounded by its time-out and a margin)."""
        queue = self.watch(view.id)
        try:
            await self.run_command(view, reason)
            deadline = asyncio.get_running_loop().time() + view.timeout + 60
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return await self.store.get_command(view.id)
                try:
                    event = await asyncio.wait_for(queue.get(), min(remaining, 5.0))
                except TimeoutError:
                    current = await self.store.get_command(view.id)
                    if current.finished_at is not None:
                        return current
                    continue
                if event.kind == "exit" and event.view is not None:
                    return event.view
        finally:
            self.unwatch(view.id, queue)

    # -- Terminals ---------------------------------------------------------------------------

    async def open_shell(self, view: ShellView, cols: int, rows: int, reason: str) -> ShellRelay:
        """Ask the device for a terminal; the relay to read from and write to."""
        try:
            session = self._daemon_session(view.device_id)
        except Conflict:
            await self.store.close_shell(
                view.id, status="failed", exit_code=None, error="device not connected",
                transcript=b"", truncated=False,
            )  # fmt: skip
            raise
        relay = ShellRelay(view, session, cols, rows)
        self.shells[view.id] = relay
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

    async def shell_input(self, relay: ShellRelay, data: bytes) -> None:
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

    async def shell_resize(self, relay: ShellRelay, cols: int, rows: int) -> None:
        """The technician's terminal changed size."""
        if not relay.ended:
            relay.record("r", f"{cols}x{rows}")
            await relay.session.channel.send(
                m.ShellResize(session_id=relay.view.id, cols=cols, rows=rows)
            )

    async def close_shell(self, relay: ShellRelay, reason: str) -> None:
        """The technician left: end the terminal on the device and record it."""
        if relay.ended:
            return
        with contextlib.suppress(ConnectionClosed):
            await relay.session.channel.send(m.ShellClosed(session_id=relay.view.id, error=reason))
        await self._end_shell(relay, m.ShellClosed(session_id=relay.view.id, error=reason))

    async def _end_shell(self, relay: ShellRelay, closed: m.ShellClosed) -> None:
        if relay.ended:
            return
        relay.ended = True
        self.shells.pop(relay.view.id, None)
        status = (
            "refused"
            if closed.refused
            else ("failed" if closed.error and closed.exit_code is None else "closed")
        )
        relay.view = await self.store.close_shell(
            relay.view.id,
            status=status,
            exit_code=closed.exit_code,
            error=closed.error,
            transcript=bytes(relay.transcript),
            truncated=relay.truncated,
        )
        relay.to_client.put_nowait(closed)

    async def cancel_command(self, view: CommandView) -> None:
        """Ask the device to end a running command's process tree."""
        session = self._daemon_session(view.device_id)
        await session.channel.send(m.CommandCancel(command_id=view.id))

    def _start_later(self, device_id: str, message: m.CommandStarted) -> None:
        """Record a command's start in a moment, or with its exit if that comes first:
        a short command costs one transaction instead of two, and its exit is not held
        up behind the first. Nothing is lost if the console stops meanwhile: the agent
        sends the start again until the console acknowledges the exit."""
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
            view = await self.store.command_started(
                command_id, start.consent, start.at, device_id=start.device_id
            )
            start.written = True
        except Exception:
            logger.exception("recording the start of command %s failed", command_id)
            return  # the agent sends it again with the exit after a reconnect
        finally:
            if self._starts.get((start.device_id, command_id)) is start:
                del self._starts[(start.device_id, command_id)]
        if view is not None:
            self._notify(command_id, CommandEvent("started", view=view))

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

    def watch(self, command_id: str) -> asyncio.Queue[CommandEvent]:
        """A queue of the command's events from now on; give it back with ``unwatch``."""
        queue: asyncio.Queue[CommandEvent] = asyncio.Queue(maxsize=4096)
        self._watchers.setdefault(command_id, set()).add(queue)
        return queue

    def unwatch(self, command_id: str, queue: asyncio.Queue[CommandEvent]) -> None:
        """Stop watching a command."""
        watchers = self._watchers.get(command_id)
        if watchers is not None:
            watchers.discard(queue)
            if not watchers:
                del self._watchers[command_id]

    def _notify(self, command_id: str, event: CommandEvent) -> None:
        for queue in self._watchers.get(command_id, ()):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A watcher that cannot keep up reads the rest from the store.
                logger.warning("a watcher of command %s fell behind", command_id)

    async def disconnect(self, device_id: str, reason: str) -> None:
        """Close every channel of the device (after revoking it, say)."""
        sessions = list(self.sessions.get(device_id, []))
        await asyncio.gather(
            *(s.channel.close(CloseCode.UNKNOWN_PEER, reason) for s in sessions),
            return_exceptions=True,
        )

    def daemon_session(self, device_id: str) -> Session:
        """The device's daemon connection (the newest); ``Conflict`` if it has none."""
        return self._daemon_session(device_id)

    def _daemon_session(self, device_id: str) -> Session:
        sessions = [s for s in self.sessions.get(device_id, []) if s.hello]
        if not sessions:
            raise Conflict(f"device {device_id} is not connected")
        return sessions[-1]
