"""Timeline entries in words, as ``deskside-console ticket show`` prints them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from deskside.console.timeline.describe import describe, label
from deskside.console.timeline.kinds import (
    Assignment,
    Change,
    Chat,
    ChatRefused,
    Command,
    CommandCancel,
    CommandRefused,
    CommandResult,
    Created,
    Diagnostics,
    Note,
    NumberChange,
    RunbookResult,
    RunbookStarted,
    ScreenControlEnded,
    ScreenControlGranted,
    ScreenControlRefused,
    ScreenControlRequested,
    ScreenEnded,
    ScreenRefused,
    ScreenRequested,
    ScreenStarted,
    ScreenViewerJoined,
    Shell,
    ShellClosed,
    ShellStarted,
    Status,
    TextChange,
    TimelineData,
    Unknown,
    decode,
)
from deskside.protocol.messages import ScreenControlReason, ScreenEndReason

from .test_kinds import rows

S = "s1"  # a screen or terminal session
D = "d1"  # a device

# (name, entry, its words)
CASES: list[tuple[str, TimelineData, str]] = [
    (
        "created",
        Created(title="Printer", source="agent", priority=2, impact=2, urgency=3),
        "Printer (P2, from agent)",
    ),
    (
        "diagnostics",
        Diagnostics(taken_at="2025-03-04T10:11:12.345678+00:00", schema=1),
        "snapshot taken 2025-03-04T10:11:12",
    ),
    ("status", Status(from_="new", to="assigned"), "new -> assigned"),
    ("assignment", Assignment(from_=None, to="alice"), "- -> alice"),
    ("unassignment", Assignment(from_="alice", to=None), "alice -> -"),
    (
        "change",
        Change(
            title=TextChange(from_="Printer", to="Printer 2"),
            group=TextChange(from_=None, to="tier-2"),
            priority=NumberChange(from_=3, to=1),
        ),
        "title Printer -> Printer 2, group None -> tier-2, priority 3 -> 1",
    ),
    ("note", Note(text="Called the user;\nthey reboot."), "Called the user;\nthey reboot."),
    (
        "command",
        Command(command="c1", argv=("lpstat", "-p"), device=D, shell=False, timeout=60.0),
        "lpstat -p",
    ),
    (
        "script",
        Command(command="c1", argv=("--all",), device=D, shell=False, timeout=60.0, script="flush"),
        "script flush --all",
    ),
    (
        "script-without-arguments",
        Command(command="c1", argv=(), device=D, shell=False, timeout=60.0, script="flush"),
        "script flush",
    ),
    (
        "command-refused",
        CommandRefused(argv=("rm", "-rf", "x"), shell=True, reason="ticket #4 is resolved"),
        "rm -rf x: refused (ticket #4 is resolved)",
    ),
    (
        "terminal-refused",
        CommandRefused(terminal=True, reason="device d1 is not connected"),
        "terminal: refused (device d1 is not connected)",
    ),
    (
        # The refusal does not keep the script's name, and no argv reads as a terminal.
        "script-refused",
        CommandRefused(argv=(), shell=False, reason="no"),
        "terminal: refused (no)",
    ),
    (
        "runbook-refused",
        CommandRefused(runbook="flush-dns", reason="no rights"),
        "runbook flush-dns: refused (no rights)",
    ),
    (
        "cancel-refused",
        CommandRefused(cancel="c1", reason="no rights"),
        "cancel of command c1: refused (no rights)",
    ),
    ("command-cancel", CommandCancel(command="c1"), "cancel asked (command c1)"),
    (
        "device-attached",
        Change(device=TextChange(from_=None, to="d1")),
        "device None -> d1",
    ),
    (
        "command-result",
        CommandResult(
            command="c1",
            argv=("ls",),
            status="finished",
            exit_code=0,
            duration=0.2,
            consent="policy",
            error="",
            output_bytes=20,
            output_tail="a\nb\n",
            output_truncated=False,
        ),
        "finished, exit 0\n        a\n        b",
    ),
    (
        "command-result-without-output",
        CommandResult(
            command="c1",
            argv=("false",),
            status="finished",
            exit_code=1,
            duration=0.2,
            consent="user",
            error="",
            output_bytes=0,
            output_tail="",
            output_truncated=False,
        ),
        "finished, exit 1",
    ),
    (
        "command-refused-by-agent",
        CommandResult(
            command="c1",
            argv=("reboot",),
            status="refused",
            exit_code=None,
            duration=None,
            consent="",
            error="not allowed",
            output_bytes=0,
            output_tail="",
            output_truncated=False,
        ),
        "refused, exit None (not allowed)",
    ),
    (
        "command-not-sent",
        CommandResult(command="c1", status="failed", error="could not reach the device"),
        "failed, exit None (could not reach the device)",
    ),
    (
        # Never had words of its own: its keys, the parameters as if a change.
        "runbook",
        RunbookStarted(run="r1", runbook="reset", params={"p": "x"}, steps=("a", "b")),
        "run r1, runbook reset, params None -> None, steps ['a', 'b']",
    ),
    (
        "runbook-result",
        RunbookResult(run="r1", runbook="reset", status="finished", detail=""),
        "run r1, runbook reset, status finished, detail ",
    ),
    ("shell", Shell(shell_session=S, device=D), "terminal opened (session s1)"),
    (
        "shell-started",
        ShellStarted(shell_session=S, consent="user"),
        "terminal started, allowed by user",
    ),
    (
        "shell-closed",
        ShellClosed(
            shell_session=S,
            status="closed",
            exit_code=0,
            error="",
            consent="user",
            transcript_bytes=2048,
        ),
        "terminal closed, exit 0, 2048 bytes recorded (terminal-replay s1)",
    ),
    (
        "screen-requested",
        ScreenRequested(screen_session=S, device=D, what="view"),
        "screen view asked of the user (session s1)",
    ),
    (
        "screen-viewer-joined",
        ScreenViewerJoined(screen_session=S, device=D, what="view"),
        "another viewer joined (session s1)",
    ),
    (
        "screen-started",
        ScreenStarted(screen_session=S, device=D, consent="user", recorded=False),
        "screen shared (consent: user)",
    ),
    (
        "screen-started-recorded",
        ScreenStarted(screen_session=S, device=D, consent="policy", recorded=True),
        "screen shared (consent: policy, recorded)",
    ),
    (
        "screen-refused-by-console",
        ScreenRefused(screen_session=S, reason="no ticket 9"),
        "screen refused: no ticket 9",
    ),
    (
        "screen-refused-busy",
        ScreenRefused(screen_session=S, device=D, reason="busy", error="viewed by bob"),
        "screen refused: busy (viewed by bob)",
    ),
    (
        "screen-refused-by-agent",
        ScreenRefused(screen_session=S, device=D, reason="denied", error=""),
        "screen refused: denied",
    ),
    (
        "screen-ended-before-start",
        ScreenEnded(screen_session=S, device=D, reason=ScreenEndReason.VIEWER_LEFT, error=""),
        "screen session ended: viewer_left",
    ),
    (
        "screen-ended",
        ScreenEnded(
            screen_session=S,
            device=D,
            reason=ScreenEndReason.USER_STOPPED,
            error="stopped",
            drawings=3,
            inputs=40,
            inputs_refused=2,
            duration=61.5,
            frames=900,
            bytes_=123456,
        ),
        "screen session ended: user_stopped (stopped), 900 frames in 62 s, 3 drawings",
    ),
    (
        "screen-ended-recorded",
        ScreenEnded(
            screen_session=S,
            device=D,
            reason=ScreenEndReason.VIEWER_LEFT,
            error="",
            drawings=0,
            inputs=0,
            inputs_refused=0,
            duration=4.4,
            frames=60,
            bytes_=5000,
            recording_bytes=6000,
            truncated=False,
        ),
        "screen session ended: viewer_left, 60 frames in 4 s, recording of 6000 bytes",
    ),
    (
        "screen-control-requested",
        ScreenControlRequested(screen_session=S, device=D),
        "control of mouse and keyboard asked of the user (session s1)",
    ),
    (
        "screen-control-granted",
        ScreenControlGranted(screen_session=S, device=D, consent="user"),
        "control granted (consent: user)",
    ),
    (
        "screen-control-refused",
        ScreenControlRefused(
            screen_session=S, device=D, reason=ScreenControlReason.DENIED, error="no"
        ),
        "control refused: denied (no)",
    ),
    (
        "screen-control-withdrawn",
        ScreenControlRefused(screen_session=S, device=D, reason=ScreenControlReason.RELEASED),
        "control refused: released",
    ),
    (
        "screen-control-ended",
        ScreenControlEnded(screen_session=S, device=D, reason=ScreenControlReason.SESSION_ENDED),
        "control ended: session_ended",
    ),
    (
        "chat-to-user",
        Chat(line=1, device=D, direction="to_user", text="Restart it.\nThen tell me."),
        "chat to the user: Restart it. / Then tell me.",
    ),
    (
        "chat-from-user",
        Chat(line=2, device=D, direction="from_user", text="done"),
        "chat from the user: done",
    ),
    (
        "chat-refused",
        ChatRefused(reason="no ticket 9"),
        "chat line refused (no ticket 9)",
    ),
    (
        "unknown",
        Unknown(stored_kind="escalated", data={"tier": 2, "to": {"from": "a", "to": "b"}}),
        "tier 2, to a -> b",
    ),
    (
        "unknown-screen-step",
        Unknown(stored_kind="screen_paused", data={"screen_session": S, "x": {"from": 1}}),
        "screen_session s1, x {'from': 1}",
    ),
]


@pytest.mark.parametrize(("entry", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_words_of_an_entry(entry: TimelineData, words: str) -> None:
    assert describe(entry) == words


@given(rows(finite=False))
def test_every_row_has_words(row: tuple[str, dict[str, Any]]) -> None:
    assert isinstance(describe(decode(*row)), str)


def test_label_is_the_stored_kind() -> None:
    assert label(decode("note", {"text": "x"})) == "note"
    assert label(decode("from_the_future", {"a": 1})) == "from_the_future"
