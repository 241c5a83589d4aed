"""Screen sessions relayed between a device's agent and the technicians' viewers.

Theory of operation::

    viewer WebSocket ──> permission (store.request_screen) ──> ScreenOpen to the agent
    agent: ScreenStarted / ScreenRefused / ScreenEnded ──> JSON to every viewer,
                                                          and on the ticket's timeline
    agent: ScreenFrame ──> packed (``pack_frame``) ──> binary to every viewer
    viewer: ack / keyframe / settings ──> ScreenAck / ScreenKeyframeRequest /
                                          ScreenSettings to the agent
    last viewer gone ──> ScreenEnded(viewer_left) to the agent
    agent gone ──> "ended" (disconnected) to every viewer

One relay per session; more than one viewer may watch it (several tabs or windows
of the technician who asked: the user consented to *that* technician, so another
one must ask for their own session). The agent is acknowledged up to the frame
every viewer has drawn, so the slowest viewer sets the pace; a viewer whose queue
overflows is dropped.

The binary frame sent to viewers (little-endian; ``static/screen.js`` reads it)::

    0   "DSF1"            4 bytes
    4   seq               u32
    8   width, height     u16, u16
    12  flags             u8: 1 keyframe, 2 final part, 4 pointer, 8 pointer
                              visible, 16 pointer shape
    13  encoding          u8: 0 JPEG, 1 H.264
    14  part              u16
    16  captured_at       f64, seconds since the epoch (agent's clock)
    24  rect count        u16
    26  pointer x, y      i16, i16
    30  hot spot x, y     u16, u16
    34  shape id          u32
    38  shape length      u32, then the shape (PNG)
    ..  each rect: x, y, width, height (u16 each), length (u32), then the data

A session opened with ``record`` is recorded as relayed (the JPEG rects are not
decoded or re-encoded) and kept with its ticket when it ends::

    "DSR1", header length (u32), header (JSON: the "started" message, ticket,
    device, requested_by, started_at), then per frame part: length (u32),
    seconds since the start (f64), the binary frame above

``static/replay.html`` plays it back. A recording stops growing at
``RECORDING_CAP`` bytes (and says so: ``truncated``).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import struct
import time
from typing import Any, Final

from deskside.console.agents import AgentHandlers
from deskside.console.events import EventBus
from deskside.protocol import messages as m
from deskside.protocol.errors import ConnectionClosed

from . import remote as screenremote
from .events import ScreenSessionEnded, ScreenSessionStarted
from .session import (
    RECORDING_MAGIC,
    AgentLink,
    ScreenRelay,
    ScreenViewer,
    SessionState,
    Timeline,
)

__all__ = ["ScreenHub", "pack_frame"]

logger = logging.getLogger(__name__)

MAGIC: Final = b"DSF1"
_HEADER = struct.Struct("<4sIHHBBHdHhhHHII")
_RECT = struct.Struct("<HHHHI")
_ENCODINGS: Final = {m.ScreenEncoding.JPEG: 0, m.ScreenEncoding.H264: 1}


def pack_frame(frame: m.ScreenFrame) -> bytes:
    """A frame (part) in the viewers' binary layout (module docstring)."""
    cursor = frame.cursor
    flags = (1 if frame.keyframe else 0) | (2 if frame.final else 0)
    shape = b""
    cx = cy = hx = hy = shape_id = 0
    if cursor is not None:
        flags |= 4 | (8 if cursor.visible else 0)
        cx, cy, hx, hy, shape_id = cursor.x, cursor.y, cursor.hot_x, cursor.hot_y, cursor.shape_id
        cx, cy = max(-32768, min(32767, cx)), max(-32768, min(32767, cy))
        if cursor.shape is not None:
            flags |= 16
            shape = cursor.shape
    parts = [
        _HEADER.pack(
            MAGIC,
            frame.seq & 0xFFFFFFFF,
            min(frame.width, 65535),
            min(frame.height, 65535),
            flags,
            _ENCODINGS[frame.encoding],
            frame.part,
            frame.captured_at,
            len(frame.rects),
            cx,
            cy,
            min(hx, 65535),
            min(hy, 65535),
            shape_id & 0xFFFFFFFF,
            len(shape),
        ),
        shape,
    ]
    for rect in frame.rects:
        parts.append(
            _RECT.pack(
                min(rect.x, 65535),
                min(rect.y, 65535),
                min(rect.width, 65535),
                min(rect.height, 65535),
                len(rect.data),
            )
        )
        parts.append(rect.data)
    return b"".join(parts)


class ScreenHub:
    """Every screen session relayed by this console process."""

    def __init__(self, timeline: Timeline, bus: EventBus | None = None) -> None:
        self._timeline = timeline
        self._bus = bus
        # Sessions by id.
        self.relays: dict[str, ScreenRelay] = {}

    def register(self, handlers: AgentHandlers) -> None:
        """Frames, a session's start and end, guidance and control come here."""
        handlers.register(
            (
                m.ScreenFrame,
                m.ScreenStarted,
                m.ScreenRefused,
                m.ScreenEnded,
                *screenremote.AGENT_MESSAGES,
            ),
            self.from_agent,
        )

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop: sessions end with their channels."""

    def find(self, ticket_id: int, device_id: str, actor: str) -> ScreenRelay | None:
        """The session of this ticket, device and technician still going, if any."""
        for relay in self.relays.values():
            key = (relay.ticket_id, relay.device_id, relay.actor)
            if key == (ticket_id, device_id, actor) and relay.state != SessionState.ENDED:
                return relay
        return None

    def busy(self, device_id: str) -> ScreenRelay | None:
        """A session of another technician (or ticket) on this device, if any."""
        for relay in self.relays.values():
            if relay.device_id == device_id and relay.state != SessionState.ENDED:
                return relay
        return None

    async def open(
        self,
        agent: AgentLink,
        viewer: ScreenViewer,
        *,
        session_id: str,
        ticket_id: int,
        requested_by: str,
        reason: str,
        monitor: int,
        quality: int,
        max_fps: float,
        record: bool = False,
    ) -> ScreenRelay:
        """Start a session: the agent is asked (and asks its user)."""
        relay = ScreenRelay(
            session_id=session_id,
            ticket_id=ticket_id,
            device_id=agent.device_id,
            actor=viewer.actor,
            agent=agent,
            recording=bytearray() if record else None,
        )
        relay.viewers.add(viewer)
        self.relays[session_id] = relay
        viewer.put({"type": "asking", "session": session_id})
        try:
            await agent.channel.send(
                m.ScreenOpen(
                    session_id=session_id,
                    ticket_id=ticket_id,
                    requested_by=requested_by[:256],
                    reason=reason[:4096],
                    monitor=monitor,
                    quality=quality,
                    max_fps=max_fps,
                    recorded=record,
                )
            )
        except ConnectionClosed:
            await self._end(relay, "screen_ended", m.ScreenEndReason.DISCONNECTED, "agent gone")
        return relay

    async def join(self, relay: ScreenRelay, viewer: ScreenViewer) -> None:
        """Another window of the same technician watches too."""
        viewer.acked = relay.last_seq
        relay.viewers.add(viewer)
        viewer.put({"type": "asking", "session": relay.session_id})
        if relay.started is not None:
            viewer.put(relay.started)
            for item in relay.remote.replay():
                viewer.put(item)
            await self._send(relay, m.ScreenKeyframeRequest(session_id=relay.session_id))

    async def leave(self, relay: ScreenRelay, viewer: ScreenViewer) -> None:
        """A viewer went away; the last one ends the session."""
        relay.viewers.discard(viewer)
        relay.remote.video_ok.pop(viewer, None)
        if relay.state == SessionState.ENDED:
            return
        if relay.viewers:
            await self._ack(relay)
            return
        await self._send(
            relay,
            m.ScreenEnded(
                session_id=relay.session_id,
                reason=m.ScreenEndReason.VIEWER_LEFT,
                error="the technician closed the viewer",
            ),
        )
        await self._end(relay, "screen_ended", m.ScreenEndReason.VIEWER_LEFT, "")

    async def viewer_ack(self, relay: ScreenRelay, viewer: ScreenViewer, seq: int) -> None:
        """A viewer drew frame ``seq``."""
        if seq <= relay.last_seq:
            viewer.acked = max(viewer.acked, seq)
            await self._ack(relay)

    async def keyframe(self, relay: ScreenRelay) -> None:
        """A viewer needs a whole frame (dropped beyond ``REQUEST_RATE``)."""
        if relay.requests.consume(time.monotonic()):
            await self._send(relay, m.ScreenKeyframeRequest(session_id=relay.session_id))

    async def settings(
        self, relay: ScreenRelay, *, quality: int | None, max_fps: float | None, monitor: int | None
    ) -> None:
        """A viewer changed the settings (dropped beyond ``REQUEST_RATE``)."""
        if not relay.requests.consume(time.monotonic()):
            return
        await self._send(
            relay,
            m.ScreenSettings(
                session_id=relay.session_id, quality=quality, max_fps=max_fps, monitor=monitor
            ),
        )

    async def from_agent(self, agent: AgentLink, message: m.Message) -> None:
        """A screen message from an agent."""
        session_id = getattr(message, "session_id", "")
        relay = self.relays.get(session_id)
        if relay is None or relay.agent is not agent:
            logger.debug("device %s: %s for no session", agent.device_id, type(message).__name__)
            return
        if isinstance(message, m.ScreenFrame):
            if relay.state != SessionState.STARTED:
                return
            packed = pack_frame(message)
            relay.record(packed)
            relay.size += sum(len(r.data) for r in message.rects)
            if message.final:
                relay.last_seq = max(relay.last_seq, message.seq)
                relay.frames += 1
            for viewer in list(relay.viewers):
                if not viewer.put(packed):
                    logger.warning("screen %s: a viewer fell behind; dropped", session_id)
                    relay.viewers.discard(viewer)
                    while not viewer.queue.empty():  # what it has not read is moot
                        viewer.queue.get_nowait()
                    viewer.queued_bytes = 0
                    viewer.put(None)
            if not relay.viewers:
                await self.leave(relay, ScreenViewer(actor=relay.actor))
        elif isinstance(message, m.ScreenStarted):
            relay.state = SessionState.STARTED
            relay.started_at = time.monotonic()
            relay.started = {
                "type": "started",
                "session": session_id,
                "monitor": message.monitor,
                "monitors": [
                    {
                        "index": mon.index,
                        "left": mon.left,
                        "top": mon.top,
                        "width": mon.width,
                        "height": mon.height,
                        "primary": mon.primary,
                    }
                    for mon in message.monitors
                ],
                "consent": message.consent,
            }
            self._broadcast(relay, relay.started)
            if relay.recording is not None:
                relay.started_wall = datetime.datetime.now(datetime.UTC)
                header = json.dumps(
                    {
                        **relay.started,
                        "ticket": relay.ticket_id,
                        "device": relay.device_id,
                        "requested_by": relay.actor,
                        "started_at": relay.started_wall.isoformat(),
                    }
                ).encode()
                relay.recording += RECORDING_MAGIC + struct.pack("<I", len(header)) + header
            await self._record(
                relay,
                "screen_started",
                {"consent": message.consent, "recorded": relay.recording is not None},
            )
        elif isinstance(message, screenremote.AGENT_MESSAGES):
            if relay.state == SessionState.STARTED:
                await screenremote.from_agent(relay, message, self._timeline)
        elif isinstance(message, m.ScreenRefused):
            await self._end(relay, "screen_refused", message.reason, message.error)
        elif isinstance(message, m.ScreenEnded):
            await self._end(relay, "screen_ended", message.reason, message.error)

    async def from_viewer(
        self, relay: ScreenRelay, viewer: ScreenViewer, kind: str, text: str
    ) -> None:
        """Guidance, control and input from a viewer (``screenremote``)."""
        await screenremote.from_viewer(relay, viewer, kind, text, self._timeline)

    async def agent_gone(self, agent: AgentLink) -> None:
        """The agent's channel closed: its sessions end."""
        for relay in [r for r in self.relays.values() if r.agent is agent]:
            await self._end(
                relay, "screen_ended", m.ScreenEndReason.DISCONNECTED, "the device disconnected"
            )

    def _broadcast(self, relay: ScreenRelay, item: dict[str, Any]) -> None:
        for viewer in relay.viewers:
            viewer.put(item)

    async def _ack(self, relay: ScreenRelay) -> None:
        if not relay.viewers:
            return
        seq = min(v.acked for v in relay.viewers)
        if seq > relay.agent_acked:
            relay.agent_acked = seq
            await self._send(relay, m.ScreenAck(session_id=relay.session_id, seq=seq))

    async def _send(self, relay: ScreenRelay, message: m.Message) -> None:
        if relay.state == SessionState.ENDED:
            return
        with contextlib.suppress(ConnectionClosed):
            await relay.agent.channel.send(message)

    async def _end(
        self, relay: ScreenRelay, kind: str, reason: m.ScreenEndReason, error: str
    ) -> None:
        if relay.state == SessionState.ENDED:
            return
        relay.state = SessionState.ENDED
        self.relays.pop(relay.session_id, None)
        what = "refused" if kind == "screen_refused" else "ended"
        self._broadcast(relay, {"type": what, "reason": str(reason), "error": error})
        for viewer in relay.viewers:
            viewer.put(None)
        data: dict[str, Any] = {"reason": str(reason), "error": error}
        if relay.started_at is not None:
            data.update(await screenremote.session_ended(relay, self._timeline))
        if kind == "screen_ended" and relay.started_at is not None:
            data.update(
                duration=round(time.monotonic() - relay.started_at, 3),
                frames=relay.frames,
                bytes=relay.size,
            )
            if relay.recording is not None and relay.started_wall is not None:
                data.update(recording_bytes=len(relay.recording), truncated=relay.truncated)
                try:
                    await self._timeline.save_screen_recording(
                        relay.session_id,
                        ticket_id=relay.ticket_id,
                        device_id=relay.device_id,
                        requested_by=relay.actor,
                        started_at=relay.started_wall,
                        reason=str(reason),
                        frames=relay.frames,
                        data=bytes(relay.recording),
                        truncated=relay.truncated,
                    )
                except Exception:
                    logger.exception("cannot keep the recording of %s", relay.session_id)
                relay.recording = None
        await self._record(relay, kind, data)

    async def _record(self, relay: ScreenRelay, kind: str, data: dict[str, Any]) -> None:
        actor = relay.actor if kind != "screen_started" else f"agent:{relay.device_id}"
        if kind in ("screen_refused",) or data.get("reason") in ("user_stopped", "denied"):
            actor = f"agent:{relay.device_id}"
        await screenremote.record_step(self._timeline, relay, kind, actor, data)
        if self._bus is None:
            return
        if kind == "screen_started":
            self._bus.publish(
                ScreenSessionStarted(
                    ticket_id=relay.ticket_id,
                    session_id=relay.session_id,
                    device_id=relay.device_id,
                    consent=str(data["consent"]),
                )
            )
        elif kind in ("screen_ended", "screen_refused"):
            self._bus.publish(
                ScreenSessionEnded(
                    ticket_id=relay.ticket_id,
                    session_id=relay.session_id,
                    device_id=relay.device_id,
                    reason=str(data.get("reason", "")),
                    refused=kind == "screen_refused",
                )
            )
