from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deskside.protocol import messages as m
from deskside.protocol.codec import DEFAULT_MAX_MESSAGE_SIZE, Codec, UnknownMessage, decode, encode
from deskside.protocol.errors import LocalProtocolError, RemoteProtocolError

from .strategies import _struct, messages

SETTINGS = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def decode_or_refuse(data: bytes) -> Any:
    """Decode; a refusal must be RemoteProtocolError, and nothing else may escape."""
    try:
        return decode(data)
    except RemoteProtocolError:
        return None


@pytest.mark.parametrize("cls", m.MESSAGE_TYPES, ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_every_message_type_round_trips(cls: type, data: st.DataObject) -> None:
    message = data.draw(_struct(cls))
    assert decode(encode(message)) == message


def test_tags_are_unique_and_cover_the_union() -> None:
    tags = [t.__struct_config__.tag for t in m.MESSAGE_TYPES]
    assert len(tags) == len(set(tags))
    defined = {
        value
        for value in vars(m).values()
        if isinstance(value, type) and issubclass(value, m._Message) and value is not m._Message
    }
    assert defined == set(m.MESSAGE_TYPES)  # a message left out of the union cannot be sent


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_random_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    result = decode_or_refuse(data)
    assert result is None or isinstance(result, (*m.MESSAGE_TYPES, UnknownMessage))


@SETTINGS
@given(message=messages(), data=st.data())
def test_mutated_messages_only_raise_remote_protocol_error(
    message: Any, data: st.DataObject
) -> None:
    encoded = bytearray(encode(message))
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, len(encoded)))
        if action == "flip" and pos < len(encoded):
            encoded[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "cut":
            del encoded[pos:]
        else:
            encoded[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    result = decode_or_refuse(bytes(encoded))
    assert result is None or isinstance(result, (*m.MESSAGE_TYPES, UnknownMessage))


def test_unknown_tag_is_reported_not_refused() -> None:
    data = msgspec.msgpack.encode({"type": "screen_offer", "monitors": 2})
    assert decode(data) == UnknownMessage("screen_offer")


def test_known_tag_with_bad_fields_is_refused() -> None:
    data = msgspec.msgpack.encode({"type": "hello", "agent_version": 3})
    with pytest.raises(RemoteProtocolError, match="agent_version"):
        decode(data)


def test_unknown_fields_of_a_newer_peer_are_ignored() -> None:
    data = msgspec.msgpack.encode({"type": "ping", "nonce": 7, "added_in_v2": "x"})
    assert decode(data) == m.Ping(nonce=7)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "x" * 65537),  # Text limit
        ("request_id", "not an id!"),  # pattern
        ("request_id", "a" * 65),  # Id length
        ("created_at", -1.0),  # negative time
        ("impact", 9),  # not in the enum
    ],
)
def test_field_limits_are_enforced(field: str, value: object) -> None:
    fields: dict[str, object] = {
        "type": "help_request",
        "request_id": "r1",
        "description": "printer",
        "created_at": time.time(),
    }
    fields[field] = value
    with pytest.raises(RemoteProtocolError):
        decode(msgspec.msgpack.encode(fields))


def test_list_length_limit() -> None:
    fields = {"type": "client_params", "versions": list(range(1, 18))}
    with pytest.raises(RemoteProtocolError, match="length"):
        decode(msgspec.msgpack.encode(fields))


def test_size_limit_on_both_sides() -> None:
    codec = Codec(max_message_size=1024)
    big = m.Error(code=m.ErrorCode.INTERNAL, message="x" * 2000)
    with pytest.raises(LocalProtocolError, match="over the limit"):
        codec.encode(big)
    with pytest.raises(RemoteProtocolError, match="over the limit"):
        codec.decode(encode(big))


def test_deep_nesting_is_refused_cleanly() -> None:
    data = b"\x91" * 200_000 + b"\xc0"
    with pytest.raises(RemoteProtocolError):
        decode(data)


def test_the_default_limit_is_16_mib() -> None:
    assert DEFAULT_MAX_MESSAGE_SIZE == 16 * 1024 * 1024
    with pytest.raises(RemoteProtocolError, match="over the limit of 16777216"):
        decode(bytes(16 * 1024 * 1024 + 1))
    with pytest.raises(LocalProtocolError, match="over the limit of 16777216"):
        encode(m.Error(code=m.ErrorCode.INTERNAL, message="x" * (16 * 1024 * 1024)))


def test_a_message_of_exactly_the_limit_passes_both_ways() -> None:
    message = m.Ping(nonce=7)
    size = len(encode(message))
    exact, under = Codec(max_message_size=size), Codec(max_message_size=size - 1)
    assert exact.decode(exact.encode(message)) == message
    with pytest.raises(LocalProtocolError):
        under.encode(message)
    with pytest.raises(RemoteProtocolError):
        under.decode(encode(message))


def test_a_codec_needs_a_positive_limit() -> None:
    assert Codec(max_message_size=1).max_message_size == 1
    for bad in (0, -1):
        with pytest.raises(LocalProtocolError, match="positive"):
            Codec(max_message_size=bad)


def test_what_cannot_be_encoded_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError, match="cannot encode Ping"):
        encode(m.Ping(nonce=2**70))  # msgspec does not check on construction


@pytest.mark.parametrize(
    ("tag", "reported"),
    [("x", True), ("x" * 64, True), ("x" * 65, False), ("", False), ("ping", False)],
)
def test_only_reasonable_unknown_tags_are_reported(tag: str, reported: bool) -> None:
    data = msgspec.msgpack.encode({"type": tag, "other": 1})
    if reported:
        assert decode(data) == UnknownMessage(tag)
    else:
        with pytest.raises(RemoteProtocolError, match="invalid message"):
            decode(data)


def test_unknown_messages_are_values() -> None:
    # Frozen like every message: comparable and hashable, so they can be counted.
    assert {UnknownMessage("a"), UnknownMessage("a")} == {UnknownMessage("a")}
