"""Known content on a real X server: solid-colour windows the X server paints itself.

The windows are override-redirect (no window manager needed) and painted by their
background colour, so the X server repaints them after any window above them goes
away (the consent dialog, say): what is on screen stays known.
"""

from __future__ import annotations

from typing import Any

from Xlib import X, display


def pixel(rgb: tuple[int, int, int]) -> int:
    """A TrueColor pixel value."""
    r, g, b = rgb
    return (r << 16) | (g << 8) | b


class Painter:
    """Draws solid rectangles on ``DISPLAY``; they last until ``close()``."""

    def __init__(self, name: str) -> None:
        self.display: Any = display.Display(name)
        self.screen = self.display.screen()

    def rect(self, x: int, y: int, width: int, height: int, rgb: tuple[int, int, int]) -> Any:
        """A solid rectangle (a mapped window); returned so it can change."""
        window = self.screen.root.create_window(
            x,
            y,
            width,
            height,
            0,
            self.screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=pixel(rgb),
            override_redirect=True,
        )
        window.map()
        self.display.sync()
        return window

    def cursor(self, window: Any, glyph: int) -> None:
        """Give the rectangle a pointer shape from the X cursor font (150: a watch)."""
        font = self.display.open_font("cursor")
        shape = font.create_glyph_cursor(font, glyph, glyph + 1, (0, 0, 0), (65535, 65535, 65535))
        window.change_attributes(cursor=shape)
        self.display.sync()

    def recolor(self, window: Any, rgb: tuple[int, int, int]) -> None:
        """Give the rectangle another colour."""
        window.change_attributes(background_pixel=pixel(rgb))
        window.clear_area(0, 0, 0, 0)
        self.display.sync()

    def lower(self, window: Any) -> None:
        """Put the rectangle under every other window."""
        window.configure(stack_mode=X.Below)
        self.display.sync()

    def close(self) -> None:
        """Close the connection: the rectangles go away."""
        self.display.close()
