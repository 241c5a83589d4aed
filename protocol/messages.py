"""The wire messages exchanged between agent and console.

Every message is a frozen ``msgspec.Struct`` tagged with its ``type``; together they
form the ``Message`` union, which the codec (``deskside.protocol.codec``) encodes as
MessagePack. Each message travels encrypted inside the secure channel
(``deskside.protocol.connection``), never in clear.

Rules that keep the protocol evolvable:

* A field added to an existing message has a default, so an older peer that does
  not know it decodes the message all the same (unknown fields are ignored).
* A new message gets a new tag; an older peer reports it as unknown and goes on.
* A change that an older peer cannot understand bumps ``PROTOCOL_VERSION``; the
  handshake agrees on the highest version both sides support.

Every string, byte string and list has an upper bound, checked while decoding, so a
peer cannot make the other side hold more than the message-size limit allows.
"""

from __future__ import annotations

import enum
from typing import Annotated, NewType, TypeAlias, get_args

import msgspec
from msgspec import Meta

__all__ = [
    "CHAT_TEXT_MAX",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "Ack",
    "AgentMessage",
    "BatteryInfo",
    "ChatAck",
    "ChatDelivered",
    "ChatMessage",
    "ChatReply",
    "ClientParams",
    "Close",
    "CollectorError",
    "CommandCancel",
    "CommandExit",
    "CommandId",
    "CommandOutput",
    "CommandRequest",
    "CommandStarted",
    "ConsoleMessage",
    "CpuInfo",
    "DeviceId",
    "DiagnosticsSnapshot",
    "DiskInfo",
    "Error",
    "ErrorCode",
    "GuideClear",
    "GuideDraw",
    "GuidePointer",
    "GuideShape",
    "Heartbeat",
    "Hello",
    "HelpRequest",
    "Impact",
    "InputKey",
    "InputPointer",
    "InterfaceInfo",
    "KeyModifier",
    "LogEntry",
    "MemoryInfo",
    "Message",
    "Metrics",
    "NetworkInfo",
    "OsFamily",
    "OsInfo",
    "OutputStream",
    "Ping",
    "Point",
    "PointerAction",
    "PointerButton",
    "Pong",
    "ProcessInfo",
    "ReachabilityCheck",
    "RequestId",
    "ScreenAck",
    "ScreenControlEnded",
    "ScreenControlGranted",
    "ScreenControlPaused",
    "ScreenControlReason",
    "ScreenControlRefused",
    "ScreenControlRequest",
    "ScreenCursor",
    "ScreenEncoding",
    "ScreenEndReason",
    "ScreenEnded",
    "ScreenFrame",
    "ScreenGuideStatus",
    "ScreenKeyframeRequest",
    "ScreenMode",
    "ScreenMonitor",
    "ScreenOpen",
    "ScreenRect",
    "ScreenRefused",
    "ScreenSetMode",
    "ScreenSettings",
    "ScreenStarted",
    "ServerParams",
    "ServiceInfo",
    "ShellClosed",
    "ShellData",
    "ShellOpen",
    "ShellResize",
    "ShellStarted",
    "Snapshot",
    "SnapshotRequest",
    "TicketId",
    "Urgency",
    "UserSession",
    "VideoFrame",
]

# The version this code speaks best, and every version it can still speak.
PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

# Identifiers. Requests and commands are named by the side that creates them
# (a random UUID in hex); tickets are numbered by the console.
RequestId = NewType("RequestId", str)
CommandId = NewType("CommandId", str)
DeviceId = NewType("DeviceId", str)
TicketId = NewType("TicketId", int)

# Bounded building blocks.
Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Name = Annotated[str, Meta(max_length=256)]
Line = Annotated[str, Meta(max_length=4096)]
Text = Annotated[str, Meta(max_length=65536)]
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Seconds = Annotated[float, Meta(ge=0.0, le=1e12)]
Timestamp = Annotated[float, Meta(ge=0.0, le=1e11)]  # seconds since the epoch
Percent = Annotated[float, Meta(ge=0.0, le=100.0)]
Chunk = Annotated[bytes, Meta(max_length=1 << 20)]
Token = Annotated[str, Meta(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


class _Message(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every wire message: frozen, tagged with its snake_case type name."""


# -- Closed sets ---------------------------------------------------------------------


class OsFamily(enum.StrEnum):
    """The operating system family of a device."""

    LINUX = "linux"
    MACOS = "macos"
    WINDOWS = "windows"
    OTHER = "other"


class Impact(enum.IntEnum):
    """How many people or how much of the business a problem touches (1 = most)."""

    HIGH = 1
    MEDIUM = 2
    LOW = 3


class Urgency(enum.IntEnum):
    """How soon the problem hurts (1 = at once)."""

    HIGH = 1
    MEDIUM = 2
    LOW = 3


class OutputStream(enum.StrEnum):
    """Which output of a command a chunk comes from."""

    STDOUT = "stdout"
    STDERR = "stderr"


class ErrorCode(enum.StrEnum):
    """Why a request failed; sent in ``Error`` messages."""

    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    REFUSED = "refused"  # refused by policy or by the user
    UNSUPPORTED = "unsupported"
    BUSY = "busy"
    INTERNAL = "internal"


# -- Channel messages (handled by the connection, never by the application) -----------


class ClientParams(_Message, frozen=True, tag="client_params"):
    """Payload of the first handshake message, from the agent (initiator)."""

    versions: Annotated[list[Annotated[int, Meta(ge=1, le=65535)]], Meta(max_length=16)]
    agent_version: Name = ""
    max_message_size: Annotated[int, Meta(ge=1024, le=1 << 30)] = 16 << 20
    # A one-time enrollment token: present only when an agent enrolls its new key.
    # It travels encrypted to the console's pinned key, never in clear.
    enrollment_token: Token | None = None


class ServerParams(_Message, frozen=True, tag="server_params"):
    """Payload of the second handshake message, from the console (responder)."""

    version: Annotated[int, Meta(ge=1, le=65535)]
    console_version: Name = ""
    heartbeat_interval: Annotated[float, Meta(ge=1.0, le=3600.0)] = 30.0
    max_message_size: Annotated[int, Meta(ge=1024, le=1 << 30)] = 16 << 20
    # The console's limit on the agent's messages (a second, on average, and at once);
    # the agent paces itself below it rather than be disconnected.
    max_message_rate: Annotated[float, Meta(gt=0.0, le=1e6)] | None = None
    message_burst: Annotated[int, Meta(ge=1, le=1 << 20)] = 1000


class Ping(_Message, frozen=True, tag="ping"):
    """Keep-alive and round-trip probe; the peer answers with a ``Pong``."""

    nonce: Count


class Pong(_Message, frozen=True, tag="pong"):
    """Answer to a ``Ping`` with the same nonce."""

    nonce: Count


class Close(_Message, frozen=True, tag="close"):
    """The sender is closing the channel, with a code and a reason for the logs."""

    code: Annotated[int, Meta(ge=1000, le=4999)]
    reason: Annotated[str, Meta(max_length=123)] = ""


# -- Diagnostics -----------------------------------------------------------------------


class OsInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The operating system and machine identity."""

    family: OsFamily
    name: Name  # "Debian GNU/Linux 12 (bookworm)", "Windows 11 Pro", ...
    release: Name = ""  # kernel release or build number
    version: Name = ""
    arch: Name = ""
    hostname: Name = ""


class Metrics(msgspec.Struct, frozen=True, kw_only=True):
    """Light metrics carried by every heartbeat."""

    cpu_percent: Percent
    memory_percent: Percent
    load1: Annotated[float, Meta(ge=0.0, le=1e6)] | None = None
    uptime: Seconds = 0.0
    disk_min_free_percent: Percent | None = None


class CpuInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Processor model, counts and load."""

    model: Name = ""
    logical: Count = 0
    physical: Count | None = None
    percent: Percent = 0.0
    load: Annotated[list[Annotated[float, Meta(ge=0.0)]], Meta(max_length=3)] = []
    frequency_mhz: Annotated[float, Meta(ge=0.0)] | None = None


class MemoryInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Physical memory and swap, in bytes."""

    total: Count
    available: Count
    percent: Percent
    swap_total: Count = 0
    swap_used: Count = 0


class DiskInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One mounted file system."""

    mountpoint: Line
    device: Line = ""
    fstype: Name = ""
    total: Count = 0
    free: Count = 0
    percent: Percent = 0.0


class InterfaceInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One network interface and its addresses."""

    name: Name
    is_up: bool = False
    mac: Name = ""
    addresses: Annotated[list[Name], Meta(max_length=64)] = []
    speed_mbps: Count | None = None


class ReachabilityCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Whether a target answered, and how fast."""

    target: Line  # what was checked, e.g. "gateway 192.0.2.1" or "dns example.org"
    ok: bool
    latency_ms: Annotated[float, Meta(ge=0.0)] | None = None
    detail: Line = ""


class NetworkInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Routing, name resolution and reachability."""

    default_gateway: Name | None = None
    dns_servers: Annotated[list[Name], Meta(max_length=32)] = []
    checks: Annotated[list[ReachabilityCheck], Meta(max_length=64)] = []


class ProcessInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One process among the top consumers."""

    pid: Count
    name: Name
    user: Name = ""
    cpu_percent: Annotated[float, Meta(ge=0.0)] = 0.0
    memory_rss: Count = 0
    cmdline: Line = ""


class ServiceInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A system service and its state (the snapshot lists failed ones)."""

    name: Name
    state: Name
    description: Line = ""


class UserSession(msgspec.Struct, frozen=True, kw_only=True):
    """A logged-in user."""

    name: Name
    terminal: Name = ""
    host: Name = ""
    started: Timestamp | None = None


class BatteryInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Battery charge and power source."""

    percent: Percent
    plugged: bool | None = None
    seconds_left: Count | None = None
    # Full charge as a share of the design capacity (a worn battery holds less); None
    # where the OS does not say.
    health_percent: Percent | None = None


class LogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A recent error from the system's logs."""

    time: Timestamp | None = None
    source: Name = ""
    message: Line


class CollectorError(msgspec.Struct, frozen=True, kw_only=True):
    """A collector that failed or timed out; the rest of the snapshot is still good."""

    collector: Name
    error: Line


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One diagnostics snapshot of a device: a versioned document.

    Sections a collector could not fill are left empty and named in ``errors``.
    """

    schema: Annotated[int, Meta(ge=1)] = 1
    taken_at: Timestamp
    os: OsInfo
    uptime: Seconds | None = None
    cpu: CpuInfo | None = None
    memory: MemoryInfo | None = None
    disks: Annotated[list[DiskInfo], Meta(max_length=256)] = []
    interfaces: Annotated[list[InterfaceInfo], Meta(max_length=256)] = []
    network: NetworkInfo | None = None
    processes: Annotated[list[ProcessInfo], Meta(max_length=256)] = []
    failed_services: Annotated[list[ServiceInfo], Meta(max_length=1024)] = []
    users: Annotated[list[UserSession], Meta(max_length=256)] = []
    battery: BatteryInfo | None = None
    # Updates wait for a restart; None where the OS does not say.
    pending_reboot: bool | None = None
    logs: Annotated[list[LogEntry], Meta(max_length=1024)] = []
    errors: Annotated[list[CollectorError], Meta(max_length=64)] = []


# -- Application messages ----------------------------------------------------------------


class Hello(_Message, frozen=True, tag="hello"):
    """First message from the agent after the handshake: who and what it is."""

    agent_version: Name
    os: OsInfo
    boot_time: Timestamp | None = None
    # Whether the agent runs in a session with a display it can capture (X11), so
    # that a technician is told before asking for a screen; None from older agents.
    display: bool | None = None


class Heartbeat(_Message, frozen=True, tag="heartbeat"):
    """Periodic sign of life from the agent, with light metrics."""

    sent_at: Timestamp
    metrics: Metrics | None = None


class SnapshotRequest(_Message, frozen=True, tag="snapshot_request"):
    """The console asks the agent for a fresh diagnostics snapshot."""

    request_id: Id


class DiagnosticsSnapshot(_Message, frozen=True, tag="diagnostics"):
    """A diagnostics snapshot, in answer to a request or sent unasked."""

    snapshot: Snapshot
    request_id: Id | None = None


class HelpRequest(_Message, frozen=True, tag="help_request"):
    """The user asks for help from the agent; the console files a ticket.

    ``request_id`` is chosen by the agent and makes delivery idempotent: a request
    spooled and sent again after a reconnect files one ticket, not two.
    """

    request_id: Id
    description: Text
    created_at: Timestamp
    impact: Impact = Impact.LOW
    urgency: Urgency = Urgency.MEDIUM
    requester: Name = ""
    snapshot: Snapshot | None = None


class CommandRequest(_Message, frozen=True, tag="command_request"):
    """The console asks the agent to run a command for a ticket.

    Without ``shell`` the command is ``argv`` run directly; with it, ``argv`` holds
    one string for the platform's shell. With ``script``, ``argv`` holds the
    arguments appended to the agent's named script, and may be empty; otherwise an
    empty ``argv`` is refused by the agent.
    """

    command_id: Id
    ticket_id: Annotated[int, Meta(ge=1, le=2**63 - 1)]
    argv: Annotated[
        list[Annotated[str, Meta(max_length=32768)]], Meta(min_length=0, max_length=1024)
    ]
    requested_by: Name
    shell: bool = False
    timeout: Annotated[float, Meta(gt=0.0, le=86400.0)] = 60.0
    cwd: Line | None = None
    # What the user is shown when asked for consent: the ticket's title.
    reason: Line = ""
    # Run the agent's own named script (from its policy) with ``argv`` as arguments.
    script: Name | None = None


class CommandStarted(_Message, frozen=True, tag="command_started"):
    """The agent's policy and the user allowed a command, and it started."""

    command_id: Id
    consent: Name = ""  # how it was allowed: "user", "notify", "policy"


class CommandOutput(_Message, frozen=True, tag="command_output"):
    """A chunk of a running command's output, numbered from 0 per command."""

    command_id: Id
    seq: Count
    stream: OutputStream
    data: Chunk


class CommandExit(_Message, frozen=True, tag="command_exit"):
    """A command ended: its exit code (None if it never started) and how."""

    command_id: Id
    exit_code: Annotated[int, Meta(ge=-(2**31), le=2**32)] | None
    duration: Seconds
    timed_out: bool = False
    cancelled: bool = False
    output_truncated: bool = False
    # Refused by the agent's policy or by the user; ``error`` says why.
    refused: bool = False
    error: Line = ""


class CommandCancel(_Message, frozen=True, tag="command_cancel"):
    """The technician cancels a running command: its process tree is ended."""

    command_id: Id


class ShellOpen(_Message, frozen=True, tag="shell_open"):
    """The console asks for an interactive terminal (a PTY on POSIX) for a ticket."""

    session_id: Id
    ticket_id: Annotated[int, Meta(ge=1, le=2**63 - 1)]
    requested_by: Name
    cols: Annotated[int, Meta(ge=1, le=1000)] = 80
    rows: Annotated[int, Meta(ge=1, le=1000)] = 24
    reason: Line = ""


class ShellStarted(_Message, frozen=True, tag="shell_started"):
    """The agent's policy and the user allowed a terminal, and its shell started."""

    session_id: Id
    consent: Name = ""  # how it was allowed: "user", "notify", "policy"


class ShellData(_Message, frozen=True, tag="shell_data"):
    """Bytes typed into (console to agent) or printed by (agent to console) a terminal."""

    session_id: Id
    seq: Count
    data: Chunk


class ShellResize(_Message, frozen=True, tag="shell_resize"):
    """The technician's terminal changed size."""

    session_id: Id
    cols: Annotated[int, Meta(ge=1, le=1000)]
    rows: Annotated[int, Meta(ge=1, le=1000)]


class ShellClosed(_Message, frozen=True, tag="shell_closed"):
    """A terminal ended (either side may send it), or was refused (``refused``)."""

    session_id: Id
    exit_code: Annotated[int, Meta(ge=-(2**31), le=2**32)] | None = None
    refused: bool = False
    error: Line = ""


class Ack(_Message, frozen=True, tag="ack"):
    """A request was received and handled; names the ticket it concerns, if any."""

    request_id: Id
    ticket_id: Annotated[int, Meta(ge=1, le=2**63 - 1)] | None = None


class Error(_Message, frozen=True, tag="error"):
    """A request failed; ``request_id`` names it when there is one."""

    code: ErrorCode
    message: Line
    request_id: Id | None = None


# -- Screen session (view) ------------------------------------------------------------
#
# The technician's viewer asks, through the console, to see the device's screen:
# ``ScreenOpen`` -> the user's consent -> ``ScreenStarted`` (the monitors) or
# ``ScreenRefused``. Frames flow as ``ScreenFrame`` messages; the viewer acknowledges
# each complete frame with ``ScreenAck`` (the agent keeps only a few unacknowledged
# frames in flight), may ask for a keyframe or change settings, and either side ends
# the session with ``ScreenEnded``. A frame larger than a message is split into
# parts with the same ``seq``; the last one has ``final`` set.

ScreenSize = Annotated[int, Meta(ge=1, le=32768)]
ScreenCoord = Annotated[int, Meta(ge=-32768, le=32768)]
# One encoded rectangle (or cursor image): under the 1 MiB chunk bound.
ScreenData = Annotated[bytes, Meta(max_length=1 << 20)]
Quality = Annotated[int, Meta(ge=1, le=100)]
# At most 30: smoother motion than that is not worth the agent's CPU for help-desk work.
FrameRate = Annotated[float, Meta(ge=0.5, le=30.0)]


class ScreenEndReason(enum.StrEnum):
    """Why a screen session ended (or never started)."""

    DENIED = "denied"  # the user clicked Deny
    TIMED_OUT = "timed_out"  # nobody answered the consent prompt in time
    NO_DESKTOP = "no_desktop"  # nobody to ask and the policy refuses
    POLICY = "policy"  # the agent's policy does not allow screen sessions
    USER_STOPPED = "user_stopped"  # the user pressed Stop on the indicator
    VIEWER_LEFT = "viewer_left"  # the technician closed the session
    BUSY = "busy"  # another screen session is on
    ERROR = "error"  # capture failed, or the agent is stopping
    DISCONNECTED = "disconnected"  # the channel was lost


class ScreenEncoding(enum.StrEnum):
    """How the rectangles of a frame are encoded."""

    JPEG = "jpeg"  # tiles: each rect a baseline JPEG (libjpeg-turbo)
    H264 = "h264"  # video: one rect of the whole monitor, an Annex-B access unit


class ScreenMonitor(msgspec.Struct, frozen=True, kw_only=True):
    """One capturable monitor; index 0 is all monitors together (as mss numbers them)."""

    index: Annotated[int, Meta(ge=0, le=64)]
    left: ScreenCoord
    top: ScreenCoord
    width: ScreenSize
    height: ScreenSize
    primary: bool = False


class ScreenRect(msgspec.Struct, frozen=True, kw_only=True):
    """A changed rectangle of a frame, in pixels of the captured monitor."""

    x: Annotated[int, Meta(ge=0, le=32768)]
    y: Annotated[int, Meta(ge=0, le=32768)]
    width: ScreenSize
    height: ScreenSize
    data: ScreenData


class ScreenCursor(msgspec.Struct, frozen=True, kw_only=True):
    """The pointer: position relative to the captured monitor, and its shape when new.

    ``shape`` is an RGBA PNG sent only when the shape changed (``shape_id`` names it
    so the viewer can keep it); ``visible`` is False when the pointer is elsewhere.
    """

    x: ScreenCoord
    y: ScreenCoord
    visible: bool = True
    shape_id: Annotated[int, Meta(ge=0, le=2**32)] = 0
    hot_x: Annotated[int, Meta(ge=0, le=1024)] = 0
    hot_y: Annotated[int, Meta(ge=0, le=1024)] = 0
    shape: Annotated[bytes, Meta(max_length=1 << 18)] | None = None


class ScreenOpen(_Message, frozen=True, tag="screen_open"):
    """The console asks to show the device's screen to a technician (view only)."""

    session_id: Id
    ticket_id: Annotated[int, Meta(ge=1, le=2**63 - 1)]
    requested_by: Name
    reason: Line = ""
    monitor: Annotated[int, Meta(ge=0, le=64)] = 1
    quality: Quality = 70
    max_fps: FrameRate = 15.0
    # The console records the session (the user is told so when asked).
    recorded: bool = False


class ScreenStarted(_Message, frozen=True, tag="screen_started"):
    """The user (or the policy) allowed the session; capture runs."""

    session_id: Id
    monitors: Annotated[list[ScreenMonitor], Meta(max_length=65)]
    monitor: Annotated[int, Meta(ge=0, le=64)]
    consent: Name = ""  # how it was allowed: "user", "notify", "policy"
    encodings: Annotated[list[ScreenEncoding], Meta(max_length=8)] = []


class ScreenRefused(_Message, frozen=True, tag="screen_refused"):
    """The session was not allowed, or could not start."""

    session_id: Id
    reason: ScreenEndReason
    error: Line = ""


class ScreenEnded(_Message, frozen=True, tag="screen_ended"):
    """A running session ended (either side may send it)."""

    session_id: Id
    reason: ScreenEndReason
    error: Line = ""


class ScreenFrame(_Message, frozen=True, tag="screen_frame"):
    """(Part of) one frame: the changed rectangles and the pointer.

    ``width`` and ``height`` are the captured monitor's size; a ``keyframe`` covers
    all of it. ``captured_at`` is the agent's wall clock at capture, so the viewer
    can tell the delay (clocks permitting) and the agent the round trip.
    """

    session_id: Id
    seq: Count
    width: ScreenSize
    height: ScreenSize
    captured_at: Timestamp
    rects: Annotated[list[ScreenRect], Meta(max_length=4096)] = []
    cursor: ScreenCursor | None = None
    keyframe: bool = False
    encoding: ScreenEncoding = ScreenEncoding.JPEG
    part: Annotated[int, Meta(ge=0, le=4096)] = 0
    final: bool = True


class ScreenAck(_Message, frozen=True, tag="screen_ack"):
    """The viewer has drawn frame ``seq`` (and every one before it)."""

    session_id: Id
    seq: Count


class ScreenKeyframeRequest(_Message, frozen=True, tag="screen_keyframe_request"):
    """The viewer needs a whole frame (it joined late, or lost track)."""

    session_id: Id


class ScreenSettings(_Message, frozen=True, tag="screen_settings"):
    """The technician changed the session's settings; None leaves one as it is."""

    session_id: Id
    quality: Quality | None = None
    max_fps: FrameRate | None = None
    monitor: Annotated[int, Meta(ge=0, le=64)] | None = None


# -- End of screen session (view) -----------------------------------------------------


# -- Screen guidance and control -------------------------------------------------------
#
# The technician's pointer and drawings, shown on the user's screen, the pointer and
# keyboard events the technician injects once control is granted, and H.264 frames of
# the video mode. Coordinates are pixels of the frame the agent sent for the session
# (its origin is the top left of the captured monitor); the agent maps them to the
# screen. All of them belong to a screen session (``session_id``).

# A pixel of a frame; frames are at most 16384 pixels wide or high.
Coordinate = Annotated[int, Meta(ge=0, le=16383)]
# A colour as "#rrggbb".
Colour = Annotated[str, Meta(pattern=r"^#[0-9a-fA-F]{6}$")]


class GuideShape(enum.StrEnum):
    """What a guidance drawing is."""

    ARROW = "arrow"  # from points[0] to points[-1], the head at the end
    CIRCLE = "circle"  # centre points[0], a point of the rim points[1]
    LINE = "line"  # a freehand line through the points
    TEXT = "text"  # ``text`` written at points[0]


class PointerButton(enum.StrEnum):
    """A mouse button."""

    LEFT = "left"
    MIDDLE = "middle"
    RIGHT = "right"


class PointerAction(enum.StrEnum):
    """What an injected pointer event does."""

    MOVE = "move"
    DOWN = "down"
    UP = "up"
    WHEEL = "wheel"


class KeyModifier(enum.StrEnum):
    """A modifier held during a key event, as the browser reports it."""

    SHIFT = "shift"
    CTRL = "ctrl"
    ALT = "alt"
    META = "meta"


class Point(msgspec.Struct, frozen=True, array_like=True):
    """A point in frame coordinates, sent as ``[x, y]``."""

    x: Coordinate
    y: Coordinate


class GuidePointer(_Message, frozen=True, tag="guide_pointer"):
    """Where the technician points; shown on the user's screen (hidden if not ``visible``)."""

    session_id: Id
    x: Coordinate
    y: Coordinate
    visible: bool = True


class GuideDraw(_Message, frozen=True, tag="guide_draw"):
    """A drawing on the user's screen; a ``shape_id`` drawn again replaces the old one."""

    session_id: Id
    shape_id: Id
    kind: GuideShape
    points: Annotated[list[Point], Meta(min_length=1, max_length=1024)]
    colour: Colour = "#ff0000"
    width: Annotated[int, Meta(ge=1, le=32)] = 4
    text: Annotated[str, Meta(max_length=200)] = ""


class GuideClear(_Message, frozen=True, tag="guide_clear"):
    """Remove one drawing (``shape_id``) or, without it, every drawing and the pointer."""

    session_id: Id
    shape_id: Id | None = None


class InputPointer(_Message, frozen=True, tag="input_pointer"):
    """A pointer event to inject (control granted only): move, press, release, wheel.

    The pointer moves to ``x``, ``y`` first in every case. ``wheel_x`` and ``wheel_y``
    are steps (clicks of the wheel), positive to the right and down.
    """

    session_id: Id
    x: Coordinate
    y: Coordinate
    action: PointerAction = PointerAction.MOVE
    button: PointerButton = PointerButton.LEFT
    wheel_x: Annotated[int, Meta(ge=-100, le=100)] = 0
    wheel_y: Annotated[int, Meta(ge=-100, le=100)] = 0


class InputKey(_Message, frozen=True, tag="input_key"):
    """A key event to inject (control granted only), as the browser's KeyboardEvent has it.

    ``code`` names the physical key ("KeyA", "ShiftLeft", "Enter"); ``key`` is what it
    produces under the technician's layout ("a", "A", "é", "Enter", "Shift").
    """

    session_id: Id
    code: Annotated[str, Meta(max_length=32, pattern=r"^[A-Za-z0-9]*$")]
    key: Annotated[str, Meta(min_length=1, max_length=32)]
    down: bool
    modifiers: Annotated[list[KeyModifier], Meta(max_length=4)] = []


class VideoFrame(_Message, frozen=True, tag="video_frame"):
    """An encoded H.264 access unit of the video mode (agent to viewers).

    ``codec`` is the WebCodecs codec string ("avc1.42e01f"); ``description`` is the
    avcC box for WebCodecs' ``description`` when ``data`` is in AVCC form (length
    prefixed), absent when ``data`` is Annex B (start codes).
    """

    session_id: Id
    seq: Count
    keyframe: bool
    data: Annotated[bytes, Meta(max_length=8 << 20)]
    codec: Annotated[str, Meta(max_length=64, pattern=r"^[A-Za-z0-9.]+$")]
    width: Annotated[int, Meta(ge=2, le=16384)]
    height: Annotated[int, Meta(ge=2, le=16384)]
    timestamp_us: Count = 0
    description: Annotated[bytes, Meta(max_length=4096)] | None = None


class ScreenGuideStatus(_Message, frozen=True, tag="screen_guide_status"):
    """Whether the technician's guidance can be shown on the user's screen.

    Sent once by the agent after a session started: without a display that can
    show the overlay, guidance is unavailable and the session goes on without it.
    """

    session_id: Id
    available: bool
    error: Line = ""


class ScreenControlReason(enum.StrEnum):
    """Why control was refused or ended."""

    DENIED = "denied"  # the user clicked Deny
    TIMED_OUT = "timed_out"  # nobody answered the control prompt in time
    POLICY = "policy"  # the owner's policy does not allow control
    NO_DESKTOP = "no_desktop"  # nobody to ask
    UNAVAILABLE = "unavailable"  # input cannot be injected here
    BUSY = "busy"  # already asked, or already granted
    RELEASED = "released"  # the technician gave control back
    SESSION_ENDED = "session_ended"  # the screen session ended (Stop included)
    ERROR = "error"


class ScreenControlRequest(_Message, frozen=True, tag="screen_control_request"):
    """The technician asks to control the pointer and keyboard (a second consent)."""

    session_id: Id


class ScreenControlGranted(_Message, frozen=True, tag="screen_control_granted"):
    """Control is on: the agent injects ``InputPointer`` and ``InputKey`` from now on."""

    session_id: Id
    consent: Name = ""  # "user" or "policy"
    takeback_seconds: Annotated[float, Meta(ge=0.0, le=60.0)] = 3.0


class ScreenControlRefused(_Message, frozen=True, tag="screen_control_refused"):
    """Control was not granted."""

    session_id: Id
    reason: ScreenControlReason
    error: Line = ""


class ScreenControlEnded(_Message, frozen=True, tag="screen_control_ended"):
    """Control is off again (either side may send it; the session goes on)."""

    session_id: Id
    reason: ScreenControlReason
    error: Line = ""


class ScreenControlPaused(_Message, frozen=True, tag="screen_control_paused"):
    """The user moved their own mouse: injection is paused for ``seconds``."""

    session_id: Id
    seconds: Annotated[float, Meta(ge=0.0, le=60.0)]


class ScreenMode(enum.StrEnum):
    """How the agent encodes frames."""

    TILES = "tiles"  # JPEG tiles of what changed
    VIDEO = "video"  # H.264 (the viewer decodes it with WebCodecs)
    AUTO = "auto"  # tiles, video while most of the screen keeps changing


class ScreenSetMode(_Message, frozen=True, tag="screen_set_mode"):
    """The viewers' choice of encoding (``tiles`` unless every viewer can decode H.264)."""

    session_id: Id
    mode: ScreenMode


# -- Chat between the technician and the user -------------------------------------------
#
# The technician's lines reach the user's chat window as ``ChatMessage``, numbered per
# device by the console (``seq``, from 1, one more for each line); the agent answers
# each with ``ChatDelivered`` (or refused: chat is off there) and remembers the
# highest number shown, so a line sent again after a reconnect is acknowledged, not
# shown twice. The user's lines go back as ``ChatReply``, named by the agent
# (``reply_id``) so that one sent again is kept once; the console acknowledges each
# with ``ChatAck``. Text is plain: no control characters but line feed and tab (each
# end checks it on decoding), at most ``CHAT_TEXT_MAX`` characters.

# The longest line either side may write.
CHAT_TEXT_MAX = 2000
ChatText = Annotated[
    str, Meta(min_length=1, max_length=CHAT_TEXT_MAX, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")
]


class ChatMessage(_Message, frozen=True, tag="chat_message"):
    """A technician's line for the user, about a ticket."""

    seq: Annotated[int, Meta(ge=1, le=2**63 - 1)]
    ticket_id: Annotated[int, Meta(ge=1, le=2**63 - 1)]
    sender: Name
    text: ChatText
    sent_at: Timestamp


class ChatDelivered(_Message, frozen=True, tag="chat_delivered"):
    """The agent has shown line ``seq`` to the user (or had shown it already), or
    ``refused`` it: ``error`` says why ("chat is off on this device")."""

    seq: Annotated[int, Meta(ge=1, le=2**63 - 1)]
    refused: bool = False
    error: Line = ""


class ChatReply(_Message, frozen=True, tag="chat_reply"):
    """The user's line for the technician of a ticket."""

    reply_id: Id
    ticket_id: Annotated[int, Meta(ge=1, le=2**63 - 1)]
    text: ChatText
    sent_at: Timestamp
    # The user's login name, as the agent knows it.
    user: Name = ""


class ChatAck(_Message, frozen=True, tag="chat_ack"):
    """The console has kept the user's line ``reply_id`` (or had kept it already)."""

    reply_id: Id


Message: TypeAlias = (
    ClientParams
    | ServerParams
    | Ping
    | Pong
    | Close
    | Hello
    | Heartbeat
    | SnapshotRequest
    | DiagnosticsSnapshot
    | HelpRequest
    | CommandRequest
    | CommandStarted
    | CommandOutput
    | CommandExit
    | CommandCancel
    | ShellOpen
    | ShellStarted
    | ShellData
    | ShellResize
    | ShellClosed
    | ScreenOpen
    | ScreenStarted
    | ScreenRefused
    | ScreenEnded
    | ScreenFrame
    | ScreenAck
    | ScreenKeyframeRequest
    | ScreenSettings
    | Ack
    | Error
    | GuidePointer
    | GuideDraw
    | GuideClear
    | InputPointer
    | InputKey
    | VideoFrame
    | ScreenGuideStatus
    | ScreenControlRequest
    | ScreenControlGranted
    | ScreenControlRefused
    | ScreenControlEnded
    | ScreenControlPaused
    | ScreenSetMode
    | ChatMessage
    | ChatDelivered
    | ChatReply
    | ChatAck
)
"""Every message that may appear on the wire."""

# The messages each side may send to the other once the channel is open.
AgentMessage: TypeAlias = (
    Hello
    | Heartbeat
    | DiagnosticsSnapshot
    | HelpRequest
    | CommandStarted
    | CommandOutput
    | CommandExit
    | ShellStarted
    | ShellData
    | ShellClosed
    | ScreenStarted
    | ScreenRefused
    | ScreenEnded
    | ScreenFrame
    | Error
    | VideoFrame
    | ScreenGuideStatus
    | ScreenControlGranted
    | ScreenControlRefused
    | ScreenControlEnded
    | ScreenControlPaused
    | ChatDelivered
    | ChatReply
)
ConsoleMessage: TypeAlias = (
    SnapshotRequest
    | CommandRequest
    | CommandCancel
    | ShellOpen
    | ShellData
    | ShellResize
    | ShellClosed
    | ScreenOpen
    | ScreenEnded
    | ScreenAck
    | ScreenKeyframeRequest
    | ScreenSettings
    | Ack
    | Error
    | GuidePointer
    | GuideDraw
    | GuideClear
    | InputPointer
    | InputKey
    | ScreenControlRequest
    | ScreenControlEnded
    | ScreenSetMode
    | ChatMessage
    | ChatAck
)

# Every message type, for code that iterates over them (tests, documentation).
MESSAGE_TYPES: tuple[type[_Message], ...] = get_args(Message)
