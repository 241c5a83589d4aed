"""The secure channel between agent and console, without I/O.

Theory of operation
===================

A ``Connection`` is one side of one channel. It does no I/O and reads no clock: the
caller feeds it frames and the time (``receive_data(frame, now)``), asks it for the
frames to send (``data_to_send()``), for what happened (``events_received()``) and
for the next moment it needs attention (``get_timer()`` then ``handle_timer(now)``).
The asyncio front-end in ``deskside.channel`` only moves frames between a WebSocket
and this object, like python-websockets and h11 do for their protocols.

A *frame* is one WebSocket message. The WebSocket keeps frames whole and in order;
TLS under it may be ended by a proxy, so nothing here trusts it.

The agent is the client and the Noise initiator; the console is the server and the
responder. They run ``Noise_IK_25519_ChaChaPoly_SHA256``: the agent knows the
console's static key (pinned at enrollment), sends its own static key encrypted in
the first message, and the console checks it with the ``authorize`` callback::

    agent (ClientConnection)                      console (ServerConnection)
      HANDSHAKE --- frame 1: -> e, es, s, ss  [ClientParams] --> HANDSHAKE
                                                  authorize(agent key)? else close 4003
                                                  common version? else close 4004
           OPEN <-- frame 2: <- e, ee, se     [ServerParams] --- OPEN
           OPEN <========= transport frames, both ways ========> OPEN
         CLOSED <-------------- Close(code, reason) -----------> CLOSED

Transport frames, after the handshake::

    frame  := nonce(8, big-endian) record+
    record := flags(1) length(2, big-endian) ciphertext(length)

Each record is one Noise transport message (at most 65535 bytes) of the sender's
``CipherState``; its ``flags`` and ``length`` are authenticated as associated data.
A message is carried by one frame: its MessagePack encoding is cut into records,
and only the last record has ``FINAL`` set. The frame's nonce must be the one the
receiver expects next, so a replayed, dropped or reordered frame is refused before
any decryption; a tampered or truncated one fails authentication or lacks its
``FINAL`` record. Either way nothing of it is delivered and the channel closes.

A sender marks a record ``REKEY`` every ``rekey_after_messages`` records; both
sides then call Noise's ``rekey()`` on that direction's key right after it.

``Ping``, ``Pong`` and ``Close`` are handled here: a side that sent nothing for
``keepalive_interval`` sends a ``Ping``; a side that received nothing for
``idle_timeout`` closes with ``IDLE_TIMEOUT``. Everything else is delivered as a
``MessageReceived`` event.

Errors: misuse of this API raises ``LocalProtocolError``; sending on a closed
channel raises ``ConnectionClosed``. Bad input from the peer never raises: it
closes the channel with a code and a ``ConnectionTerminated`` event, and the
error is kept in ``Connection.error``.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from . import noise
from .codec import DEFAULT_MAX_MESSAGE_SIZE, Codec, UnknownMessage
from .errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    DecryptionError,
    HandshakeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from .messages import (
    SUPPORTED_VERSIONS,
    ClientParams,
    Close,
    Message,
    Ping,
    Pong,
    ServerParams,
)
from .ratelimit import TokenBucket

__all__ = [
    "NOISE_PROTOCOL_NAME",
    "AuthorizationRequested",
    "ChannelConfig",
    "ClientConnection",
    "CloseCode",
    "Connection",
    "ConnectionTerminated",
    "Event",
    "HandshakeComplete",
    "MessageReceived",
    "PongReceived",
    "ServerConnection",
    "State",
    "UnknownMessageReceived",
    "max_frame_size",
]

NOISE_PROTOCOL_NAME: Final = "Noise_IK_25519_ChaChaPoly_SHA256"
# Bound into the handshake hash: a handshake for anything else fails.
PROLOGUE: Final = b"Deskside secure channel"

_MAX_NOISE_MESSAGE: Final = 65535
_TAG_SIZE: Final = 16
_MAX_CHUNK: Final = _MAX_NOISE_MESSAGE - _TAG_SIZE
_NONCE: Final = struct.Struct(">Q")
_RECORD_HEADER: Final = struct.Struct(">BH")
_FINAL: Final = 0x01
_REKEY: Final = 0x02
_KNOWN_FLAGS: Final = _FINAL | _REKEY
# The smallest transport frame: a nonce and one record holding an empty chunk.
_MIN_FRAME: Final = _NONCE.size + _RECORD_HEADER.size + _TAG_SIZE
# Pings awaiting a pong that are remembered for measuring the round trip.
_MAX_PENDING_PINGS: Final = 8
# The share of the console's announced rate and burst an agent uses.
_PACE_MARGIN: Final = 0.8


def max_frame_size(max_message_size: int) -> int:
    """The largest transport frame that carries a message of ``max_message_size``."""
    records = max(1, -(-max_message_size // _MAX_CHUNK))
    return _NONCE.size + max_message_size + records * (_RECORD_HEADER.size + _TAG_SIZE)


class State(enum.Enum):
    """Where a connection is in its life."""

    HANDSHAKE = enum.auto()
    OPEN = enum.auto()
    CLOSED = enum.auto()


class CloseCode(enum.IntEnum):
    """Why a channel closed; the same numbers close the WebSocket under it."""

    NORMAL = 1000
    GOING_AWAY = 1001
    ABNORMAL = 1006  # the transport went away without a Close
    TRY_AGAIN_LATER = 1013  # the console is busy: come back after a while
    PROTOCOL_ERROR = 4000
    DECRYPTION_FAILED = 4001
    HANDSHAKE_FAILED = 4002
    UNKNOWN_PEER = 4003
    VERSION_MISMATCH = 4004
    IDLE_TIMEOUT = 4005
    MESSAGE_TOO_BIG = 4006
    RATE_LIMITED = 4007
    HANDSHAKE_TIMEOUT = 4008
    INTERNAL_ERROR = 4011


_OK_CODES: Final = frozenset({CloseCode.NORMAL, CloseCode.GOING_AWAY})


@dataclass(frozen=True, kw_only=True)
class ChannelConfig:
    """Settings of one side of a channel; the defaults suit agent and console."""

    handshake_timeout: float = 10.0
    """Seconds the handshake may take before the channel closes."""

    keepalive_interval: float = 20.0
    """Seconds without sending anything after which a ``Ping`` is sent."""

    idle_timeout: float = 60.0
    """Seconds without receiving anything after which the channel closes."""

    rekey_after_messages: int = 1 << 20
    """Records sent under one key before the sender rekeys that direction."""

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    """Largest encoded message accepted from the peer (and announced to it)."""

    max_receive_rate: float | None = None
    """Messages a second accepted from the peer on average; None for no limit."""

    receive_burst: int = 1000
    """Messages the peer may send at once above ``max_receive_rate``."""

    versions: Sequence[int] = SUPPORTED_VERSIONS
    """Protocol versions this side speaks."""

    software_version: str = ""
    """This side's software version, told to the peer in the handshake."""

    heartbeat_interval: float = 30.0
    """Console only: how often the agent is asked to send a ``Heartbeat``."""

    def __post_init__(self) -> None:
        if not 0 < self.keepalive_interval < self.idle_timeout:
            raise LocalProtocolError("need 0 < keepalive_interval < idle_timeout")
        if self.handshake_timeout <= 0:
            raise LocalProtocolError("handshake_timeout must be positive")
        if self.rekey_after_messages < 1:
            raise LocalProtocolError("rekey_after_messages must be at least 1")
        if not 1024 <= self.max_message_size <= 1 << 30:
            raise LocalProtocolError("max_message_size must be between 1 KiB and 1 GiB")
        if not self.versions or any(not 1 <= v <= 65535 for v in self.versions):
            raise LocalProtocolError("versions must be a non-empty list of 1..65535")


# -- Events ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HandshakeComplete:
    """The channel is open: the peer proved it holds ``remote_static``."""

    version: int
    remote_static: bytes = field(repr=False)
    peer_software_version: str
    heartbeat_interval: float


@dataclass(frozen=True)
class AuthorizationRequested:
    """Console side: an agent proved it holds ``remote_static``; may it connect?

    Answer with ``ServerConnection.accept_peer`` or ``refuse_peer``; the handshake
    waits (within its time-out) until then.
    """

    remote_static: bytes = field(repr=False)
    params: ClientParams


@dataclass(frozen=True)
class MessageReceived:
    """The peer sent an application message."""

    message: Message


@dataclass(frozen=True)
class UnknownMessageReceived:
    """The peer sent a message of a type this side does not know; it was skipped."""

    type: str


@dataclass(frozen=True)
class PongReceived:
    """A ``Ping`` sent by this side was answered after ``rtt`` seconds."""

    nonce: int
    rtt: float


@dataclass(frozen=True)
class ConnectionTerminated:
    """The channel is closed; no more events follow."""

    code: int
    reason: str
    by_peer: bool


Event = (
    AuthorizationRequested
    | HandshakeComplete
    | MessageReceived
    | UnknownMessageReceived
    | PongReceived
    | ConnectionTerminated
)


class Connection:
    """One side of a secure channel: use ``ClientConnection`` or ``ServerConnection``."""

    def __init__(
        self,
        handshake: noise.HandshakeState,
        config: ChannelConfig,
        now: float,
    ) -> None:
        self.config = config
        # HANDSHAKE, then OPEN, then CLOSED.
        self.state = State.HANDSHAKE
        # The Noise handshake, until it completes; then None.
        self._handshake: noise.HandshakeState | None = handshake
        # The keys of each direction, once the handshake is done.
        self._send_cipher: noise.CipherState | None = None
        self._recv_cipher: noise.CipherState | None = None
        # Records sent under the current sending key.
        self._sent_since_rekey = 0
        # Frames waiting to be written to the transport.
        self._outgoing: list[bytes] = []
        # Events waiting to be read by the application.
        self._events: list[Event] = []
        # Decodes what the peer sends, within this side's limit.
        self._recv_codec = Codec(config.max_message_size)
        self._max_frame = max_frame_size(config.max_message_size)
        # Encodes what this side sends, within the peer's limit (known after handshake).
        self._send_codec = Codec(config.max_message_size)
        self._handshake_deadline = now + config.handshake_timeout
        # When a frame was last sent / received, for keep-alive and idle time-out.
        self._last_sent = now
        self._last_received = now
        # Pings sent and not yet answered: nonce -> time sent.
        self._pending_pings: deque[tuple[int, float]] = deque(maxlen=_MAX_PENDING_PINGS)
        self._next_ping_nonce = 0
        self._rate = (
            TokenBucket(config.max_receive_rate, config.receive_burst, now)
            if config.max_receive_rate is not None
            else None
        )
        # Agent side: the console's limit on our messages, with a margin, once known.
        self._pace: TokenBucket | None = None
        # The agreed protocol version, once open.
        self.version: int | None = None
        # The peer's static public key, once authenticated.
        self.remote_static: bytes | None = None
        # The Noise handshake hash, once open: a unique name for this session.
        self.handshake_hash: bytes | None = None
        # How the channel closed, once CLOSED.
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by_peer = False
        # The peer's protocol error that closed the channel, if that is what did.
        self.error: ProtocolError | None = None
        # True once the transport under the channel should be closed.
        self.close_transport = False

    # -- Input ---------------------------------------------------------------------------

    def receive_data(self, frame: bytes, now: float) -> None:
        """Take one frame (one WebSocket message) received from the peer at ``now``."""
        if self.state is State.CLOSED:
            return
        self._last_received = now
        try:
            if self.state is State.HANDSHAKE:
                self._receive_handshake(frame, now)
            else:
                self._receive_transport(frame, now)
        except RemoteProtocolError as exc:
            self._fail(exc, now)

    def connection_lost(self, now: float, code: int | None = None, reason: str = "") -> None:
        """The transport closed (with the WebSocket close code, if there was one).

        The code of a WebSocket close is not authenticated, so it is only reported,
        never trusted to mean the peer closed on purpose.
        """
        del now
        if self.state is State.CLOSED:
            return
        if code is None or code == CloseCode.NORMAL:
            code, reason = CloseCode.ABNORMAL, reason or "transport closed without a Close"
        self._terminate(code, reason, by_peer=True)

    def handle_timer(self, now: float) -> None:
        """Act on time-outs and keep-alives due at ``now``."""
        if self.state is State.HANDSHAKE and now >= self._handshake_deadline:
            self._terminate(CloseCode.HANDSHAKE_TIMEOUT, "handshake timed out", by_peer=False)
        elif self.state is State.OPEN:
            if now - self._last_received >= self.config.idle_timeout:
                self.close(CloseCode.IDLE_TIMEOUT, "nothing received in time", now=now)
            elif now - self._last_sent >= self.config.keepalive_interval:
                self.ping(now)

    # -- Output --------------------------------------------------------------------------

    def send(self, message: Message, now: float) -> None:
        """Encrypt ``message`` into a frame to send.

        Where the peer announced a limit on the rate of messages, wait
        ``send_delay(now)`` seconds before each call: a message sent earlier may get
        the channel closed by the peer (``CloseCode.RATE_LIMITED``).
        """
        if isinstance(message, ClientParams | ServerParams | Close | Ping | Pong):
            raise LocalProtocolError(f"{type(message).__name__} is sent by the channel itself")
        if self._pace is not None:
            self._pace.consume(now)
        self._send_message(message, now)

    def send_delay(self, now: float) -> float:
        """Seconds to wait before the next ``send`` keeps within the peer's rate limit."""
        return 0.0 if self._pace is None else self._pace.delay(now)

    def ping(self, now: float) -> int:
        """Send a ``Ping``; its ``PongReceived`` event gives the round-trip time."""
        nonce = self._next_ping_nonce
        self._next_ping_nonce += 1
        self._send_message(Ping(nonce=nonce), now)
        self._pending_pings.append((nonce, now))
        return nonce

    def close(self, code: int = CloseCode.NORMAL, reason: str = "", *, now: float) -> None:
        """Close the channel: tell the peer why, then close the transport."""
        if self.state is State.CLOSED:
            return
        if not 1000 <= code <= 4999:
            raise LocalProtocolError(f"close code {code} is outside 1000..4999")
        reason = reason[:123]
        if self.state is State.OPEN:
            self._send_message(Close(code=code, reason=reason), now)
        self._terminate(code, reason, by_peer=False)

    def data_to_send(self) -> list[bytes]:
        """Frames to write to the transport, in order; each call empties the list."""
        frames, self._outgoing = self._outgoing, []
        return frames

    def events_received(self) -> list[Event]:
        """What happened since the last call, in order."""
        events, self._events = self._events, []
        return events

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called; None once closed."""
        if self.state is State.HANDSHAKE:
            return self._handshake_deadline
        if self.state is State.OPEN:
            return min(
                self._last_received + self.config.idle_timeout,
                self._last_sent + self.config.keepalive_interval,
            )
        return None

    def close_exception(self) -> ConnectionClosed:
        """The exception that describes how this closed connection ended."""
        if self.close_code is None:
            raise LocalProtocolError("the connection is not closed")
        cls = ConnectionClosedOK if self.close_code in _OK_CODES else ConnectionClosedError
        return cls(self.close_code, self.close_reason, by_peer=self.closed_by_peer)

    # -- Handshake -----------------------------------------------------------------------

    def _receive_handshake(self, frame: bytes, now: float) -> None:
        raise NotImplementedError  # each side has its own handshake half

    def _open(self, version: int, peer_max: int, peer_software: str, heartbeat: float) -> None:
        """The handshake is done: take the keys and announce it."""
        handshake = self._handshake
        assert handshake is not None
        c1, c2 = handshake.split()
        initiator = handshake.is_initiator
        self._send_cipher, self._recv_cipher = (c1, c2) if initiator else (c2, c1)
        self.remote_static = handshake.remote_static
        self.handshake_hash = handshake.handshake_hash
        self._handshake = None
        self.version = version
        self._send_codec = Codec(min(peer_max, self._send_codec.max_message_size))
        self.state = State.OPEN
        assert self.remote_static is not None
        self._events.append(
            HandshakeComplete(
                version=version,
                remote_static=self.remote_static,
                peer_software_version=peer_software,
                heartbeat_interval=heartbeat,
            )
        )

    def _decode_handshake_payload(self, payload: bytes) -> Message:
        try:
            message = self._recv_codec.decode(payload)
        except RemoteProtocolError as exc:
            raise HandshakeError(
                f"bad handshake payload: {exc}", close_code=CloseCode.HANDSHAKE_FAILED
            ) from exc
        if isinstance(message, UnknownMessage):
            raise HandshakeError(
                f"unexpected {message.type} in the handshake",
                close_code=CloseCode.HANDSHAKE_FAILED,
            )
        return message

    # -- Transport -----------------------------------------------------------------------

    def _send_message(self, message: Message, now: float) -> None:
        if self.state is not State.OPEN:
            if self.state is State.CLOSED:
                raise self.close_exception()
            raise LocalProtocolError("cannot send before the handshake is complete")
        cipher = self._send_cipher
        assert cipher is not None
        data = memoryview(self._send_codec.encode(message))
        records = max(1, -(-len(data) // _MAX_CHUNK))
        # The frame is laid out first and each record sealed in place: no copies.
        frame = bytearray(_NONCE.size + len(data) + records * (_RECORD_HEADER.size + _TAG_SIZE))
        out = memoryview(frame)
        _NONCE.pack_into(frame, 0, cipher.nonce)
        pos = _NONCE.size
        for index in range(records):
            chunk = data[index * _MAX_CHUNK : (index + 1) * _MAX_CHUNK]
            flags = _FINAL if index == records - 1 else 0
            self._sent_since_rekey += 1
            rekey = self._sent_since_rekey >= self.config.rekey_after_messages
            if rekey:
                flags |= _REKEY
            _RECORD_HEADER.pack_into(frame, pos, flags, len(chunk) + _TAG_SIZE)
            header = bytes(out[pos : pos + _RECORD_HEADER.size])
            pos += _RECORD_HEADER.size
            pos += cipher.encrypt_into(header, chunk, out[pos : pos + len(chunk) + _TAG_SIZE])
            if rekey:
                cipher.rekey()
                self._sent_since_rekey = 0
        self._outgoing.append(bytes(frame))
        self._last_sent = now

    def _receive_transport(self, frame: bytes, now: float) -> None:
        cipher = self._recv_cipher
        assert cipher is not None
        size = len(frame)
        if size < _MIN_FRAME:
            raise RemoteProtocolError(f"truncated frame of {size} bytes")
        if size > self._max_frame:
            raise RemoteProtocolError(
                f"frame of {size} bytes is over the limit",
                close_code=CloseCode.MESSAGE_TOO_BIG,
            )
        (nonce,) = _NONCE.unpack_from(frame)
        if nonce != cipher.nonce:
            raise DecryptionError(
                f"frame out of order: nonce {nonce}, expected {cipher.nonce} "
                "(replayed, dropped or reordered)",
                close_code=CloseCode.DECRYPTION_FAILED,
            )
        view = memoryview(frame)
        # Plaintext is opened in place into one buffer, never joined from pieces.
        plain = bytearray(size)
        plain_view = memoryview(plain)
        filled = 0
        pos = _NONCE.size
        final = False
        while pos < size:
            if final:
                raise RemoteProtocolError("data after the final record of a frame")
            if size - pos < _RECORD_HEADER.size:
                raise RemoteProtocolError("truncated record header")
            flags, length = _RECORD_HEADER.unpack_from(frame, pos)
            header = bytes(view[pos : pos + _RECORD_HEADER.size])
            pos += _RECORD_HEADER.size
            if length < _TAG_SIZE or size - pos < length:
                raise DecryptionError("truncated record", close_code=CloseCode.DECRYPTION_FAILED)
            try:
                filled += cipher.decrypt_into(
                    header,
                    view[pos : pos + length],
                    plain_view[filled : filled + length - _TAG_SIZE],
                )
            except DecryptionError as exc:
                exc.close_code = CloseCode.DECRYPTION_FAILED
                raise
            pos += length
            if flags & ~_KNOWN_FLAGS:
                raise RemoteProtocolError(f"unknown record flags {flags:#x}")
            if flags & _REKEY:
                cipher.rekey()
            final = bool(flags & _FINAL)
        if not final:
            raise DecryptionError(
                "frame ends without its final record", close_code=CloseCode.DECRYPTION_FAILED
            )
        if self._rate is not None and not self._rate.consume(now):
            raise RemoteProtocolError(
                "peer sends messages too fast", close_code=CloseCode.RATE_LIMITED
            )
        message = self._recv_codec.decode(plain_view[:filled])
        self._dispatch(message, now)

    def _dispatch(self, message: Message | UnknownMessage, now: float) -> None:
        if isinstance(message, UnknownMessage):
            self._events.append(UnknownMessageReceived(message.type))
        elif isinstance(message, Ping):
            self._send_message(Pong(nonce=message.nonce), now)
        elif isinstance(message, Pong):
            for index, (nonce, sent) in enumerate(self._pending_pings):
                if nonce == message.nonce:
                    del self._pending_pings[index]
                    self._events.append(PongReceived(nonce, now - sent))
                    break
        elif isinstance(message, Close):
            self._terminate(message.code, message.reason, by_peer=True)
        elif isinstance(message, ClientParams | ServerParams):
            raise RemoteProtocolError(f"{type(message).__name__} after the handshake")
        else:
            self._events.append(MessageReceived(message))

    # -- Closing -------------------------------------------------------------------------

    def _fail(self, exc: RemoteProtocolError, now: float) -> None:
        """The peer broke the protocol: close with the code that says how."""
        self.error = exc
        code = exc.close_code or CloseCode.PROTOCOL_ERROR
        self.close(code, str(exc), now=now)

    def _terminate(self, code: int, reason: str, *, by_peer: bool) -> None:
        self.state = State.CLOSED
        self.close_code = code
        self.close_reason = reason
        self.closed_by_peer = by_peer
        self.close_transport = True
        self._handshake = None
        self._send_cipher = self._recv_cipher = None
        self._events.append(ConnectionTerminated(code, reason, by_peer))


class ClientConnection(Connection):
    """The agent's side: initiates the handshake to a console whose key it pinned."""

    def __init__(
        self,
        static_private: bytes,
        server_public: bytes,
        now: float,
        config: ChannelConfig | None = None,
        *,
        enrollment_token: str | None = None,
    ) -> None:
        config = config or ChannelConfig()
        handshake = noise.HandshakeState(
            NOISE_PROTOCOL_NAME,
            initiator=True,
            prologue=PROLOGUE,
            s=static_private,
            rs=server_public,
        )
        super().__init__(handshake, config, now)
        params = ClientParams(
            versions=list(config.versions),
            agent_version=config.software_version,
            max_message_size=config.max_message_size,
            enrollment_token=enrollment_token,
        )
        self._outgoing.append(handshake.write_message(self._send_codec.encode(params)))

    def _receive_handshake(self, frame: bytes, now: float) -> None:
        handshake = self._handshake
        assert handshake is not None
        try:
            payload = handshake.read_message(frame)
        except RemoteProtocolError as exc:
            raise HandshakeError(
                f"console handshake failed: {exc}", close_code=CloseCode.HANDSHAKE_FAILED
            ) from exc
        params = self._decode_handshake_payload(payload)
        if not isinstance(params, ServerParams):
            raise HandshakeError(
                f"expected ServerParams, got {type(params).__name__}",
                close_code=CloseCode.HANDSHAKE_FAILED,
            )
        if params.version not in self.config.versions:
            raise HandshakeError(
                f"console chose protocol version {params.version}, which this agent does not speak",
                close_code=CloseCode.VERSION_MISMATCH,
            )
        if params.max_message_rate is not None:
            # Below the console's limit with a margin: it also counts our pings, and
            # the network may deliver messages sent apart at once.
            self._pace = TokenBucket(
                params.max_message_rate * _PACE_MARGIN,
                max(1, int(params.message_burst * _PACE_MARGIN) // 2),
                now,
            )
        self._open(
            params.version,
            params.max_message_size,
            params.console_version,
            params.heartbeat_interval,
        )


class ServerConnection(Connection):
    """The console's side: answers a handshake from an agent it accepts.

    ``authorize(agent_key, params)`` decides at once (True to accept; False, or
    raising ``HandshakeError`` with a close code, to refuse). Without it, the
    connection emits ``AuthorizationRequested`` and waits for ``accept_peer`` or
    ``refuse_peer``, so the decision can come from a database without blocking.
    """

    def __init__(
        self,
        static_private: bytes,
        authorize: Callable[[bytes, ClientParams], bool] | None,
        now: float,
        config: ChannelConfig | None = None,
    ) -> None:
        config = config or ChannelConfig()
        handshake = noise.HandshakeState(
            NOISE_PROTOCOL_NAME, initiator=False, prologue=PROLOGUE, s=static_private
        )
        super().__init__(handshake, config, now)
        # Decides whether an agent key may connect; None: ask through an event.
        self._authorize = authorize
        # The agent's parameters while its authorization is pending.
        self._pending_params: ClientParams | None = None

    def _receive_handshake(self, frame: bytes, now: float) -> None:
        handshake = self._handshake
        assert handshake is not None
        if self._pending_params is not None:
            raise HandshakeError(
                "frame before the handshake completed", close_code=CloseCode.PROTOCOL_ERROR
            )
        if len(frame) > _MAX_NOISE_MESSAGE:
            raise HandshakeError(
                "handshake message too long", close_code=CloseCode.HANDSHAKE_FAILED
            )
        try:
            payload = handshake.read_message(frame)
        except RemoteProtocolError as exc:
            raise HandshakeError(
                f"agent handshake failed: {exc}", close_code=CloseCode.HANDSHAKE_FAILED
            ) from exc
        params = self._decode_handshake_payload(payload)
        if not isinstance(params, ClientParams):
            raise HandshakeError(
                f"expected ClientParams, got {type(params).__name__}",
                close_code=CloseCode.HANDSHAKE_FAILED,
            )
        if not set(params.versions) & set(self.config.versions):
            raise HandshakeError(
                f"no common protocol version: agent speaks {sorted(params.versions)}, "
                f"console speaks {sorted(self.config.versions)}",
                close_code=CloseCode.VERSION_MISMATCH,
            )
        remote = handshake.remote_static
        assert remote is not None
        self._pending_params = params
        if self._authorize is None:
            self._events.append(AuthorizationRequested(remote, params))
        elif self._authorize(remote, params):
            self.accept_peer(now)
        else:
            raise HandshakeError(
                "agent key is unknown or revoked", close_code=CloseCode.UNKNOWN_PEER
            )

    def accept_peer(self, now: float) -> None:
        """Let the agent in: answer its handshake and open the channel."""
        params = self._pending_params
        handshake = self._handshake
        if params is None or handshake is None or self.state is not State.HANDSHAKE:
            raise LocalProtocolError("no authorization is pending")
        self._pending_params = None
        version = max(set(params.versions) & set(self.config.versions))
        reply = ServerParams(
            version=version,
            console_version=self.config.software_version,
            heartbeat_interval=self.config.heartbeat_interval,
            max_message_size=self.config.max_message_size,
            max_message_rate=self.config.max_receive_rate,
            message_burst=self.config.receive_burst,
        )
        self._outgoing.append(handshake.write_message(self._send_codec.encode(reply)))
        self._last_sent = now
        self._open(version, params.max_message_size, params.agent_version, reply.heartbeat_interval)

    def refuse_peer(self, code: int, reason: str, now: float) -> None:
        """Turn the agent away with a close code and a reason it will see."""
        if self._pending_params is None or self.state is not State.HANDSHAKE:
            raise LocalProtocolError("no authorization is pending")
        self._pending_params = None
        self.error = HandshakeError(reason, close_code=code)
        self.close(code, reason, now=now)
