"""What the commands API takes and gives."""

from __future__ import annotations

import datetime
import enum
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from litestar.openapi.spec import OpenAPIType, Reference, Schema
from msgspec import Meta

from deskside.console.api import Count, ExitCode, SmallId
from deskside.protocol import messages as m

__all__ = [
    "CommandEvent",
    "CommandStatus",
    "CommandView",
    "NewCommand",
    "OutputChunk",
    "RunRunbook",
    "RunbookRunView",
]


class CommandStatus(enum.StrEnum):
    """Where a command is: pending until its agent starts it, then running, then one of
    the ends."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    REFUSED = "refused"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @classmethod
    def of_exit(cls, result: m.CommandExit) -> CommandStatus:
        """The end an agent's ``CommandExit`` reports."""
        if result.refused:
            return cls.REFUSED
        if result.timed_out:
            return cls.TIMED_OUT
        if result.cancelled:
            return cls.CANCELLED
        if result.exit_code is None:
            return cls.FAILED
        return cls.FINISHED

    @property
    def ended(self) -> bool:
        """Whether the command has ended."""
        return self not in (CommandStatus.PENDING, CommandStatus.RUNNING)


class NewCommand(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A command to run on the ticket's device (or another one named here)."""

    argv: Annotated[
        list[Annotated[str, Meta(max_length=32768)]], Meta(min_length=0, max_length=1024)
    ]
    shell: bool = False
    timeout: Annotated[float, Meta(gt=0, le=86400)] = 60.0
    device_id: Annotated[str, Meta(max_length=32)] | None = None
    # A script named in the device's own policy ([commands.scripts]), run with
    # ``argv`` appended; without it ``argv`` must not be empty.
    script: Annotated[str, Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None

    # The rules across fields, for the OpenAPI document: ``argv`` or a ``script``, and
    # a script never through a shell (``CommandRepository.create_command`` checks them).
    openapi_extra: ClassVar[dict[str, Any]] = {
        "any_of": [
            Schema(properties={"argv": Schema(min_items=1)}),
            Schema(required=["script"], properties={"script": Schema(type=OpenAPIType.STRING)}),
        ],
        "schema_not": Schema(
            required=["script", "shell"],
            properties={"script": Schema(type=OpenAPIType.STRING), "shell": Schema(const=True)},
        ),
    }


class CommandView(msgspec.Struct, frozen=True, kw_only=True):
    """A command and how it went."""

    id: str
    ticket_id: SmallId
    device_id: str
    argv: list[str]
    shell: bool
    timeout: float
    requested_by: str
    requested_at: datetime.datetime
    status: CommandStatus
    consent: str
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    exit_code: ExitCode | None
    duration: float | None
    error: str
    output_truncated: bool
    output_bytes: Count
    runbook_run: str | None = None
    runbook_step: Count | None = None
    script: str | None = None


class OutputChunk(msgspec.Struct, frozen=True, kw_only=True):
    """A piece of a command's output."""

    seq: Count
    stream: Literal["stdout", "stderr"]
    data: bytes


def _event(name: str, payload: str) -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["event", "data"],
        properties={
            "event": Schema(const=name),
            "data": Schema(
                type=OpenAPIType.STRING,
                content_media_type="application/json",
                content_schema=Reference(f"#/components/schemas/{payload}"),
            ),
        },
    )


class CommandEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One server-sent event of a command's ``/stream``: its name, and its data in
    JSON (an ``OutputChunk`` for ``output``, the ``CommandView`` for ``started`` and
    ``exit``). Only the OpenAPI document uses it: the stream is written by hand."""

    event: Literal["output", "started", "exit"]
    data: str

    openapi_extra: ClassVar[dict[str, Any]] = {
        "one_of": [
            _event("output", "OutputChunk"),
            _event("started", "CommandView"),
            _event("exit", "CommandView"),
        ]
    }


class RunRunbook(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Run a runbook on a ticket's device (or another one named here)."""

    params: dict[Annotated[str, Meta(max_length=32)], Annotated[str, Meta(max_length=256)]] = {}
    device_id: Annotated[str, Meta(max_length=32)] | None = None


class RunbookRunView(msgspec.Struct, frozen=True, kw_only=True):
    """A runbook run: the commands of its steps so far, and whether it has ended."""

    id: str
    runbook: str
    done: bool
    commands: list[CommandView]
