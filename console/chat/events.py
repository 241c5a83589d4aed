"""The chat's domain events (topic: the ticket's number)."""

from __future__ import annotations

from typing import ClassVar

from deskside.console.events import DomainEvent

from .schemas import ChatLineView

__all__ = ["CHAT_EVENTS", "ChatLineAdded", "ChatLineChanged"]


class _ChatEvent(DomainEvent, frozen=True, kw_only=True):
    topic_field: ClassVar[str | None] = "ticket_id"

    ticket_id: int
    line: ChatLineView


class ChatLineAdded(_ChatEvent, frozen=True, kw_only=True, tag="chat.line_added"):
    """A technician wrote a line, or the user's answer arrived."""


class ChatLineChanged(_ChatEvent, frozen=True, kw_only=True, tag="chat.line_changed"):
    """A technician's line was delivered to the user, or refused by the device."""


# Every chat event, for those who follow a ticket's conversation.
CHAT_EVENTS: tuple[type[_ChatEvent], ...] = (ChatLineAdded, ChatLineChanged)
