"""Guidance and control of one session (``remote.py``) on a real X server: guidance
unavailable without a display, the policy's ``control = false``, control granted by
policy injecting into the real X pointer, a time-out of the second prompt, and the
end of the session taking control away. Every step in the audit log, no content."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from deskside.agent.audit import AuditLog, read_entries
from deskside.agent.policy import ConsentMode
from deskside.agent.screen.framemap import FrameMap
from deskside.agent.screen.policy import ScreenPolicy
from deskside.agent.screen.remote import ControlState, RemoteInput
from deskside.protocol import messages as m
from tests.agent.conftest import eventually
from tests.agent.screen.xserver import HEIGHT, WIDTH, display, pointer_location

__all__ = ["display"]  # the fixture

REQUEST = m.ScreenOpen(session_id="s1", ticket_id=4, requested_by="alice")


class Recorder:
    """What the session would send the console."""

    def __init__(self) -> None:
        self.sent: list[m.Message] = []

    async def __call__(self, message: m.Message) -> None:
        self.sent.append(message)

    def of(self, kind: type) -> list[Any]:
        return [x for x in self.sent if isinstance(x, kind)]


@pytest.fixture
async def audit(tmp_path: Path) -> AsyncIterator[AuditLog]:
    log = AuditLog(tmp_path / "audit.jsonl", tmp_path / "audit.head")
    yield log
    await log.close()


def events(log: AuditLog) -> list[dict[str, Any]]:
    return [e for e in read_entries(log.path) if e is not None]


def remote(
    audit: AuditLog, sent: Recorder, policy: ScreenPolicy, display_name: str, **extra: Any
) -> RemoteInput:
    return RemoteInput(
        REQUEST,
        sent,
        audit=audit,
        policy=policy,
        consent_lock=asyncio.Lock(),
        frame_map=FrameMap.identity(WIDTH, HEIGHT),
        display=display_name,
        **extra,
    )


async def test_without_a_display_guidance_is_unavailable_and_said(
    audit: AuditLog, tmp_path: Path
) -> None:
    sent = Recorder()
    session = remote(audit, sent, ScreenPolicy(), str(tmp_path / "no-such-display"))
    await session.start()
    (status,) = sent.of(m.ScreenGuideStatus)
    assert status.available is False
    assert "guidance cannot be shown" in status.error
    # Guidance sent anyway is ignored; the session goes on.
    await session.guide(m.GuideClear(session_id="s1"))
    await session.close()
    assert session.summary()["guidance"] is False


async def test_the_policy_can_forbid_control(
    audit: AuditLog, display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", display)
    sent = Recorder()
    session = remote(audit, sent, ScreenPolicy(control=False), display)
    session.request_control(m.ScreenControlRequest(session_id="s1"))
    await eventually(lambda: bool(sent.of(m.ScreenControlRefused)))
    assert sent.of(m.ScreenControlRefused)[0].reason is m.ScreenControlReason.POLICY
    session.input(m.InputPointer(session_id="s1", x=500, y=500))
    assert session.inputs_refused == 1
    await session.close()
    assert [e["event"] for e in events(audit)] == ["screen_control_refused"]


async def test_control_by_policy_moves_the_real_pointer_until_the_session_ends(
    audit: AuditLog, display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", display)
    sent = Recorder()
    shown: list[bool] = []

    async def indicator(on: bool) -> None:
        shown.append(on)

    policy = ScreenPolicy(control_consent=ConsentMode.NONE)
    session = remote(audit, sent, policy, display, on_control=indicator)
    session.request_control(m.ScreenControlRequest(session_id="s1"))
    await eventually(lambda: bool(sent.of(m.ScreenControlGranted)), 10)
    assert sent.of(m.ScreenControlGranted)[0].consent == "policy"
    assert session.control is ControlState.ON
    assert shown == [True]

    for x in (300, 310, 321):
        session.input(m.InputPointer(session_id="s1", x=x, y=222))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await pointer_location(display) != (321, 222):
        assert loop.time() < deadline
        await asyncio.sleep(0.05)

    # Asked again while on: refused as busy, control stays.
    session.request_control(m.ScreenControlRequest(session_id="s1"))
    await eventually(lambda: bool(sent.of(m.ScreenControlRefused)))
    assert sent.of(m.ScreenControlRefused)[0].reason is m.ScreenControlReason.BUSY

    await session.close()
    assert session.summary()["control_grants"] == 1
    assert shown == [True, False]
    session.input(m.InputPointer(session_id="s1", x=5, y=5))
    await asyncio.sleep(0.3)
    assert await pointer_location(display) != (5, 5)  # (Xvfb may have reset: no client left)
    logged = events(audit)
    assert [e["event"] for e in logged] == [
        "screen_control_requested",
        "screen_control_granted",
        "screen_control_refused",
        "screen_control_ended",
    ]
    assert logged[-1]["reason"] == "session_ended"
    assert logged[-1]["inputs"] == 3


async def test_an_unanswered_control_prompt_times_out_to_deny(
    audit: AuditLog, display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", display)
    sent = Recorder()
    session = remote(audit, sent, ScreenPolicy(consent_timeout=5.0), display)
    session.request_control(m.ScreenControlRequest(session_id="s1"))
    await eventually(lambda: bool(sent.of(m.ScreenControlRefused)), 20)
    assert sent.of(m.ScreenControlRefused)[0].reason is m.ScreenControlReason.TIMED_OUT
    assert session.control is ControlState.OFF
    await session.close()
    assert [e["event"] for e in events(audit)] == [
        "screen_control_requested",
        "screen_control_refused",
    ]
