"""The webhooks' tables: endpoints (subscriptions) and the outbox of deliveries.

A delivery row is the outbox: written in the transaction of the change it tells
about (``outbox.py``), sent and retried by the dispatcher (``dispatcher.py``),
and kept afterwards as the delivery log.
"""

from __future__ import annotations

import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, BigId, UTCDateTime

__all__ = ["WebhookDelivery", "WebhookEndpoint"]


class WebhookEndpoint(Base):
    """A URL that receives some event types, signed with its own secret.

    The secret is kept as it was given out (``whsec_...``): the console must sign
    with it, so a hash would not do. The database is private to the console's
    user (``deskside.console.config``); on PostgreSQL, to its role.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(256), default="")
    # The public event types it receives (``catalog.EventType`` values).
    event_types: Mapped[list[str]] = mapped_column(JSON)
    # Only events of devices in this group (and their tickets); None: every device.
    device_group: Mapped[str | None] = mapped_column(String(128))
    secret: Mapped[str] = mapped_column(String(128))
    # The secret before the last rotation, also signed with until it expires.
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_until: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why it was disabled (410 Gone, an admin), if it was.
    disabled_reason: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(160))


class WebhookDelivery(Base):
    """One message to one endpoint: the outbox row, then its delivery log.

    ``message_id`` is the ``webhook-id`` header, the same on every attempt;
    ``body`` the exact bytes sent, so every attempt sends the same thing.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_order", "endpoint_id", "ordering_key", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # Deliveries with the same key go to the endpoint one after the other ("ticket:7").
    ordering_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    # When its tries began (its creation, or the last manual redelivery): the
    # retry schedule gives up some days after it.
    tries_since: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    # pending, delivered, failed (``schemas.DeliveryStatus``).
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    # A dispatcher holds the delivery until then (it is being sent).
    lease_until: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_latency_ms: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(256), default="")
    delivered_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
