"""The webhooks' store: endpoints, the outbox (``stage``), claims and the delivery log.

``stage`` is a ``Database`` stager (``deskside.console.db.database``): it runs in
every transaction that has domain events, before the commit, and writes one
delivery row per message and interested endpoint, so the change and its outbox
rows commit (or are lost) together. Messages nobody subscribed to cost one small
query of the enabled endpoints, and events no webhook carries cost nothing.

``claim`` hands due deliveries to a dispatcher with a lease: a dispatcher that
dies holding some (``kill -9``) lets them go when the lease ends, and another
attempt (or node) sends them again with the same ``webhook-id``. On PostgreSQL
the claim's rows are locked ``FOR UPDATE SKIP LOCKED``, so several console
nodes can claim at once without taking each other's rows; SQLite serializes
writers anyway (one node). A delivery is not claimed while an earlier delivery
to the same endpoint with the same ordering key (``ticket:7``) is pending, so
one ticket's messages reach an endpoint in the order they were written.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, Final

import msgspec
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.orm import aliased

from deskside.console.audit import chain as audit
from deskside.console.db import Database, get_row, utcnow
from deskside.console.devices.models import Device
from deskside.console.errors import InvalidRequest
from deskside.console.events import DomainEvent
from deskside.console.tickets.models import Ticket

from . import catalog, signing
from .models import WebhookDelivery, WebhookEndpoint
from .schemas import (
    DeliveryStatus,
    DeliveryView,
    EndpointCreated,
    EndpointView,
    NewEndpoint,
    SecretRotated,
)

__all__ = ["Claimed", "Outcome", "WebhookRepository"]

# How long the old secret is still signed with after a rotation.
ROTATION_GRACE: Final = datetime.timedelta(hours=24)
# The longest error text kept in the delivery log.
_ERROR_CHARS: Final = 256

_ENDPOINTS: Final = select(
    WebhookEndpoint.id, WebhookEndpoint.event_types, WebhookEndpoint.device_group
).where(WebhookEndpoint.enabled.is_(True))
_INSERT: Final = insert(WebhookDelivery)


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery handed to a dispatcher, with what it needs to send it."""

    id: int
    endpoint_id: int
    url: str
    message_id: str
    body: bytes
    attempts: int
    tries_since: datetime.datetime
    # The secrets to sign with: the current one, and the previous during a rotation.
    secrets: tuple[str, ...]


class WebhookRepository:
    """Endpoints, the outbox and the delivery log."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- The outbox ------------------------------------------------------------------------

    def stage(self, connection: Connection, events: list[DomainEvent]) -> None:
        """Write the deliveries ``events`` call for (a ``Database`` stager)."""
        messages = [out for event in events for out in catalog.outbound(event)]
        if not messages:
            return
        endpoints = connection.execute(_ENDPOINTS).all()
        if not endpoints:
            return
        now = utcnow()
        groups = _DeviceGroups(connection)
        rows: list[dict[str, Any]] = []
        for out in messages:
            wanted = [
                e
                for e in endpoints
                if str(out.type) in e.event_types
                and (e.device_group is None or groups.of(out) == e.device_group)
            ]
            if not wanted:
                continue
            body = catalog.encode_message(out.type, out.data, now)
            message_id = signing.new_message_id()
            rows += [
                _row(endpoint.id, message_id, out.type, body, out.ordering_key, now)
                for endpoint in wanted
            ]
        if rows:
            connection.execute(_INSERT, rows)

    # -- Endpoints -------------------------------------------------------------------------

    async def add_endpoint(self, new: NewEndpoint, *, actor: str) -> EndpointCreated:
        """Subscribe ``new.url`` to ``new.events``; its secret, shown this once.
        The caller has checked the URL's addresses (``AddressGuard``)."""
        unknown = sorted(set(new.events) - catalog.EVENT_TYPES)
        if unknown:
            raise InvalidRequest(
                f"unknown event types: {', '.join(unknown)}; "
                f"known: {', '.join(sorted(catalog.EVENT_TYPES))}"
            )
        now = utcnow()
        secret = signing.new_secret()
        row = WebhookEndpoint(
            url=new.url,
            description=new.description,
            event_types=sorted(set(new.events)),
            device_group=new.device_group,
            secret=secret,
            enabled=True,
            disabled_reason="",
            created_at=now,
            created_by=actor,
        )
        async with self._db.transaction() as session:
            session.add(row)
            await session.flush()
            await audit.append(
                session,
                actor=actor,
                action="webhook.added",
                data={
                    "id": row.id,
                    "url": row.url,
                    "events": row.event_types,
                    "device_group": row.device_group,
                },
                at=now,
            )
            return EndpointCreated(endpoint=_view(row, now), secret=secret)

    async def endpoints(self) -> list[EndpointView]:
        """Every endpoint, oldest first."""
        now = utcnow()
        async with self._db.reading() as session:
            rows = await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))
            return [_view(row, now) for row in rows]

    async def endpoint(self, endpoint_id: int) -> EndpointView:
        """One endpoint; ``NotFound`` if there is none of this id."""
        async with self._db.reading() as session:
            row = await get_row(session, WebhookEndpoint, endpoint_id, "webhook")
            return _view(row, utcnow())

    async def remove_endpoint(self, endpoint_id: int, *, actor: str) -> None:
        """Delete an endpoint and its delivery log."""
        async with self._db.transaction() as session:
            row = await get_row(session, WebhookEndpoint, endpoint_id, "webhook", lock=True)
            await audit.append(
                session,
                actor=actor,
                action="webhook.removed",
                data={"id": row.id, "url": row.url},
                at=utcnow(),
            )
            await session.delete(row)

    async def set_enabled(self, endpoint_id: int, enabled: bool, *, actor: str) -> EndpointView:
        """Enable an endpoint (its pending deliveries go out again) or disable it."""
        now = utcnow()
        async with self._db.transaction() as session:
            row = await get_row(session, WebhookEndpoint, endpoint_id, "webhook", lock=True)
            row.enabled = enabled
            row.disabled_reason = "" if enabled else f"disabled by {actor}"[:256]
            await audit.append(
                session,
                actor=actor,
                action="webhook.enabled" if enabled else "webhook.disabled",
                data={"id": row.id, "url": row.url},
                at=now,
            )
            return _view(row, now)

    async def rotate_secret(
        self, endpoint_id: int, *, actor: str, grace: datetime.timedelta = ROTATION_GRACE
    ) -> SecretRotated:
        """A new secret for the endpoint; the current one is signed with too for
        ``grace``, so the receiver can switch without losing a message."""
        now = utcnow()
        secret = signing.new_secret()
        async with self._db.transaction() as session:
            row = await get_row(session, WebhookEndpoint, endpoint_id, "webhook", lock=True)
            row.previous_secret = row.secret
            row.previous_secret_until = now + grace
            row.secret = secret
            await audit.append(
                session,
                actor=actor,
                action="webhook.secret_rotated",
                data={"id": row.id, "previous_until": row.previous_secret_until.isoformat()},
                at=now,
            )
            return SecretRotated(
                endpoint=_view(row, now), secret=secret, previous_until=now + grace
            )

    async def send_test(self, endpoint_id: int, *, actor: str) -> DeliveryView:
        """Queue a ``webhook.test`` message to one endpoint (whatever it subscribed to)."""
        now = utcnow()
        body = catalog.encode_message(
            catalog.EventType.WEBHOOK_TEST,
            catalog.TestPayload(endpoint_id=endpoint_id, text=f"test requested by {actor}"),
            now,
        )
        async with self._db.transaction() as session:
            await get_row(session, WebhookEndpoint, endpoint_id, "webhook")
            row = WebhookDelivery(
                **_row(
                    endpoint_id,
                    signing.new_message_id(),
                    catalog.EventType.WEBHOOK_TEST,
                    body,
                    None,
                    now,
                )
            )
            session.add(row)
            await session.flush()
            await audit.append(
                session,
                actor=actor,
                action="webhook.test",
                data={"id": endpoint_id, "delivery": row.id},
                at=now,
            )
            return _delivery_view(row)

    # -- The delivery log ------------------------------------------------------------------

    async def deliveries(
        self,
        *,
        endpoint_id: int | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[DeliveryView]:
        """The newest deliveries (of one endpoint, in one status), newest first."""
        query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
        if endpoint_id is not None:
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
        if status is not None:
            query = query.where(WebhookDelivery.status == str(status))
        if before is not None:
            query = query.where(WebhookDelivery.id < before)
        async with self._db.reading() as session:
            return [_delivery_view(row) for row in await session.scalars(query)]

    async def delivery(self, delivery_id: int) -> DeliveryView:
        """One delivery; ``NotFound`` if there is none of this id."""
        async with self._db.reading() as session:
            return _delivery_view(
                await get_row(session, WebhookDelivery, delivery_id, "webhook delivery")
            )

    async def redeliver(self, delivery_id: int, *, actor: str) -> DeliveryView:
        """Send a delivery again, at once, with the same ``webhook-id`` and body, and a
        fresh retry schedule (a delivered one too: the receiver asked for it)."""
        now = utcnow()
        async with self._db.transaction() as session:
            row = await get_row(
                session, WebhookDelivery, delivery_id, "webhook delivery", lock=True
            )
            row.status = DeliveryStatus.PENDING.value
            row.next_attempt_at = now
            row.tries_since = now
            row.lease_until = None
            await audit.append(
                session,
                actor=actor,
                action="webhook.redelivered",
                data={"delivery": row.id, "id": row.endpoint_id, "message_id": row.message_id},
                at=now,
            )
            return _delivery_view(row)

    # -- The dispatcher's side -------------------------------------------------------------

    async def claim(
        self, now: datetime.datetime, *, lease: datetime.timedelta, limit: int
    ) -> list[Claimed]:
        """Take up to ``limit`` due deliveries for ``lease`` (see the module's docstring)."""
        earlier = aliased(WebhookDelivery)
        blocked = (
            select(earlier.id)
            .where(
                earlier.endpoint_id == WebhookDelivery.endpoint_id,
                earlier.ordering_key == WebhookDelivery.ordering_key,
                earlier.status == DeliveryStatus.PENDING.value,
                earlier.id < WebhookDelivery.id,
            )
            .exists()
        )
        due = (
            select(WebhookDelivery.id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
                WebhookDelivery.next_attempt_at <= now,
                (WebhookDelivery.lease_until.is_(None)) | (WebhookDelivery.lease_until <= now),
                WebhookEndpoint.enabled.is_(True),
                ~blocked,
            )
            .order_by(WebhookDelivery.id)
            .limit(limit)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        )
        async with self._db.transaction() as session:
            ids = list(await session.scalars(due))
            if not ids:
                return []
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids))
                .values(lease_until=now + lease)
            )
            rows = await session.execute(
                select(WebhookDelivery, WebhookEndpoint)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.id.in_(ids))
                .order_by(WebhookDelivery.id)
            )
            return [_claimed(delivery, endpoint, now) for delivery, endpoint in rows]

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write how a claim's attempts went, and disable the endpoints that said 410."""
        if not outcomes:
            return
        async with self._db.transaction() as session:
            gone: set[int] = set()
            for outcome in outcomes:
                values: dict[str, Any] = {
                    "attempts": WebhookDelivery.attempts + 1,
                    "last_attempt_at": outcome.at,
                    "last_status_code": outcome.status_code,
                    "last_latency_ms": outcome.latency_ms,
                    "last_error": outcome.error[:_ERROR_CHARS],
                    "lease_until": None,
                    "status": str(outcome.status),
                }
                if outcome.status is DeliveryStatus.DELIVERED:
                    values["delivered_at"] = outcome.at
                if outcome.next_attempt_at is not None:
                    values["next_attempt_at"] = outcome.next_attempt_at
                await session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == outcome.delivery_id,
                        WebhookDelivery.status == DeliveryStatus.PENDING.value,
                    )
                    .values(**values)
                )
                if outcome.gone:
                    gone.add(outcome.endpoint_id)
            for endpoint_id in sorted(gone):
                endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
                if endpoint is None or not endpoint.enabled:
                    continue
                endpoint.enabled = False
                endpoint.disabled_reason = "the receiver answered 410 Gone"
                await audit.append(
                    session,
                    actor="system",
                    action="webhook.disabled",
                    data={"id": endpoint.id, "url": endpoint.url, "reason": "410 Gone"},
                    at=utcnow(),
                )


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one attempt went, as the dispatcher reports it."""

    delivery_id: int
    endpoint_id: int
    at: datetime.datetime
    status: DeliveryStatus
    # When to try again (status pending); None otherwise.
    next_attempt_at: datetime.datetime | None = None
    status_code: int | None = None
    latency_ms: int | None = None
    error: str = ""
    # The receiver answered 410 Gone: its endpoint is disabled.
    gone: bool = False


class _DeviceGroups:
    """The device group of a message's device (or its ticket's), looked up once."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._devices: dict[str, str | None] = {}
        self._tickets: dict[int, str | None] = {}

    def of(self, out: catalog.Outbound) -> str | None:
        device_id = out.device_id
        if device_id is None and out.ticket_id is not None:
            if out.ticket_id not in self._tickets:
                self._tickets[out.ticket_id] = self._connection.execute(
                    select(Ticket.device_id).where(Ticket.id == out.ticket_id)
                ).scalar_one_or_none()
            device_id = self._tickets[out.ticket_id]
        if device_id is None:
            return None
        if device_id not in self._devices:
            self._devices[device_id] = self._connection.execute(
                select(Device.group_name).where(Device.id == device_id)
            ).scalar_one_or_none()
        return self._devices[device_id]


def _row(
    endpoint_id: int,
    message_id: str,
    kind: catalog.EventType,
    body: bytes,
    ordering_key: str | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    return {
        "endpoint_id": endpoint_id,
        "message_id": message_id,
        "event_type": str(kind),
        "body": body,
        "ordering_key": ordering_key,
        "created_at": now,
        "tries_since": now,
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": "",
    }


def _secrets(endpoint: WebhookEndpoint, now: datetime.datetime) -> tuple[str, ...]:
    until = endpoint.previous_secret_until
    if endpoint.previous_secret and until is not None and until > now:
        return (endpoint.secret, endpoint.previous_secret)
    return (endpoint.secret,)


def _claimed(
    delivery: WebhookDelivery, endpoint: WebhookEndpoint, now: datetime.datetime
) -> Claimed:
    return Claimed(
        id=delivery.id,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        message_id=delivery.message_id,
        body=delivery.body,
        attempts=delivery.attempts,
        tries_since=delivery.tries_since,
        secrets=_secrets(endpoint, now),
    )


def _view(row: WebhookEndpoint, now: datetime.datetime) -> EndpointView:
    until = row.previous_secret_until
    return EndpointView(
        id=row.id,
        url=row.url,
        description=row.description,
        events=list(row.event_types),
        device_group=row.device_group,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        created_by=row.created_by,
        rotating_until=until if row.previous_secret and until and until > now else None,
    )


def _delivery_view(row: WebhookDelivery) -> DeliveryView:
    status = DeliveryStatus(row.status)
    return DeliveryView(
        id=row.id,
        endpoint_id=row.endpoint_id,
        message_id=row.message_id,
        event_type=row.event_type,
        status=status,
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at if status is DeliveryStatus.PENDING else None,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_latency_ms=row.last_latency_ms,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )
