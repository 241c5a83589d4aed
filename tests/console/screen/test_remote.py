"""The console's checks on guidance, control and input (``screenremote``): the
session must be on and the viewer's own, input only after the agent granted
control, every step on the timeline, and a viewer cannot flood the agent."""

from __future__ import annotations

import json
from typing import Any

from deskside.console.screen.session import GUIDE_BURST, ScreenViewer
from deskside.protocol import messages as m
from tests.console.screen.test_relay import Link, open_hub, started


def drain(viewer: ScreenViewer) -> list[Any]:
    items = []
    while not viewer.queue.empty():
        items.append(viewer.queue.get_nowait())
    return items


def sent(link: Link, kind: type) -> list[Any]:
    return [x for x in link.channel.sent if isinstance(x, kind)]


def text(**fields: Any) -> str:
    return json.dumps(fields)


POINTER = text(type="input_pointer", session_id="s1", x=10, y=20, action="down", button="right")


async def test_input_only_after_the_agent_granted_control() -> None:
    hub, link, store, viewer, relay = await open_hub()
    # Not started yet: nothing goes through.
    await hub.from_viewer(relay, viewer, "control_request", text(type="control_request"))
    assert drain(viewer)[-1]["status"] == 409
    await hub.from_agent(link, started())
    drain(viewer)

    await hub.from_viewer(relay, viewer, "input_pointer", POINTER)
    assert drain(viewer) == [{"type": "input_refused", "reason": "control is not granted"}]
    assert not sent(link, m.InputPointer)

    await hub.from_viewer(relay, viewer, "control_request", text(type="control_request"))
    await hub.from_viewer(relay, viewer, "control_request", text(type="control_request"))
    assert len(sent(link, m.ScreenControlRequest)) == 1  # asked once
    assert drain(viewer) == [
        {"type": "control", "state": "asking"},
        {"type": "control", "state": "asking"},
    ]
    # Still asking: input refused (told at most once a second).
    await hub.from_viewer(relay, viewer, "input_pointer", POINTER)
    assert not sent(link, m.InputPointer)

    await hub.from_agent(link, m.ScreenControlGranted(session_id="s1", consent="user"))
    assert drain(viewer)[-1]["state"] == "on"
    await hub.from_viewer(relay, viewer, "input_pointer", POINTER)
    key = text(type="input_key", session_id="s1", code="KeyA", key="a", down=True)
    await hub.from_viewer(relay, viewer, "input_key", key)
    assert sent(link, m.InputPointer) == [
        m.InputPointer(
            session_id="s1",
            x=10,
            y=20,
            action=m.PointerAction.DOWN,
            button=m.PointerButton.RIGHT,
        )
    ]
    assert sent(link, m.InputKey) == [m.InputKey(session_id="s1", code="KeyA", key="a", down=True)]

    # Another session's id, or a field out of bounds: refused, nothing sent.
    other = text(type="input_key", session_id="s2", code="KeyB", key="b", down=True)
    await hub.from_viewer(relay, viewer, "input_key", other)
    bad = text(type="input_pointer", session_id="s1", x=-1, y=0)
    await hub.from_viewer(relay, viewer, "input_pointer", bad)
    assert [item["status"] for item in drain(viewer)] == [403, 400]
    assert len(sent(link, m.InputKey)) == 1

    # The user paused it (their mouse), then ended it (Stop ends the whole session).
    await hub.from_agent(link, m.ScreenControlPaused(session_id="s1", seconds=3.0))
    assert drain(viewer) == [{"type": "control_paused", "seconds": 3.0}]
    await hub.from_agent(
        link, m.ScreenEnded(session_id="s1", reason=m.ScreenEndReason.USER_STOPPED)
    )
    kinds = [kind for kind, _ in store.events]
    assert kinds == [
        "screen_started",
        "screen_control_requested",
        "screen_control_granted",
        "screen_control_ended",
        "screen_ended",
    ]
    assert store.events[3][1]["reason"] == "session_ended"
    assert store.events[-1][1]["inputs"] == 2
    assert store.events[-1][1]["inputs_refused"] == 2


async def test_refused_and_released_control() -> None:
    hub, link, store, viewer, relay = await open_hub()
    await hub.from_agent(link, started())
    await hub.from_viewer(relay, viewer, "control_request", text(type="control_request"))
    await hub.from_agent(
        link,
        m.ScreenControlRefused(
            session_id="s1", reason=m.ScreenControlReason.DENIED, error="denied by the user"
        ),
    )
    assert drain(viewer)[-1] == {
        "type": "control",
        "state": "refused",
        "reason": "denied",
        "error": "denied by the user",
    }
    await hub.from_viewer(relay, viewer, "input_pointer", POINTER)
    assert not sent(link, m.InputPointer)

    # Asked again, granted, given back by the technician.
    await hub.from_viewer(relay, viewer, "control_request", text(type="control_request"))
    await hub.from_agent(link, m.ScreenControlGranted(session_id="s1", consent="user"))
    await hub.from_viewer(relay, viewer, "control_release", text(type="control_release"))
    ended = sent(link, m.ScreenControlEnded)
    assert [e.reason for e in ended] == [m.ScreenControlReason.RELEASED]
    await hub.from_viewer(relay, viewer, "input_pointer", POINTER)
    assert not sent(link, m.InputPointer)
    assert [kind for kind, _ in store.events][1:] == [
        "screen_control_requested",
        "screen_control_refused",
        "screen_control_requested",
        "screen_control_granted",
        "screen_control_ended",
    ]


async def test_guidance_is_checked_rate_limited_and_summarised() -> None:
    hub, link, store, viewer, relay = await open_hub()
    await hub.from_agent(link, started())
    await hub.from_agent(link, m.ScreenGuideStatus(session_id="s1", available=True))
    assert drain(viewer)[-1] == {"type": "guidance", "available": True, "error": ""}

    draw = text(
        type="guide_draw", session_id="s1", shape_id="a1", kind="arrow", points=[[1, 2], [30, 40]]
    )
    await hub.from_viewer(relay, viewer, "guide_draw", draw)
    assert sent(link, m.GuideDraw)[0].points == [m.Point(1, 2), m.Point(30, 40)]
    foreign = draw.replace('"s1"', '"s9"')
    await hub.from_viewer(relay, viewer, "guide_draw", foreign)
    assert drain(viewer)[-1]["status"] == 403

    # A flood of pointer moves: no more than the burst reaches the agent.
    move = text(type="guide_pointer", session_id="s1", x=5, y=5)
    for _ in range(GUIDE_BURST * 3):
        await hub.from_viewer(relay, viewer, "guide_pointer", move)
    assert len(sent(link, m.GuidePointer)) <= GUIDE_BURST

    # A viewer joining later learns that guidance is available.
    second = ScreenViewer(actor="user:alice")
    await hub.join(relay, second)
    assert {"type": "guidance", "available": True, "error": ""} in drain(second)

    await hub.leave(relay, second)
    await hub.leave(relay, viewer)
    assert store.events[-1][0] == "screen_ended"
    assert store.events[-1][1]["drawings"] == 1
