"""One running screen session: capture, encode, pace and send frames.

Capture, pointer and encoding run on one worker thread of the session's own (mss
and Xlib connections belong to the thread that opened them); the event loop only
sends messages and handles the viewer's acknowledgements, keyframe requests and
settings. The encoder is chosen by ``encoder_factory`` (``TileEncoder`` by
default), so a video encoder can take its place without touching the loop.

Frames are numbered from 0. A frame whose messages would exceed ``part_budget``
bytes is sent as several ``ScreenFrame`` parts with the same ``seq``, the last
with ``final`` set; the viewer acknowledges the final part.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from deskside.protocol import messages as m

from .capture import Capturer, Frame, MonitorInfo
from .cursor import CursorState, CursorTracker
from .damage import DamageWatcher
from .pacing import Pacer, PacerSettings
from .tiles import EncodedFrame, Encoder, Rect, TileEncoder

__all__ = ["ScreenSession", "split_frame"]

logger = logging.getLogger(__name__)

# Bytes of rect data per ScreenFrame message, at most.
PART_BUDGET: Final = 2 << 20
# Longest the loop waits for an acknowledgement before it assumes them lost.
_ACK_TIMEOUT: Final = 5.0
# With X DAMAGE saying nothing changed, the screen is still grabbed this often.
SAFETY_GRAB: Final = 5.0

_T = TypeVar("_T")

Sender = Callable[[m.Message], Awaitable[None]]
EncoderFactory = Callable[[int], Encoder]


def split_frame(
    session_id: str,
    seq: int,
    encoded: EncodedFrame | None,
    width: int,
    height: int,
    captured_at: float,
    cursor: m.ScreenCursor | None,
    *,
    budget: int = PART_BUDGET,
) -> list[m.ScreenFrame]:
    """The messages of one frame: its rects in parts of at most ``budget`` bytes."""
    parts: list[list[m.ScreenRect]] = [[]]
    size = 0
    for piece in encoded.rects if encoded is not None else []:
        if parts[-1] and (size + len(piece.data) > budget or len(parts[-1]) >= 4096):
            parts.append([])
            size = 0
        parts[-1].append(
            m.ScreenRect(
                x=piece.rect.x,
                y=piece.rect.y,
                width=piece.rect.width,
                height=piece.rect.height,
                data=piece.data,
            )
        )
        size += len(piece.data)
    keyframe = encoded.keyframe if encoded is not None else False
    encoding = m.ScreenEncoding(encoded.encoding) if encoded is not None else m.ScreenEncoding.JPEG
    return [
        m.ScreenFrame(
            session_id=session_id,
            seq=seq,
            width=width,
            height=height,
            captured_at=captured_at,
            rects=rects,
            cursor=cursor if index == len(parts) - 1 else None,
            keyframe=keyframe,
            encoding=encoding,
            part=index,
            final=index == len(parts) - 1,
        )
        for index, rects in enumerate(parts)
    ]


class ScreenSession:
    """Streams one monitor to the console until ``stop()`` or an error."""

    def __init__(
        self,
        session_id: str,
        send: Sender,
        *,
        monitor: int = 1,
        quality: int = 70,
        max_fps: float = 15.0,
        encoder_factory: EncoderFactory = TileEncoder,
        pacer_settings: PacerSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self._send = send
        self._monitor = monitor
        self._encoder_factory = encoder_factory
        self._pacer = Pacer(
            quality=quality, max_fps=max_fps, now=time.monotonic(), settings=pacer_settings
        )
        # The one thread that owns the X connections.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"deskside-screen-{session_id[:8]}"
        )
        self._capturer: Capturer | None = None
        self._cursor: CursorTracker | None = None
        self._damage: DamageWatcher | None = None
        # The last frame grabbed, and when (monotonic), for the damage shortcut.
        self._last_frame: Frame | None = None
        self._last_grab = 0.0
        # When a frame was last compared whole (not only where X DAMAGE said).
        self._last_full = 0.0
        # Frames not grabbed because X DAMAGE said nothing changed.
        self.grabs_avoided = 0
        self._encoder: Encoder | None = None
        # Set by acks, keyframe requests, settings and stop: the loop looks again.
        self._wake = asyncio.Event()
        self._stopped = False
        # The next frame must be a keyframe (first frame, asked, monitor changed).
        self._keyframe_due = True
        # A monitor change waiting for the worker thread.
        self._new_monitor: int | None = None
        self._seq = 0
        # Last pointer sent: (x, y, visible, serial).
        self._last_cursor: tuple[int, int, bool, int] | None = None
        # Counters for the audit log and the benchmark.
        self.frames_sent = 0
        self.bytes_sent = 0
        self.monitors: list[MonitorInfo] = []

    async def _on_thread(self, work: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def start(self) -> list[MonitorInfo]:
        """Open the display on the worker thread; the monitors (``CaptureError``)."""

        def open_all() -> list[MonitorInfo]:
            self._capturer = Capturer(self._monitor)
            self._cursor = CursorTracker()
            self._damage = DamageWatcher()
            self._encoder = self._encoder_factory(self._pacer.quality)
            return self._capturer.monitors()

        try:
            self.monitors = await self._on_thread(open_all)
        except BaseException:
            await self.close()
            raise
        return self.monitors

    @property
    def monitor(self) -> int:
        """The monitor being captured."""
        return self._capturer.monitor if self._capturer is not None else self._monitor

    def acknowledged(self, seq: int) -> None:
        """The viewer drew frame ``seq``."""
        self._pacer.acknowledged(seq, time.monotonic())
        self._wake.set()

    def request_keyframe(self) -> None:
        """Send a whole frame next (and forget frames in flight)."""
        self._keyframe_due = True
        self._pacer.forget()
        self._wake.set()

    def configure(
        self,
        *,
        quality: int | None = None,
        max_fps: float | None = None,
        monitor: int | None = None,
    ) -> None:
        """New settings from the technician."""
        self._pacer.configure(quality=quality, max_fps=max_fps)
        if monitor is not None and monitor != self.monitor:
            self._new_monitor = monitor
            self.request_keyframe()
        self._wake.set()

    def stop(self) -> None:
        """End the loop soon."""
        self._stopped = True
        self._wake.set()

    def stats(self) -> dict[str, float]:
        """Numbers for the audit log: frames, bytes, quality and fps now."""
        return {
            "frames": self.frames_sent,
            "bytes": self.bytes_sent,
            "quality": self._pacer.quality,
            "fps": round(self._pacer.fps, 2),
            "grabs_avoided": self.grabs_avoided,
        }

    async def run(self) -> None:
        """Send frames until ``stop()``; ``CaptureError`` or ``ConnectionClosed`` end it."""
        try:
            while not self._stopped:
                wait = self._pacer.wait_time(time.monotonic())
                if wait is None or wait > 0:
                    self._wake.clear()
                    timeout = _ACK_TIMEOUT if wait is None else wait
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout)
                    except TimeoutError:
                        if wait is None:  # acknowledgements lost: start again
                            logger.info("screen %s: no acknowledgement; resync", self.session_id)
                            self.request_keyframe()
                    continue
                keyframe = self._keyframe_due
                self._keyframe_due = False
                started = time.monotonic()
                quality = self._pacer.quality
                encoded, frame, cursor = await self._on_thread(
                    functools.partial(self._capture, keyframe, quality)
                )
                now = time.monotonic()
                wire_cursor = self._wire_cursor(cursor, frame)
                if encoded is None and wire_cursor is None:
                    self._pacer.skipped(now, started)
                    continue
                messages = split_frame(
                    self.session_id,
                    self._seq,
                    encoded,
                    frame.width,
                    frame.height,
                    encoded.captured_at if encoded is not None else time.time(),
                    wire_cursor,
                )
                size = encoded.size if encoded is not None else 0
                for message in messages:
                    await self._send(message)
                self._pacer.sent(self._seq, size, time.monotonic(), started)
                self._seq += 1
                self.frames_sent += 1
                self.bytes_sent += size
        finally:
            await self.close()

    def _capture(
        self, keyframe: bool, quality: int
    ) -> tuple[EncodedFrame | None, Frame, CursorState | None]:
        """On the worker thread: grab, encode, poll the pointer."""
        assert self._capturer is not None
        assert self._encoder is not None
        if self._new_monitor is not None:
            monitor, self._new_monitor = self._new_monitor, None
            self._capturer.select(monitor)
            self._encoder.reset()
        if keyframe and self._cursor is not None:
            self._cursor.resend_shape()
        self._encoder.quality = quality
        cursor = self._cursor.poll() if self._cursor is not None else None
        now = time.monotonic()
        damaged = self._damage.changed() if self._damage is not None else True
        last = self._last_frame
        if (
            last is not None
            and not keyframe
            and not damaged
            and now - self._last_grab < SAFETY_GRAB
        ):
            self.grabs_avoided += 1
            return self._refine(), last, cursor
        frame = self._capturer.grab()
        # X DAMAGE's box bounds the diff, except on the safety grabs (and its
        # first frame), which compare everything.
        within = None
        bounds = self._damage.bounds if self._damage is not None and damaged else None
        if bounds is not None and last is not None and now - self._last_full < SAFETY_GRAB:
            x, y, w, h = bounds
            within = Rect(x - frame.left, y - frame.top, w, h)
        else:
            self._last_full = now
        self._last_frame, self._last_grab = frame, now
        encoded = self._encoder.encode(frame, keyframe=keyframe, within=within)
        if encoded is None:
            encoded = self._refine()
        return encoded, frame, cursor

    def _refine(self) -> EncodedFrame | None:
        """The screen is still: tiles sent at a lower quality, sent again (if the
        encoder can)."""
        refine = getattr(self._encoder, "refine", None)
        return refine() if refine is not None else None

    def _wire_cursor(self, cursor: CursorState | None, frame: Frame) -> m.ScreenCursor | None:
        """The pointer for the wire, relative to the monitor; None if not news."""
        if cursor is None:
            return None
        x, y = cursor.x - frame.left, cursor.y - frame.top
        visible = 0 <= x < frame.width and 0 <= y < frame.height
        key = (x, y, visible, cursor.serial)
        if key == self._last_cursor and cursor.shape is None:
            return None
        self._last_cursor = key
        return m.ScreenCursor(
            x=max(-32768, min(32768, x)),
            y=max(-32768, min(32768, y)),
            visible=visible,
            shape_id=cursor.serial & 0xFFFFFFFF,
            hot_x=cursor.hot_x,
            hot_y=cursor.hot_y,
            shape=cursor.shape,
        )

    async def close(self) -> None:
        """Close the display connections and the worker thread."""

        def close_all() -> None:
            if self._capturer is not None:
                self._capturer.close()
                self._capturer = None
            if self._cursor is not None:
                self._cursor.close()
                self._cursor = None
            if self._damage is not None:
                self._damage.close()
                self._damage = None

        with contextlib.suppress(RuntimeError):  # the executor is shut down already
            await self._on_thread(close_all)
        self._executor.shutdown(wait=False)
