"""The screen guidance and control messages: their shape on the wire and their limits."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from deskside.protocol import messages as m
from deskside.protocol.codec import decode, encode
from deskside.protocol.errors import RemoteProtocolError


def test_points_travel_as_pairs() -> None:
    draw = m.GuideDraw(
        session_id="s1",
        shape_id="a1",
        kind=m.GuideShape.ARROW,
        points=[m.Point(10, 20), m.Point(300, 400)],
        colour="#00ff7f",
    )
    raw = msgspec.msgpack.decode(encode(draw))
    assert raw["points"] == [[10, 20], [300, 400]]
    assert raw["kind"] == "arrow"
    assert decode(encode(draw)) == draw


def _draw(**fields: Any) -> dict[str, Any]:
    return {
        "type": "guide_draw",
        "session_id": "s1",
        "shape_id": "a1",
        "kind": "line",
        "points": [[1, 2]],
        **fields,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"points": []},  # a drawing has a point
        {"points": [[0, 0]] * 1025},  # and at most 1024
        {"points": [[-1, 0]]},  # frame coordinates are not negative
        {"points": [[16384, 0]]},  # nor beyond the largest frame
        {"colour": "red"},  # "#rrggbb" only
        {"colour": "#ff00001"},
        {"kind": "star"},  # not a shape
        {"width": 0},
        {"width": 33},
        {"text": "x" * 201},
    ],
)
def test_drawing_limits(fields: dict[str, Any]) -> None:
    decode(msgspec.msgpack.encode(_draw()))  # the base is valid
    with pytest.raises(RemoteProtocolError):
        decode(msgspec.msgpack.encode(_draw(**fields)))


@pytest.mark.parametrize(
    "fields",
    [
        {"code": "Key A"},  # codes are KeyboardEvent.code names
        {"code": "K" * 33},
        {"key": ""},
        {"key": "x" * 33},
        {"modifiers": ["hyper"]},
        {"modifiers": ["shift"] * 5},
    ],
)
def test_key_limits(fields: dict[str, Any]) -> None:
    base = {"type": "input_key", "session_id": "s1", "code": "KeyA", "key": "a", "down": True}
    decode(msgspec.msgpack.encode(base))
    with pytest.raises(RemoteProtocolError):
        decode(msgspec.msgpack.encode({**base, **fields}))


@pytest.mark.parametrize(
    "fields",
    [{"action": "drag"}, {"button": "fourth"}, {"wheel_y": 101}, {"x": 16384}],
)
def test_pointer_limits(fields: dict[str, Any]) -> None:
    base = {"type": "input_pointer", "session_id": "s1", "x": 5, "y": 6}
    assert decode(msgspec.msgpack.encode(base)) == m.InputPointer(session_id="s1", x=5, y=6)
    with pytest.raises(RemoteProtocolError):
        decode(msgspec.msgpack.encode({**base, **fields}))


def test_video_frame_limits() -> None:
    base = {
        "type": "video_frame",
        "session_id": "s1",
        "seq": 0,
        "keyframe": True,
        "data": b"\x00\x00\x00\x01",
        "codec": "avc1.42e01f",
        "width": 1920,
        "height": 1080,
    }
    frame = decode(msgspec.msgpack.encode(base))
    assert isinstance(frame, m.VideoFrame)
    assert frame.description is None
    for fields in ({"codec": "avc1;drop"}, {"width": 1}, {"description": b"x" * 4097}):
        with pytest.raises(RemoteProtocolError):
            decode(msgspec.msgpack.encode({**base, **fields}))
