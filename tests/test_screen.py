"""Screen viewing end to end: a real X server (Xvfb) with known content, the real
agent and console as processes, and the viewer page in a real browser (Playwright
driving Debian's chromium). The user's consent prompt and the indicator's Stop
button are clicked with xdotool, as a user would click them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import mss
import numpy as np
import pytest
from playwright.async_api import Browser, Page, async_playwright

from deskside.agent.config import load_config, save_config
from deskside.agent.consent import TITLE
from deskside.agent.policy import ConsentMode
from deskside.agent.screen.indicator import TITLE as INDICATOR
from deskside.agent.screen.policy import ScreenPolicy
from tests.agent.conftest import Agent, eventually
from tests.agent.screen.xpaint import Painter
from tests.agent.screen.xserver import display, xdotool  # noqa: F401 (a fixture)
from tests.agent.test_consent import click_allow, dialog
from tests.consoleproc import ConsoleProcess
from tests.test_end_to_end import enroll

# scripts/test.sh installs chromium (need_debs); Playwright never downloads a browser.
CHROMIUM = "/usr/bin/chromium"
assert shutil.which(CHROMIUM), "run scripts/test.sh: it installs chromium"

SCOPES = ("tickets:read", "tickets:write", "devices:read", "commands:run")
BACKGROUND = (40, 40, 40)
RED, GREEN, BLUE, YELLOW = (230, 20, 20), (20, 200, 20), (20, 20, 230), (240, 230, 20)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    with ConsoleProcess(tmp_path_factory.mktemp("console") / "data") as process:
        yield process


@pytest.fixture(scope="module")
def token(console: ConsoleProcess) -> str:
    return console.api_token(*SCOPES)


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    the_agent = Agent(tmp_path / "agent")
    try:
        yield the_agent
    finally:
        await the_agent.stop_all()


@pytest.fixture
def painter(display: str) -> Iterator[Painter]:
    """The known content: three coloured rectangles on a grey background."""
    paint = Painter(display)
    paint.rect(0, 0, 1024, 768, BACKGROUND)
    paint.rect(100, 300, 200, 150, RED)
    paint.rect(400, 300, 200, 150, GREEN)
    paint.rect(700, 300, 200, 150, BLUE)
    try:
        yield paint
    finally:
        paint.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        the_browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            yield the_browser
        finally:
            await the_browser.close()


def agent_device(agent: Agent) -> str:
    config = load_config(agent.paths)
    assert config is not None
    return str(config.device_id)


def online(console: ConsoleProcess, device: str) -> bool:
    """Whether ``deskside-console devices`` lists the device as online."""
    lines = console.cli("devices").stdout.splitlines()
    return any(device in line and "  online  " in line for line in lines)


async def ticket_on_device(
    console: ConsoleProcess,
    agent: Agent,
    token: str,
    display: str,
    timeout: float = 30.0,
    consent: ConsentMode = ConsentMode.PROMPT,
) -> int:
    """Enroll the agent with a [screen] policy, run it on ``display``; a ticket for it."""
    device = await enroll(agent, console)
    config = load_config(agent.paths)
    assert config is not None
    policy = ScreenPolicy(consent=consent, consent_timeout=timeout)
    save_config(agent.paths, dataclasses.replace(config, screen=policy))
    await agent.start_daemon(DISPLAY=display)
    await eventually(lambda: online(console, device), 20)
    with console.api(token) as api:
        created = api.post(
            "/api/v1/tickets",
            json={"title": "My screen looks odd", "description": "see", "device_id": device},
        )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


# Run in every page before its own scripts: keeps what the Content-Security-Policy refused.
WATCH_CSP = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
    window.cspViolations.push(`${e.effectiveDirective} ${e.blockedURI}`);
});
"""


async def csp_violations(page: Page) -> list[str]:
    """What the page's Content-Security-Policy refused so far (``WATCH_CSP``)."""
    return list(await page.evaluate("window.cspViolations"))


async def open_viewer(
    browser: Browser, console: ConsoleProcess, ticket: int, token: str, extra: str = ""
) -> Page:
    context = await browser.new_context(
        ignore_https_errors=True, viewport={"width": 1280, "height": 900}
    )
    await context.add_init_script(WATCH_CSP)
    page = await context.new_page()
    await page.goto(f"{console.base_url}/viewer/screen.html#ticket={ticket}&token={token}{extra}")
    return page


async def phase(page: Page) -> str:
    return str(await page.evaluate("window.deskside.screen.phase"))


async def wait_page(page: Page, expression: str, timeout: float = 30.0) -> None:
    """Until ``expression`` is true in the page. Polled with ``evaluate``: Playwright's
    ``wait_for_function`` evaluates strings in the page, which its policy forbids."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await page.evaluate(expression):
        if loop.time() > deadline:
            raise AssertionError(f"not true in {timeout} s: {expression}")
        await asyncio.sleep(0.05)


async def allow_session(page: Page, display: str) -> None:
    """The viewer asks, the user clicks Allow in the consent dialog, the session starts."""
    await wait_page(page, "window.deskside.screen.phase === 'asking'")
    await click_allow(display, await dialog(display))
    await wait_page(page, "window.deskside.screen.phase === 'started'")


STEP = 16


async def canvas_samples(page: Page) -> Any:
    """RGB of the canvas at the centre of each 16x16 block: (rows, cols, 3)."""
    found = await page.evaluate(
        """(step) => {
            const c = window.deskside.canvas;
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            const out = [];
            for (let y = step / 2; y < c.height; y += step)
                for (let x = step / 2; x < c.width; x += step) {
                    const i = (y * c.width + x) * 4;
                    out.push(d[i], d[i + 1], d[i + 2]);
                }
            return { w: c.width, h: c.height, px: out };
        }""",
        STEP,
    )
    assert (found["w"], found["h"]) == (1024, 768)
    return np.array(found["px"], dtype=int).reshape(768 // STEP, 1024 // STEP, 3)


def x_samples(name: str) -> Any:
    """The same samples of what the X server shows."""
    with mss.MSS(display=name) as grabber:
        shot = grabber.grab(grabber.monitors[1])
    image = np.frombuffer(shot.raw, dtype=np.uint8).reshape(shot.height, shot.width, 4)
    half = STEP // 2
    return image[half::STEP, half::STEP, 2::-1].astype(int)  # BGRA -> RGB


def mismatch(canvas: Any, screen: Any) -> tuple[float, float]:
    """Mean and 99th percentile of the difference, the indicator's corner left out."""
    keep = np.ones(canvas.shape[:2], dtype=bool)
    keep[: 120 // STEP, (1024 - 420) // STEP :] = False  # "Screen shared", top right
    diff = np.abs(canvas - screen).max(axis=2)[keep]
    return float(diff.mean()), float(np.percentile(diff, 99))


async def wait_canvas_matches(page: Page, name: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    await wait_page(page, "window.deskside.canvas.width === 1024", timeout)  # a first frame
    while True:
        mean, p99 = mismatch(await canvas_samples(page), x_samples(name))
        if mean < 3 and p99 < 40:
            return
        if loop.time() > deadline:
            raise AssertionError(f"the canvas differs from the screen: mean {mean}, p99 {p99}")
        await asyncio.sleep(0.2)


def timeline(console: ConsoleProcess, token: str, ticket: int) -> list[dict[str, Any]]:
    with console.api(token) as api:
        response = api.get(f"/api/v1/tickets/{ticket}")
    assert response.status_code == 200
    return [e for e in response.json()["timeline"] if e["kind"].startswith("screen_")]


async def test_the_viewer_shows_the_screen_until_the_user_presses_stop(
    console: ConsoleProcess,
    token: str,
    agent: Agent,
    display: str,
    painter: Painter,
    browser: Browser,
) -> None:
    ticket = await ticket_on_device(console, agent, token, display)
    page = await open_viewer(browser, console, ticket, token)
    await allow_session(page, display)
    await wait_page(page, "window.deskside.screen.frames > 0")
    monitors = await page.evaluate("window.deskside.screen.monitors.map(m => m.index)")
    assert monitors == [0, 1]

    # The canvas shows what the X server shows: the three rectangles...
    await wait_canvas_matches(page, display)
    canvas = await canvas_samples(page)
    assert np.abs(canvas[375 // STEP, 200 // STEP] - RED).max() < 25
    assert np.abs(canvas[375 // STEP, 500 // STEP] - GREEN).max() < 25

    # ...and again after the screen changed.
    green = painter.rect(400, 300, 200, 150, GREEN)
    painter.recolor(green, YELLOW)
    await wait_canvas_matches(page, display)
    canvas = await canvas_samples(page)
    assert np.abs(canvas[375 // STEP, 500 // STEP] - YELLOW).max() < 25

    # The technician's second window joins the session without asking the user again.
    second = await open_viewer(browser, console, ticket, token)
    await wait_page(second, "window.deskside.screen.phase === 'started'")
    await wait_canvas_matches(second, display)

    # The viewer's settings reach the agent: all monitors (here the same one).
    frames = await page.evaluate("window.deskside.screen.frames")
    await page.select_option("#monitor", "0")
    await page.fill("#quality", "40")
    await page.dispatch_event("#quality", "change")
    await wait_page(page, f"window.deskside.screen.frames > {frames}")
    await wait_canvas_matches(page, display)

    # The user presses Stop on the indicator: the session ends at once.
    window = (await xdotool(display, "search", "--sync", "--name", INDICATOR)).split()[0]
    geometry = dict(
        line.split("=")
        for line in (await xdotool(display, "getwindowgeometry", "--shell", window)).split()
    )
    x, y = int(geometry["WIDTH"]) - 30, int(geometry["HEIGHT"]) // 2
    await xdotool(display, "mousemove", "--window", window, str(x), str(y), "click", "1")
    await wait_page(page, "window.deskside.screen.phase === 'ended'", 10)
    assert await page.evaluate("window.deskside.screen.reason") == "user_stopped"
    await wait_page(second, "window.deskside.screen.phase === 'ended'", 10)
    # All of it under the console's strict policy, which refused nothing the page does.
    assert await csp_violations(page) == []
    assert await csp_violations(second) == []

    kinds = [
        (e["kind"], e["data"].get("reason"), e["data"].get("consent"))
        for e in timeline(console, token, ticket)
    ]
    assert kinds == [
        ("screen_requested", None, None),
        ("screen_started", None, "user"),
        ("screen_viewer_joined", None, None),
        ("screen_ended", "user_stopped", None),
    ]
    shown = console.cli("ticket", "show", str(ticket)).stdout
    assert "screen shared (consent: user)" in shown
    assert "screen session ended: user_stopped (the user pressed Stop)," in shown
    entries = await agent.wait_audit(lambda e: any(x["event"] == "screen_ended" for x in e))
    screen = [(e["event"], e.get("consent"), e.get("reason")) for e in entries]
    assert screen == [
        ("screen_requested", None, None),
        ("screen_started", "user", None),
        ("screen_ended", None, "user_stopped"),
    ]
    ended = entries[-1]
    assert ended["frames"] >= 2
    assert ended["ticket"] == ticket
    assert ended["quality"] <= 40  # the viewer's setting reached the agent


async def test_a_denial_and_a_time_out_prevent_the_session(
    console: ConsoleProcess,
    token: str,
    agent: Agent,
    display: str,
    painter: Painter,
    browser: Browser,
) -> None:
    ticket = await ticket_on_device(console, agent, token, display, timeout=5.0)

    page = await open_viewer(browser, console, ticket, token)
    await wait_page(page, "window.deskside.screen.phase === 'asking'")
    window = await dialog(display)
    geometry = dict(
        line.split("=")
        for line in (await xdotool(display, "getwindowgeometry", "--shell", window)).split()
    )
    x, y = int(geometry["WIDTH"]) * 3 // 4, int(geometry["HEIGHT"]) - 32  # Deny: right half
    await xdotool(display, "mousemove", "--window", window, str(x), str(y), "click", "1")
    await wait_page(page, "window.deskside.screen.phase === 'refused'", 10)
    assert await page.evaluate("window.deskside.screen.reason") == "denied"
    assert await page.evaluate("window.deskside.screen.frames") == 0
    await page.close()

    page = await open_viewer(browser, console, ticket, token)
    await wait_page(page, "window.deskside.screen.phase === 'asking'")
    await wait_page(page, "window.deskside.screen.phase === 'refused'", 15)
    assert await page.evaluate("window.deskside.screen.reason") == "timed_out"
    assert await page.evaluate("window.deskside.screen.frames") == 0

    # The technician gives up while the user is asked: the prompt goes away.
    await page.close()
    page = await open_viewer(browser, console, ticket, token)
    await wait_page(page, "window.deskside.screen.phase === 'asking'")
    await dialog(display)
    await page.close()
    entries = await agent.wait_audit(lambda e: len(e) >= 6)
    search = await asyncio.create_subprocess_exec(
        "xdotool", "search", "--name", TITLE, env={"DISPLAY": display, "PATH": "/usr/bin"}
    )
    assert await search.wait() == 1  # no consent dialog any more

    kinds = [(e["kind"], e["data"].get("reason")) for e in timeline(console, token, ticket)]
    assert kinds == [
        ("screen_requested", None),
        ("screen_refused", "denied"),
        ("screen_requested", None),
        ("screen_refused", "timed_out"),
        ("screen_requested", None),
        ("screen_ended", "viewer_left"),
    ]
    assert [(e["event"], e.get("reason")) for e in entries] == [
        ("screen_requested", None),
        ("screen_refused", "denied"),
        ("screen_requested", None),
        ("screen_refused", "timed_out"),
        ("screen_requested", None),
        ("screen_refused", "viewer_left"),
    ]


async def test_closing_the_viewer_ends_the_session_and_its_indicator(
    console: ConsoleProcess,
    token: str,
    agent: Agent,
    display: str,
    painter: Painter,
    browser: Browser,
) -> None:
    ticket = await ticket_on_device(console, agent, token, display)
    page = await open_viewer(browser, console, ticket, token)
    await allow_session(page, display)
    await wait_page(page, "window.deskside.screen.frames > 0")
    await xdotool(display, "search", "--sync", "--name", INDICATOR)

    # Another technician cannot watch along: the user agreed to the first one.
    other = await open_viewer(browser, console, ticket, console.api_token(*SCOPES))
    await wait_page(other, "window.deskside.screen.phase === 'error'", 10)
    assert "is being viewed by" in await other.evaluate("window.deskside.screen.reason")
    refusals = [e for e in timeline(console, token, ticket) if e["kind"] == "screen_refused"]
    assert [e["data"]["reason"] for e in refusals] == ["busy"]

    await page.close()
    entries = await agent.wait_audit(lambda e: any(x["event"] == "screen_ended" for x in e))
    assert entries[-1]["reason"] == "viewer_left"
    search = await asyncio.create_subprocess_exec(
        "xdotool", "search", "--name", INDICATOR, env={"DISPLAY": display, "PATH": "/usr/bin"}
    )
    assert await search.wait() == 1  # no such window any more


async def test_a_technician_who_may_not_act_on_the_ticket_is_refused(
    console: ConsoleProcess,
    token: str,
    agent: Agent,
    display: str,
    browser: Browser,
) -> None:
    ticket = await ticket_on_device(console, agent, token, display)
    reader = console.api_token("tickets:read")
    page = await open_viewer(browser, console, ticket, reader)
    await wait_page(page, "window.deskside.screen.phase === 'error'", 10)
    assert "commands:run" in await page.evaluate("window.deskside.screen.reason")
    # The refusal is on the ticket, with the session it would have been.
    (refusal,) = [e for e in timeline(console, token, ticket) if e["kind"] == "screen_refused"]
    assert set(refusal["data"]) == {"kind", "screen_session", "reason"}  # typed: its kind too
    assert "commands:run" in refusal["data"]["reason"]
    assert refusal["actor"].startswith("api:")
    page = await open_viewer(browser, console, ticket, "dsk_not-a-token-at-all")
    await wait_page(page, "window.deskside.screen.phase === 'error'", 10)
    with httpx.Client(verify=console.ssl_context()) as client:
        served = client.get(f"{console.base_url}/viewer/frames.js")
    assert served.status_code == 200
    assert "DSF1" in served.text


async def test_the_viewer_runs_no_script_but_its_own(
    console: ConsoleProcess, browser: Browser
) -> None:
    """The page's policy refuses inline script and code from any other origin, as an
    injected script (say, through a bug that let a name into the page) would be."""
    page = await open_viewer(browser, console, 1, "dsk_not-a-token-at-all")
    await wait_page(page, "window.deskside.screen.phase === 'error'", 10)
    assert await csp_violations(page) == []  # the page itself needs nothing refused
    await page.evaluate(
        """() => {
            const inline = document.createElement("script");
            inline.textContent = "window.injected = 'inline'";
            document.body.append(inline);
            const remote = document.createElement("script");
            remote.src = "https://cdn.example.org/evil.js";
            document.body.append(remote);
            const style = document.createElement("style");
            style.textContent = "body { background: red }";
            document.head.append(style);
        }"""
    )
    await wait_page(page, "window.cspViolations.length >= 3", 10)
    assert await page.evaluate("window.injected") is None
    refused = await csp_violations(page)
    assert "script-src-elem inline" in refused
    assert "script-src-elem https://cdn.example.org/evil.js" in refused
    assert "style-src-elem inline" in refused
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") != (
        "rgb(255, 0, 0)"
    )


async def test_a_recorded_session_is_kept_with_the_ticket_and_replays(
    console: ConsoleProcess,
    token: str,
    agent: Agent,
    display: str,
    painter: Painter,
    browser: Browser,
) -> None:
    ticket = await ticket_on_device(console, agent, token, display, consent=ConsentMode.NONE)
    # The CLI's link: a short-lived token of the technician in the fragment.
    link = console.cli("screen", "--ticket", str(ticket), "--as", "admin", "--record").stdout
    assert link.startswith(f"{console.base_url}/viewer/screen.html#ticket={ticket}&token=dsv_")
    context = await browser.new_context(ignore_https_errors=True)
    await context.add_init_script(WATCH_CSP)
    page = await context.new_page()
    await page.goto(link.strip())
    await wait_page(page, "window.deskside.screen.phase === 'started'")
    await wait_canvas_matches(page, display)
    green = painter.rect(400, 300, 200, 150, GREEN)
    painter.recolor(green, YELLOW)
    await wait_canvas_matches(page, display)
    await page.click("#stop")
    events = []
    for _ in range(100):
        events = timeline(console, token, ticket)
        if events and events[-1]["kind"] == "screen_ended":
            break
        await asyncio.sleep(0.1)
    started, ended = events[-2], events[-1]
    assert started["data"]["consent"] == "policy"
    assert started["data"]["recorded"] is True
    assert started["actor"] == f"agent:{agent_device(agent)}"
    assert events[-3]["actor"] == "user:admin"  # screen_requested: who asked
    assert ended["data"]["reason"] == "viewer_left"
    assert ended["data"]["recording_bytes"] > 1000
    assert ended["data"]["truncated"] is False
    session = ended["data"]["screen_session"]
    entries = await agent.wait_audit(lambda e: any(x["event"] == "screen_ended" for x in e))
    assert entries[0]["recorded"] is True  # the agent knew, and so did its user

    # The replay draws the recorded frames: it ends on the screen as it was last.
    link = console.cli("screen", "--replay", session, "--as", "admin").stdout.strip()
    replay = await context.new_page()
    await replay.goto(link + "&autoplay=1")
    await wait_page(replay, "window.deskside.replay.done === true", 30)
    await wait_canvas_matches(replay, display)
    canvas = await canvas_samples(replay)
    assert np.abs(canvas[375 // STEP, 500 // STEP] - YELLOW).max() < 25
    assert await csp_violations(page) == []
    assert await csp_violations(replay) == []

    # Without the rights to read tickets, no recording.
    with httpx.Client(verify=console.ssl_context()) as client:
        refused = client.get(
            f"{console.base_url}/api/v1/screens/{session}/recording",
            headers={"Authorization": f"Bearer {console.api_token('devices:read')}"},
        )
    assert refused.status_code == 403
