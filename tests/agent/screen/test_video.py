"""The H.264 video mode: encoded with libx264, decoded back with PyAV's decoder."""

from __future__ import annotations

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from deskside.agent.screen.video import (
    EncodedChunk,
    VideoEncoder,
    VideoError,
    avcc_description,
    split_annexb,
)

FPS = 30


def pattern(width: int, height: int, t: int) -> NDArray[np.uint8]:
    """A BGRA test picture: smooth colour bands and a white square that moves with ``t``."""
    y, x = np.mgrid[0:height, 0:width]
    frame = np.zeros((height, width, 4), np.uint8)
    frame[..., 0] = (x * 255 // max(1, width - 1)).astype(np.uint8)  # blue grows to the right
    frame[..., 1] = (y * 255 // max(1, height - 1)).astype(np.uint8)  # green grows downwards
    frame[..., 2] = 64
    frame[..., 3] = 255
    side = max(8, height // 6)
    left = (t * 8) % max(1, width - side)
    frame[height // 3 : height // 3 + side, left : left + side, :3] = 255
    return frame


def decode_all(
    chunks: list[EncodedChunk], avcc_box: bytes | None = None
) -> list[NDArray[np.uint8]]:
    """Decode the chunks with FFmpeg's H.264 decoder; the pictures as RGB arrays."""
    decoder = av.CodecContext.create("h264", "r")
    assert isinstance(decoder, av.VideoCodecContext)
    if avcc_box is not None:
        decoder.extradata = avcc_box
    decoder.open()
    pictures = []
    for chunk in chunks:
        for frame in decoder.decode(av.Packet(chunk.data)):
            pictures.append(np.asarray(frame.to_ndarray(format="rgb24"), np.uint8))
    for frame in decoder.decode(None):
        pictures.append(np.asarray(frame.to_ndarray(format="rgb24"), np.uint8))
    return pictures


def as_rgb(bgra: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.ascontiguousarray(bgra[..., 2::-1])


def test_frames_come_back_as_they_went_in() -> None:
    width, height = 320, 240
    encoder = VideoEncoder(width, height, fps=FPS, bitrate=2_000_000)
    sources = [pattern(width, height, t) for t in range(20)]
    chunks = []
    for t, source in enumerate(sources):
        produced = encoder.encode(source, t * 33_333)
        assert len(produced) == 1  # zero latency: each frame comes out at once
        chunks += produced
    assert chunks[0].keyframe
    assert not any(chunk.keyframe for chunk in chunks[1:])
    assert [c.timestamp_us for c in chunks] == [t * 33_333 for t in range(20)]
    assert chunks[0].data.startswith(b"\x00\x00\x00\x01")  # Annex B
    assert encoder.codec is not None
    assert encoder.codec.startswith("avc1.42")  # the Baseline profile
    assert encoder.description is None

    pictures = decode_all(chunks)
    assert len(pictures) == len(sources)
    for picture, source in zip(pictures, sources, strict=True):
        assert picture.shape == (height, width, 3)
        error = np.abs(picture.astype(int) - as_rgb(source).astype(int))
        assert error.mean() < 4, error.mean()
        assert np.percentile(error, 99) < 40


def test_no_b_frames_and_baseline_profile() -> None:
    encoder = VideoEncoder(64, 48)
    chunks = [encoder.encode(pattern(64, 48, t), t) for t in range(10)]
    sps = next(u for u in split_annexb(chunks[0][0].data) if u[0] & 0x1F == 7)
    assert sps[1] == 66  # profile_idc: Baseline (no B-frames, no CABAC)
    assert encoder.codec == f"avc1.42{sps[2]:02x}{sps[3]:02x}"
    decoder = av.CodecContext.create("h264", "r")
    decoder.open()
    types = []
    for produced in chunks:
        for frame in decoder.decode(av.Packet(produced[0].data)):
            assert isinstance(frame, av.VideoFrame)
            types.append(frame.pict_type)
    assert av.video.frame.PictureType.B not in types
    assert len(types) == 10  # no frame held back either


def test_a_keyframe_when_asked() -> None:
    encoder = VideoEncoder(128, 96)
    flags = []
    for t in range(12):
        if t == 7:
            encoder.request_keyframe()
        flags.append(encoder.encode(pattern(128, 96, t), t)[0].keyframe)
    assert flags == [True] + [False] * 6 + [True] + [False] * 4
    # The keyframe carries its parameter sets: a decoder can start from it alone.
    encoder.request_keyframe()
    chunks = [encoder.encode(pattern(128, 96, t), t)[0] for t in range(12, 15)]
    assert chunks[0].keyframe
    assert len(decode_all(chunks)) == 3


def test_avcc_form_with_its_description() -> None:
    encoder = VideoEncoder(160, 120, avcc=True)
    sources = [pattern(160, 120, t) for t in range(6)]
    chunks = [encoder.encode(source, t)[0] for t, source in enumerate(sources)]
    box = encoder.description
    assert box is not None
    assert box[0] == 1  # version 1
    assert box[1] == 66  # Baseline
    assert encoder.codec == f"avc1.{box[1]:02x}{box[2]:02x}{box[3]:02x}"
    for chunk in chunks:  # length prefixed NAL units, without SPS and PPS
        data, offset = chunk.data, 0
        while offset < len(data):
            size = int.from_bytes(data[offset : offset + 4], "big")
            assert data[offset + 4] & 0x1F not in (7, 8)
            offset += 4 + size
        assert offset == len(data)
    pictures = decode_all(chunks, avcc_box=box)
    assert len(pictures) == 6
    error = np.abs(pictures[-1].astype(int) - as_rgb(sources[-1]).astype(int))
    assert error.mean() < 4


def test_odd_sizes_are_cropped_to_even() -> None:
    encoder = VideoEncoder(101, 77)
    assert (encoder.width, encoder.height) == (100, 76)
    source = pattern(101, 77, 0)
    pictures = decode_all(encoder.encode(source.tobytes(), 0))  # raw bytes, as mss gives
    assert pictures[0].shape == (76, 100, 3)
    error = np.abs(pictures[0].astype(int) - as_rgb(source[:76, :100]).astype(int))
    assert error.mean() < 4


def test_moving_pattern_stays_under_the_bit_rate() -> None:
    width, height, target = 640, 360, 1_000_000
    encoder = VideoEncoder(width, height, fps=FPS, bitrate=target)
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    total = 0
    seconds = 3
    for t in range(FPS * seconds):
        # Hard to compress: noise that scrolls, and the moving square.
        frame = np.roll(noise, t * 7, axis=1)
        frame[:, : width // 2] = pattern(width // 2, height, t)
        total += sum(len(c.data) for c in encoder.encode(frame, t * 1_000_000 // FPS))
    bits_per_second = total * 8 / seconds
    assert bits_per_second < target * 1.25, bits_per_second


def test_bad_input_is_refused() -> None:
    with pytest.raises(VideoError):
        VideoEncoder(1, 100)
    encoder = VideoEncoder(64, 48)
    with pytest.raises(VideoError, match="bytes of BGRA"):
        encoder.encode(b"\x00" * 10, 0)
    with pytest.raises(VideoError, match="array"):
        encoder.encode(np.zeros((48, 64, 3), np.uint8), 0)
    encoder.close()
    with pytest.raises(VideoError, match="closed"):
        encoder.encode(pattern(64, 48, 0), 0)


def test_description_helpers_check_their_input() -> None:
    with pytest.raises(VideoError):
        avcc_description(b"\x68\x00", b"\x68\x00")
    assert list(split_annexb(b"\x00\x00\x01\x65\xaa\x00\x00\x00\x01\x41\xbb")) == [
        b"\x65\xaa",
        b"\x41\xbb",
    ]
