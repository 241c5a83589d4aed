"""The REST API for ticket systems and scripts: ``/api/v1``.

Every call carries ``Authorization: Bearer <API token>`` (``deskside-console
apitoken create``); each route names the scope it needs. Errors are JSON,
``{"status_code": 404, "detail": "no ticket 7"}``, with the fitting 4xx (or 504
when an agent does not answer). The OpenAPI document is at ``/api/schema/openapi.json``.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, patch, post
from litestar.di import Provide
from litestar.params import Parameter

from .errors import Conflict, Forbidden, Unauthorized
from .gateway import Gateway
from .schemas import (
    AttachDiagnostics,
    DeviceView,
    EventView,
    NewNote,
    NewTicket,
    SnapshotInfo,
    SnapshotView,
    TicketChanges,
    TicketDetail,
    TicketView,
)
from .store import ApiIdentity, Store
from .store.models import TicketStatus

__all__ = ["ApiV1", "provide_identity"]


async def provide_identity(request: Request) -> ApiIdentity:  # type: ignore[type-arg]
    """The caller, from its bearer token; ``Unauthorized`` without a valid one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <API token>'")
    store: Store = request.app.state.store
    return await store.authenticate_api_token(token.strip())


def _require(identity: ApiIdentity, scope: str) -> None:
    if scope not in identity.scopes:
        raise Forbidden(f"this API token lacks the {scope!r} scope")


def _store(request: Request) -> Store:  # type: ignore[type-arg]
    store: Store = request.app.state.store
    return store


def _gateway(request: Request) -> Gateway:  # type: ignore[type-arg]
    gateway: Gateway = request.app.state.gateway
    return gateway


Limit = Annotated[int, Parameter(ge=1, le=500, description="At most this many results")]
Offset = Annotated[int, Parameter(ge=0, le=10_000_000)]


class ApiV1(Controller):
    """Tickets, devices and diagnostics."""

    path = "/api/v1"
    dependencies = {"identity": Provide(provide_identity)}  # noqa: RUF012 - Litestar's API

    # -- Tickets -------------------------------------------------------------------------

    @get("/tickets")
    async def list_tickets(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        status: list[TicketStatus] | None = None,
        device: Annotated[str | None, Parameter(max_length=32)] = None,
        assignee: Annotated[str | None, Parameter(max_length=64)] = None,
        priority: Annotated[int | None, Parameter(ge=1, le=9)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[TicketView]:
        """Tickets, newest first, filtered by every parameter given."""
        _require(identity, "tickets:read")
        return await _store(request).list_tickets(
            statuses=status or (),
            device_id=device,
            assignee=assignee,
            priority=priority,
            limit=limit,
            offset=offset,
        )

    @post("/tickets")
    async def create_ticket(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        data: NewTicket,
    ) -> TicketView:
        """Open a ticket (201)."""
        _require(identity, "tickets:write")
        ticket, _ = await _store(request).create_ticket(data, actor=identity.actor, source="api")
        return ticket

    @get("/tickets/{ticket_id:int}")
    async def get_ticket(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        ticket_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)],
    ) -> TicketDetail:
        """A ticket and its whole timeline."""
        _require(identity, "tickets:read")
        return await _store(request).get_ticket(ticket_id)

    @patch("/tickets/{ticket_id:int}")
    async def update_ticket(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        ticket_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)],
        data: TicketChanges,
    ) -> TicketView:
        """Change a ticket's status, assignee, group, category, impact or urgency."""
        _require(identity, "tickets:write")
        return await _store(request).update_ticket(ticket_id, data, actor=identity.actor)

    @post("/tickets/{ticket_id:int}/notes")
    async def add_note(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        ticket_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)],
        data: NewNote,
    ) -> EventView:
        """Add a note to a ticket's timeline (201)."""
        _require(identity, "tickets:write")
        return await _store(request).add_note(ticket_id, data.text, actor=identity.actor)

    @post("/tickets/{ticket_id:int}/diagnostics")
    async def attach_diagnostics(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        ticket_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)],
        data: AttachDiagnostics,
    ) -> EventView:
        """Attach the device's latest snapshot, or (``fresh``) ask the agent for a new one.

        409 when the ticket has no device, the device has no snapshot, or (fresh)
        the device is offline; 504 when the agent does not answer in time.
        """
        _require(identity, "tickets:write")
        store = _store(request)
        detail = await store.get_ticket(ticket_id)
        device_id = detail.ticket.device_id
        if device_id is None:
            raise Conflict(f"ticket #{ticket_id} has no device")
        if data.fresh:
            _require(identity, "devices:write")
            info = await _gateway(request).request_snapshot(device_id, data.timeout)
        else:
            latest = await store.latest_snapshot(device_id)
            if latest is None:
                raise Conflict(f"device {device_id} has sent no snapshot yet")
            info = latest
        return await store.attach_snapshot(ticket_id, info.id, actor=identity.actor)

    # -- Devices and snapshots -----------------------------------------------------------------

    @get("/devices")
    async def list_devices(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
    ) -> list[DeviceView]:
        """Every enrolled device."""
        _require(identity, "devices:read")
        return await _store(request).list_devices()

    @get("/devices/{device_id:str}")
    async def get_device(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        device_id: Annotated[str, Parameter(max_length=32)],
    ) -> DeviceView:
        """One device."""
        _require(identity, "devices:read")
        return await _store(request).get_device(device_id)

    @get("/devices/{device_id:str}/snapshots")
    async def list_snapshots(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        device_id: Annotated[str, Parameter(max_length=32)],
    ) -> list[SnapshotInfo]:
        """A device's snapshots, newest first (without their content)."""
        _require(identity, "devices:read")
        return await _store(request).list_snapshots(device_id)

    @post("/devices/{device_id:str}/snapshots")
    async def request_snapshot(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        device_id: Annotated[str, Parameter(max_length=32)],
        timeout: Annotated[float, Parameter(gt=0, le=120)] = 30.0,
    ) -> SnapshotInfo:
        """Ask the online device for a fresh snapshot and keep it (201)."""
        _require(identity, "devices:write")
        await _store(request).get_device(device_id)
        return await _gateway(request).request_snapshot(device_id, timeout)

    @post("/devices/{device_id:str}/revoke", status_code=200)
    async def revoke_device(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        device_id: Annotated[str, Parameter(max_length=32)],
    ) -> DeviceView:
        """Revoke a device: its key is refused from now on, and it is disconnected."""
        _require(identity, "devices:write")
        device = await _store(request).revoke_device(device_id)
        await _gateway(request).disconnect(device_id, "device revoked")
        return device

    @get("/snapshots/{snapshot_id:int}")
    async def get_snapshot(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        snapshot_id: Annotated[int, Parameter(ge=1)],
    ) -> SnapshotView:
        """One snapshot with its content."""
        _require(identity, "devices:read")
        return await _store(request).get_snapshot(snapshot_id)
