"""The screen's domain events (topic: the ticket's number)."""

from __future__ import annotations

from typing import ClassVar

from deskside.console.events import DomainEvent

__all__ = ["ScreenSessionEnded", "ScreenSessionStarted"]


class _ScreenEvent(DomainEvent, frozen=True, kw_only=True):
    topic_field: ClassVar[str | None] = "ticket_id"

    ticket_id: int
    session_id: str
    device_id: str


class ScreenSessionStarted(_ScreenEvent, frozen=True, kw_only=True, tag="screen.started"):
    """The device's user (or its policy) allowed the session: frames flow."""

    consent: str


class ScreenSessionEnded(_ScreenEvent, frozen=True, kw_only=True, tag="screen.ended"):
    """The session ended, or was refused before it started."""

    reason: str
    refused: bool
