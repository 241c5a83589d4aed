"""A screen session against a real X server (Xvfb): frames decode to what X shows."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import mss
import numpy as np
import pytest
import simplejpeg

from deskside.agent.screen.session import ScreenSession
from deskside.protocol import messages as m
from tests.agent.screen.xpaint import Painter
from tests.agent.screen.xserver import display  # noqa: F401 (a fixture)


@pytest.fixture
def on_display(display: str) -> Iterator[str]:
    """``DISPLAY`` set for this process (mss and Xlib read it)."""
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        yield display
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old


class Collector:
    """Plays the channel: keeps the frames and acknowledges each, like a viewer."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[m.ScreenFrame] = asyncio.Queue()
        self.session: ScreenSession | None = None

    async def send(self, message: m.Message) -> None:
        assert isinstance(message, m.ScreenFrame)
        await self.frames.put(message)

    async def next(self, timeout: float = 10.0) -> m.ScreenFrame:
        frame = await asyncio.wait_for(self.frames.get(), timeout)
        assert self.session is not None
        if frame.final:
            self.session.acknowledged(frame.seq)
        return frame


@pytest.fixture
async def session(on_display: str) -> AsyncIterator[tuple[ScreenSession, Collector]]:
    collector = Collector()
    screen = ScreenSession("s1", collector.send, monitor=1, quality=90, max_fps=30)
    collector.session = screen
    await screen.start()
    task = asyncio.create_task(screen.run())
    try:
        yield screen, collector
    finally:
        screen.stop()
        await asyncio.wait_for(task, 10)


def paint(canvas: Any, frame: m.ScreenFrame) -> None:
    for rect in frame.rects:
        tile = simplejpeg.decode_jpeg(rect.data, colorspace="BGRA")
        canvas[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width] = tile


def x_screen(name: str) -> Any:
    with mss.MSS(display=name) if hasattr(mss, "MSS") else mss.mss(display=name) as grabber:
        shot = grabber.grab(grabber.monitors[1])
        return np.frombuffer(shot.raw, dtype=np.uint8).reshape(shot.height, shot.width, 4)


async def test_frames_show_the_screen_and_then_only_what_changed(
    session: tuple[ScreenSession, Collector], on_display: str
) -> None:
    screen, collector = session
    assert [mon.index for mon in screen.monitors] == [0, 1]
    first = await collector.next()
    assert first.keyframe
    assert (first.width, first.height) == (1024, 768)
    canvas = np.zeros((768, 1024, 4), dtype=np.uint8)
    paint(canvas, first)

    painter = Painter(on_display)
    try:
        painter.rect(100, 100, 200, 150, (255, 0, 0))
        painter.rect(600, 400, 150, 100, (0, 200, 0))
        # Frames until one carries the rectangles.
        changed: list[m.ScreenFrame] = []
        while True:
            frame = await collector.next()
            paint(canvas, frame)
            changed.append(frame)
            red = abs(int(canvas[150, 150, 2]) - 255) < 30
            green = abs(int(canvas[450, 650, 1]) - 200) < 30
            if red and green:
                break
        deltas = [f for f in changed if f.rects]
        assert not any(f.keyframe for f in deltas)  # small changes: tiles only
        sent = sum(r.width * r.height for f in deltas for r in f.rects)
        assert sent < 1024 * 768 / 2
        truth = x_screen(on_display)
        assert np.abs(canvas[..., :3].astype(int) - truth[..., :3].astype(int)).mean() < 2
    finally:
        painter.close()

    # The viewer asks for a keyframe: the whole screen comes again.
    screen.request_keyframe()
    while not (frame := await collector.next()).keyframe:
        pass
    assert [(r.x, r.y, r.width, r.height) for r in frame.rects] == [(0, 0, 1024, 768)]


async def test_the_pointer_comes_apart_from_the_image(
    session: tuple[ScreenSession, Collector], on_display: str
) -> None:
    _, collector = session
    first = await collector.next()
    assert first.cursor is not None
    assert first.cursor.shape is not None  # XFixes gives the shape with the keyframe
    assert first.cursor.shape.startswith(b"\x89PNG")
    subprocess.run(
        ["xdotool", "mousemove", "300", "200"],
        env={**os.environ, "DISPLAY": on_display},
        check=True,
    )
    while True:
        frame = await collector.next()
        if frame.cursor is not None and (frame.cursor.x, frame.cursor.y) == (300, 200):
            break
    assert frame.rects == []  # the image did not change: the pointer alone
    assert frame.cursor.shape is None  # the same shape is not sent again
    arrow = frame.cursor.shape_id

    # Over a window with another pointer shape, the new shape comes along.
    painter = Painter(on_display)
    try:
        window = painter.rect(600, 400, 100, 100, (0, 0, 0))
        painter.cursor(window, 150)  # a watch
        subprocess.run(
            ["xdotool", "mousemove", "650", "450"],
            env={**os.environ, "DISPLAY": on_display},
            check=True,
        )
        while True:
            frame = await collector.next()
            if frame.cursor is not None and frame.cursor.shape is not None:
                break
        assert frame.cursor.shape_id != arrow
        assert (frame.cursor.x, frame.cursor.y) == (650, 450)
    finally:
        painter.close()


def test_the_idle_daemon_does_not_load_the_screen_libraries() -> None:
    code = (
        "import sys, deskside.agent.cli, deskside.agent.daemon;"
        "heavy = {'numpy', 'simplejpeg', 'mss', 'Xlib', 'deskside.agent.screen.session'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


async def test_damage_tells_when_something_was_drawn(on_display: str) -> None:
    from deskside.agent.screen.damage import DamageWatcher

    watcher = DamageWatcher()
    painter = Painter(on_display)
    try:
        assert watcher.available
        watcher.changed()  # whatever happened before
        assert not watcher.changed()
        painter.rect(10, 10, 50, 50, (1, 2, 3))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not watcher.changed():
            assert loop.time() < deadline, "no damage reported"
            await asyncio.sleep(0.01)
        assert not watcher.changed()  # reported once, then quiet again
    finally:
        painter.close()
        watcher.close()


async def test_a_static_screen_is_not_grabbed_again(
    session: tuple[ScreenSession, Collector],
) -> None:
    screen, collector = session
    await collector.next()  # the keyframe
    while screen.grabs_avoided < 10:
        await asyncio.sleep(0.05)
    assert collector.frames.empty()  # nothing changed, nothing sent
