"""The pointer's position and shape, sent apart from the image (X11: XFixes).

XFixes' ``GetCursorImage`` gives the position, the hot spot, a serial that changes
with the shape, and the image (premultiplied ARGB). Fetching and parsing the image
costs about ten times a plain ``QueryPointer``, so it is fetched only when XFixes
reports a new shape (``DisplayCursorNotify``) or the viewer needs it again; the
position comes from ``QueryPointer`` otherwise. The shape goes to the viewer as a
PNG only when it changed. Without XFixes, the position alone is sent and the
viewer draws its own arrow.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CursorState", "CursorTracker", "png_rgba"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CursorState:
    """Where the pointer is (desktop coordinates) and, if new, its shape."""

    x: int
    y: int
    serial: int = 0
    hot_x: int = 0
    hot_y: int = 0
    shape: bytes | None = None
    """An RGBA PNG, only when the shape is new to the viewer."""


def png_rgba(width: int, height: int, rgba: bytes) -> bytes:
    """A minimal PNG (8-bit RGBA, no filter) of ``rgba`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    stride = width * 4
    raw = b"".join(b"\0" + rgba[row * stride : (row + 1) * stride] for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


class CursorTracker:
    """Polls the X pointer; opened and used on one thread."""

    def __init__(self) -> None:
        # The X connection, None if it could not be opened (no pointer then).
        self._display: Any = None
        self.has_shape = False
        # The shape serial the viewer has (-1: it needs one), and the last one seen.
        self._sent_serial = -1
        self._serial = 0
        self._hot = (0, 0)
        # The event code of XFixes' cursor notifications.
        self._notify = -1
        # A poll failed already (said once: poll() runs for every frame).
        self._poll_failed = False
        try:
            from Xlib import display

            self._display = display.Display()
        except Exception:  # not X11 (python-xlib is installed on Linux only), no display
            logger.debug("no X display for the pointer", exc_info=True)
            return
        try:
            if self._display.has_extension("XFIXES"):
                from Xlib.ext import xfixes

                self._display.xfixes_query_version()
                root = self._display.screen().root
                self._display.xfixes_select_cursor_input(root, xfixes.XFixesDisplayCursorNotifyMask)
                info = self._display.query_extension("XFIXES")
                self._notify = info.first_event + xfixes.XFixesCursorNotify
                self.has_shape = True
        except Exception:  # Xlib's errors have no common base; the position still works
            logger.debug("no XFixes: the pointer's shape is not sent", exc_info=True)
            self.has_shape = False

    def resend_shape(self) -> None:
        """Send the shape again with the next poll (the viewer started afresh)."""
        self._sent_serial = -1

    def poll(self) -> CursorState | None:
        """The pointer now; None if it cannot be known."""
        if self._display is None:
            return None
        try:
            root = self._display.screen().root
            new_shape = False
            while self._display.pending_events():
                if self._display.next_event().type == self._notify:
                    new_shape = True
            if not self.has_shape or not (new_shape or self._sent_serial < 0):
                pointer = root.query_pointer()
                return CursorState(
                    x=int(pointer.root_x),
                    y=int(pointer.root_y),
                    serial=self._serial,
                    hot_x=self._hot[0],
                    hot_y=self._hot[1],
                )
            image = self._display.xfixes_get_cursor_image(root)
        except Exception:  # Xlib's errors have no common base; the frame goes on without
            if not self._poll_failed:
                self._poll_failed = True
                logger.debug("cannot read the pointer", exc_info=True)
            return None
        serial = int(image.cursor_serial)
        self._serial = serial
        self._hot = (min(int(image.xhot), 1024), min(int(image.yhot), 1024))
        shape = None
        width, height = int(image.width), int(image.height)
        if serial != self._sent_serial and 0 < width <= 256 and 0 < height <= 256:
            self._sent_serial = serial
            shape = _shape_png(image.cursor_image, width, height)
        return CursorState(
            x=int(image.x),
            y=int(image.y),
            serial=serial,
            hot_x=min(int(image.xhot), 1024),
            hot_y=min(int(image.yhot), 1024),
            shape=shape,
        )

    def close(self) -> None:
        """Close the X connection."""
        if self._display is not None:
            self._display.close()
            self._display = None


def _shape_png(argb: Any, width: int, height: int) -> bytes:
    """XFixes' premultiplied ARGB words (one per pixel) as an RGBA PNG."""
    words = np.asarray(argb, dtype=np.uint64)[: width * height].astype(np.uint32)
    channels = words.view(np.uint8).reshape(-1, 4)  # little-endian: B, G, R, A
    alpha = channels[:, 3].astype(np.uint32)
    safe = np.maximum(alpha, 1)
    rgba = np.empty_like(channels)
    for out, src in ((0, 2), (1, 1), (2, 0)):
        rgba[:, out] = np.minimum(255, channels[:, src].astype(np.uint32) * 255 // safe)
    rgba[:, 3] = channels[:, 3]
    return png_rgba(width, height, rgba.tobytes())
