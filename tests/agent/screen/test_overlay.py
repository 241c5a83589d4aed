"""The guidance overlay on a real X server: what it draws is on the screen, clicks pass."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import msgspec
import numpy as np
import pytest
from numpy.typing import NDArray

from deskside.agent.screen.framemap import FrameMap
from deskside.agent.screen.overlay import (
    OVERLAY_TITLE,
    POINTER_COLOUR,
    POINTER_RADIUS,
    GuidanceOverlay,
    OverlayError,
)
from deskside.protocol.messages import GuideClear, GuideDraw, GuidePointer, GuideShape, Point
from tests.agent.screen.xserver import (
    HEIGHT,
    WIDTH,
    TkTarget,
    display,
    screenshot,
    xdotool,
)

__all__ = ["display"]  # the fixture, imported for pytest

# The viewer shows the 1024x768 screen as a 512x384 frame: frame (x, y) is screen (2x, 2y).
HALF = FrameMap(left=0, top=0, width=WIDTH, height=HEIGHT, frame_width=512, frame_height=384)
GREEN = (0, 255, 0)
MAGENTA = (255, 0, 255)


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def at(image: NDArray[np.uint8], x: int, y: int) -> tuple[int, int, int]:
    """The colour of screen pixel (x, y)."""
    red, green, blue = (int(v) for v in image[y, x])
    return red, green, blue


def draw(shape_id: str, kind: GuideShape, *points: tuple[int, int], **fields: object) -> GuideDraw:
    return GuideDraw(
        session_id="s",
        shape_id=shape_id,
        kind=kind,
        points=[Point(x, y) for x, y in points],
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
async def overlay(display: str) -> AsyncIterator[GuidanceOverlay]:
    overlay = await GuidanceOverlay.start(HALF, display=display)
    yield overlay
    await overlay.close()


async def test_drawings_appear_in_their_colour_and_go_when_cleared(
    display: str, overlay: GuidanceOverlay
) -> None:
    await overlay.sync()
    before = await screenshot(display)

    # A horizontal line from frame (50, 50) to (200, 50), 3 frame pixels wide: on the
    # screen from (100, 100) to (400, 100), 6 pixels wide.
    await overlay.apply(draw("l1", GuideShape.LINE, (50, 50), (200, 50), colour="#00ff00", width=3))
    await overlay.sync()
    after = await screenshot(display)
    changed = np.argwhere((after != before).any(axis=2))  # (y, x) pairs
    assert len(changed) > 250 * 5
    assert changed[:, 0].min() >= 100 - 4
    assert changed[:, 0].max() <= 100 + 4
    assert changed[:, 1].min() >= 100 - 4
    assert changed[:, 1].max() <= 400 + 4
    for x in (100, 250, 399):
        assert at(after, x, 100) == GREEN
    assert {at(after, x, y) for y, x in changed} == {GREEN}

    # An arrow, a circle and a text, in other colours, the pointer, then clear them.
    await overlay.apply(draw("a1", GuideShape.ARROW, (250, 250), (300, 300), colour="#ff00ff"))
    await overlay.apply(draw("c1", GuideShape.CIRCLE, (100, 250), (130, 250), colour="#0000ff"))
    await overlay.apply(
        draw("t1", GuideShape.TEXT, (350, 100), text="Click here", colour="#ff0000")
    )
    await overlay.apply(GuidePointer(session_id="s", x=400, y=300))
    await overlay.sync()
    shown = await screenshot(display)
    assert at(shown, 560, 560) == MAGENTA  # the arrow's shaft, on the screen at (2x, 2y)
    assert at(shown, 597, 597) == MAGENTA  # its head
    assert at(shown, 200 + 60, 500) == (0, 0, 255)  # the circle's rim, radius 30 * 2
    assert at(shown, 200, 500) == at(before, 200, 500)  # its inside is untouched
    label = shown[200 - 30 : 200 + 12, 700 - 8 : 700 + 200]
    colours = {tuple(int(v) for v in pixel) for pixel in label.reshape(-1, 3)}
    assert {(255, 255, 255), (255, 0, 0)} <= colours  # red text on its white box
    assert at(shown, 800 + POINTER_RADIUS, 600) == rgb(POINTER_COLOUR)
    assert at(shown, 800, 600) == rgb(POINTER_COLOUR)

    await overlay.apply(GuideClear(session_id="s", shape_id="l1"))
    await overlay.sync()
    cleared = await screenshot(display)
    assert at(cleared, 250, 100) == at(before, 250, 100)
    assert at(cleared, 560, 560) == MAGENTA

    await overlay.apply(GuideClear(session_id="s"))
    await overlay.sync()
    assert np.array_equal(await screenshot(display), before)


async def test_a_drawing_replaces_the_one_of_the_same_id(
    display: str, overlay: GuidanceOverlay
) -> None:
    await overlay.apply(draw("x", GuideShape.LINE, (10, 10), (100, 10), colour="#00ff00"))
    await overlay.apply(draw("x", GuideShape.LINE, (10, 100), (100, 100), colour="#00ff00"))
    await overlay.sync()
    image = await screenshot(display)
    assert at(image, 100, 200) == GREEN
    assert at(image, 100, 20) != GREEN


async def test_clicks_pass_through_to_the_window_below(
    display: str, overlay: GuidanceOverlay
) -> None:
    target = await TkTarget.start(display, x=100, y=100)
    try:
        x, y = target.centre("button")
        # A thick line right across the button; the window below must still get clicks.
        frame_y = y // 2
        await overlay.apply(
            draw("l", GuideShape.LINE, (0, frame_y), (300, frame_y), colour="#00ff00", width=8)
        )
        await overlay.sync()
        # The overlay went up after the Tk window; it is on top: the stroke is visible.
        assert at(await screenshot(display), x, y) == GREEN
        await xdotool(display, "mousemove", str(x), str(y), "click", "1")
        click = await target.next(lambda event: "click" in event)
        assert click["click"] == [x, y, 1]
    finally:
        await target.stop()


async def test_it_stays_above_windows_opened_later(display: str, overlay: GuidanceOverlay) -> None:
    await overlay.apply(draw("l", GuideShape.LINE, (0, 90), (400, 90), colour="#ff00ff", width=6))
    await overlay.sync()
    target = await TkTarget.start(display, x=50, y=100)  # covers screen y = 180
    try:
        window = (await xdotool(display, "search", "--name", "Deskside test target")).split()
        assert window
        await xdotool(display, "windowraise", window[0])
        for _ in range(50):
            image = await screenshot(display)
            if at(image, 300, 180) == MAGENTA:
                break
            await asyncio.sleep(0.1)
        assert at(image, 300, 180) == MAGENTA
        assert at(image, 300, 200) != MAGENTA  # the window itself shows below the line
    finally:
        await target.stop()


async def test_deskside_windows_stay_above_the_drawings(
    display: str, overlay: GuidanceOverlay
) -> None:
    await overlay.apply(draw("l", GuideShape.LINE, (0, 90), (400, 90), colour="#ff00ff", width=6))
    await overlay.sync()
    # A consent prompt opens where the line is: the technician cannot draw over it.
    prompt = await TkTarget.start(display, x=50, y=100, class_name="deskside-consent")
    try:
        # An ordinary window opened later goes below the line, the prompt stays above.
        other = await TkTarget.start(display, x=600, y=100)
        try:
            for _ in range(50):
                image = await screenshot(display)
                if at(image, 300, 180) != MAGENTA and at(image, 700, 180) == MAGENTA:
                    break
                await asyncio.sleep(0.1)
            assert at(image, 300, 180) != MAGENTA  # on the prompt: hidden
            assert at(image, 40, 180) == MAGENTA  # beside it: shown
            assert at(image, 700, 180) == MAGENTA  # on the other window: shown
        finally:
            await other.stop()
    finally:
        await prompt.stop()


async def test_drawings_go_with_the_overlay(display: str) -> None:
    overlay = await GuidanceOverlay.start(HALF, display=display)
    await overlay.sync()
    before = await screenshot(display)
    assert (await xdotool(display, "search", "--name", OVERLAY_TITLE)).split()
    await overlay.apply(draw("l", GuideShape.LINE, (10, 10), (200, 200), colour="#00ff00"))
    await overlay.sync()
    assert not np.array_equal(await screenshot(display), before)
    await overlay.close()
    assert not overlay.running
    assert np.array_equal(await screenshot(display), before)
    with pytest.raises(OverlayError, match="ended"):
        await overlay.apply(GuideClear(session_id="s"))


async def test_bad_commands_are_skipped(display: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deskside.agent.screen.overlay",
        display,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), 10) == b'{"ready":true}\n'
    process.stdin.write(
        b"not json\n"
        b'{"op": "draw", "id": "a", "kind": "star", "points": [[1, 1]]}\n'
        b'{"op": "draw", "id": "a", "kind": "line", "points": []}\n'
        b'{"op": "pointer", "x": -5, "y": 1}\n'
        b'{"op": "sync", "token": 7}\n'
    )
    await process.stdin.drain()
    assert await asyncio.wait_for(process.stdout.readline(), 10) == b'{"synced":7}\n'
    process.stdin.close()
    _, stderr = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0
    assert stderr.decode().count("bad command") == 4


async def test_no_display_is_an_error() -> None:
    with pytest.raises(OverlayError, match="ended"):
        await GuidanceOverlay.start(HALF, display=":987")
    with pytest.raises(OverlayError, match="no X display"):
        await GuidanceOverlay.start(HALF, display="")


async def test_an_answer_that_is_not_json_is_an_overlay_error() -> None:
    # Stray output (a crash dump, a library's warning) where an answer should be.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; sys.stdin.readline(); print('Segmentation fault', flush=True); "
        "sys.stdin.read()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    overlay = GuidanceOverlay(process, HALF)
    with pytest.raises(OverlayError, match="instead of an answer") as caught:
        await overlay.sync()
    assert isinstance(caught.value.__cause__, msgspec.DecodeError)
    await overlay.close()
    assert not overlay.running
