"""The video mode: screen frames as H.264 that browsers decode with WebCodecs.

For full-screen motion (a video, scrolling, a window dragged about) JPEG tiles cost
far more than a video codec, so a screen session can switch to H.264. The encoder is
libx264 through PyAV (the ``av`` wheels bundle FFmpeg with libx264), set for the
lowest delay, as screen sharing needs rather than films:

* ``tune=zerolatency``: no look-ahead, no frame threads, so each frame given to
  :meth:`VideoEncoder.encode` comes back encoded at once (one chunk per frame);
* the Baseline profile, which has no B-frames and no CABAC: every WebCodecs
  implementation decodes it (the ``codec`` string is ``avc1.42....``, read from the
  stream's own SPS, so it always says what the stream is);
* ``preset`` ultrafast by default (2 cores shared with the rest of the agent), at a
  constant quality (CRF) capped by a maximum bit rate with a VBV buffer of a third
  of a second: a still screen costs next to nothing, and a burst of motion cannot
  queue seconds of data in front of the viewer;
* a keyframe (an IDR, with SPS and PPS before it) when asked for (a new viewer, a
  lost frame) and, by default, never else: a keyframe of a dense screen is large,
  and under the bit-rate cap it starts blurred and sharpens over the next seconds,
  so one should come only when a decoder needs it.

Input is what mss gives: BGRA pixels, 4 bytes a pixel, rows top to bottom. H.264 in
4:2:0 needs even dimensions, so an odd width or height is cropped by one pixel (the
last column or row): the frame the viewer gets, and so the coordinates it sends back,
are of the encoded size (:attr:`VideoEncoder.width`, :attr:`VideoEncoder.height`).

Output is Annex B (start codes; WebCodecs decodes it without a ``description``) or,
with ``avcc=True``, AVCC (4-byte lengths, SPS and PPS kept apart in the avcC box
given as :attr:`VideoEncoder.description`) for decoders that want that form.

This module imports PyAV and numpy, so only a screen session imports it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Final

import av
import numpy as np

from .errors import VideoError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "EncodedChunk",
    "VideoEncoder",
    "VideoError",
    "avcc_description",
    "codec_string",
    "split_annexb",
]

# Timestamps are in microseconds, as WebCodecs has them.
_TIME_BASE: Final = Fraction(1, 1_000_000)
# NAL unit types that matter here.
_NAL_IDR: Final = 5
_NAL_SPS: Final = 7
_NAL_PPS: Final = 8
# x264's "infinite" keyframe interval.
_NO_PERIODIC_KEYFRAMES: Final = 1 << 30


@dataclass(frozen=True, slots=True)
class EncodedChunk:
    """One encoded frame, ready for a ``VideoFrame`` message or a WebCodecs chunk."""

    data: bytes
    """The access unit, in Annex B or AVCC form as the encoder was made."""

    keyframe: bool
    """An IDR frame: a decoder can start here (WebCodecs' ``type: "key"``)."""

    timestamp_us: int
    """The frame's time in microseconds, as given to :meth:`VideoEncoder.encode`."""


def split_annexb(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B byte stream, without their start codes."""
    starts: list[tuple[int, int]] = []  # (start code offset, payload offset)
    i = 0
    n = len(data)
    while i + 3 <= n:
        if data[i] == 0 and data[i + 1] == 0:
            if data[i + 2] == 1:
                starts.append((i, i + 3))
                i += 3
                continue
            if i + 4 <= n and data[i + 2] == 0 and data[i + 3] == 1:
                starts.append((i, i + 4))
                i += 4
                continue
        i += 1
    for index, (_, payload) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else n
        unit = data[payload:end]
        if unit:
            yield unit


def codec_string(sps: bytes) -> str:
    """The WebCodecs/RFC 6381 codec string of an SPS NAL unit: ``avc1.PPCCLL`` in hex."""
    if len(sps) < 4 or sps[0] & 0x1F != _NAL_SPS:
        raise VideoError("not an SPS NAL unit")
    return f"avc1.{sps[1]:02x}{sps[2]:02x}{sps[3]:02x}"


def avcc_description(sps: bytes, pps: bytes) -> bytes:
    """The avcC box body (AVCDecoderConfigurationRecord) for one SPS and one PPS."""
    if len(sps) < 4 or sps[0] & 0x1F != _NAL_SPS or not pps or pps[0] & 0x1F != _NAL_PPS:
        raise VideoError("an avcC record needs an SPS and a PPS")
    return b"".join(
        [
            bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]),  # 4-byte lengths, one SPS
            len(sps).to_bytes(2, "big"),
            sps,
            b"\x01",
            len(pps).to_bytes(2, "big"),
            pps,
        ]
    )


class VideoEncoder:
    """H.264 encoder of BGRA screen frames of a fixed size.

    Not thread-safe for :meth:`encode` (one capture thread feeds it), but
    :meth:`request_keyframe` may be called from any thread (the event loop, when a
    viewer asks).
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        fps: int = 30,
        bitrate: int = 3_000_000,
        preset: str = "ultrafast",
        keyframe_interval: float | None = None,
        crf: int = 26,
        avcc: bool = False,
    ) -> None:
        """An encoder for ``width`` x ``height`` BGRA frames (an odd size is cropped).

        ``crf`` is x264's constant rate factor (quality: lower is better, 18 to 30 is
        sensible); ``bitrate`` caps it, in bits per second (the VBV maximum, with a
        buffer of a third of a second); ``keyframe_interval`` is the most seconds
        between keyframes when none is asked for (None: only when asked for).
        """
        if not (2 <= width <= 16384 and 2 <= height <= 16384):
            raise VideoError(f"cannot encode a {width}x{height} frame")
        if not (1 <= fps <= 240) or bitrate < 10_000 or not (0 <= crf <= 51):
            raise VideoError("fps must be 1 to 240, the bit rate 10 kbit/s or more, crf 0 to 51")
        # The size of the frames given to encode(), and the even size encoded.
        self.source_width = width
        self.source_height = height
        self.width = width & ~1
        self.height = height & ~1
        # Output form: AVCC (length prefixed, SPS/PPS in ``description``) or Annex B.
        self.avcc = avcc
        self._fps = fps
        # Set by request_keyframe(), taken by the next encode().
        self._keyframe_wanted = threading.Event()
        self._keyframe_wanted.set()  # the first frame is a keyframe anyway
        # The stream's parameter sets, from its first keyframe.
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        try:
            context = av.CodecContext.create("libx264", "w")
        except (av.FFmpegError, ValueError) as exc:
            raise VideoError(f"this PyAV has no libx264 encoder: {exc}") from exc
        assert isinstance(context, av.VideoCodecContext)
        context.width = self.width
        context.height = self.height
        context.pix_fmt = "yuv420p"
        context.time_base = _TIME_BASE
        context.framerate = Fraction(fps)
        context.gop_size = (
            _NO_PERIODIC_KEYFRAMES
            if keyframe_interval is None
            else max(1, min(_NO_PERIODIC_KEYFRAMES, round(keyframe_interval * fps)))
        )
        context.max_b_frames = 0
        context.options = {
            "preset": preset,
            "tune": "zerolatency",
            "profile": "baseline",
            "forced-idr": "1",
            # Constant quality, capped: a still screen costs next to nothing, motion
            # at most ``bitrate`` (an average bit rate would spend the budget anyway).
            "crf": str(crf),
            "maxrate": str(bitrate),
            "bufsize": str(bitrate // 3),
            "threads": "2",
            # Say in the stream which colours its numbers mean (swscale's BT.601,
            # limited range), or a browser guesses BT.709 and shifts every hue.
            "x264-params": (
                "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m:range=tv"
            ),
        }
        try:
            context.open()
        except av.FFmpegError as exc:
            raise VideoError(f"libx264 refused the settings: {exc}") from exc
        # The libx264 context; None once closed.
        self._context: av.VideoCodecContext | None = context

    @property
    def codec(self) -> str | None:
        """The WebCodecs codec string (``avc1.42c01f``...), known after the first frame."""
        return None if self._sps is None else codec_string(self._sps)

    @property
    def description(self) -> bytes | None:
        """The avcC box for WebCodecs' ``description`` in AVCC mode; None in Annex B mode."""
        if not self.avcc or self._sps is None or self._pps is None:
            return None
        return avcc_description(self._sps, self._pps)

    def request_keyframe(self) -> None:
        """Make the next encoded frame a keyframe (safe from any thread)."""
        self._keyframe_wanted.set()

    def encode(
        self, bgra: bytes | bytearray | memoryview | NDArray[np.uint8], timestamp_us: int
    ) -> list[EncodedChunk]:
        """Encode one frame of ``source_width`` x ``source_height`` BGRA pixels.

        ``bgra`` is raw bytes (as mss's ``ScreenShot.raw``) or an array of shape
        (height, width, 4). Returns the chunks produced: with zero-latency settings,
        exactly one, for this frame.
        """
        context = self._require_open()
        pixels = self._pixels(bgra)
        try:
            frame = av.VideoFrame(self.width, self.height, "bgra")
            plane = frame.planes[0]
            if plane.line_size == self.width * 4:
                # One copy into the frame: from_ndarray took 9 ms a 1080p frame, this 1 ms.
                plane.update(pixels.data)  # type: ignore[arg-type]  # any buffer (stub: bytes)
            else:
                frame = av.VideoFrame.from_ndarray(pixels, format="bgra")
        except (av.FFmpegError, ValueError) as exc:
            # PyAV's own checks raise ValueError (a buffer of the wrong size), FFmpeg's
            # allocation FFmpegError; the sizes were checked above, so this is rare.
            raise VideoError(f"cannot make a frame: {exc}") from exc
        frame.pts = timestamp_us
        frame.time_base = _TIME_BASE
        if self._keyframe_wanted.is_set():
            self._keyframe_wanted.clear()
            frame.pict_type = av.video.frame.PictureType.I
        try:
            packets = context.encode(frame)
        except av.FFmpegError as exc:
            raise VideoError(f"the encoder failed: {exc}") from exc
        return [self._chunk(bytes(packet), packet.pts) for packet in packets]

    def flush(self) -> list[EncodedChunk]:
        """The chunks still in the encoder (none with zero-latency settings); closes it."""
        context = self._require_open()
        try:
            packets = context.encode(None)
        except av.FFmpegError as exc:
            raise VideoError(f"the encoder failed: {exc}") from exc
        finally:
            self._context = None
        return [self._chunk(bytes(packet), packet.pts) for packet in packets]

    def close(self) -> None:
        """Free the encoder; later calls raise :class:`VideoError`."""
        self._context = None

    def _require_open(self) -> av.VideoCodecContext:
        if self._context is None:
            raise VideoError("the encoder is closed")
        return self._context

    def _pixels(
        self, bgra: bytes | bytearray | memoryview | NDArray[np.uint8]
    ) -> NDArray[np.uint8]:
        shape = (self.source_height, self.source_width, 4)
        if isinstance(bgra, np.ndarray):
            if bgra.shape != shape or bgra.dtype != np.uint8:
                raise VideoError(f"expected a {shape} uint8 array, got {bgra.shape} {bgra.dtype}")
            array = bgra
        else:
            size = self.source_width * self.source_height * 4
            if len(bgra) != size:
                raise VideoError(f"expected {size} bytes of BGRA, got {len(bgra)}")
            array = np.frombuffer(bgra, dtype=np.uint8).reshape(shape)
        if array.shape[:2] != (self.height, self.width):
            array = array[: self.height, : self.width]
        return np.ascontiguousarray(array)

    def _chunk(self, data: bytes, pts: int | None) -> EncodedChunk:
        units = list(split_annexb(data))
        keyframe = any(unit[0] & 0x1F == _NAL_IDR for unit in units)
        for unit in units:
            kind = unit[0] & 0x1F
            if kind == _NAL_SPS:
                self._sps = unit
            elif kind == _NAL_PPS:
                self._pps = unit
        if self.avcc:
            data = b"".join(
                len(unit).to_bytes(4, "big") + unit
                for unit in units
                if unit[0] & 0x1F not in (_NAL_SPS, _NAL_PPS)
            )
        return EncodedChunk(data=data, keyframe=keyframe, timestamp_us=pts or 0)
