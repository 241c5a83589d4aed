"""The sans-I/O channel: synchronous, time passed in, frames moved by hand."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deskside.protocol import codec, crypto, noise
from deskside.protocol import messages as m
from deskside.protocol.connection import (
    NOISE_PROTOCOL_NAME,
    PROLOGUE,
    AuthorizationRequested,
    ChannelConfig,
    ClientConnection,
    CloseCode,
    Connection,
    ConnectionTerminated,
    Event,
    HandshakeComplete,
    MessageReceived,
    PongReceived,
    ServerConnection,
    State,
    UnknownMessageReceived,
    max_frame_size,
)
from deskside.protocol.errors import (
    ConnectionClosedError,
    ConnectionClosedOK,
    DecryptionError,
    HandshakeError,
    LocalProtocolError,
)

AGENT_KEY = crypto.generate_private_key()
CONSOLE_KEY = crypto.generate_private_key()
AGENT_PUB = crypto.public_key(AGENT_KEY)
CONSOLE_PUB = crypto.public_key(CONSOLE_KEY)

HELLO = m.Hello(agent_version="0.1", os=m.OsInfo(family=m.OsFamily.LINUX, name="Debian 12"))


def make_pair(
    now: float = 0.0,
    *,
    client_config: ChannelConfig | None = None,
    server_config: ChannelConfig | None = None,
    authorize: Callable[[bytes, m.ClientParams], bool] = lambda key, _: key == AGENT_PUB,
    pinned: bytes = CONSOLE_PUB,
) -> tuple[ClientConnection, ServerConnection]:
    client = ClientConnection(AGENT_KEY, pinned, now, client_config)
    server = ServerConnection(CONSOLE_KEY, authorize, now, server_config)
    return client, server


def pump(a: Connection, b: Connection, now: float = 0.0) -> None:
    """Move frames both ways until neither side has anything to send."""
    while True:
        frames_a, frames_b = a.data_to_send(), b.data_to_send()
        if not frames_a and not frames_b:
            return
        for frame in frames_a:
            b.receive_data(frame, now)
        for frame in frames_b:
            a.receive_data(frame, now)


def open_pair(**kwargs: object) -> tuple[ClientConnection, ServerConnection]:
    client, server = make_pair(**kwargs)  # type: ignore[arg-type]
    pump(client, server)
    assert client.state is server.state is State.OPEN
    client.events_received()
    server.events_received()
    return client, server


def received(events: list[Event]) -> list[m.Message]:
    return [e.message for e in events if isinstance(e, MessageReceived)]


def terminated(events: list[Event]) -> ConnectionTerminated:
    (event,) = [e for e in events if isinstance(e, ConnectionTerminated)]
    return event


# -- Handshake -----------------------------------------------------------------------------


def test_handshake_opens_both_sides_and_authenticates_the_agent() -> None:
    seen: list[bytes] = []

    def authorize(key: bytes, params: m.ClientParams) -> bool:
        seen.append(key)
        return True

    client, server = make_pair(authorize=authorize)
    pump(client, server)
    (done_c,) = client.events_received()
    (done_s,) = server.events_received()
    assert isinstance(done_c, HandshakeComplete)
    assert isinstance(done_s, HandshakeComplete)
    assert seen == [AGENT_PUB]
    assert done_s.remote_static == AGENT_PUB
    assert done_c.remote_static == CONSOLE_PUB
    assert done_c.version == done_s.version == m.PROTOCOL_VERSION
    assert client.handshake_hash == server.handshake_hash
    assert client.handshake_hash is not None


def test_wrong_console_key_fails_the_handshake() -> None:
    impostor = crypto.public_key(crypto.generate_private_key())
    client, server = make_pair(pinned=impostor)
    pump(client, server)
    assert server.state is State.CLOSED
    assert server.close_code == CloseCode.HANDSHAKE_FAILED
    assert isinstance(server.error, HandshakeError)
    assert not any(isinstance(e, HandshakeComplete) for e in server.events_received())
    # The agent learns of it from the WebSocket close that follows.
    client.connection_lost(0.0, server.close_code, server.close_reason)
    assert terminated(client.events_received()).code == CloseCode.HANDSHAKE_FAILED


def test_unknown_agent_key_is_refused() -> None:
    client, server = make_pair(authorize=lambda key, _: False)
    pump(client, server)
    assert server.close_code == CloseCode.UNKNOWN_PEER
    assert server.close_transport
    assert client.state is State.HANDSHAKE  # nothing came back but the transport close


def test_no_common_version_is_refused() -> None:
    client, server = make_pair(
        client_config=ChannelConfig(versions=[7]), server_config=ChannelConfig(versions=[1])
    )
    pump(client, server)
    assert server.close_code == CloseCode.VERSION_MISMATCH
    assert "agent speaks [7]" in server.close_reason


def test_highest_common_version_is_chosen() -> None:
    client, server = make_pair(
        client_config=ChannelConfig(versions=[1, 2, 3]),
        server_config=ChannelConfig(versions=[1, 2]),
    )
    pump(client, server)
    assert client.version == server.version == 2


def test_handshake_times_out() -> None:
    client, _ = make_pair(now=100.0)
    assert client.get_timer() == 110.0
    client.handle_timer(109.9)
    assert client.state is State.HANDSHAKE
    client.handle_timer(110.0)
    assert terminated(client.events_received()).code == CloseCode.HANDSHAKE_TIMEOUT


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(frame=st.binary(max_size=300))
def test_garbage_handshake_closes_the_console_side_cleanly(frame: bytes) -> None:
    _, server = make_pair()
    server.receive_data(frame, 0.0)
    assert server.state is State.CLOSED
    assert server.close_code == CloseCode.HANDSHAKE_FAILED
    assert not received(server.events_received())


def console_reply(payload: bytes) -> tuple[ClientConnection, bytes]:
    """An agent that sent its first message, and a console's answer carrying ``payload``.

    The console is a bare Noise responder, so it can answer what ServerConnection never
    would (a version the agent did not offer, a message of the wrong type).
    """
    client, _ = make_pair()
    (first,) = client.data_to_send()
    console = noise.HandshakeState(
        NOISE_PROTOCOL_NAME, initiator=False, prologue=PROLOGUE, s=CONSOLE_KEY
    )
    console.read_message(first)
    return client, console.write_message(payload)


def test_console_reply_of_the_right_shape_opens_the_agent_side() -> None:
    # The fake console of the tests below, with a proper answer: the agent opens.
    client, reply = console_reply(codec.encode(m.ServerParams(version=1)))
    client.receive_data(reply, 0.0)
    assert client.state is State.OPEN


def test_console_choosing_a_version_the_agent_does_not_speak_is_refused() -> None:
    client, reply = console_reply(codec.encode(m.ServerParams(version=2)))
    client.receive_data(reply, 0.0)
    assert client.state is State.CLOSED
    assert client.close_code == CloseCode.VERSION_MISMATCH
    assert "version 2" in client.close_reason
    assert isinstance(client.error, HandshakeError)
    assert not any(isinstance(e, HandshakeComplete) for e in client.events_received())


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (codec.encode(HELLO), "expected ServerParams, got Hello"),
        (codec.encode(m.ClientParams(versions=[1])), "expected ServerParams, got ClientParams"),
        (b"\x81\xa4type\xa6future", "unexpected future in the handshake"),
        (b"\xc1", "bad handshake payload"),
    ],
)
def test_console_reply_that_is_not_server_params_fails_the_handshake(
    payload: bytes, reason: str
) -> None:
    client, reply = console_reply(payload)
    client.receive_data(reply, 0.0)
    assert client.state is State.CLOSED
    assert client.close_code == CloseCode.HANDSHAKE_FAILED
    assert reason in client.close_reason
    assert isinstance(client.error, HandshakeError)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (codec.encode(HELLO), "expected ClientParams, got Hello"),
        (codec.encode(m.ServerParams(version=1)), "expected ClientParams, got ServerParams"),
    ],
)
def test_agent_handshake_that_is_not_client_params_fails(payload: bytes, reason: str) -> None:
    agent = noise.HandshakeState(
        NOISE_PROTOCOL_NAME, initiator=True, prologue=PROLOGUE, s=AGENT_KEY, rs=CONSOLE_PUB
    )
    asked: list[bytes] = []

    def authorize(key: bytes, params: m.ClientParams) -> bool:
        asked.append(key)
        return True

    server = ServerConnection(CONSOLE_KEY, authorize, 0.0)
    server.receive_data(agent.write_message(payload), 0.0)
    assert server.close_code == CloseCode.HANDSHAKE_FAILED
    assert reason in server.close_reason
    assert asked == []  # refused before anyone was asked about the key


def test_oversized_handshake_message_is_refused_unread() -> None:
    _, server = make_pair()
    server.receive_data(b"\0" * 65536, 0.0)
    assert server.close_code == CloseCode.HANDSHAKE_FAILED
    assert server.close_reason == "handshake message too long"


# -- Messages ------------------------------------------------------------------------------


def test_messages_flow_both_ways_in_order() -> None:
    client, server = open_pair()
    beats = [m.Heartbeat(sent_at=float(i)) for i in range(5)]
    client.send(HELLO, 1.0)
    for beat in beats:
        client.send(beat, 1.0)
    server.send(m.SnapshotRequest(request_id="r1"), 1.0)
    pump(client, server, 1.0)
    assert received(server.events_received()) == [HELLO, *beats]
    assert received(client.events_received()) == [m.SnapshotRequest(request_id="r1")]


def test_large_message_spans_several_records() -> None:
    client, server = open_pair()
    output = m.CommandOutput(
        command_id="c1", seq=0, stream=m.OutputStream.STDOUT, data=bytes(range(256)) * 4096
    )
    client.send(output, 0.0)
    (frame,) = client.data_to_send()
    assert len(frame) > 65535 * 16  # one frame, many Noise messages
    server.receive_data(frame, 0.0)
    assert received(server.events_received()) == [output]


def test_application_cannot_send_channel_messages_or_before_open() -> None:
    client, _ = make_pair()
    with pytest.raises(LocalProtocolError, match="before the handshake"):
        client.send(HELLO, 0.0)
    client, _ = open_pair()
    with pytest.raises(LocalProtocolError, match="sent by the channel"):
        client.send(m.Ping(nonce=1), 0.0)


def test_message_over_the_peers_limit_is_refused_locally() -> None:
    client, _ = open_pair(server_config=ChannelConfig(max_message_size=4096))
    with pytest.raises(LocalProtocolError, match="over the limit"):
        client.send(m.Error(code=m.ErrorCode.INTERNAL, message="x" * 4000 + "é" * 40), 0.0)
    assert client.state is State.OPEN  # a local refusal does not close the channel


def test_oversized_frame_closes_with_message_too_big() -> None:
    _, server = open_pair(server_config=ChannelConfig(max_message_size=4096))
    server.receive_data(b"\0" * 100_000, 0.0)
    assert server.close_code == CloseCode.MESSAGE_TOO_BIG


class FutureMessage(msgspec.Struct, frozen=True, tag="screen_offer"):
    monitors: int


def test_unknown_message_type_is_reported_and_skipped() -> None:
    client, server = open_pair()
    client._send_message(FutureMessage(monitors=2), 0.0)  # type: ignore[arg-type]
    client.send(HELLO, 0.0)
    pump(client, server)
    events = server.events_received()
    assert events == [UnknownMessageReceived("screen_offer"), MessageReceived(HELLO)]
    assert server.state is State.OPEN


# -- Attacks on frames ---------------------------------------------------------------------


def first_frame_after_open(message: m.Message = HELLO) -> tuple[ServerConnection, bytes]:
    client, server = open_pair()
    client.send(message, 0.0)
    (frame,) = client.data_to_send()
    return server, frame


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_flipped_bit_anywhere_in_a_frame_is_rejected(data: st.DataObject) -> None:
    server, frame = first_frame_after_open()
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    tampered = bytearray(frame)
    tampered[bit // 8] ^= 1 << (bit % 8)
    server.receive_data(bytes(tampered), 0.0)
    assert not received(server.events_received())
    assert server.state is State.CLOSED
    assert server.close_code in (CloseCode.DECRYPTION_FAILED, CloseCode.PROTOCOL_ERROR)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_truncated_frame_is_rejected(data: st.DataObject) -> None:
    big = m.CommandOutput(command_id="c", seq=0, stream=m.OutputStream.STDOUT, data=b"x" * 200_000)
    server, frame = first_frame_after_open(big)
    cut = data.draw(st.integers(0, len(frame) - 1))
    server.receive_data(frame[:cut], 0.0)
    assert not received(server.events_received())
    assert server.state is State.CLOSED


def test_dropping_the_final_records_of_a_frame_is_detected() -> None:
    big = m.CommandOutput(command_id="c", seq=0, stream=m.OutputStream.STDOUT, data=b"x" * 200_000)
    server, frame = first_frame_after_open(big)
    # Records are flags(1) length(2) ciphertext; keep the nonce and the first record only.
    length = int.from_bytes(frame[9:11], "big")
    server.receive_data(frame[: 8 + 3 + length], 0.0)
    assert server.close_code == CloseCode.DECRYPTION_FAILED
    assert "final record" in server.close_reason


def test_replayed_frame_closes_the_channel() -> None:
    client, server = open_pair()
    client.send(HELLO, 0.0)
    (frame,) = client.data_to_send()
    server.receive_data(frame, 0.0)
    server.receive_data(frame, 0.0)
    events = server.events_received()
    assert received(events) == [HELLO]
    assert terminated(events).code == CloseCode.DECRYPTION_FAILED
    assert isinstance(server.error, DecryptionError)
    assert "replayed" in server.close_reason


def test_reordered_and_dropped_frames_close_the_channel() -> None:
    client, server = open_pair()
    for i in range(3):
        client.send(m.Heartbeat(sent_at=float(i)), 0.0)
    _first, second, _third = client.data_to_send()
    server.receive_data(second, 0.0)  # first was dropped (or second overtook it)
    assert not received(server.events_received())
    assert server.close_code == CloseCode.DECRYPTION_FAILED


def test_rekey_after_a_bounded_number_of_records() -> None:
    config = ChannelConfig(rekey_after_messages=3)
    client, server = open_pair(client_config=config, server_config=config)
    beats = [m.Heartbeat(sent_at=float(i)) for i in range(10)]
    frames = []
    for beat in beats:
        client.send(beat, 0.0)
        frames.extend(client.data_to_send())
    flags = [frame[8] for frame in frames]
    assert flags == [1, 1, 3] * 3 + [1]  # FINAL, with REKEY every third record
    for frame in frames:
        server.receive_data(frame, 0.0)
    assert received(server.events_received()) == beats
    # A receiver that missed a rekey cannot read what follows: keys really changed.
    client2, server2 = open_pair(client_config=config, server_config=config)
    for beat in beats[:3]:
        client2.send(beat, 0.0)
    client2.data_to_send()
    client2.send(beats[3], 0.0)
    (later,) = client2.data_to_send()
    assert server2._recv_cipher is not None
    server2._recv_cipher.set_nonce(3)
    server2.receive_data(later, 0.0)
    assert server2.close_code == CloseCode.DECRYPTION_FAILED


# -- Time, keep-alive, limits, close --------------------------------------------------------


def test_keepalive_ping_and_round_trip_time() -> None:
    config = ChannelConfig(keepalive_interval=20.0, idle_timeout=60.0)
    client, server = open_pair(client_config=config, server_config=config)
    assert client.get_timer() == 20.0
    client.handle_timer(19.0)
    assert not client.data_to_send()
    client.handle_timer(20.0)
    (ping,) = client.data_to_send()
    server.receive_data(ping, 20.5)
    (pong,) = server.data_to_send()
    client.receive_data(pong, 21.0)
    (event,) = client.events_received()
    assert event == PongReceived(nonce=0, rtt=1.0)
    assert not server.events_received()  # pings are the channel's business


def test_idle_peer_is_closed() -> None:
    config = ChannelConfig(keepalive_interval=20.0, idle_timeout=60.0)
    client, server = open_pair(server_config=config)
    server.handle_timer(20.0)
    (ping,) = server.data_to_send()
    client.receive_data(ping, 20.0)
    client.data_to_send()  # the pong is lost: the console hears nothing more
    server.handle_timer(59.0)  # a second ping, 20 s after the first
    assert server.state is State.OPEN
    server.handle_timer(60.0)
    assert server.close_code == CloseCode.IDLE_TIMEOUT
    ping2, close = server.data_to_send()
    client.receive_data(ping2, 60.0)
    client.receive_data(close, 60.0)
    event = terminated(client.events_received())
    assert (event.code, event.by_peer) == (CloseCode.IDLE_TIMEOUT, True)


def test_a_peer_that_keeps_talking_is_not_idle() -> None:
    config = ChannelConfig(keepalive_interval=20.0, idle_timeout=60.0)
    client, server = open_pair(server_config=config)
    client.send(m.Heartbeat(sent_at=50.0), 50.0)
    pump(client, server, 50.0)
    server.handle_timer(100.0)  # 100 s after opening, but 50 s after the last frame
    assert server.state is State.OPEN
    assert server.get_timer() == 110.0  # idle 60 s after what it last received
    server.handle_timer(110.0)
    assert server.close_code == CloseCode.IDLE_TIMEOUT


def test_rate_limit_closes_a_flooding_peer() -> None:
    config = ChannelConfig(max_receive_rate=10.0, receive_burst=5)
    client, server = open_pair(server_config=config)
    for i in range(6):
        client.send(m.Heartbeat(sent_at=float(i)), 0.0)
    pump(client, server, 0.0)
    events = server.events_received()
    assert len(received(events)) == 5
    assert terminated(events).code == CloseCode.RATE_LIMITED


def test_rate_limit_allows_the_sustained_rate() -> None:
    config = ChannelConfig(max_receive_rate=10.0, receive_burst=5)
    client, server = open_pair(server_config=config)
    for i in range(100):
        now = i * 0.1
        client.send(m.Heartbeat(sent_at=now), now)
        pump(client, server, now)
    assert server.state is State.OPEN
    assert len(received(server.events_received())) == 100


def test_an_agent_that_waits_its_send_delay_stays_within_the_limit() -> None:
    config = ChannelConfig(max_receive_rate=10.0, receive_burst=5)
    client, server = open_pair(server_config=config)
    assert server.send_delay(0.0) == 0.0  # the console paces nobody
    now, sent = 0.0, 0
    while sent < 50:  # as fast as the pacing lets it, with the peer's clock the same
        wait = client.send_delay(now)
        if wait > 0:
            now += wait
            continue
        client.send(m.Heartbeat(sent_at=now), now)
        pump(client, server, now)
        sent += 1
    assert server.state is State.OPEN
    assert len(received(server.events_received())) == 50
    # 80 % of the rate (8 a second) after a burst of 2 (half of 80 % of 5): 48 paced.
    assert now == pytest.approx(48 / 8.0)
    unpaced, _ = open_pair()
    assert unpaced.send_delay(0.0) == 0.0


def test_close_is_told_to_the_peer() -> None:
    client, server = open_pair()
    assert (client.close_code, client.close_reason, client.closed_by_peer) == (None, "", False)
    assert (client.error, client.close_transport) == (None, False)
    with pytest.raises(LocalProtocolError, match="not closed"):
        client.close_exception()
    client.send(HELLO, 0.0)
    client.close(CloseCode.GOING_AWAY, "agent stopping", now=0.0)
    assert client.close_transport
    assert (client.close_code, client.closed_by_peer) == (CloseCode.GOING_AWAY, False)
    assert client.close_exception().by_peer is False
    pump(client, server)
    events = server.events_received()
    assert received(events) == [HELLO]
    event = terminated(events)
    assert (event.code, event.reason, event.by_peer) == (1001, "agent stopping", True)
    with pytest.raises(ConnectionClosedOK):
        client.send(HELLO, 0.0)
    assert (server.close_code, server.close_reason, server.closed_by_peer) == (
        1001,
        "agent stopping",
        True,
    )
    closed = server.close_exception()
    assert isinstance(closed, ConnectionClosedOK)
    assert (closed.code, closed.reason, closed.by_peer) == (1001, "agent stopping", True)


def test_transport_lost_is_an_abnormal_close() -> None:
    client, _ = open_pair()
    client.connection_lost(5.0)
    event = terminated(client.events_received())
    assert event.code == CloseCode.ABNORMAL
    with pytest.raises(ConnectionClosedError):
        client.send(HELLO, 5.0)
    assert client.get_timer() is None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(frame=st.binary(max_size=400))
def test_garbage_after_open_closes_cleanly(frame: bytes) -> None:
    _, server = open_pair()
    server.receive_data(frame, 0.0)
    assert server.state is State.CLOSED
    assert not received(server.events_received())


@pytest.mark.parametrize(
    "settings",
    [
        {"keepalive_interval": 60.0, "idle_timeout": 30.0},
        {"keepalive_interval": 30.0, "idle_timeout": 30.0},
        {"keepalive_interval": 0.0},
        {"handshake_timeout": 0.0},
        {"handshake_timeout": -1.0},
        {"rekey_after_messages": 0},
        {"max_message_size": 1023},
        {"max_message_size": (1 << 30) + 1},
        {"versions": []},
        {"versions": [0]},
        {"versions": [1, 65536]},
    ],
)
def test_config_is_checked(settings: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        ChannelConfig(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [
        {"keepalive_interval": 0.5, "idle_timeout": 0.75},
        {"handshake_timeout": 0.5},
        {"rekey_after_messages": 1},
        {"max_message_size": 1024},
        {"max_message_size": 1 << 30},
        {"versions": [1, 65535]},
    ],
)
def test_config_accepts_its_limits(settings: dict[str, object]) -> None:
    config = ChannelConfig(**settings)  # type: ignore[arg-type]
    for name, value in settings.items():
        assert getattr(config, name) == value


def test_close_codes_on_the_wire() -> None:
    # Peers of other versions read these numbers: each is fixed, and no two are one.
    assert {code.name: code.value for code in CloseCode} == {
        "NORMAL": 1000,
        "GOING_AWAY": 1001,
        "ABNORMAL": 1006,
        "TRY_AGAIN_LATER": 1013,
        "PROTOCOL_ERROR": 4000,
        "DECRYPTION_FAILED": 4001,
        "HANDSHAKE_FAILED": 4002,
        "UNKNOWN_PEER": 4003,
        "VERSION_MISMATCH": 4004,
        "IDLE_TIMEOUT": 4005,
        "MESSAGE_TOO_BIG": 4006,
        "RATE_LIMITED": 4007,
        "HANDSHAKE_TIMEOUT": 4008,
        "INTERNAL_ERROR": 4011,
    }
    assert len(CloseCode.__members__) == len(CloseCode)  # no aliases


# The largest Noise plaintext in one record: 65535 minus the 16-byte tag.
CHUNK = 65535 - 16


def command_output_of_size(size: int) -> m.CommandOutput:
    """A message whose MessagePack encoding is exactly ``size`` bytes."""
    length = size
    for _ in range(3):  # the length's own header grows with it: settle in a few steps
        message = m.CommandOutput(
            command_id="c", seq=0, stream=m.OutputStream.STDOUT, data=b"x" * length
        )
        length += size - len(codec.encode(message))
    assert len(codec.encode(message)) == size
    return message


def test_max_frame_size_counts_the_records() -> None:
    # nonce(8), the message, and per record a header(3) and a tag(16).
    assert max_frame_size(0) == 8 + 19
    assert max_frame_size(1) == 8 + 1 + 19
    assert max_frame_size(CHUNK) == 8 + CHUNK + 19
    assert max_frame_size(CHUNK + 1) == 8 + CHUNK + 1 + 2 * 19
    assert max_frame_size(2 * CHUNK) == 8 + 2 * CHUNK + 2 * 19
    assert max_frame_size(2 * CHUNK + 1) == 8 + 2 * CHUNK + 1 + 3 * 19


@pytest.mark.parametrize("limit", [CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1])
def test_a_message_of_exactly_the_limit_gets_through(limit: int) -> None:
    client, server = open_pair(server_config=ChannelConfig(max_message_size=limit))
    message = command_output_of_size(limit)
    client.send(message, 0.0)
    (frame,) = client.data_to_send()
    assert len(frame) == max_frame_size(limit)
    server.receive_data(frame, 0.0)
    assert received(server.events_received()) == [message]
    assert server.state is State.OPEN
    with pytest.raises(LocalProtocolError, match="over the limit"):
        client.send(command_output_of_size(limit + 1), 0.0)
    # A frame one byte longer is refused before anything is decrypted.
    server.receive_data(frame + b"\0", 0.0)
    assert server.close_code == CloseCode.MESSAGE_TOO_BIG


def test_real_time_values_work() -> None:
    now = time.monotonic()
    client, server = make_pair(now)
    pump(client, server, now)
    assert client.state is State.OPEN
    assert client.get_timer() == pytest.approx(now + 20.0)


# -- Deferred authorization (the console asks its database) ---------------------------------


def test_deferred_authorization_accept() -> None:
    client = ClientConnection(
        AGENT_KEY, CONSOLE_PUB, 0.0, ChannelConfig(), enrollment_token="t" * 32
    )
    server = ServerConnection(CONSOLE_KEY, None, 0.0)
    pump(client, server)
    (request,) = server.events_received()
    assert isinstance(request, AuthorizationRequested)
    assert request.remote_static == AGENT_PUB
    assert request.params.enrollment_token == "t" * 32
    assert server.state is State.HANDSHAKE
    server.receive_data(b"early", 0.0)  # nothing may come before the answer
    assert server.close_code == CloseCode.PROTOCOL_ERROR


def test_deferred_authorization_accept_then_open() -> None:
    client = ClientConnection(AGENT_KEY, CONSOLE_PUB, 0.0)
    server = ServerConnection(CONSOLE_KEY, None, 0.0)
    pump(client, server)
    assert isinstance(server.events_received()[0], AuthorizationRequested)
    server.accept_peer(0.5)
    pump(client, server)
    assert client.state is server.state is State.OPEN
    assert client.events_received()[0] == HandshakeComplete(
        version=1, remote_static=CONSOLE_PUB, peer_software_version="", heartbeat_interval=30.0
    )
    with pytest.raises(LocalProtocolError):
        server.accept_peer(0.5)


def test_deferred_authorization_refuse_with_reason() -> None:
    client = ClientConnection(AGENT_KEY, CONSOLE_PUB, 0.0)
    server = ServerConnection(CONSOLE_KEY, None, 0.0)
    pump(client, server)
    server.events_received()
    server.refuse_peer(CloseCode.UNKNOWN_PEER, "enrollment token expired", 0.0)
    event = terminated(server.events_received())
    assert (event.code, event.reason) == (CloseCode.UNKNOWN_PEER, "enrollment token expired")
    assert server.close_transport
    assert not server.data_to_send()  # no channel yet: the WebSocket close says it


def test_refusing_or_accepting_needs_a_pending_authorization() -> None:
    _, server = open_pair()  # decided at once by its authorize callback
    with pytest.raises(LocalProtocolError, match="no authorization is pending"):
        server.refuse_peer(CloseCode.UNKNOWN_PEER, "too late", 0.0)
    with pytest.raises(LocalProtocolError, match="no authorization is pending"):
        server.accept_peer(0.0)
    assert server.state is State.OPEN
    waiting = ServerConnection(CONSOLE_KEY, None, 0.0)
    with pytest.raises(LocalProtocolError, match="no authorization is pending"):
        waiting.refuse_peer(CloseCode.UNKNOWN_PEER, "nobody asked", 0.0)
    assert waiting.state is State.HANDSHAKE


def test_pending_authorization_times_out() -> None:
    client = ClientConnection(AGENT_KEY, CONSOLE_PUB, 0.0)
    server = ServerConnection(CONSOLE_KEY, None, 0.0)
    pump(client, server)
    server.handle_timer(10.0)
    assert server.close_code == CloseCode.HANDSHAKE_TIMEOUT
    with pytest.raises(LocalProtocolError):
        server.accept_peer(10.0)
