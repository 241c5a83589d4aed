"""The commands' domain events (topic: the command's id).

``CommandStarted`` and ``CommandFinished`` are published after their commit;
``CommandOutputReceived`` as each chunk arrives from the agent, ahead of its
batched write (``output.py``): a subscriber that finds a gap in the chunk numbers
reads the missing chunks from the store.
"""

from __future__ import annotations

from typing import ClassVar

from deskside.console.events import DomainEvent

from .schemas import CommandView, OutputChunk

__all__ = ["CommandEvent", "CommandFinished", "CommandOutputReceived", "CommandStarted"]


class CommandEvent(DomainEvent, frozen=True, kw_only=True):
    """Something that happened to a command."""

    topic_field: ClassVar[str | None] = "command_id"

    command_id: str


class CommandStarted(CommandEvent, frozen=True, kw_only=True, tag="command.started"):
    """The agent started the command (its consent was given)."""

    command: CommandView


class CommandOutputReceived(CommandEvent, frozen=True, kw_only=True, tag="command.output"):
    """A chunk of the command's output arrived."""

    chunk: OutputChunk


class CommandFinished(CommandEvent, frozen=True, kw_only=True, tag="command.finished"):
    """The command ended (finished, refused, timed out, cancelled or failed)."""

    command: CommandView
    # The number after the command's last chunk, if known.
    next_seq: int | None = None


# Every event of a command, for those who follow one.
COMMAND_EVENTS: tuple[type[CommandEvent], ...] = (
    CommandStarted,
    CommandOutputReceived,
    CommandFinished,
)
