"""Screen capture with mss: one ``Capturer`` per session, used from one thread.

mss keeps an X connection per instance and is not safe to share between threads;
the session creates its capturer on its worker thread and only uses it there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import mss

from .errors import CaptureError

__all__ = ["CaptureError", "Capturer", "Frame", "MonitorInfo"]


@dataclass(frozen=True, kw_only=True)
class MonitorInfo:
    """A monitor as mss numbers them: 0 is all monitors together, 1.. each one."""

    index: int
    left: int
    top: int
    width: int
    height: int
    primary: bool = False


@dataclass(frozen=True, kw_only=True, eq=False)
class Frame:
    """One captured image: BGRA pixels, rows of ``width * 4`` bytes, top to bottom."""

    width: int
    height: int
    left: int
    """Where the monitor is on the whole desktop (for the pointer's position)."""
    top: int
    data: bytes | bytearray
    captured_at: float
    """Wall-clock time of the capture (seconds since the epoch)."""


class Capturer:
    """Grabs one monitor (or all of them, index 0) as ``Frame`` objects."""

    def __init__(self, monitor: int = 1) -> None:
        try:
            self._mss: Any = mss.MSS() if hasattr(mss, "MSS") else mss.mss()
        except Exception as exc:  # mss raises ScreenShotError and others
            raise CaptureError(f"cannot open the display: {exc}") from exc
        # The monitor index grabbed; see select().
        self.monitor = 1
        self.select(monitor)

    def monitors(self) -> list[MonitorInfo]:
        """Every monitor, index 0 being all of them together."""
        found = []
        for index, mon in enumerate(self._mss.monitors):
            found.append(
                MonitorInfo(
                    index=index,
                    left=int(mon["left"]),
                    top=int(mon["top"]),
                    width=int(mon["width"]),
                    height=int(mon["height"]),
                    primary=bool(mon.get("is_primary", False)),
                )
            )
        return found

    def select(self, monitor: int) -> None:
        """Grab ``monitor`` from now on; ``CaptureError`` if there is no such monitor."""
        count = len(self._mss.monitors)
        if not 0 <= monitor < count:
            raise CaptureError(f"no monitor {monitor} (there are {count - 1})")
        self.monitor = monitor

    def grab(self) -> Frame:
        """Capture the selected monitor now."""
        region = self._mss.monitors[self.monitor]
        try:
            shot = self._mss.grab(region)
        except Exception as exc:
            raise CaptureError(f"capture failed: {exc}") from exc
        return Frame(
            width=int(shot.width),
            height=int(shot.height),
            left=int(region["left"]),
            top=int(region["top"]),
            data=shot.raw,
            captured_at=time.time(),
        )

    def close(self) -> None:
        """Close the X connection."""
        self._mss.close()
