"""Sending only what changed: 64x64 tiles diffed, merged into rectangles, JPEG-encoded.

* A frame whose bytes equal the previous frame's is skipped (``encode`` returns
  None): one ``memcmp``, the cheapest test there is.
* Otherwise both frames are compared as 32-bit pixels and the difference is
  reduced to one flag per 64x64 tile (``changed_tiles``).
* Changed tiles are merged into rectangles (``merge_tiles``): runs of changed
  tiles along a tile row, then runs of rows with the same span below each other,
  up to ``max_rows`` tile rows, so no rectangle's JPEG grows too big.
* Each rectangle is one baseline JPEG from libjpeg-turbo (simplejpeg, fast DCT,
  4:2:0), taken straight from the BGRA buffer with no copy.
* When more than ``keyframe_fraction`` of the tiles changed, or a keyframe is
  asked for, the whole frame is sent as one rectangle instead (a "keyframe"):
  cheaper than many small ones, and it resets the viewer.

* Refinement: the pacer lowers the quality when the link is slow; tiles sent at
  a lower quality than the current one are sent again, at most
  ``REFINE_TILES`` at a time, by ``refine()`` when the screen is still, so a
  page read after a burst of motion ends up sharp.

An ``Encoder`` is anything with ``encode(frame, keyframe)``, ``reset()`` and a
``quality`` (``refine()`` is optional); the session does not care whether it
sends tiles or video.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import simplejpeg

from .capture import Frame

__all__ = [
    "TILE",
    "EncodedFrame",
    "EncodedRect",
    "Encoder",
    "Rect",
    "TileEncoder",
    "changed_tiles",
    "merge_tiles",
]

TILE: Final = 64
# A rectangle's encoded bytes must stay under the wire bound of one rect (1 MiB).
MAX_RECT_BYTES: Final = 1 << 20
# Tiles sent again at a better quality per refine() call, at most.
REFINE_TILES: Final = 48


@dataclass(frozen=True)
class Rect:
    """A rectangle in pixels."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class EncodedRect:
    """A rectangle and its encoded image."""

    rect: Rect
    data: bytes


@dataclass(frozen=True, kw_only=True)
class EncodedFrame:
    """What changed in a frame, encoded: the rectangles to draw in order."""

    width: int
    height: int
    captured_at: float
    keyframe: bool
    encoding: str = "jpeg"
    rects: list[EncodedRect] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes of encoded image data."""
        return sum(len(r.data) for r in self.rects)


class Encoder(Protocol):
    """What a screen session needs of an encoder (tiles here, video elsewhere)."""

    encoding: str
    quality: int

    def encode(
        self, frame: Frame, keyframe: bool = False, within: Rect | None = None
    ) -> EncodedFrame | None:
        """The frame's changes, or None when nothing changed and no keyframe is due;
        ``within`` bounds where it may have changed (None: anywhere)."""
        ...

    def reset(self) -> None:
        """Forget the previous frame: the next one is a keyframe."""
        ...


def pixels(frame: Frame) -> Any:
    """The frame as a (height, width, 4) uint8 array over its buffer (no copy)."""
    return np.frombuffer(frame.data, dtype=np.uint8).reshape(frame.height, frame.width, 4)


def changed_tiles(previous: Any, current: Any, tile: int = TILE) -> Any:
    """One flag per tile: True where any pixel of the tile differs.

    ``previous`` and ``current`` are (height, width, 4) uint8 arrays of one size; the
    result has ``ceil(height / tile)`` rows and ``ceil(width / tile)`` columns.
    """
    if previous.shape != current.shape:
        raise ValueError("frames of different sizes")
    height, width = current.shape[:2]
    # Compare whole pixels (4 bytes as one 32-bit word), not bytes.
    diff = previous.view(np.uint32)[..., 0] != current.view(np.uint32)[..., 0]
    rows, cols = -(-height // tile), -(-width // tile)
    # Reduce the tile rows first (contiguous: fast), then the columns of each.
    whole = height // tile
    by_row = np.zeros((rows, width), dtype=bool)
    by_row[:whole] = diff[: whole * tile].reshape(whole, tile, width).any(axis=1)
    if whole < rows:
        by_row[whole] = diff[whole * tile :].any(axis=0)
    if cols * tile != width:
        by_row = np.pad(by_row, ((0, 0), (0, cols * tile - width)))
    return by_row.reshape(rows, cols, tile).any(axis=2)


def _tile_box(within: Rect, height: int, width: int) -> tuple[slice, slice] | None:
    """The pixels of the tiles ``within`` touches (clipped to the frame); None if none."""
    x0, y0 = max(0, within.x), max(0, within.y)
    x1, y1 = min(width, within.x + within.width), min(height, within.y + within.height)
    if x0 >= x1 or y0 >= y1:
        return None
    top, left = y0 // TILE * TILE, x0 // TILE * TILE
    bottom, right = min(height, -(-y1 // TILE) * TILE), min(width, -(-x1 // TILE) * TILE)
    return slice(top, bottom), slice(left, right)


def _changed_within(previous: Any, current: Any, within: Rect | None) -> Any:
    """``changed_tiles`` of the whole frame, comparing only the tiles under ``within``."""
    if within is None:
        return changed_tiles(previous, current)
    height, width = current.shape[:2]
    grid = np.zeros((-(-height // TILE), -(-width // TILE)), dtype=bool)
    box = _tile_box(within, height, width)
    if box is None:
        return grid
    rows, cols = box
    sub = changed_tiles(previous[box], current[box])
    grid[rows.start // TILE : rows.start // TILE + sub.shape[0],
         cols.start // TILE : cols.start // TILE + sub.shape[1]] = sub  # fmt: skip
    return grid


def merge_tiles(
    grid: Any, width: int, height: int, *, tile: int = TILE, max_rows: int = 8
) -> list[Rect]:
    """Rectangles covering exactly the changed tiles of ``grid``, clipped to the frame.

    Changed tiles next to each other in a row form a run; a run directly below a run
    with the same span (and the rectangle not yet ``max_rows`` tiles high) extends it.
    """
    rows, cols = grid.shape
    # Open rectangles by span: (first col, end col) -> [first row, row count].
    open_rects: dict[tuple[int, int], list[int]] = {}
    done: list[tuple[int, int, int, int]] = []
    for row in range(rows):
        flags = grid[row]
        runs: list[tuple[int, int]] = []
        col = 0
        while col < cols:
            if flags[col]:
                start = col
                while col < cols and flags[col]:
                    col += 1
                runs.append((start, col))
            else:
                col += 1
        still_open: dict[tuple[int, int], list[int]] = {}
        for span in runs:
            current = open_rects.pop(span, None)
            if current is not None and current[1] < max_rows:
                current[1] += 1
                still_open[span] = current
            else:
                if current is not None:
                    done.append((span[0], span[1], current[0], current[1]))
                still_open[span] = [row, 1]
        for span, (first, count) in open_rects.items():
            done.append((span[0], span[1], first, count))
        open_rects = still_open
    for span, (first, count) in open_rects.items():
        done.append((span[0], span[1], first, count))
    rects = []
    for col0, col1, row0, count in sorted(done, key=lambda r: (r[2], r[0])):
        x, y = col0 * tile, row0 * tile
        rects.append(
            Rect(x, y, min(col1 * tile, width) - x, min((row0 + count) * tile, height) - y)
        )
    return rects


def encode_rect(image: Any, rect: Rect, quality: int) -> list[EncodedRect]:
    """JPEG-encode one rectangle of a BGRA array; split in two while it is too big."""
    view = image[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
    data = simplejpeg.encode_jpeg(
        view, quality=quality, colorspace="BGRA", colorsubsampling="420", fastdct=True
    )
    if len(data) <= MAX_RECT_BYTES or rect.height < 2:
        return [EncodedRect(rect, data)]
    half = rect.height // 2
    top = Rect(rect.x, rect.y, rect.width, half)
    bottom = Rect(rect.x, rect.y + half, rect.width, rect.height - half)
    return encode_rect(image, top, quality) + encode_rect(image, bottom, quality)


class TileEncoder:
    """The tile encoder: changed rectangles as JPEG, keyframes when asked or due.

    It keeps what the viewer was sent (``_reference``): the last frame compared
    whole, patched with the boxes compared since. Comparing against it, not
    against the last frame grabbed, matters when only a box is compared: what
    changed outside it (drawn between X DAMAGE's report and the grab) is not in
    the reference, so it is found when its own report comes.
    """

    encoding = "jpeg"

    def __init__(self, quality: int = 70, *, keyframe_fraction: float = 0.5) -> None:
        # JPEG quality, 1..100; the session changes it as the delay changes.
        self.quality = quality
        self.keyframe_fraction = keyframe_fraction
        # The last frame compared whole; None: the next one is a keyframe.
        self._previous: Frame | None = None
        # What the viewer was sent, (height, width, 4) uint8; see the class docstring.
        self._reference: Any = None
        # Whether _reference is exactly _previous (no box patched in since), and
        # whether it is our own copy (not a view of a frame's buffer).
        self._exact = False
        self._owned = False
        # The JPEG quality each tile was last sent at (rows x cols).
        self._sent_quality: Any = None

    def reset(self) -> None:
        """Forget the previous frame: the next one is a keyframe."""
        self._previous = self._reference = self._sent_quality = None
        self._exact = self._owned = False

    def _mark(self, rects: list[EncodedRect], height: int, width: int) -> None:
        """Remember the quality the tiles under ``rects`` were sent at."""
        rows, cols = -(-height // TILE), -(-width // TILE)
        if self._sent_quality is None or self._sent_quality.shape != (rows, cols):
            self._sent_quality = np.zeros((rows, cols), dtype=np.int16)
        for piece in rects:
            r = piece.rect
            self._sent_quality[
                r.y // TILE : -(-(r.y + r.height) // TILE),
                r.x // TILE : -(-(r.x + r.width) // TILE),
            ] = self.quality

    def _remember(self, frame: Frame, image: Any, within: Rect | None) -> None:
        """The viewer now has ``image`` (all of it, or the tiles under ``within``)."""
        if within is None:
            self._previous, self._reference = frame, image
            self._exact, self._owned = True, False
            return
        box = _tile_box(within, frame.height, frame.width)
        if box is None:
            return
        if not self._owned:
            self._reference = self._reference.copy()
            self._owned = True
        self._reference[box] = image[box]
        self._exact = False

    def refine(self) -> EncodedFrame | None:
        """Tiles sent below the current quality, sent again; None if there are none."""
        frame, sent, image = self._previous, self._sent_quality, self._reference
        if frame is None or sent is None or image is None:
            return None
        below = sent < self.quality
        if not below.any():
            return None
        # The first REFINE_TILES of them, top to bottom.
        chosen = np.zeros_like(below)
        chosen.flat[np.flatnonzero(below)[:REFINE_TILES]] = True
        rects = merge_tiles(chosen, frame.width, frame.height)
        encoded = [piece for rect in rects for piece in encode_rect(image, rect, self.quality)]
        self._mark(encoded, frame.height, frame.width)
        return EncodedFrame(
            width=frame.width,
            height=frame.height,
            captured_at=frame.captured_at,
            keyframe=False,
            rects=encoded,
        )

    def encode(
        self, frame: Frame, keyframe: bool = False, within: Rect | None = None
    ) -> EncodedFrame | None:
        """The frame's changes since the last one; None if nothing changed.

        ``within``: where the frame may differ (X DAMAGE's box, in frame pixels);
        only the tiles it touches are compared.
        """
        previous = self._previous
        if within is not None:
            box = _tile_box(within, frame.height, frame.width)
            if box is not None and (box[0].stop - box[0].start, box[1].stop - box[1].start) == (
                frame.height,
                frame.width,
            ):
                within = None  # all of it: a whole compare, without patching a copy
        if previous is None or (previous.width, previous.height) != (frame.width, frame.height):
            keyframe = True
        elif not keyframe and within is None and self._exact and previous.data == frame.data:
            return None
        image = pixels(frame)
        rects: list[Rect]
        if keyframe:
            rects = [Rect(0, 0, frame.width, frame.height)]
        else:
            grid = _changed_within(self._reference, image, within)
            changed = int(grid.sum())
            if changed == 0:  # nothing the viewer would see
                self._remember(frame, image, within)
                return None
            if changed > self.keyframe_fraction * grid.size:
                keyframe = True
                rects = [Rect(0, 0, frame.width, frame.height)]
            else:
                rects = merge_tiles(grid, frame.width, frame.height)
        encoded = [piece for rect in rects for piece in encode_rect(image, rect, self.quality)]
        self._remember(frame, image, None if keyframe else within)
        self._mark(encoded, frame.height, frame.width)
        return EncodedFrame(
            width=frame.width,
            height=frame.height,
            captured_at=frame.captured_at,
            keyframe=keyframe,
            rects=encoded,
        )
