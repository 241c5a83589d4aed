"""The agent's screen service in the real daemon, against the fake console: the
policy, the missing desktop, one session at a time, settings, and ending."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from deskside.agent.config import load_config, save_config
from deskside.agent.policy import ConsentMode, Unattended
from deskside.agent.screen.policy import ScreenPolicy
from deskside.protocol import messages as m
from tests.agent.conftest import Agent
from tests.agent.fake_console import FakeConsole
from tests.agent.screen.xpaint import Painter
from tests.agent.screen.xserver import display  # noqa: F401 (a fixture)


def heavy_libraries(pid: int) -> set[str]:
    """Which of numpy and simplejpeg the process has loaded (from /proc/PID/maps)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in ("numpy", "simplejpeg") if f"/{name}/" in maps}


def set_screen(agent: Agent, **fields: object) -> None:
    config = load_config(agent.paths)
    assert config is not None
    save_config(agent.paths, dataclasses.replace(config, screen=ScreenPolicy(**fields)))  # type: ignore[arg-type]


def refused(console: FakeConsole, device: m.DeviceId, session: str) -> m.ScreenRefused | None:
    for message in console.received(device, m.ScreenRefused):
        assert isinstance(message, m.ScreenRefused)
        if message.session_id == session:
            return message
    return None


def frames(console: FakeConsole, device: m.DeviceId, session: str) -> list[m.ScreenFrame]:
    found = console.received(device, m.ScreenFrame)
    return [f for f in found if isinstance(f, m.ScreenFrame) and f.session_id == session]


async def test_policy_and_a_missing_desktop_refuse(console: FakeConsole, agent: Agent) -> None:
    device = await agent.enroll(console)
    set_screen(agent, view=False)
    await agent.start_daemon()  # no DISPLAY
    await console.wait_for(lambda: console.connected(device))
    await console.send(device, m.ScreenOpen(session_id="s1", ticket_id=1, requested_by="tech"))
    await console.wait_for(lambda: refused(console, device, "s1") is not None)
    first = refused(console, device, "s1")
    assert first is not None
    assert first.reason is m.ScreenEndReason.POLICY
    await agent.stop_all()

    set_screen(agent, view=True, consent=ConsentMode.PROMPT, unattended=Unattended.ALLOW)
    await agent.start_daemon()
    await console.wait_for(
        lambda: len(console.received(device, m.Hello)) >= 2 and console.connected(device)
    )
    await console.send(device, m.ScreenOpen(session_id="s2", ticket_id=1, requested_by="tech"))
    await console.wait_for(lambda: refused(console, device, "s2") is not None)
    second = refused(console, device, "s2")
    assert second is not None
    assert second.reason is m.ScreenEndReason.NO_DESKTOP  # nothing to capture at all
    entries = agent.audit()
    assert [(e["event"], e.get("reason")) for e in entries] == [
        ("screen_refused", "policy"),
        ("screen_refused", "no_desktop"),
    ]


async def test_one_session_at_a_time_settings_and_the_end(
    console: FakeConsole,
    agent: Agent,
    display: str,
) -> None:
    device = await agent.enroll(console)
    set_screen(agent, consent=ConsentMode.NONE)
    daemon = await agent.start_daemon(DISPLAY=display)
    await console.wait_for(lambda: console.connected(device))
    # The idle daemon has not loaded numpy or libjpeg-turbo (their shared objects).
    assert heavy_libraries(daemon.pid) == set()
    await console.send(
        device, m.ScreenOpen(session_id="s1", ticket_id=3, requested_by="tech", quality=50)
    )
    await console.wait_for(lambda: bool(console.received(device, m.ScreenStarted)))
    (started,) = console.received(device, m.ScreenStarted)
    assert isinstance(started, m.ScreenStarted)
    assert started.consent == "policy"
    assert [mon.index for mon in started.monitors] == [0, 1]
    await console.wait_for(lambda: bool(frames(console, device, "s1")))
    assert heavy_libraries(daemon.pid) == {"numpy", "simplejpeg"}  # now it has
    first = frames(console, device, "s1")[0]
    assert first.keyframe
    assert (first.width, first.height) == (1024, 768)

    # A second session while one is on: busy.
    await console.send(device, m.ScreenOpen(session_id="s2", ticket_id=3, requested_by="other"))
    await console.wait_for(lambda: refused(console, device, "s2") is not None)
    busy = refused(console, device, "s2")
    assert busy is not None
    assert busy.reason is m.ScreenEndReason.BUSY

    # Without acknowledgements the agent stops at 3 frames in flight, however much
    # the screen changes...
    painter = Painter(display)
    try:
        square = painter.rect(10, 10, 100, 100, (0, 0, 0))
        for shade in range(0, 250, 10):
            painter.recolor(square, (shade, shade, shade))
            await asyncio.sleep(0.02)
    finally:
        painter.close()
    await console.wait_for(lambda: len(frames(console, device, "s1")) == 3)
    await asyncio.sleep(0.3)
    assert len(frames(console, device, "s1")) == 3
    await console.send(device, m.ScreenSettings(session_id="s1", monitor=0))
    await console.send(device, m.ScreenKeyframeRequest(session_id="s1"))
    await console.wait_for(lambda: any(f.keyframe for f in frames(console, device, "s1")[1:]))
    # ...and goes on when they come.
    count = len(frames(console, device, "s1"))
    await console.send(device, m.ScreenAck(session_id="s1", seq=count - 1))
    await console.send(device, m.ScreenKeyframeRequest(session_id="s1"))
    await console.wait_for(lambda: len(frames(console, device, "s1")) > count)

    await console.send(
        device,
        m.ScreenEnded(session_id="s1", reason=m.ScreenEndReason.VIEWER_LEFT, error="bye"),
    )
    entries = await agent.wait_audit(lambda e: any(x["event"] == "screen_ended" for x in e))
    assert [(e["event"], e.get("reason")) for e in entries] == [
        ("screen_requested", None),
        ("screen_started", None),
        ("screen_refused", "busy"),
        ("screen_ended", "viewer_left"),
    ]
    assert entries[-1]["frames"] >= 2
    assert entries[-1]["quality"] <= 50
