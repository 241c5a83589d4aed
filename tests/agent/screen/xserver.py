"""A real X server (Xvfb) for the screen tests, xdotool, and a Tk window that reports.

Imported by the screen tests for its fixtures (``display``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

# Xvfb and xdotool come from scripts/test.sh, which installs them: never skipped.
assert shutil.which("Xvfb"), "run scripts/test.sh: it installs xvfb"
assert shutil.which("xdotool"), "run scripts/test.sh: it installs xdotool"

WIDTH, HEIGHT = 1024, 768
TARGET = Path(__file__).with_name("tk_target.py")


@pytest.fixture
async def display() -> AsyncIterator[str]:
    """A fresh X server of WIDTH x HEIGHT with a black root window; its DISPLAY value."""
    read_end, write_end = os.pipe()
    server = await asyncio.create_subprocess_exec(
        "Xvfb",
        "-displayfd",
        str(write_end),
        "-screen",
        "0",
        f"{WIDTH}x{HEIGHT}x24",
        "-nolisten",
        "tcp",
        pass_fds=(write_end,),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        number = await asyncio.wait_for(asyncio.to_thread(os.read, read_end, 32), 10)
        yield f":{number.decode().strip()}"
    finally:
        os.close(read_end)
        server.terminate()
        await server.wait()


async def xdotool(display: str, *args: str, timeout: float = 10.0) -> str:
    """Run xdotool on ``display``; its output."""
    process = await asyncio.create_subprocess_exec(
        "xdotool",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DISPLAY": display},
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"xdotool {' '.join(args)} did not finish") from None
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def pointer_location(display: str) -> tuple[int, int]:
    """Where the X pointer is, as ``xdotool getmouselocation`` says."""
    fields = dict(item.split(":") for item in (await xdotool(display, "getmouselocation")).split())
    return int(fields["x"]), int(fields["y"])


class TkTarget:
    """A Tk window (tk_target.py) in a subprocess that reports clicks and its Entry's text."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        # Geometry the window reported when it was ready, in root coordinates.
        self.layout: dict[str, list[int]] = {}
        # Everything it reported after that.
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(
        cls, display: str, *, x: int = 100, y: int = 100, class_name: str = "test-target"
    ) -> TkTarget:
        """Start the window at (x, y) and wait until it is mapped and focused."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(TARGET),
            str(x),
            str(y),
            class_name,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "DISPLAY": display},
        )
        target = cls(process)
        ready = await target.next(lambda event: "ready" in event)
        target.layout = ready["ready"]
        return target

    async def next(self, wanted: Any, timeout: float = 10.0) -> dict[str, Any]:
        """The next reported event for which ``wanted(event)`` is true."""
        assert self.process.stdout is not None

        async def read() -> dict[str, Any]:
            assert self.process.stdout is not None
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise AssertionError("the Tk window ended")
                event: dict[str, Any] = json.loads(line)
                self.events.append(event)
                if wanted(event):
                    return event

        return await asyncio.wait_for(read(), timeout)

    async def text(self, expected: str, timeout: float = 10.0) -> None:
        """Wait until the Entry holds ``expected``."""
        for event in self.events:
            if event.get("text") == expected:
                return
        try:
            await self.next(lambda event: event.get("text") == expected, timeout)
        except TimeoutError:
            texts = [e["text"] for e in self.events if "text" in e]
            raise AssertionError(f"never {expected!r}; the Entry held {texts}") from None

    def centre(self, name: str) -> tuple[int, int]:
        """The centre of a widget ("button" or "entry") in root coordinates."""
        x, y, width, height = self.layout[name]
        return x + width // 2, y + height // 2

    async def stop(self) -> None:
        """End the window's process."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


def _grab(display_name: str) -> NDArray[np.uint8]:
    from Xlib import X
    from Xlib import display as xdisplay

    connection = xdisplay.Display(display_name)
    try:
        root = connection.screen().root
        geometry = root.get_geometry()
        image = root.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF)
        data = np.frombuffer(image.data, np.uint8).reshape(geometry.height, geometry.width, 4)
        return np.ascontiguousarray(data[..., 2::-1])  # BGRX to RGB
    finally:
        connection.close()


async def screenshot(display: str) -> NDArray[np.uint8]:
    """The whole X screen as it is shown, (height, width, 3) RGB, read with GetImage."""
    return await asyncio.to_thread(_grab, display)
