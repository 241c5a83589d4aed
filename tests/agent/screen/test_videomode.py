"""The session's encoder by mode: tiles, H.264 when asked, and auto switching to video
under full-screen motion and back to tiles when the screen calms down."""

from __future__ import annotations

import time

import av
import numpy as np

from deskside.agent.screen.capture import Frame
from deskside.agent.screen.tiles import EncodedFrame
from deskside.agent.screen.videomode import AUTO_TO_TILES, AUTO_TO_VIDEO, ModeEncoder
from deskside.protocol import messages as m
from tests.agent.screen.test_video import pattern

WIDTH, HEIGHT = 321, 240  # an odd width: video crops it


def frame(t: int, *, noise: bool = False) -> Frame:
    pixels = pattern(WIDTH, HEIGHT, t)
    if noise:  # every pixel changes
        pixels = pixels.copy()
        pixels[..., 2] = (pixels[..., 2].astype(int) + t * 7) % 256
    return Frame(
        width=WIDTH,
        height=HEIGHT,
        left=0,
        top=0,
        data=pixels.tobytes(),
        captured_at=time.time(),
    )


def decode(encoded: EncodedFrame) -> list[av.VideoFrame]:
    codec = av.CodecContext.create("h264", "r")
    data = b"".join(r.data for r in encoded.rects)
    return list(codec.decode(av.Packet(data)))


def test_tiles_by_default_and_video_when_asked() -> None:
    encoder = ModeEncoder(70)
    first = encoder.encode(frame(0), keyframe=True)
    assert first is not None
    assert first.encoding == "jpeg"
    encoder.set_mode(m.ScreenMode.VIDEO)
    video = encoder.encode(frame(1), keyframe=False)
    assert video is not None
    assert video.encoding == "h264"
    assert video.keyframe  # a switch starts with a keyframe
    assert (video.width, video.height) == (WIDTH - 1, HEIGHT)
    assert all((r.rect.width, r.rect.height) == (WIDTH - 1, HEIGHT) for r in video.rects)
    pictures = decode(video)
    assert [(p.width, p.height) for p in pictures] == [(WIDTH - 1, HEIGHT)]
    assert encoder.encode(frame(1)) is None  # nothing changed: nothing sent
    later = encoder.encode(frame(2))
    assert later is not None
    assert not later.keyframe
    encoder.set_mode(m.ScreenMode.TILES)
    back = encoder.encode(frame(3))
    assert back is not None
    assert back.encoding == "jpeg"
    assert back.keyframe
    assert encoder.switches == 2


def test_auto_switches_to_video_under_motion_and_back_when_still() -> None:
    encoder = ModeEncoder(70)
    encoder.set_mode(m.ScreenMode.AUTO)
    encodings = []
    t = 0
    encoded = encoder.encode(frame(t, noise=True), keyframe=True)
    for t in range(1, AUTO_TO_VIDEO + 3):
        encoded = encoder.encode(frame(t, noise=True))
        assert encoded is not None
        encodings.append(encoded.encoding)
    assert encodings[: AUTO_TO_VIDEO - 1] == ["jpeg"] * (AUTO_TO_VIDEO - 1)
    assert encodings[-1] == "h264"
    # A small change now and then (a caret blinking): back to tiles in time.
    for step in range(AUTO_TO_TILES + 2):
        encoded = encoder.encode(frame(t + step % 2))
    assert encoder.encoding == "jpeg"
    assert encoder.switches == 2


def test_the_pixels_survive_the_video_round_trip() -> None:
    encoder = ModeEncoder(70)
    encoder.set_mode(m.ScreenMode.VIDEO)
    encoded = encoder.encode(frame(4), keyframe=True)
    assert encoded is not None
    (picture,) = decode(encoded)
    rgb = picture.to_ndarray(format="rgb24").astype(int)
    expected = pattern(WIDTH, HEIGHT, 4)[:, : WIDTH - 1, 2::-1].astype(int)
    assert np.abs(rgb - expected).mean() < 4
