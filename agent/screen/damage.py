"""Whether anything was drawn on the screen since the last look: the X DAMAGE extension.

A static screen should cost next to nothing, yet grabbing and comparing a 1080p
frame takes milliseconds. The X server knows when something is drawn: a damage
object on the root window (``DamageReportBoundingBox``) sends a ``DamageNotify``
whenever the bounding box of what was drawn grows; ``changed()`` drains the
events, keeps their union in ``bounds`` (so the caller diffs only there), and
empties the region again *before* the caller grabs, so drawing after that point
notifies anew and nothing is missed.

Some drawing may escape DAMAGE (direct rendering on some drivers): the session
grabs anyway every few seconds, and the byte compare keeps that cheap to send.
Without the extension ``changed()`` is always True.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["DamageWatcher"]

logger = logging.getLogger(__name__)


class DamageWatcher:
    """Tells whether the screen may have changed; opened and used on one thread."""

    def __init__(self) -> None:
        # The X connection and the damage object; None without the extension.
        self._display: Any = None
        self._damage: Any = None
        self._notify = 0
        # Root-window box (x, y, width, height) of what was drawn, as of the last
        # changed() that returned True; None if unknown.
        self.bounds: tuple[int, int, int, int] | None = None
        try:
            from Xlib import display
            from Xlib.ext import damage

            self._display = display.Display()
            if not self._display.has_extension(damage.extname):
                self.close()
                return
            self._display.damage_query_version()
            root = self._display.screen().root
            self._damage = root.damage_create(damage.DamageReportBoundingBox)
            info = self._display.query_extension(damage.extname)
            self._notify = info.first_event + damage.DamageNotifyCode
            self._display.sync()
        except Exception:  # not X11, no display; Xlib's errors have no common base
            logger.debug("no X DAMAGE: every frame is grabbed", exc_info=True)
            self.close()

    @property
    def available(self) -> bool:
        """Whether the X server reports damage."""
        return self._damage is not None

    def changed(self) -> bool:
        """True if something was drawn since the last call (always, without DAMAGE)."""
        self.bounds = None
        if self._damage is None:
            return True
        try:
            changed = False
            x0 = y0 = 1 << 30
            x1 = y1 = -(1 << 30)
            while self._display.pending_events():
                event = self._display.next_event()
                if event.type == self._notify:
                    changed = True
                    area = event.area
                    x0, y0 = min(x0, area.x), min(y0, area.y)
                    x1, y1 = max(x1, area.x + area.width), max(y1, area.y + area.height)
            if changed:
                self.bounds = (x0, y0, x1 - x0, y1 - y0)
                self._display.damage_subtract(self._damage, 0, 0)
                self._display.sync()  # emptied before the caller grabs
            return changed
        except Exception:  # said once: closed, changed() is True from now on
            logger.debug("X DAMAGE failed: every frame is grabbed from now on", exc_info=True)
            self.close()
            return True

    def close(self) -> None:
        """Close the X connection."""
        display, self._display, self._damage = self._display, None, None
        if display is not None:
            try:
                display.close()
            except Exception:  # a connection the server dropped is closed anyway
                logger.debug("closing the X connection failed", exc_info=True)
