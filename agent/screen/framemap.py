"""Where a point of the frame the viewer sees lies on the user's screen.

The technician's browser sends coordinates in pixels of the frame the agent sent
(which may be scaled down from the monitor, or cropped to an even size for H.264);
pointer injection and the guidance overlay need root-window coordinates (the X
screen, or the virtual desktop spanning every monitor, as mss numbers it).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FrameMap"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameMap:
    """A monitor's rectangle on the screen and the size of the frames made of it."""

    left: int
    """The monitor's left edge in screen coordinates (mss's ``monitor["left"]``)."""

    top: int
    """The monitor's top edge in screen coordinates."""

    width: int
    """The monitor's width in screen pixels."""

    height: int
    """The monitor's height in screen pixels."""

    frame_width: int
    """The width of the frames the viewer gets (equal to ``width`` when not scaled)."""

    frame_height: int
    """The height of the frames the viewer gets."""

    def __post_init__(self) -> None:
        if min(self.width, self.height, self.frame_width, self.frame_height) < 1:
            raise ValueError("a monitor and its frames have at least one pixel")

    @classmethod
    def identity(cls, width: int, height: int, left: int = 0, top: int = 0) -> FrameMap:
        """Frames of the monitor's own size."""
        return cls(
            left=left, top=top, width=width, height=height, frame_width=width, frame_height=height
        )

    def scale(self) -> tuple[float, float]:
        """Screen pixels per frame pixel, across and down."""
        return self.width / self.frame_width, self.height / self.frame_height

    def to_screen(self, x: float, y: float) -> tuple[int, int]:
        """The screen pixel under frame point (``x``, ``y``), kept inside the monitor."""
        sx, sy = self.scale()
        px = min(max(int(x * sx), 0), self.width - 1)
        py = min(max(int(y * sy), 0), self.height - 1)
        return self.left + px, self.top + py

    def to_frame(self, x: int, y: int) -> tuple[int, int]:
        """The frame pixel showing screen pixel (``x``, ``y``), kept inside the frame."""
        sx, sy = self.scale()
        fx = min(max(int((x - self.left) / sx), 0), self.frame_width - 1)
        fy = min(max(int((y - self.top) / sy), 0), self.frame_height - 1)
        return fx, fy
