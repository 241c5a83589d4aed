"""The tickets' domain events (topic: the ticket's number)."""

from __future__ import annotations

from typing import ClassVar

from deskside.console.events import DomainEvent

from .schemas import TicketView

__all__ = ["TicketChanged", "TicketCreated"]


class TicketCreated(DomainEvent, frozen=True, kw_only=True, tag="ticket.created"):
    """A ticket was opened."""

    topic_field: ClassVar[str | None] = "ticket_id"

    ticket_id: int
    ticket: TicketView


class TicketChanged(DomainEvent, frozen=True, kw_only=True, tag="ticket.changed"):
    """A ticket's fields changed (status, assignee, classification...)."""

    topic_field: ClassVar[str | None] = "ticket_id"

    ticket_id: int
    ticket: TicketView
    # The names of the fields that changed.
    fields: tuple[str, ...]
