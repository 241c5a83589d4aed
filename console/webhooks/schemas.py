"""The webhooks as the API and the CLI show them, and what they are given."""

from __future__ import annotations

import datetime
import enum
from typing import Annotated

import msgspec
from msgspec import Meta

from deskside.console.api import Count, Id

from .catalog import EventType

__all__ = [
    "DeliveryStatus",
    "DeliveryView",
    "EndpointCreated",
    "EndpointView",
    "NewEndpoint",
    "SecretRotated",
]

# An HTTP status code, as a receiver answered.
StatusCode = Annotated[int, Meta(ge=100, le=599)]


class DeliveryStatus(enum.StrEnum):
    """Where a delivery stands."""

    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # given up: out of time, 410 Gone, or its endpoint removed


class NewEndpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An endpoint to add."""

    url: Annotated[str, Meta(min_length=1, max_length=2048)]
    # Public event types; at least one.
    events: Annotated[list[EventType], Meta(min_length=1, max_length=32)]
    # Only events of devices in this group, and of their tickets.
    device_group: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    description: Annotated[str, Meta(max_length=256)] = ""


class EndpointView(msgspec.Struct, frozen=True, kw_only=True):
    """An endpoint, without its secret."""

    id: Id
    url: str
    description: str
    events: list[str]
    device_group: str | None
    enabled: bool
    disabled_reason: str
    created_at: datetime.datetime
    created_by: str
    # Whether an older secret is still signed with (a rotation's grace period).
    rotating_until: datetime.datetime | None


class EndpointCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new endpoint and its signing secret, shown this once."""

    endpoint: EndpointView
    secret: str


class SecretRotated(msgspec.Struct, frozen=True, kw_only=True):
    """The endpoint's new secret, shown this once; the old one is signed with too
    until ``previous_until``."""

    endpoint: EndpointView
    secret: str
    previous_until: datetime.datetime


class DeliveryView(msgspec.Struct, frozen=True, kw_only=True):
    """One delivery: the message sent to one endpoint, and how it went."""

    id: Id
    endpoint_id: Id
    message_id: str
    event_type: str
    status: DeliveryStatus
    attempts: Count
    created_at: datetime.datetime
    next_attempt_at: datetime.datetime | None
    last_attempt_at: datetime.datetime | None
    last_status_code: StatusCode | None
    last_latency_ms: Count | None
    last_error: str
    delivered_at: datetime.datetime | None
