"""The kinds of a ticket's timeline entries, and the typed data of each.

Theory of operation::

    writer (tickets, commands, terminal, screen, runbooks)
        Note(text="...") ──> encode ──> (EventKind.NOTE, {"text": "..."})
                                            ──> a ``ticket_events`` row (kind, data)
    a ``ticket_events`` row (kind, data)
        ──> decode ──> Note | Status | ... | Unknown ──> describe, TimelineEntry (REST API)

A row keeps the shape it has always had: its ``kind`` column holds the kind and
its ``data`` column the keys, without a tag. Each kind's struct has exactly the
keys written for it; a key that only some writers give (``error`` of a refused
screen session, say) is ``UNSET`` when absent, so encoding leaves it out and a row
read and written again is the same row.

Reading never fails: a row of a kind this console does not know (written by a
newer console), or of a shape its kind does not allow, decodes to ``Unknown``,
which carries the stored kind and data as they are. Keys a kind does not have are
ignored on reading, so a newer console may add keys without hiding the entry from
an older one.

In JSON each struct carries its kind as a ``"kind"`` tag, the one msgspec reads
(and the OpenAPI document gives each struct as a constant). ``TimelineEntry`` has
a ``kind`` of its own too: the two never disagree (checked on construction), the
entry's is there so a client may switch on ``entry["kind"]`` as it did on
``EventView``, and the data's so the data alone says what it is.

Values are typed as closed sets where the protocol closes them (the reasons of a
screen session or of control). A ticket's and a command's statuses stay text: the
timeline sits below the capabilities that write to it, and does not import them.
"""

from __future__ import annotations

import datetime
import enum
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Final, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

from deskside.console.api import Count, ExitCode, Id
from deskside.protocol.messages import ScreenControlReason, ScreenEndReason

__all__ = [
    "ArticleLinked",
    "Assignment",
    "Change",
    "Chat",
    "ChatRefused",
    "Command",
    "CommandCancel",
    "CommandRefused",
    "CommandResult",
    "Created",
    "Diagnostics",
    "EventData",
    "EventKind",
    "FindingDecision",
    "Note",
    "NumberChange",
    "RunbookResult",
    "RunbookStarted",
    "ScreenControlEnded",
    "ScreenControlGranted",
    "ScreenControlRefused",
    "ScreenControlRequested",
    "ScreenEnded",
    "ScreenRefused",
    "ScreenRequested",
    "ScreenStarted",
    "ScreenViewerJoined",
    "Shell",
    "ShellClosed",
    "ShellStarted",
    "Status",
    "TextChange",
    "TimelineData",
    "TimelineEntry",
    "Unknown",
    "decode",
    "encode",
    "from_row",
    "kind_of",
]


# A priority, an impact, an urgency or a snapshot's schema version: small numbers.
Small = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]


class EventKind(enum.StrEnum):
    """What a timeline entry records: the ``kind`` column of its row (32 characters
    at most)."""

    CREATED = "created"
    DIAGNOSTICS = "diagnostics"
    STATUS = "status"
    ASSIGNMENT = "assignment"
    CHANGE = "change"
    NOTE = "note"
    COMMAND = "command"
    COMMAND_RESULT = "command_result"
    COMMAND_REFUSED = "command_refused"
    COMMAND_CANCEL = "command_cancel"
    RUNBOOK = "runbook"
    RUNBOOK_RESULT = "runbook_result"
    SHELL = "shell"
    SHELL_STARTED = "shell_started"
    SHELL_CLOSED = "shell_closed"
    SCREEN_REQUESTED = "screen_requested"
    SCREEN_VIEWER_JOINED = "screen_viewer_joined"
    SCREEN_STARTED = "screen_started"
    SCREEN_REFUSED = "screen_refused"
    SCREEN_ENDED = "screen_ended"
    SCREEN_CONTROL_REQUESTED = "screen_control_requested"
    SCREEN_CONTROL_GRANTED = "screen_control_granted"
    SCREEN_CONTROL_REFUSED = "screen_control_refused"
    SCREEN_CONTROL_ENDED = "screen_control_ended"
    FINDING = "finding"
    ARTICLE = "article"
    CHAT = "chat"
    CHAT_REFUSED = "chat_refused"
    # Never stored: what a reader calls a row it cannot type (``Unknown``).
    UNKNOWN = "unknown"


class _Data(msgspec.Struct, frozen=True, tag_field="kind"):
    """The data of one kind of entry; each subclass's tag is its kind. (Each subclass
    says ``frozen`` and ``kw_only`` again: mypy reads ``frozen`` per class, and
    msgspec applies ``kw_only`` to a class's own fields only.)"""


# -- Tickets -------------------------------------------------------------------------------


class Created(_Data, frozen=True, kw_only=True, tag=EventKind.CREATED.value):
    """The ticket was opened."""

    title: str
    # Where it came from: "api", "cli", "agent".
    source: str
    priority: Small
    impact: Small
    urgency: Small


class Diagnostics(_Data, frozen=True, kw_only=True, tag=EventKind.DIAGNOSTICS.value):
    """A snapshot of the device was attached (the entry's ``snapshot_id``)."""

    # ISO 8601, as the snapshot's row gives it; kept as text so the row keeps its shape.
    taken_at: str
    schema: Small


class Status(_Data, frozen=True, kw_only=True, tag=EventKind.STATUS.value):
    """The ticket's status changed (values of ``TicketStatus``)."""

    from_: str = msgspec.field(name="from")
    to: str


class Assignment(_Data, frozen=True, kw_only=True, tag=EventKind.ASSIGNMENT.value):
    """The ticket's assignee changed; None is nobody."""

    from_: str | None = msgspec.field(name="from")
    to: str | None


class TextChange(msgspec.Struct, frozen=True, kw_only=True):
    """A text field's old and new value (``group`` may have had none)."""

    from_: str | None = msgspec.field(name="from")
    to: str


class NumberChange(msgspec.Struct, frozen=True, kw_only=True):
    """A number field's old and new value."""

    from_: Small = msgspec.field(name="from")
    to: Small


class Change(_Data, frozen=True, kw_only=True, tag=EventKind.CHANGE.value):
    """Fields of the ticket changed; only those that did are given."""

    title: TextChange | UnsetType = UNSET
    group: TextChange | UnsetType = UNSET
    # The device a ticket without one got when a technician acted on it.
    device: TextChange | UnsetType = UNSET
    category: TextChange | UnsetType = UNSET
    # Impact and urgency change together, and the priority with them.
    priority: NumberChange | UnsetType = UNSET
    impact: NumberChange | UnsetType = UNSET
    urgency: NumberChange | UnsetType = UNSET


class Note(_Data, frozen=True, kw_only=True, tag=EventKind.NOTE.value):
    """Someone wrote on the ticket."""

    text: str


# -- Commands and runbooks -----------------------------------------------------------------


class Command(_Data, frozen=True, kw_only=True, tag=EventKind.COMMAND.value):
    """A command was sent to the device."""

    command: str
    argv: tuple[str, ...]
    device: str
    shell: bool
    timeout: float
    runbook_run: str | UnsetType = UNSET
    # A script of the device's own policy, run with ``argv`` appended.
    script: str | UnsetType = UNSET


class CommandResult(_Data, frozen=True, kw_only=True, tag=EventKind.COMMAND_RESULT.value):
    """A command ended. When it could not even be sent, the console gives only
    ``command``, ``status`` ("failed") and ``error``; the agent's result has every key."""

    command: str
    argv: tuple[str, ...] | UnsetType = UNSET
    # A ``CommandView`` status: "finished", "refused", "timed_out", "cancelled", "failed".
    status: str
    exit_code: ExitCode | UnsetType | None = UNSET
    duration: float | UnsetType | None = UNSET
    consent: str | UnsetType = UNSET
    error: str
    output_bytes: Count | UnsetType = UNSET
    # The last 2 KiB of output, as text.
    output_tail: str | UnsetType = UNSET
    output_truncated: bool | UnsetType = UNSET


class CommandRefused(_Data, frozen=True, kw_only=True, tag=EventKind.COMMAND_REFUSED.value):
    """The console refused a command (``argv`` and ``shell``), a terminal
    (``terminal``), a runbook (``runbook``) or the cancel of a command (``cancel``,
    its id); ``reason`` is the refusal's message."""

    argv: tuple[str, ...] | UnsetType = UNSET
    shell: bool | UnsetType = UNSET
    terminal: bool | UnsetType = UNSET
    runbook: str | UnsetType = UNSET
    cancel: str | UnsetType = UNSET
    reason: str


class CommandCancel(_Data, frozen=True, kw_only=True, tag=EventKind.COMMAND_CANCEL.value):
    """Someone asked the device to cancel a running command (the entry's actor)."""

    command: str


class RunbookStarted(_Data, frozen=True, kw_only=True, tag=EventKind.RUNBOOK.value):
    """A runbook run started. (Not ``Runbook``: the OpenAPI document names a
    component after its class, and that name is the runbook's own.)"""

    run: str
    runbook: str
    params: dict[str, str]
    steps: tuple[str, ...]


class RunbookResult(_Data, frozen=True, kw_only=True, tag=EventKind.RUNBOOK_RESULT.value):
    """A runbook run ended."""

    run: str
    runbook: str
    # "finished", "failed", or the status of the command that stopped the run.
    status: str
    detail: str


# -- Terminals -----------------------------------------------------------------------------


class Shell(_Data, frozen=True, kw_only=True, tag=EventKind.SHELL.value):
    """A terminal was asked of the device."""

    shell_session: str
    device: str


class ShellStarted(_Data, frozen=True, kw_only=True, tag=EventKind.SHELL_STARTED.value):
    """The device allowed the terminal."""

    shell_session: str
    # How: "user", "notify", "policy"; "unknown" if the agent did not say.
    consent: str


class ShellClosed(_Data, frozen=True, kw_only=True, tag=EventKind.SHELL_CLOSED.value):
    """The terminal ended; its transcript is kept (``shell-replay``)."""

    shell_session: str
    # A ``ShellView`` status: "closed", "failed", "refused".
    status: str
    exit_code: ExitCode | None
    error: str
    consent: str
    transcript_bytes: Count


# -- Screen sessions -----------------------------------------------------------------------


class ScreenRequested(_Data, frozen=True, kw_only=True, tag=EventKind.SCREEN_REQUESTED.value):
    """A technician asked to see the device's screen."""

    screen_session: str
    device: str
    what: str  # "view"


class ScreenViewerJoined(
    _Data, frozen=True, kw_only=True, tag=EventKind.SCREEN_VIEWER_JOINED.value
):
    """The same technician opened another viewer of their running session."""

    screen_session: str
    device: str
    what: str  # "view"


class ScreenStarted(_Data, frozen=True, kw_only=True, tag=EventKind.SCREEN_STARTED.value):
    """The user (or the policy) allowed the session."""

    screen_session: str
    device: str
    consent: str
    recorded: bool


class ScreenRefused(_Data, frozen=True, kw_only=True, tag=EventKind.SCREEN_REFUSED.value):
    """The session did not start. Refused by the console: ``reason`` is the refusal's
    message and there is no ``device`` or ``error``; by the agent or because the
    device is busy: ``reason`` is a ``ScreenEndReason``'s value."""

    screen_session: str
    device: str | UnsetType = UNSET
    # Free text: the console's refusals are messages, not reasons of the protocol.
    reason: str
    error: str | UnsetType = UNSET
    # The session's counts, given only if it had started after all.
    drawings: Count | UnsetType = UNSET
    inputs: Count | UnsetType = UNSET
    inputs_refused: Count | UnsetType = UNSET


class ScreenEnded(_Data, frozen=True, kw_only=True, tag=EventKind.SCREEN_ENDED.value):
    """The session ended. The counts are given if it had started, the recording's
    size if it was recorded."""

    screen_session: str
    device: str
    reason: ScreenEndReason
    error: str
    drawings: Count | UnsetType = UNSET
    inputs: Count | UnsetType = UNSET
    inputs_refused: Count | UnsetType = UNSET
    duration: float | UnsetType = UNSET
    frames: Count | UnsetType = UNSET
    bytes_: Count | UnsetType = msgspec.field(default=UNSET, name="bytes")
    recording_bytes: Count | UnsetType = UNSET
    truncated: bool | UnsetType = UNSET


class ScreenControlRequested(
    _Data, frozen=True, kw_only=True, tag=EventKind.SCREEN_CONTROL_REQUESTED.value
):
    """The technician asked to control the mouse and keyboard (a second consent)."""

    screen_session: str
    device: str


class ScreenControlGranted(
    _Data, frozen=True, kw_only=True, tag=EventKind.SCREEN_CONTROL_GRANTED.value
):
    """The user (or the policy) allowed control."""

    screen_session: str
    device: str
    consent: str


class ScreenControlRefused(
    _Data, frozen=True, kw_only=True, tag=EventKind.SCREEN_CONTROL_REFUSED.value
):
    """Control was not granted; no ``error`` when the technician withdrew the request."""

    screen_session: str
    device: str
    reason: ScreenControlReason
    error: str | UnsetType = UNSET


class ScreenControlEnded(
    _Data, frozen=True, kw_only=True, tag=EventKind.SCREEN_CONTROL_ENDED.value
):
    """Control ended; no ``error`` when the technician gave it back or the session
    ended."""

    screen_session: str
    device: str
    reason: ScreenControlReason
    error: str | UnsetType = UNSET


# -- Findings and the knowledge base -------------------------------------------------------


class FindingDecision(_Data, frozen=True, kw_only=True, tag=EventKind.FINDING.value):
    """A technician accepted or dismissed what a finding of the entry's snapshot
    suggested (``findings/rules.py``); an accepted suggestion's category and urgency
    are set by a ``change`` entry of their own."""

    finding: str
    title: str
    # "accepted" or "dismissed".
    decision: str
    category: str | UnsetType = UNSET
    urgency: Small | UnsetType = UNSET


class ArticleLinked(_Data, frozen=True, kw_only=True, tag=EventKind.ARTICLE.value):
    """A knowledge-base article was linked to the ticket; ``resolved``: it solved it."""

    article: Small
    title: str
    resolved: bool


# -- Chat ----------------------------------------------------------------------------------


class Chat(_Data, frozen=True, kw_only=True, tag=EventKind.CHAT.value):
    """A line of the chat with the device's user: the technician's (``to_user``, the
    entry's actor wrote it) or the user's (``from_user``). ``text`` is plain text."""

    line: Count
    device: str
    direction: str  # "to_user" or "from_user"
    text: str


class ChatRefused(_Data, frozen=True, kw_only=True, tag=EventKind.CHAT_REFUSED.value):
    """The console refused a technician's chat line; ``reason`` is the refusal's message
    (the line itself is not kept)."""

    reason: str


# -- Reading what cannot be typed ----------------------------------------------------------


class Unknown(_Data, frozen=True, kw_only=True, tag=EventKind.UNKNOWN.value):
    """A stored entry this console cannot type: an unknown kind, or a shape its kind
    does not allow. Read, never written."""

    stored_kind: str
    data: dict[str, Any]


EventData: TypeAlias = (
    Created
    | Diagnostics
    | Status
    | Assignment
    | Change
    | Note
    | Command
    | CommandResult
    | CommandRefused
    | CommandCancel
    | RunbookStarted
    | RunbookResult
    | Shell
    | ShellStarted
    | ShellClosed
    | ScreenRequested
    | ScreenViewerJoined
    | ScreenStarted
    | ScreenRefused
    | ScreenEnded
    | ScreenControlRequested
    | ScreenControlGranted
    | ScreenControlRefused
    | ScreenControlEnded
    | FindingDecision
    | ArticleLinked
    | Chat
    | ChatRefused
)
"""The data of an entry that can be written: one struct per kind."""

TimelineData: TypeAlias = EventData | Unknown
"""The data of an entry as read: ``EventData``, or ``Unknown``."""

_TYPES: Final[dict[str, type[EventData]]] = {
    str(cls.__struct_config__.tag): cls for cls in typing.get_args(EventData)
}
_json: Final = msgspec.json.Encoder()


def kind_of(data: TimelineData) -> EventKind:
    """The kind of ``data`` (``UNKNOWN`` for ``Unknown``)."""
    return EventKind(str(type(data).__struct_config__.tag))


def decode(kind: str, data: Mapping[str, Any]) -> TimelineData:
    """The typed data of a stored row (its ``kind`` and ``data`` columns).

    Never raises on what a row may hold: a kind this console does not know, or data
    its kind does not allow (a key missing, a value of the wrong type), gives
    ``Unknown`` with the stored kind and a copy of the data, so a ticket with such a
    row can still be read. Keys the kind does not have are ignored.
    """
    cls = _TYPES.get(kind)
    if cls is not None:
        # "kind" is the tag here, not a key of any kind's data: a row holding one is
        # not refused for it.
        fields = {key: value for key, value in data.items() if key != "kind"}
        try:
            return msgspec.convert(fields, cls)
        except msgspec.ValidationError:
            pass
    return Unknown(stored_kind=kind, data=dict(data))


def encode(entry: EventData) -> tuple[EventKind, dict[str, Any]]:
    """The kind and the JSON data of a row to store for ``entry``: the keys its
    writers have always stored, without the tag, JSON types only (lists, not tuples).

    ``Unknown`` is refused (``TypeError``): it is what reading gives, not something
    to write.
    """
    kind = kind_of(entry)
    if kind is EventKind.UNKNOWN:
        raise TypeError("an Unknown entry is read, never written")
    data: dict[str, Any] = msgspec.json.decode(_json.encode(entry))
    del data["kind"]
    return kind, data


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a ticket's timeline, as the REST API gives it.

    ``kind`` is always the kind of ``data`` (``UNKNOWN`` if ``data`` is ``Unknown``);
    a mismatch is refused on construction (``ValueError``) and on decoding.
    """

    id: Id
    at: datetime.datetime
    # Who: "user:alice", "api:rt-sync", "agent:d1234...", "system".
    actor: str
    kind: EventKind
    data: TimelineData
    # The snapshot a ``diagnostics`` entry attached.
    snapshot_id: Id | None = None

    def __post_init__(self) -> None:
        """Refuse a ``kind`` other than the data's."""
        if self.kind is not kind_of(self.data):
            raise ValueError(f"kind {self.kind} with data of kind {kind_of(self.data)}")


def from_row(
    *,
    id: int,
    at: datetime.datetime,
    actor: str,
    kind: str,
    data: Mapping[str, Any],
    snapshot_id: int | None = None,
) -> TimelineEntry:
    """The entry of a stored row's columns, its data decoded (see ``decode``)."""
    typed = decode(kind, data)
    return TimelineEntry(
        id=id, at=at, actor=actor, kind=kind_of(typed), data=typed, snapshot_id=snapshot_id
    )
