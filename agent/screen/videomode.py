"""The session's encoder, tiles or video: JPEG tiles by default, H.264 when asked.

A :class:`ModeEncoder` is what the screen session encodes with (its
``encoder_factory`` makes one); it hands each frame to a ``TileEncoder`` or to a
``VideoEncoder`` (video.py, PyAV and libx264, made on first use) by mode:

``tiles``  JPEG tiles (the default; what every viewer can draw);
``video``  H.264: each frame one access unit, over the whole monitor;
``auto``   tiles, switching to video when most of the screen changed in
           ``AUTO_TO_VIDEO`` frames in a row (scrolling, a video, a window dragged),
           and back to tiles after ``AUTO_TO_TILES`` frames in a row of little change.

The viewer asks for a mode (``ScreenMode``) only if its browser can decode H.264
(WebCodecs); the console forwards ``tiles`` if any viewer cannot. Switching sends a
keyframe of the new kind at once. A video frame is a ``ScreenFrame`` of encoding
``h264`` whose rects all cover the (even-sized) monitor and whose data, joined in
order, is one Annex B access unit: an access unit larger than a rect may carry is
split across rects (and parts). The viewer's quality setting does not apply to
video (x264 at constant quality, capped at ``VIDEO_BITRATE``). If PyAV has no
libx264 the session stays with tiles.

Runs on the session's worker thread; :meth:`ModeEncoder.set_mode` may be called
from the event loop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from deskside.protocol import messages as m

from .capture import Frame
from .tiles import EncodedFrame, EncodedRect, Rect, TileEncoder

if TYPE_CHECKING:
    from .video import VideoEncoder

__all__ = ["ModeEncoder"]

logger = logging.getLogger(__name__)

# Bytes of an access unit per rect, at most (the wire's bound on a rect's data).
RECT_BYTES: Final = 1 << 20
# H.264 settings: the frame rate the stream is tuned for and its bit rate cap.
VIDEO_FPS: Final = 30
VIDEO_BITRATE: Final = 3_000_000
# auto: frames in a row with most of the screen changed before video...
AUTO_TO_VIDEO: Final = 5
AUTO_VIDEO_FRACTION: Final = 0.5
# ...and frames in a row with little changed before tiles again.
AUTO_TO_TILES: Final = 45
AUTO_TILES_FRACTION: Final = 0.1
# Pixels sampled (every Nth row and column) to tell how much changed under video.
_SAMPLE: Final = 8


class ModeEncoder:
    """Tiles or H.264 by mode; the session's ``Encoder``."""

    def __init__(self, quality: int = 70) -> None:
        self._tiles = TileEncoder(quality)
        self._video: VideoEncoder | None = None
        self._video_failed = False
        # What the viewer asked for, and what is used now.
        self.mode = m.ScreenMode.TILES
        self._using_video = False
        # The encoding of the frames being made now.
        self.encoding = self._tiles.encoding
        self._streak = 0
        self._previous: Any = None
        # The last video timestamp (microseconds), strictly increasing.
        self._pts = 0
        # Switches made (for the audit log and the benchmark).
        self.switches = 0
        self.video_frames = 0

    @property
    def quality(self) -> int:
        """The JPEG quality of tiles (video has its own)."""
        return self._tiles.quality

    @quality.setter
    def quality(self, value: int) -> None:
        self._tiles.quality = value

    def set_mode(self, mode: m.ScreenMode) -> None:
        """The viewer's choice; the session asks for a keyframe after it."""
        self.mode = mode

    def reset(self) -> None:
        """Forget the previous frame: the next one is a keyframe."""
        self._tiles.reset()
        self._previous = None
        if self._video is not None:
            self._video.close()
            self._video = None

    def refine(self) -> EncodedFrame | None:
        """Tiles sent at a lower quality, again (tiles only)."""
        return None if self._using_video else self._tiles.refine()

    def encode(
        self, frame: Frame, keyframe: bool = False, within: Rect | None = None
    ) -> EncodedFrame | None:
        """The frame, as tiles or as H.264 by mode; ``within`` bounds the tiles' diff
        (video encodes the whole frame anyway)."""
        want_video = self._choose(frame)
        if want_video != self._using_video:
            self._using_video = want_video
            self.encoding = "h264" if want_video else self._tiles.encoding
            self._streak = 0
            self.switches += 1
            keyframe = True
            if not want_video:
                self._tiles.reset()
            logger.info("screen: switched to %s", "video" if want_video else "tiles")
        if not self._using_video:
            encoded = self._tiles.encode(
                frame, keyframe=keyframe, within=None if keyframe else within
            )
            # A keyframe the tiles chose (most of the screen changed) counts; one asked
            # for (a viewer joined) does not.
            if self.mode is m.ScreenMode.AUTO and encoded is not None and not keyframe:
                area = sum(r.rect.width * r.rect.height for r in encoded.rects)
                big = area >= AUTO_VIDEO_FRACTION * frame.width * frame.height
                self._streak = self._streak + 1 if big else 0
            elif self.mode is m.ScreenMode.AUTO and encoded is None:
                self._streak = 0
            return encoded
        return self._encode_video(frame, keyframe)

    def _choose(self, frame: Frame) -> bool:
        """Whether this frame goes as video."""
        if self._video_failed or self.mode is m.ScreenMode.TILES or frame.width < 2:
            return False
        if self.mode is m.ScreenMode.VIDEO:
            return True
        if not self._using_video:
            return self._streak >= AUTO_TO_VIDEO
        return self._streak < AUTO_TO_TILES

    def _encode_video(self, frame: Frame, keyframe: bool) -> EncodedFrame | None:
        from .video import VideoEncoder, VideoError

        current = np.frombuffer(frame.data, dtype=np.uint32).reshape(frame.height, frame.width)
        previous = self._previous
        if previous is not None and previous.shape != current.shape:
            previous = None
        if previous is not None and not keyframe and np.array_equal(previous, current):
            self._count_still(1.0)
            return None
        if previous is not None:
            sampled = previous[::_SAMPLE, ::_SAMPLE] != current[::_SAMPLE, ::_SAMPLE]
            self._count_still(float(np.count_nonzero(sampled)) / sampled.size)
        self._previous = current.copy()
        video = self._video
        if video is None or (video.source_width, video.source_height) != (
            frame.width,
            frame.height,
        ):
            try:
                video = VideoEncoder(
                    frame.width, frame.height, fps=VIDEO_FPS, bitrate=VIDEO_BITRATE
                )
            except VideoError as exc:
                logger.warning("screen: no video mode here (%s); tiles", exc)
                self._video_failed = True
                self._using_video = False
                self.encoding = self._tiles.encoding
                self._tiles.reset()
                return self._tiles.encode(frame, keyframe=True)
            self._video = video
        if keyframe:
            video.request_keyframe()
        self._pts = max(self._pts + 1, int(frame.captured_at * 1_000_000))
        chunks = video.encode(frame.data, self._pts)
        data = b"".join(chunk.data for chunk in chunks)
        if not data:
            return None
        self.video_frames += 1
        whole = Rect(0, 0, video.width, video.height)
        return EncodedFrame(
            width=video.width,
            height=video.height,
            captured_at=frame.captured_at,
            keyframe=any(chunk.keyframe for chunk in chunks),
            encoding="h264",
            rects=[
                EncodedRect(whole, data[at : at + RECT_BYTES])
                for at in range(0, len(data), RECT_BYTES)
            ],
        )

    def _count_still(self, changed: float) -> None:
        """Under auto, a frame with little change counts toward tiles again."""
        if self.mode is m.ScreenMode.AUTO:
            self._streak = self._streak + 1 if changed < AUTO_TILES_FRACTION else 0
