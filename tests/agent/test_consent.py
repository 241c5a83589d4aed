"""The consent dialog on a real X server (Xvfb), answered with xdotool."""

from __future__ import annotations

import asyncio

from deskside.agent.consent import TITLE
from deskside.agent.policy import ConsentMode
from deskside.protocol import messages as m
from tests.agent.conftest import Agent
from tests.agent.fake_console import FakeConsole
from tests.agent.screen.xserver import display, xdotool  # noqa: F401 (a fixture)


async def dialog(display: str) -> str:
    """Wait for the consent window; its id, once its Allow button can be clicked."""
    window = (await xdotool(display, "search", "--sync", "--name", TITLE)).split()[0]
    await asyncio.sleep(1.0)  # Allow is enabled 0.7 s after the window opens
    return window


async def click_allow(display: str, window: str) -> None:
    """Click Allow: the left half of the bottom button row, like a user would."""
    geometry = dict(
        line.split("=")
        for line in (await xdotool(display, "getwindowgeometry", "--shell", window)).split()
    )
    x, y = int(geometry["WIDTH"]) // 4, int(geometry["HEIGHT"]) - 32
    await xdotool(display, "mousemove", "--window", window, str(x), str(y), "click", "1")


async def test_the_user_decides(console: FakeConsole, agent: Agent, display: str) -> None:
    device = await agent.enroll(console)
    agent.set_policy(consent=ConsentMode.PROMPT, consent_timeout=3)
    await agent.start_daemon(DISPLAY=display)
    await console.wait_for(lambda: len(console.received(device, m.Hello)) >= 2)

    # Allowed with a real click on the Allow button.
    allowed = await console.run(device, "echo", "allowed", reason="Printer jams")
    await click_allow(display, await dialog(display))
    await console.wait_for(lambda: console.exit(device, allowed) is not None)
    started = console.started(device, allowed)
    assert started is not None
    assert started.consent == "user"
    assert console.output(device, allowed) == b"allowed\n"

    # Denied with Escape (Deny has the focus; Return would press it too).
    denied = await console.run(device, "rm", "-rf", "/tmp/nothing-here")
    await xdotool(display, "windowfocus", "--sync", await dialog(display), "key", "Escape")
    await console.wait_for(lambda: console.exit(device, denied) is not None)
    exit = console.exit(device, denied)
    assert exit is not None
    assert exit.refused
    assert exit.error == "denied by the user"

    # Nobody answers: the dialog gives up after consent_timeout, a refusal.
    ignored = await console.run(device, "echo", "ignored")
    await console.wait_for(lambda: console.exit(device, ignored) is not None, 10)
    exit = console.exit(device, ignored)
    assert exit is not None
    assert exit.refused
    assert exit.error == "the user did not answer within 3 s"

    # A terminal asks the same way.
    await console.send(device, m.ShellOpen(session_id="t1", ticket_id=1, requested_by="tech"))
    await click_allow(display, await dialog(display))
    await console.send(device, m.ShellData(session_id="t1", seq=0, data=b"exit 0\n"))
    await console.wait_for(lambda: console.shell_closed(device, "t1") is not None)
    closed = console.shell_closed(device, "t1")
    assert closed is not None
    assert not closed.refused

    entries = await agent.wait_audit(lambda entries: len(entries) == 5)
    assert [(e["event"], e.get("consent"), e.get("reason")) for e in entries] == [
        ("ran", "user", None),
        ("refused", None, "denied by the user"),
        ("refused", None, "the user did not answer within 3 s"),
        ("shell_opened", "user", None),
        ("shell_closed", None, None),
    ]


async def test_notify_runs_at_once_and_shows_it(
    console: FakeConsole, agent: Agent, display: str
) -> None:
    device = await agent.enroll(console)
    agent.set_policy(consent=ConsentMode.NOTIFY)
    await agent.start_daemon(DISPLAY=display)
    await console.wait_for(lambda: len(console.received(device, m.Hello)) >= 2)
    command = await console.run(device, "echo", "told")
    await console.wait_for(lambda: console.exit(device, command) is not None)
    started = console.started(device, command)
    assert started is not None
    assert started.consent == "notify"
    await xdotool(display, "search", "--sync", "--name", TITLE)  # the user sees it
