"""The chat messages: their round trip, their limits, plain text only."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskside.protocol import messages as m
from deskside.protocol.codec import decode, encode
from deskside.protocol.errors import RemoteProtocolError
from tests.protocol.strategies import strategy_for

CHAT_TYPES = (m.ChatMessage, m.ChatDelivered, m.ChatReply, m.ChatAck)


@given(st.one_of([strategy_for(msgspec.inspect.type_info(cls)) for cls in CHAT_TYPES]))
def test_every_valid_chat_message_round_trips(message: Any) -> None:
    assert decode(encode(message)) == message


@given(st.text(min_size=1, max_size=m.CHAT_TEXT_MAX))
def test_text_with_a_control_character_is_refused(text: str) -> None:
    fields = {"type": "chat_reply", "reply_id": "r1", "ticket_id": 1, "sent_at": 1.0}
    raw = msgspec.msgpack.encode({**fields, "text": text})
    plain = all(c in "\n\t" or not (ord(c) < 0x20 or ord(c) == 0x7F) for c in text)
    if plain:
        assert isinstance(decode(raw), m.ChatReply)
    else:
        with pytest.raises(RemoteProtocolError):
            decode(raw)


def _line(**fields: Any) -> dict[str, Any]:
    return {
        "type": "chat_message",
        "seq": 1,
        "ticket_id": 7,
        "sender": "user:alice",
        "text": "Please restart Outlook.\nThen tell me.",
        "sent_at": 1.0,
        **fields,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"text": ""},  # a line says something
        {"text": "x" * (m.CHAT_TEXT_MAX + 1)},  # and not too much
        {"text": "bell\x07"},  # plain text: no control characters
        {"text": "\x1b[31mred"},  # nor terminal escapes
        {"text": "carriage\rreturn"},
        {"seq": 0},  # numbered from 1
        {"ticket_id": 0},
        {"sender": "x" * 257},
    ],
)
def test_chat_message_limits(fields: dict[str, Any]) -> None:
    assert decode(msgspec.msgpack.encode(_line())) == m.ChatMessage(**_line_fields())
    with pytest.raises(RemoteProtocolError):
        decode(msgspec.msgpack.encode(_line(**fields)))


def _line_fields() -> dict[str, Any]:
    return {k: v for k, v in _line().items() if k != "type"}


def test_each_side_sends_its_own() -> None:
    agent = msgspec.inspect.type_info(m.AgentMessage)
    console = msgspec.inspect.type_info(m.ConsoleMessage)
    assert isinstance(agent, msgspec.inspect.UnionType)
    assert isinstance(console, msgspec.inspect.UnionType)
    from_agent = {t.cls for t in agent.types if isinstance(t, msgspec.inspect.StructType)}
    from_console = {t.cls for t in console.types if isinstance(t, msgspec.inspect.StructType)}
    assert {m.ChatDelivered, m.ChatReply} <= from_agent
    assert {m.ChatMessage, m.ChatAck} <= from_console
    assert not {m.ChatMessage, m.ChatAck} & from_agent
