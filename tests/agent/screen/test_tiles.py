"""The tile diff, the merge into rectangles, and the JPEG encoder (decoded back)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import simplejpeg

from deskside.agent.screen.capture import Frame
from deskside.agent.screen.tiles import (
    MAX_RECT_BYTES,
    Rect,
    TileEncoder,
    changed_tiles,
    encode_rect,
    merge_tiles,
)


def frame_of(image: Any) -> Frame:
    """A Frame over a (height, width, 4) BGRA array."""
    height, width = image.shape[:2]
    return Frame(
        width=width, height=height, left=0, top=0, data=image.tobytes(), captured_at=time.time()
    )


def solid(height: int, width: int, bgr: tuple[int, int, int]) -> Any:
    image = np.zeros((height, width, 4), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2], image[..., 3] = (*bgr, 255)
    return image


def decode(data: bytes) -> Any:
    """A JPEG as a (height, width, 3) BGR array."""
    return simplejpeg.decode_jpeg(data, colorspace="BGR")


def test_changed_tiles_flags_exactly_the_tiles_touched() -> None:
    before = solid(200, 300, (10, 20, 30))
    after = before.copy()
    after[70, 130] = (1, 2, 3, 255)  # tile row 1, column 2
    after[199, 299] = (1, 2, 3, 255)  # the partial tile in the corner
    grid = changed_tiles(before, after)
    assert grid.shape == (4, 5)  # ceil(200/64), ceil(300/64)
    assert sorted(zip(*np.nonzero(grid), strict=True)) == [(1, 2), (3, 4)]


def test_changed_tiles_refuses_frames_of_different_sizes() -> None:
    with pytest.raises(ValueError, match="different sizes"):
        changed_tiles(solid(64, 64, (0, 0, 0)), solid(64, 128, (0, 0, 0)))


def test_merge_joins_runs_and_rows_and_clips_to_the_frame() -> None:
    grid = np.zeros((4, 5), dtype=bool)
    grid[0, 1:4] = True  # a run of three
    grid[1, 1:4] = True  # the same span below: one rectangle
    grid[3, 4] = True  # the partial corner tile
    rects = merge_tiles(grid, 300, 200)
    assert rects == [Rect(64, 0, 192, 128), Rect(256, 192, 44, 8)]


def test_merge_covers_every_changed_tile_and_nothing_else() -> None:
    rng = np.random.default_rng(7)
    grid = rng.random((17, 30)) < 0.3
    rects = merge_tiles(grid, 1920, 1080, max_rows=3)
    covered = np.zeros((1088, 1920), dtype=np.int32)
    for r in rects:
        assert r.height <= 3 * 64
        covered[r.y : r.y + r.height, r.x : r.x + r.width] += 1
    assert covered.max() == 1  # no overlap
    tiles = covered[:1088:64, ::64].astype(bool)  # top-left pixel of each tile
    assert (tiles == grid).all()


def test_first_frame_is_a_keyframe_that_decodes_to_the_image() -> None:
    image = solid(120, 200, (0, 0, 255))
    image[:, 100:] = (255, 0, 0, 255)
    encoded = TileEncoder(quality=90).encode(frame_of(image))
    assert encoded is not None
    assert encoded.keyframe
    assert [r.rect for r in encoded.rects] == [Rect(0, 0, 200, 120)]
    pixels = decode(encoded.rects[0].data).astype(int)
    assert np.abs(pixels - image[..., :3].astype(int)).mean() < 3
    assert np.abs(pixels[60, 50] - (0, 0, 255)).max() < 12
    assert np.abs(pixels[60, 150] - (255, 0, 0)).max() < 12


def test_an_unchanged_frame_is_skipped() -> None:
    encoder = TileEncoder()
    image = solid(128, 128, (5, 5, 5))
    assert encoder.encode(frame_of(image)) is not None
    assert encoder.encode(frame_of(image.copy())) is None
    assert encoder.encode(frame_of(image), keyframe=True) is not None  # unless asked


def test_a_small_change_sends_only_its_tiles_and_they_decode_right() -> None:
    encoder = TileEncoder(quality=95)
    before = solid(256, 512, (200, 200, 200))
    encoder.encode(frame_of(before))
    after = before.copy()
    after[10:50, 300:360] = (0, 128, 255, 255)
    encoded = encoder.encode(frame_of(after))
    assert encoded is not None
    assert not encoded.keyframe
    assert [r.rect for r in encoded.rects] == [Rect(256, 0, 128, 64)]
    tile = decode(encoded.rects[0].data).astype(int)
    expected = after[0:64, 256:384, :3].astype(int)
    assert tile.shape == expected.shape
    assert np.abs(tile - expected).mean() < 3
    # Painting the rects over the old image gives the new one.
    canvas = before[..., :3].astype(int).copy()
    for piece in encoded.rects:
        r = piece.rect
        canvas[r.y : r.y + r.height, r.x : r.x + r.width] = decode(piece.data)
    assert np.abs(canvas - after[..., :3].astype(int)).mean() < 1


def test_most_of_the_screen_changed_is_a_keyframe() -> None:
    encoder = TileEncoder()
    encoder.encode(frame_of(solid(256, 256, (0, 0, 0))))
    changed = solid(256, 256, (0, 0, 0))
    changed[:200] = (255, 255, 255, 255)  # 12 of 16 tiles
    encoded = encoder.encode(frame_of(changed))
    assert encoded is not None
    assert encoded.keyframe
    assert [r.rect for r in encoded.rects] == [Rect(0, 0, 256, 256)]


def test_a_new_size_is_a_keyframe() -> None:
    encoder = TileEncoder()
    encoder.encode(frame_of(solid(64, 64, (0, 0, 0))))
    encoded = encoder.encode(frame_of(solid(64, 128, (0, 0, 0))))
    assert encoded is not None
    assert encoded.keyframe


def test_a_rect_too_big_for_one_message_is_split() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (1024, 1024, 4), dtype=np.uint8)
    pieces = encode_rect(noise, Rect(0, 0, 1024, 1024), 100)
    assert len(pieces) > 1
    assert all(len(p.data) <= MAX_RECT_BYTES for p in pieces)
    assert sum(p.rect.height for p in pieces) == 1024
    assert all(decode(p.data).shape == (p.rect.height, 1024, 3) for p in pieces)


def test_tiles_sent_at_a_lower_quality_are_refined_when_still() -> None:
    rng = np.random.default_rng(3)
    image = np.repeat(np.repeat(rng.integers(0, 256, (12, 20, 4), dtype=np.uint8), 16, 0), 16, 1)
    encoder = TileEncoder(quality=20)
    first = encoder.encode(frame_of(image))
    assert first is not None
    assert encoder.refine() is None  # nothing below the current quality
    encoder.quality = 90
    canvas = np.zeros((192, 320, 3), dtype=int)
    for piece in first.rects:
        r = piece.rect
        canvas[r.y : r.y + r.height, r.x : r.x + r.width] = decode(piece.data)
    before = np.abs(canvas - image[..., :3].astype(int)).mean()
    calls = 0
    while (refined := encoder.refine()) is not None:
        calls += 1
        assert not refined.keyframe
        for piece in refined.rects:
            r = piece.rect
            canvas[r.y : r.y + r.height, r.x : r.x + r.width] = decode(piece.data)
    assert calls == 1  # 15 tiles: within one call's budget
    after = np.abs(canvas - image[..., :3].astype(int)).mean()
    assert after < 0.8 * before


def test_a_box_bounds_the_diff_and_what_changed_outside_it_is_found_later() -> None:
    encoder = TileEncoder(quality=95)
    base = solid(256, 256, (100, 100, 100))
    encoder.encode(frame_of(base))
    changed = base.copy()
    changed[10:20, 10:20] = (0, 0, 255, 255)  # A: X DAMAGE reported it
    changed[150:160, 150:160] = (255, 0, 0, 255)  # B: drawn just before the grab
    first = encoder.encode(frame_of(changed), within=Rect(10, 10, 10, 10))
    assert first is not None
    assert [r.rect for r in first.rects] == [Rect(0, 0, 64, 64)]  # A only
    # B's own report comes with the next frame, which is the same picture.
    second = encoder.encode(frame_of(changed.copy()), within=Rect(150, 150, 10, 10))
    assert second is not None
    assert [r.rect for r in second.rects] == [Rect(128, 128, 64, 64)]
    # Nothing more to send, even compared whole.
    assert encoder.encode(frame_of(changed.copy())) is None


def test_whatever_was_not_sent_is_found_by_a_whole_compare() -> None:
    encoder = TileEncoder(quality=95)
    base = solid(128, 128, (0, 0, 0))
    encoder.encode(frame_of(base))
    changed = base.copy()
    changed[100:110, 100:110] = (255, 255, 255, 255)
    assert encoder.encode(frame_of(changed), within=Rect(0, 0, 10, 10)) is None
    whole = encoder.encode(frame_of(changed.copy()))  # the safety grab
    assert whole is not None
    assert [r.rect for r in whole.rects] == [Rect(64, 64, 64, 64)]
