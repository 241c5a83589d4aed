"""Guidance and control end to end: a real X server (Xvfb), the real agent and
console as processes, the viewer page in a real browser (Playwright driving Debian's
chromium) whose mouse and keyboard act on the canvas. What the technician draws is
looked for on the X screen (GetImage); under control, the real X pointer and a real
Tk window say what arrived. The prompts are answered with xdotool, as a user would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser, Page, ViewportSize

from deskside.agent.consent import TITLE
from deskside.agent.screen.indicator import TITLE as INDICATOR
from tests.agent.conftest import Agent
from tests.agent.screen.xpaint import Painter
from tests.agent.screen.xserver import TkTarget, display, pointer_location, screenshot, xdotool
from tests.agent.test_consent import click_allow, dialog
from tests.consoleproc import ConsoleProcess
from tests.test_screen import (
    BACKGROUND,
    WATCH_CSP,
    YELLOW,
    agent,
    allow_session,
    browser,
    console,
    csp_violations,
    open_viewer,
    painter,
    ticket_on_device,
    timeline,
    token,
    wait_canvas_matches,
    wait_page,
)

__all__ = ["agent", "browser", "console", "display", "painter", "token"]  # fixtures

# The page is narrower than the 1024x768 screen: the canvas is scaled down to fit.
VIEWPORT: ViewportSize = {"width": 800, "height": 700}


async def open_scaled_viewer(
    browser: Browser, console: ConsoleProcess, ticket: int, token: str
) -> Page:
    context = await browser.new_context(ignore_https_errors=True, viewport=VIEWPORT)
    await context.add_init_script(WATCH_CSP)
    page = await context.new_page()
    await page.goto(f"{console.base_url}/viewer/screen.html#ticket={ticket}&token={token}")
    return page


async def started_session(
    console: ConsoleProcess, token: str, agent: Agent, display: str, browser: Browser
) -> tuple[int, Page]:
    ticket = await ticket_on_device(console, agent, token, display, timeout=8.0)
    page = await open_scaled_viewer(browser, console, ticket, token)
    await allow_session(page, display)
    await wait_canvas_matches(page, display)
    return ticket, page


async def page_point(page: Page, x: int, y: int) -> tuple[float, float]:
    """Where frame pixel (x, y) is on the page (the canvas is scaled)."""
    box = await page.evaluate(
        """() => { const c = window.deskside.canvas; const r = c.getBoundingClientRect();
                   return [r.left, r.top, r.width / c.width, r.height / c.height]; }"""
    )
    left, top, sx, sy = box
    assert sx < 0.9  # scaled down indeed
    return left + (x + 0.5) * sx, top + (y + 0.5) * sy


async def until_screen(display: str, check: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Wait until the X screen's image satisfies ``check``; the image."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        image = (await screenshot(display)).astype(int)
        if check(image):
            return image
        if loop.time() > deadline:
            raise AssertionError("the screen never showed what was expected")
        await asyncio.sleep(0.1)


def near(image: Any, x: int, y: int, rgb: tuple[int, int, int], tolerance: int = 30) -> bool:
    return bool(np.abs(image[y, x] - np.array(rgb)).max() <= tolerance)


async def test_drawings_made_in_the_viewer_appear_on_the_users_screen_until_cleared(
    console: ConsoleProcess,
    token: str,
    agent: Agent,
    display: str,
    painter: Painter,
    browser: Browser,
) -> None:
    ticket, page = await started_session(console, token, agent, display, browser)
    await wait_page(page, "window.deskside.guide.available === true")

    # A freehand red line, drawn with the browser's mouse on the scaled canvas.
    await page.click("[data-tool='line']")
    await page.mouse.move(*await page_point(page, 200, 200))
    await page.mouse.down()
    for x in range(220, 521, 20):
        await page.mouse.move(*await page_point(page, x, 200))
    await page.mouse.up()
    image = await until_screen(display, lambda i: near(i, 360, 200, (255, 0, 0)))
    assert near(image, 360, 230, BACKGROUND)  # a line, not a smear
    assert near(image, 600, 200, BACKGROUND)  # where the line ended

    # A green arrow; the local canvas shows it too.
    await page.evaluate("document.getElementById('guide-colour').value = '#00ff00'")
    await page.click("[data-tool='arrow']")
    await page.mouse.move(*await page_point(page, 200, 600))
    await page.mouse.down()
    await page.mouse.move(*await page_point(page, 350, 600), steps=5)
    await page.mouse.move(*await page_point(page, 500, 600), steps=5)
    await page.mouse.up()
    await until_screen(display, lambda i: near(i, 300, 600, (0, 255, 0)))
    local = await page.evaluate(
        "Array.from(document.getElementById('guide').getContext('2d')"
        ".getImageData(300, 600, 1, 1).data)"
    )
    assert local[:3] == [0, 255, 0]
    assert local[3] > 200

    # Clear: both go from the user's screen.
    await page.click("#guide-clear")
    await until_screen(
        display,
        lambda i: near(i, 360, 200, BACKGROUND) and near(i, 300, 600, BACKGROUND),
    )

    # The session ends: a summary of the guidance on the timeline and in the audit log.
    await page.click("#stop")
    entries = await agent.wait_audit(lambda e: any(x["event"] == "screen_ended" for x in e))
    assert entries[-1]["drawings"] == 2
    assert entries[-1]["guidance"] is True
    ended = [e for e in timeline(console, token, ticket) if e["kind"] == "screen_ended"]
    assert ended
    assert ended[0]["data"]["drawings"] == 2
    assert await csp_violations(page) == []  # pointer and drawings within the policy


async def test_guidance_from_a_viewer_is_checked_by_the_console(
    console: ConsoleProcess,
    token: str,
    agent: Agent,
    display: str,
    painter: Painter,
    browser: Browser,
) -> None:
    ticket, page = await started_session(console, token, agent, display, browser)
    await wait_page(page, "window.deskside.guide.available === true")
    del ticket
    errors = await page.evaluate(
        """async () => {
            const got = [];
            window.addEventListener("deskside:message", (e) => {
                const kind = e.detail.type;
                if (kind === "error" || kind === "input_refused") got.push(e.detail);
            });
            const send = window.deskside.send;
            const session = window.deskside.screen.session;
            send({type: "guide_draw", session_id: "someone-else", shape_id: "a", kind: "line",
                  points: [[1, 1], [20, 20]]});
            send({type: "guide_draw", session_id: session, shape_id: "b", kind: "line",
                  points: [[1, 1], [99999, 20]]});
            send({type: "input_pointer", session_id: session, x: 10, y: 10, action: "down"});
            await new Promise((r) => setTimeout(r, 1500));
            return got;
        }"""
    )
    statuses = sorted(e.get("status", 0) for e in errors)
    assert statuses == [0, 400, 403]  # input refused (no control), bad bounds, not yours
    refused = next(e for e in errors if e["type"] == "input_refused")
    assert refused["reason"] == "control is not granted"


@pytest.fixture
async def target(display: str) -> AsyncIterator[TkTarget]:
    window = await TkTarget.start(display, x=150, y=150)
    try:
        yield window
    finally:
        await window.stop()


async def window_image(display: str, window: str) -> Any:
    """The pixels of a window as they are on the screen."""
    geometry = dict(
        line.split("=")
        for line in (await xdotool(display, "getwindowgeometry", "--shell", window)).split()
    )
    x, y, w, h = (int(geometry[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
    return (await screenshot(display))[y : y + h, x : x + w]


async def control_dialog(display: str) -> str:
    """The second prompt (control), once its Allow button can be clicked."""
    window = await dialog(display)
    name = await xdotool(display, "getwindowname", window)
    assert name.strip() == TITLE
    return window


async def test_under_control_the_viewer_clicks_and_types_into_a_real_window(
    console: ConsoleProcess,
    token: str,
    agent: Agent,
    display: str,
    painter: Painter,
    target: TkTarget,
    browser: Browser,
) -> None:
    ticket, page = await started_session(console, token, agent, display, browser)
    indicator = (await xdotool(display, "search", "--sync", "--name", INDICATOR)).split()[0]
    viewing = await window_image(display, indicator)
    await page.click("#request-control")
    await wait_page(page, "window.deskside.control.state === 'asking'")
    await click_allow(display, await control_dialog(display))
    await wait_page(page, "window.deskside.control.state === 'on'")

    # The indicator now says that the technician has control.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (await window_image(display, indicator)).shape == viewing.shape and np.array_equal(
        await window_image(display, indicator), viewing
    ):
        assert loop.time() < deadline, "the indicator did not change"
        await asyncio.sleep(0.1)

    # A click on the Tk button, on the scaled canvas, clicks the real button.
    bx, by = target.centre("button")
    await page.mouse.click(*await page_point(page, bx, by))
    click = await target.next(lambda event: "click" in event)
    assert abs(click["click"][0] - bx) <= 2
    assert abs(click["click"][1] - by) <= 2
    assert abs((await pointer_location(display))[0] - bx) <= 2

    # The pointer follows the browser's mouse.
    await page.mouse.move(*await page_point(page, 700, 650), steps=3)
    deadline = loop.time() + 10
    while (location := await pointer_location(display)) != (700, 650):
        assert loop.time() < deadline, f"the X pointer is at {location}"
        await asyncio.sleep(0.05)

    # Typing in the browser types into the Entry (after clicking it).
    ex, ey = target.centre("entry")
    await page.mouse.click(*await page_point(page, ex, ey))
    await page.keyboard.type("Hi there!")
    await target.text("Hi there!")
    await page.keyboard.press("Backspace")
    await target.text("Hi there")

    # The user moves their own mouse: injection pauses, and the viewer is told.
    await xdotool(display, "mousemove", "600", "500")
    await xdotool(display, "mousemove", "610", "505")
    await wait_page(page, "performance.now() < window.deskside.control.pausedUntil")
    assert "Paused" in await page.inner_text("#control-status")
    await page.mouse.click(*await page_point(page, bx, by))
    await asyncio.sleep(0.5)
    assert len([e for e in target.events if "click" in e]) == 1  # refused while paused

    # Giving control back: later events are refused and nothing moves.
    await page.click("#request-control")
    await wait_page(page, "window.deskside.control.state === 'off'")
    await page.mouse.move(*await page_point(page, 100, 100), steps=2)
    await asyncio.sleep(1.0)
    assert await pointer_location(display) != (100, 100)

    await page.click("#stop")
    await agent.wait_audit(lambda e: any(x["event"] == "screen_ended" for x in e))
    kinds = [e["kind"] for e in timeline(console, token, ticket)]
    assert kinds == [
        "screen_requested",
        "screen_started",
        "screen_control_requested",
        "screen_control_granted",
        "screen_control_ended",
        "screen_ended",
    ]
    assert await csp_violations(page) == []  # control within the policy
    events = [e["event"] for e in agent.audit() if e["event"].startswith("screen_")]
    assert events == [
        "screen_requested",
        "screen_started",
        "screen_control_requested",
        "screen_control_granted",
        "screen_control_ended",
        "screen_ended",
    ]
    # Counts only: no keystroke is in the agent's audit log or the daemon's log.
    ended = agent.audit()[-1]
    assert ended["inputs"] > 10
    assert "Hi there" not in str(agent.audit())


async def test_a_denied_control_prompt_leaves_injection_off(
    console: ConsoleProcess,
    token: str,
    agent: Agent,
    display: str,
    painter: Painter,
    browser: Browser,
) -> None:
    ticket, page = await started_session(console, token, agent, display, browser)
    before = await pointer_location(display)
    await page.click("#request-control")
    window = await control_dialog(display)
    # Deny: the right half of the button row.
    geometry = dict(
        line.split("=")
        for line in (await xdotool(display, "getwindowgeometry", "--shell", window)).split()
    )
    x, y = int(geometry["WIDTH"]) * 3 // 4, int(geometry["HEIGHT"]) - 32
    await xdotool(display, "mousemove", "--window", window, str(x), str(y), "click", "1")
    await wait_page(page, "window.deskside.control.state === 'refused'")
    assert await page.evaluate("window.deskside.control.reason") == "denied"
    moved_to = await pointer_location(display)

    # Events sent anyway are refused by the console; the X pointer stays put.
    await page.evaluate(
        """() => window.deskside.send({type: "input_pointer",
               session_id: window.deskside.screen.session, x: 5, y: 5})"""
    )
    await wait_page(page, "window.deskside.control.refusedInput > 0")
    await asyncio.sleep(0.5)
    assert await pointer_location(display) == moved_to
    del before
    kinds = [(e["kind"], e["data"].get("reason")) for e in timeline(console, token, ticket)]
    assert ("screen_control_refused", "denied") in kinds
    assert "screen_control_granted" not in [k for k, _ in kinds]


async def test_video_mode_shows_a_moving_scene(
    console: ConsoleProcess,
    token: str,
    agent: Agent,
    display: str,
    painter: Painter,
    browser: Browser,
) -> None:
    ticket = await ticket_on_device(console, agent, token, display, timeout=8.0)
    page = await open_viewer(browser, console, ticket, token, "&mode=video&fps=30&record=1")
    await allow_session(page, display)
    assert await page.evaluate("window.deskside.video.supported") is True
    await wait_page(page, "window.deskside.video.mode === 'video'")

    # A yellow square slides across the screen; the canvas follows, decoded by WebCodecs.
    square = painter.rect(100, 100, 150, 150, YELLOW)
    for step in range(30):
        square.configure(x=100 + step * 20, y=100 + step * 5)
        painter.display.sync()
        await asyncio.sleep(0.05)
    await wait_page(page, "window.deskside.video.decoded > 10")
    await wait_canvas_matches(page, display)
    assert await page.evaluate("window.deskside.video.errors") == 0
    assert await page.evaluate("window.deskside.video.codec") is not None

    # Back to tiles from the page's setting: JPEG again, still matching.
    await page.select_option("#mode", "tiles")
    await wait_page(page, "window.deskside.video.mode === 'tiles'")
    square.configure(x=200, y=400)
    painter.display.sync()
    await wait_canvas_matches(page, display)

    await page.click("#stop")
    entries = await agent.wait_audit(lambda e: any(x["event"] == "screen_ended" for x in e))
    assert entries[-1]["video_frames"] > 10
    assert entries[-1]["mode"] == "tiles"

    # The recording replays its H.264 part through WebCodecs too, to the last screen.
    ended: list[dict[str, Any]] = []
    for _ in range(100):
        ended = [e for e in timeline(console, token, ticket) if e["kind"] == "screen_ended"]
        if ended:
            break
        await asyncio.sleep(0.1)
    session = ended[-1]["data"]["screen_session"]
    link = console.cli("screen", "--replay", session, "--as", "admin").stdout.strip()
    replay = await page.context.new_page()
    await replay.goto(link + "&autoplay=1")
    await wait_page(replay, "window.deskside.replay.done === true", 30)
    assert await replay.evaluate("window.deskside.video.decoded") > 10
    assert await replay.evaluate("window.deskside.video.errors") == 0
    await wait_canvas_matches(replay, display)
    # WebCodecs, the WebSocket and the recording's fetch all within the strict policy.
    assert await csp_violations(page) == []
    assert await csp_violations(replay) == []
