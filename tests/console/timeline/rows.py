"""Timeline rows as the console writes them today, and the typed data of each.

Each ``data`` is copied from its writer (named above it), with made-up values; the
tests check that ``decode`` reads it and ``encode`` writes it back key for key.
"""

from __future__ import annotations

from typing import Any

from deskside.console.timeline.kinds import (
    ArticleLinked,
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
    EventData,
    FindingDecision,
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
)
from deskside.protocol.messages import ScreenControlReason, ScreenEndReason

SESSION = "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5"
DEVICE = "d" + "0" * 31
COMMAND = "0123456789abcdef0123456789abcdef"

# (name, kind, data as stored, the typed data)
STORED: list[tuple[str, str, dict[str, Any], EventData]] = [
    # Store.create_ticket
    (
        "created",
        "created",
        {
            "title": "Printer prints blank pages",
            "source": "agent",
            "priority": 2,
            "impact": 2,
            "urgency": 3,
        },
        Created(
            title="Printer prints blank pages", source="agent", priority=2, impact=2, urgency=3
        ),
    ),
    # _diagnostics_event (create_ticket with a snapshot, attach_snapshot)
    (
        "diagnostics",
        "diagnostics",
        {"taken_at": "2025-03-04T10:11:12.345678+00:00", "schema": 1},
        Diagnostics(taken_at="2025-03-04T10:11:12.345678+00:00", schema=1),
    ),
    # Store.update_ticket: a status change, and the one that comes with an assignee
    (
        "status",
        "status",
        {"from": "in_progress", "to": "resolved"},
        Status(from_="in_progress", to="resolved"),
    ),
    (
        "status-assigned",
        "status",
        {"from": "new", "to": "assigned"},
        Status(from_="new", to="assigned"),
    ),
    (
        "assignment",
        "assignment",
        {"from": None, "to": "alice"},
        Assignment(from_=None, to="alice"),
    ),
    (
        "assignment-removed",
        "assignment",
        {"from": "alice", "to": None},
        Assignment(from_="alice", to=None),
    ),
    (
        "change-fields",
        "change",
        {
            "title": {"from": "Printer", "to": "Printer on floor 2"},
            "group": {"from": None, "to": "tier-2"},
            "category": {"from": "", "to": "hardware"},
        },
        Change(
            title=TextChange(from_="Printer", to="Printer on floor 2"),
            group=TextChange(from_=None, to="tier-2"),
            category=TextChange(from_="", to="hardware"),
        ),
    ),
    (
        "change-priority",
        "change",
        {
            "priority": {"from": 3, "to": 1},
            "impact": {"from": 2, "to": 1},
            "urgency": {"from": 2, "to": 1},
        },
        Change(
            priority=NumberChange(from_=3, to=1),
            impact=NumberChange(from_=2, to=1),
            urgency=NumberChange(from_=2, to=1),
        ),
    ),
    # auth.access.record_action: a ticket without a device got one
    (
        "change-device",
        "change",
        {"device": {"from": None, "to": DEVICE}},
        Change(device=TextChange(from_=None, to=DEVICE)),
    ),
    # Store.add_note
    (
        "note",
        "note",
        {"text": "Called the user;\nthey will reboot."},
        Note(text="Called the user;\nthey will reboot."),
    ),
    # Store.create_command
    (
        "command",
        "command",
        {
            "command": COMMAND,
            "argv": ["lpstat", "-p"],
            "device": DEVICE,
            "shell": False,
            "timeout": 60.0,
        },
        Command(command=COMMAND, argv=("lpstat", "-p"), device=DEVICE, shell=False, timeout=60.0),
    ),
    (
        "command-runbook-script",
        "command",
        {
            "command": COMMAND,
            "argv": ["--all"],
            "device": DEVICE,
            "shell": False,
            "timeout": 30.0,
            "runbook_run": "r" * 32,
            "script": "flush-dns",
        },
        Command(
            command=COMMAND,
            argv=("--all",),
            device=DEVICE,
            shell=False,
            timeout=30.0,
            runbook_run="r" * 32,
            script="flush-dns",
        ),
    ),
    # Store._record_refusal, from create_command (argv, shell) and open_shell (terminal)
    (
        "command-refused",
        "command_refused",
        {"argv": ["rm", "-rf", "/tmp/x"], "shell": True, "reason": "ticket #4 is resolved"},
        CommandRefused(argv=("rm", "-rf", "/tmp/x"), shell=True, reason="ticket #4 is resolved"),
    ),
    (
        "terminal-refused",
        "command_refused",
        {"terminal": True, "reason": f"device {DEVICE} is not connected"},
        CommandRefused(terminal=True, reason=f"device {DEVICE} is not connected"),
    ),
    (
        "runbook-refused",
        "command_refused",
        {"runbook": "flush-dns", "reason": "bob may not act on device d1"},
        CommandRefused(runbook="flush-dns", reason="bob may not act on device d1"),
    ),
    (
        "cancel-refused",
        "command_refused",
        {"cancel": COMMAND, "reason": "bob may not act on ticket #4"},
        CommandRefused(cancel=COMMAND, reason="bob may not act on ticket #4"),
    ),
    # CommandRepository.cancel_command
    ("command-cancel", "command_cancel", {"command": COMMAND}, CommandCancel(command=COMMAND)),
    # Store.finish_command (the agent's result) and Store.fail_command
    (
        "command-result",
        "command_result",
        {
            "command": COMMAND,
            "argv": ["lpstat", "-p"],
            "status": "finished",
            "exit_code": 0,
            "duration": 0.25,
            "consent": "policy",
            "error": "",
            "output_bytes": 12,
            "output_tail": "printer ok\n",
            "output_truncated": False,
        },
        CommandResult(
            command=COMMAND,
            argv=("lpstat", "-p"),
            status="finished",
            exit_code=0,
            duration=0.25,
            consent="policy",
            error="",
            output_bytes=12,
            output_tail="printer ok\n",
            output_truncated=False,
        ),
    ),
    (
        "command-result-refused-by-agent",
        "command_result",
        {
            "command": COMMAND,
            "argv": ["reboot"],
            "status": "refused",
            "exit_code": None,
            "duration": None,
            "consent": "",
            "error": "not in the allow-list",
            "output_bytes": 0,
            "output_tail": "",
            "output_truncated": False,
        },
        CommandResult(
            command=COMMAND,
            argv=("reboot",),
            status="refused",
            exit_code=None,
            duration=None,
            consent="",
            error="not in the allow-list",
            output_bytes=0,
            output_tail="",
            output_truncated=False,
        ),
    ),
    (
        "command-failed-to-send",
        "command_result",
        {"command": COMMAND, "status": "failed", "error": "could not reach the device: closed"},
        CommandResult(command=COMMAND, status="failed", error="could not reach the device: closed"),
    ),
    # Gateway.start_runbook and Gateway._run_steps
    (
        "runbook",
        "runbook",
        {
            "run": "r" * 32,
            "runbook": "printer-reset",
            "params": {"printer": "floor2"},
            "steps": ["stop spooler", "clear queue", "start spooler"],
        },
        RunbookStarted(
            run="r" * 32,
            runbook="printer-reset",
            params={"printer": "floor2"},
            steps=("stop spooler", "clear queue", "start spooler"),
        ),
    ),
    (
        "runbook-result",
        "runbook_result",
        {
            "run": "r" * 32,
            "runbook": "printer-reset",
            "status": "failed",
            "detail": "step 'clear queue' ended finished with exit code 1",
        },
        RunbookResult(
            run="r" * 32,
            runbook="printer-reset",
            status="failed",
            detail="step 'clear queue' ended finished with exit code 1",
        ),
    ),
    # Store.open_shell, Store.shell_started, Store.close_shell
    (
        "shell",
        "shell",
        {"shell_session": SESSION, "device": DEVICE},
        Shell(shell_session=SESSION, device=DEVICE),
    ),
    (
        "shell-started",
        "shell_started",
        {"shell_session": SESSION, "consent": "user"},
        ShellStarted(shell_session=SESSION, consent="user"),
    ),
    (
        "shell-closed",
        "shell_closed",
        {
            "shell_session": SESSION,
            "status": "closed",
            "exit_code": 0,
            "error": "",
            "consent": "user",
            "transcript_bytes": 2048,
        },
        ShellClosed(
            shell_session=SESSION,
            status="closed",
            exit_code=0,
            error="",
            consent="user",
            transcript_bytes=2048,
        ),
    ),
    (
        "shell-failed",
        "shell_closed",
        {
            "shell_session": SESSION,
            "status": "failed",
            "exit_code": None,
            "error": "device not connected",
            "consent": "",
            "transcript_bytes": 0,
        },
        ShellClosed(
            shell_session=SESSION,
            status="failed",
            exit_code=None,
            error="device not connected",
            consent="",
            transcript_bytes=0,
        ),
    ),
    # Store.request_screen
    (
        "screen-requested",
        "screen_requested",
        {"screen_session": SESSION, "device": DEVICE, "what": "view"},
        ScreenRequested(screen_session=SESSION, device=DEVICE, what="view"),
    ),
    (
        "screen-viewer-joined",
        "screen_viewer_joined",
        {"screen_session": SESSION, "device": DEVICE, "what": "view"},
        ScreenViewerJoined(screen_session=SESSION, device=DEVICE, what="view"),
    ),
    # ScreenHub (screenrelay) through screenremote.record_step: screen_session and
    # device first, then the step's own keys
    (
        "screen-started",
        "screen_started",
        {"screen_session": SESSION, "device": DEVICE, "consent": "user", "recorded": True},
        ScreenStarted(screen_session=SESSION, device=DEVICE, consent="user", recorded=True),
    ),
    # Store._record_refusal(what="screen", shown=("screen_session",))
    (
        "screen-refused-by-console",
        "screen_refused",
        {"screen_session": SESSION, "reason": "no ticket 9"},
        ScreenRefused(screen_session=SESSION, reason="no ticket 9"),
    ),
    # screens.screen_socket: another session is on
    (
        "screen-refused-busy",
        "screen_refused",
        {
            "screen_session": SESSION,
            "device": DEVICE,
            "reason": "busy",
            "error": f"the screen of {DEVICE} is being viewed by user:bob",
        },
        ScreenRefused(
            screen_session=SESSION,
            device=DEVICE,
            reason="busy",
            error=f"the screen of {DEVICE} is being viewed by user:bob",
        ),
    ),
    # ScreenHub._end on the agent's ScreenRefused
    (
        "screen-refused-by-agent",
        "screen_refused",
        {"screen_session": SESSION, "device": DEVICE, "reason": "denied", "error": ""},
        ScreenRefused(screen_session=SESSION, device=DEVICE, reason="denied", error=""),
    ),
    (
        "screen-refused-after-start",
        "screen_refused",
        {
            "screen_session": SESSION,
            "device": DEVICE,
            "reason": "error",
            "error": "capture failed",
            "drawings": 0,
            "inputs": 0,
            "inputs_refused": 0,
        },
        ScreenRefused(
            screen_session=SESSION,
            device=DEVICE,
            reason="error",
            error="capture failed",
            drawings=0,
            inputs=0,
            inputs_refused=0,
        ),
    ),
    # ScreenHub._end: before the start, after it, recorded
    (
        "screen-ended-before-start",
        "screen_ended",
        {"screen_session": SESSION, "device": DEVICE, "reason": "viewer_left", "error": ""},
        ScreenEnded(
            screen_session=SESSION, device=DEVICE, reason=ScreenEndReason.VIEWER_LEFT, error=""
        ),
    ),
    (
        "screen-ended",
        "screen_ended",
        {
            "screen_session": SESSION,
            "device": DEVICE,
            "reason": "user_stopped",
            "error": "stopped by the user",
            "drawings": 3,
            "inputs": 40,
            "inputs_refused": 2,
            "duration": 61.5,
            "frames": 900,
            "bytes": 123456,
        },
        ScreenEnded(
            screen_session=SESSION,
            device=DEVICE,
            reason=ScreenEndReason.USER_STOPPED,
            error="stopped by the user",
            drawings=3,
            inputs=40,
            inputs_refused=2,
            duration=61.5,
            frames=900,
            bytes_=123456,
        ),
    ),
    (
        "screen-ended-recorded",
        "screen_ended",
        {
            "screen_session": SESSION,
            "device": DEVICE,
            "reason": "viewer_left",
            "error": "",
            "drawings": 0,
            "inputs": 0,
            "inputs_refused": 0,
            "duration": 4.0,
            "frames": 60,
            "bytes": 5000,
            "recording_bytes": 6000,
            "truncated": False,
        },
        ScreenEnded(
            screen_session=SESSION,
            device=DEVICE,
            reason=ScreenEndReason.VIEWER_LEFT,
            error="",
            drawings=0,
            inputs=0,
            inputs_refused=0,
            duration=4.0,
            frames=60,
            bytes_=5000,
            recording_bytes=6000,
            truncated=False,
        ),
    ),
    # screenremote: from_viewer (control_request, control_release), from_agent,
    # session_ended
    (
        "screen-control-requested",
        "screen_control_requested",
        {"screen_session": SESSION, "device": DEVICE},
        ScreenControlRequested(screen_session=SESSION, device=DEVICE),
    ),
    (
        "screen-control-granted",
        "screen_control_granted",
        {"screen_session": SESSION, "device": DEVICE, "consent": "user"},
        ScreenControlGranted(screen_session=SESSION, device=DEVICE, consent="user"),
    ),
    (
        "screen-control-refused",
        "screen_control_refused",
        {"screen_session": SESSION, "device": DEVICE, "reason": "denied", "error": ""},
        ScreenControlRefused(
            screen_session=SESSION, device=DEVICE, reason=ScreenControlReason.DENIED, error=""
        ),
    ),
    (
        "screen-control-withdrawn",
        "screen_control_refused",
        {"screen_session": SESSION, "device": DEVICE, "reason": "released"},
        ScreenControlRefused(
            screen_session=SESSION, device=DEVICE, reason=ScreenControlReason.RELEASED
        ),
    ),
    (
        "screen-control-ended",
        "screen_control_ended",
        {
            "screen_session": SESSION,
            "device": DEVICE,
            "reason": "error",
            "error": "input injection failed",
        },
        ScreenControlEnded(
            screen_session=SESSION,
            device=DEVICE,
            reason=ScreenControlReason.ERROR,
            error="input injection failed",
        ),
    ),
    (
        "screen-control-released",
        "screen_control_ended",
        {"screen_session": SESSION, "device": DEVICE, "reason": "released"},
        ScreenControlEnded(
            screen_session=SESSION, device=DEVICE, reason=ScreenControlReason.RELEASED
        ),
    ),
    (
        "screen-control-ended-with-session",
        "screen_control_ended",
        {"screen_session": SESSION, "device": DEVICE, "reason": "session_ended"},
        ScreenControlEnded(
            screen_session=SESSION, device=DEVICE, reason=ScreenControlReason.SESSION_ENDED
        ),
    ),
    # findings.service.FindingService.decide
    (
        "finding-accepted",
        "finding",
        {
            "finding": "disk-nearly-full:/",
            "title": "Disk / is 95% full (1.2 GiB free)",
            "decision": "accepted",
            "category": "hardware/storage",
            "urgency": 2,
        },
        FindingDecision(
            finding="disk-nearly-full:/",
            title="Disk / is 95% full (1.2 GiB free)",
            decision="accepted",
            category="hardware/storage",
            urgency=2,
        ),
    ),
    (
        "finding-dismissed",
        "finding",
        {"finding": "long-uptime", "title": "Not restarted", "decision": "dismissed"},
        FindingDecision(finding="long-uptime", title="Not restarted", decision="dismissed"),
    ),
    # knowledge.repository.KnowledgeRepository.link
    (
        "article-resolved",
        "article",
        {"article": 3, "title": "Disk full", "resolved": True},
        ArticleLinked(article=3, title="Disk full", resolved=True),
    ),
    (
        "chat-to-user",
        "chat",
        {"line": 3, "device": DEVICE, "direction": "to_user", "text": "Restart it,\nplease"},
        Chat(line=3, device=DEVICE, direction="to_user", text="Restart it,\nplease"),
    ),
    (
        "chat-from-user",
        "chat",
        {"line": 4, "device": DEVICE, "direction": "from_user", "text": "<b>done</b>"},
        Chat(line=4, device=DEVICE, direction="from_user", text="<b>done</b>"),
    ),
    (
        "chat-refused",
        "chat_refused",
        {"reason": "bob may not act on ticket #3: it is not assigned to them"},
        ChatRefused(reason="bob may not act on ticket #3: it is not assigned to them"),
    ),
]
