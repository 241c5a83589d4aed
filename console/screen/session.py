"""A relayed screen session's state: its viewers, its agent, guidance and control.

The data the hub (``relay.py``) and the guidance and control relay (``remote.py``)
share; neither imports the other's internals for it.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from deskside.protocol import messages as m
from deskside.protocol.ratelimit import TokenBucket

__all__ = [
    "RECORDING_CAP",
    "RECORDING_MAGIC",
    "AgentLink",
    "ControlState",
    "RemoteRelay",
    "ScreenRelay",
    "ScreenViewer",
    "SessionState",
    "Timeline",
]


class SessionState(enum.StrEnum):
    """Where a relayed screen session is."""

    ASKING = "asking"  # the device's user is asked
    STARTED = "started"  # frames flow
    ENDED = "ended"


class ControlState(enum.StrEnum):
    """Whether the technician controls the pointer and keyboard (a second consent)."""

    OFF = "off"
    ASKING = "asking"
    ON = "on"


RECORDING_MAGIC: Final = b"DSR1"
# Largest recording kept per session; frames beyond it are relayed, not recorded.
RECORDING_CAP: Final = 64 << 20
_RECORD = struct.Struct("<Id")
# Keyframe requests and settings changes forwarded per second (and at once), at most.
REQUEST_RATE: Final = 4.0
REQUEST_BURST: Final = 8
# Items, and bytes, a viewer may have waiting before it is dropped as too slow.
VIEWER_QUEUE: Final = 512
VIEWER_QUEUE_BYTES: Final = 64 << 20

# Guidance messages (pointer moves included) per second and at once, per session.
GUIDE_RATE: Final = 60.0
GUIDE_BURST: Final = 120
# Input events per second and at once, per session (the agent's own limit is 500/s).
INPUT_RATE: Final = 300.0
INPUT_BURST: Final = 600
# Control requests per second and at once.
CONTROL_RATE: Final = 0.5
CONTROL_BURST: Final = 3


def _bucket(rate: float, burst: int) -> TokenBucket:
    return TokenBucket(rate, burst, time.monotonic())


@dataclass(eq=False)
class RemoteRelay:
    """Guidance and control state of one relayed session."""

    control: ControlState = ControlState.OFF
    # The last guidance status from the agent, for viewers who join later.
    guidance: dict[str, Any] | None = None
    guides: TokenBucket = field(default_factory=lambda: _bucket(GUIDE_RATE, GUIDE_BURST))
    inputs: TokenBucket = field(default_factory=lambda: _bucket(INPUT_RATE, INPUT_BURST))
    requests: TokenBucket = field(default_factory=lambda: _bucket(CONTROL_RATE, CONTROL_BURST))
    # Counts for the timeline.
    drawings: int = 0
    inputs_relayed: int = 0
    inputs_refused: int = 0
    # When a viewer was last told its input was refused (monotonic).
    refused_told: float = 0.0
    # The encoding asked for, which viewers can decode H.264, and what the agent uses.
    mode: m.ScreenMode = m.ScreenMode.TILES
    video_ok: dict[Any, bool] = field(default_factory=dict)
    agent_mode: m.ScreenMode = m.ScreenMode.TILES

    def replay(self) -> list[dict[str, Any]]:
        """What a viewer joining now needs to know."""
        items: list[dict[str, Any]] = []
        if self.guidance is not None:
            items.append(self.guidance)
        if self.control != ControlState.OFF:
            items.append({"type": "control", "state": self.control})
        return items

    def summary(self) -> dict[str, int]:
        """Counts for the session's end on the timeline."""
        return {
            "drawings": self.drawings,
            "inputs": self.inputs_relayed,
            "inputs_refused": self.inputs_refused,
        }


class AgentLink(Protocol):
    """What the hub needs of an agent connection (the gateway's ``Session``)."""

    @property
    def device_id(self) -> str:
        """The device the channel authenticated as."""
        ...

    @property
    def channel(self) -> Any:
        """The agent's channel (``send(message)``)."""
        ...


class Timeline(Protocol):
    """Where the hub records a session's steps (the console's ``Store``)."""

    async def record_screen_event(
        self, ticket_id: int, kind: str, *, actor: str, data: dict[str, Any]
    ) -> None:
        """Record one step on the ticket and in the audit log."""
        ...

    async def save_screen_recording(
        self,
        session_id: str,
        *,
        ticket_id: int,
        device_id: str,
        requested_by: str,
        started_at: datetime.datetime,
        reason: str,
        frames: int,
        data: bytes,
        truncated: bool,
    ) -> None:
        """Keep a session's recording with its ticket."""
        ...


@dataclass(eq=False)
class ScreenViewer:
    """One viewer's WebSocket, from the relay's side."""

    actor: str
    # What to send it: JSON-able dicts (text) or packed frames (binary); None: go away.
    queue: asyncio.Queue[dict[str, Any] | bytes | None] = field(
        default_factory=lambda: asyncio.Queue(VIEWER_QUEUE)
    )
    # The last frame it drew.
    acked: int = -1
    # Bytes of frames waiting in the queue.
    queued_bytes: int = 0

    def put(self, item: dict[str, Any] | bytes | None) -> bool:
        """Queue an item; False if the viewer is too far behind."""
        size = len(item) if isinstance(item, bytes) else 0
        if size and self.queued_bytes + size > VIEWER_QUEUE_BYTES:
            return False
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        self.queued_bytes += size
        return True

    async def get(self) -> dict[str, Any] | bytes | None:
        """The next item to send to the viewer."""
        item = await self.queue.get()
        if isinstance(item, bytes):
            self.queued_bytes -= len(item)
        return item


@dataclass(eq=False)
class ScreenRelay:
    """One screen session between an agent and its viewers."""

    session_id: str
    ticket_id: int
    device_id: str
    actor: str
    agent: AgentLink
    viewers: set[ScreenViewer] = field(default_factory=set)
    state: SessionState = SessionState.ASKING
    # The "started" message, for viewers who join later.
    started: dict[str, Any] | None = None
    # The last frame seq received, and the highest acknowledged to the agent.
    last_seq: int = -1
    agent_acked: int = -1
    frames: int = 0
    size: int = 0  # bytes of image data relayed
    opened_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    # Keyframe requests and settings forwarded to the agent: a viewer cannot flood it.
    requests: TokenBucket = field(
        default_factory=lambda: TokenBucket(REQUEST_RATE, REQUEST_BURST, time.monotonic())
    )
    # The recording so far, if the session is recorded; whether it hit the cap.
    recording: bytearray | None = None
    truncated: bool = False
    started_wall: datetime.datetime | None = None
    # Guidance and control (remote.py).
    remote: RemoteRelay = field(default_factory=RemoteRelay)

    def record(self, packed: bytes) -> None:
        """Add a frame (part) to the recording, if there is one."""
        if self.recording is None or self.truncated or self.started_at is None:
            return
        if len(self.recording) + _RECORD.size + len(packed) > RECORDING_CAP:
            self.truncated = True
            return
        self.recording += _RECORD.pack(len(packed), time.monotonic() - self.started_at)
        self.recording += packed
