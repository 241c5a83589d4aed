"""A timeline entry in words, for ``deskside-console ticket show``.

One line per entry; a command's result adds the last lines of its output, indented.
The words are those the command line has always printed for each kind. The kinds
that never had words of their own (``change``, ``runbook``, ``runbook_result``, and
``Unknown``) list their keys, as they always did: ``title a -> b, priority 3 -> 2``.
The text is English; the user's language comes with the gettext catalogues.
"""

from __future__ import annotations

from typing import Any, TypeVar, assert_never

from msgspec import UNSET, UnsetType

from .kinds import (
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
    FindingDecision,
    Note,
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
    TimelineData,
    Unknown,
    encode,
    kind_of,
)

__all__ = ["describe", "label"]

_T = TypeVar("_T")
_D = TypeVar("_D")

# How the output's last lines are set off under the entry's own line.
_TAIL_INDENT = "\n        "


def label(entry: TimelineData) -> str:
    """The entry's kind as stored (an ``Unknown`` entry's own, not "unknown")."""
    return entry.stored_kind if isinstance(entry, Unknown) else str(kind_of(entry))


def describe(entry: TimelineData) -> str:
    """``entry`` in words: one line, or for a command's result its line then the last
    lines of its output."""
    match entry:
        case Note():
            return entry.text
        case Status() | Assignment():
            return f"{entry.from_ or '-'} -> {entry.to or '-'}"
        case Created():
            return f"{entry.title} (P{entry.priority}, from {entry.source})"
        case Diagnostics():
            return f"snapshot taken {entry.taken_at[:19]}"
        case Command():
            args = " ".join(entry.argv)
            if entry.script:
                return f"script {entry.script} {args}".rstrip()
            return args
        case CommandRefused():
            what = " ".join(_given(entry.argv, ())) or "terminal"
            if entry.runbook is not UNSET:
                what = f"runbook {entry.runbook}"
            elif entry.cancel is not UNSET:
                what = f"cancel of command {entry.cancel}"
            return f"{what}: refused ({entry.reason})"
        case CommandResult():
            return _command_result(entry)
        case CommandCancel():
            return f"cancel asked (command {entry.command})"
        case Shell():
            return f"terminal opened (session {entry.shell_session})"
        case ShellStarted():
            return f"terminal started, allowed by {entry.consent}"
        case ShellClosed():
            return (
                f"terminal {entry.status}, exit {entry.exit_code}, "
                f"{entry.transcript_bytes} bytes recorded (terminal-replay {entry.shell_session})"
            )
        case ScreenRequested():
            return f"screen view asked of the user (session {entry.screen_session})"
        case ScreenViewerJoined():
            return f"another viewer joined (session {entry.screen_session})"
        case ScreenStarted():
            recorded = ", recorded" if entry.recorded else ""
            return f"screen shared (consent: {entry.consent}{recorded})"
        case ScreenRefused():
            return f"screen refused: {entry.reason}{_error(entry.error)}"
        case ScreenControlRequested():
            return (
                f"control of mouse and keyboard asked of the user (session {entry.screen_session})"
            )
        case ScreenControlGranted():
            return f"control granted (consent: {entry.consent})"
        case ScreenControlRefused():
            return f"control refused: {entry.reason}{_error(entry.error)}"
        case ScreenControlEnded():
            return f"control ended: {entry.reason}{_error(entry.error)}"
        case ScreenEnded():
            return _screen_ended(entry)
        case FindingDecision():
            return f"{entry.decision} finding {entry.finding}: {entry.title}"
        case ArticleLinked():
            how = "resolved with" if entry.resolved else "linked"
            return f"{how} article {entry.article}: {entry.title}"
        case ChatRefused():
            return f"chat line refused ({entry.reason})"
        case Chat():
            said = "to the user" if entry.direction == "to_user" else "from the user"
            return f"chat {said}: {' / '.join(entry.text.splitlines())}"
        case Change() | RunbookStarted() | RunbookResult():
            return _listed(encode(entry)[1])
        case Unknown():
            if entry.stored_kind.startswith("screen_"):
                # A screen step of a newer console: its keys as they are.
                return ", ".join(f"{k} {v}" for k, v in entry.data.items())
            return _listed(entry.data)
        case _:
            assert_never(entry)


def _command_result(entry: CommandResult) -> str:
    # A command that never reached the device has no exit code: "exit None".
    text = f"{entry.status}, exit {_given(entry.exit_code, None)}"
    if entry.error:
        text += f" ({entry.error})"
    tail = _given(entry.output_tail, "").strip()
    return text + (_TAIL_INDENT + tail.replace("\n", _TAIL_INDENT) if tail else "")


def _screen_ended(entry: ScreenEnded) -> str:
    text = f"screen session ended: {entry.reason}{_error(entry.error)}"
    if not isinstance(entry.frames, UnsetType):  # it had started
        text += f", {entry.frames} frames in {_given(entry.duration, 0.0):.0f} s"
    if entry.drawings:
        text += f", {entry.drawings} drawings"
    if entry.recording_bytes:
        text += f", recording of {entry.recording_bytes} bytes"
    return text


def _error(error: str | UnsetType) -> str:
    """A screen step's error, set off in parentheses, or nothing."""
    return f" ({error})" if error else ""


def _listed(data: dict[str, Any]) -> str:
    """Each key and its value; a changed field as ``name old -> new``."""
    return ", ".join(
        f"{k} {v.get('from')} -> {v.get('to')}" if isinstance(v, dict) else f"{k} {v}"
        for k, v in data.items()
    )


def _given(value: _T | UnsetType, default: _D) -> _T | _D:
    """``value``, or ``default`` where the key was absent."""
    return default if isinstance(value, UnsetType) else value
