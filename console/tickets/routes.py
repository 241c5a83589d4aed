"""The tickets API: ``/api/v1/tickets``, their notes and diagnostics."""

from __future__ import annotations

from typing import Annotated, Protocol, runtime_checkable

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.params import Parameter

from deskside.console.agents import Agents
from deskside.console.api import errors
from deskside.console.auth.access import DeviceAccess, DeviceAction
from deskside.console.auth.guards import requires
from deskside.console.auth.identity import ApiIdentity, Scope
from deskside.console.devices.schemas import SnapshotInfo
from deskside.console.errors import Conflict, Forbidden
from deskside.console.findings.schemas import TicketFindings
from deskside.console.timeline.kinds import TimelineEntry

from .lifecycle import TicketSource, TicketStatus
from .repository import TicketRepository
from .schemas import (
    AttachDiagnostics,
    BulkChange,
    BulkResults,
    NewNote,
    NewSavedView,
    NewTicket,
    QueueSort,
    SavedViewInfo,
    SortOrder,
    TicketChanges,
    TicketDetail,
    TicketQuery,
    TicketView,
)

__all__ = [
    "Limit",
    "Offset",
    "SnapshotRequests",
    "Snapshots",
    "TicketController",
    "TicketFindingsReader",
    "TicketId",
]


@runtime_checkable
class TicketFindingsReader(Protocol):
    """What the rules find in a ticket's snapshot (the findings' service)."""

    async def for_ticket(self, ticket_id: int) -> TicketFindings:
        """The findings of the ticket's newest snapshot."""
        ...


@runtime_checkable
class Snapshots(Protocol):
    """A device's snapshots on record (the devices' snapshot repository)."""

    async def latest_snapshot(self, device_id: str) -> SnapshotInfo | None:
        """The device's newest snapshot, if it has one."""
        ...


@runtime_checkable
class SnapshotRequests(Protocol):
    """Fresh snapshots from connected devices (the devices' presence)."""

    async def request_snapshot(self, device_id: str, timeout: float) -> SnapshotInfo:
        """Ask the device for a fresh snapshot and keep it."""
        ...


Limit = Annotated[int, Parameter(ge=1, le=500, description="At most this many results")]
Offset = Annotated[int, Parameter(ge=0, le=10_000_000)]
TicketId = Annotated[int, Parameter(ge=1, le=2**31 - 1)]


class TicketController(Controller):
    """Tickets: list, open, read with the timeline, change, notes, diagnostics."""

    path = "/api/v1"
    tags = ["tickets"]  # noqa: RUF012 - Litestar's API

    @get(
        "/tickets",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400),
        response_headers=[
            ResponseHeader(
                name="X-Total-Count",
                description="How many tickets match the filters, on every page",
                documentation_only=True,
            )
        ],
    )
    async def list_tickets(
        self,
        identity: ApiIdentity,
        tickets: TicketRepository,
        status: list[TicketStatus] | None = None,
        device: Annotated[str | None, Parameter(max_length=32)] = None,
        assignee: Annotated[str | None, Parameter(max_length=64)] = None,
        priority: Annotated[int | None, Parameter(ge=1, le=9)] = None,
        group: Annotated[str | None, Parameter(max_length=128)] = None,
        mine: Annotated[bool, Parameter(description="The caller's own tickets")] = False,
        unassigned: bool = False,
        breaching: Annotated[
            bool, Parameter(description="Open, response or resolution due within 1 h or overdue")
        ] = False,
        q: Annotated[
            str | None,
            Parameter(
                min_length=1,
                max_length=256,
                description="Text in the title, description, requester or device",
            ),
        ] = None,
        sort: QueueSort = QueueSort.NUMBER,
        order: SortOrder = SortOrder.DESC,
        category: Annotated[str | None, Parameter(max_length=64)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response[list[TicketView]]:
        """The queue: tickets filtered by every parameter given, newest first unless
        ``sort`` and ``order`` say otherwise; one page of ``limit`` from ``offset``, the
        number of all that match in ``X-Total-Count``."""
        query = TicketQuery(
            statuses=list(status or ()),
            priority=priority,
            group=group,
            assignee=assignee,
            mine=mine,
            unassigned=unassigned,
            breaching=breaching,
            device_id=device,
            text=q,
            sort=sort,
            order=order,
            category=category,
            limit=limit,
            offset=offset,
        )
        page = await tickets.queue(query, username=identity.username)
        return Response(page.tickets, headers={"X-Total-Count": str(page.total)})

    @post(
        "/tickets/bulk",
        guards=[requires(Scope.TICKETS_WRITE)],
        responses=errors(400, 404),
        status_code=200,
    )
    async def bulk_change(
        self, identity: ApiIdentity, tickets: TicketRepository, data: BulkChange
    ) -> BulkResults:
        """Assign, change the status or the group of many tickets at once.

        Each ticket is changed on its own, as ``PATCH`` would (its rules, its timeline,
        the audit log); the answer says per ticket what happened: ``changed``,
        ``unchanged``, ``refused`` (with why: a transition the lifecycle does not allow)
        or ``not_found``. An unknown technician or group is a 404 for the whole request.
        """
        return await tickets.bulk_update(data, actor=identity.actor)

    @get("/saved-views", guards=[requires(Scope.TICKETS_READ)], responses=errors(400))
    async def saved_views(
        self, identity: ApiIdentity, tickets: TicketRepository
    ) -> list[SavedViewInfo]:
        """The calling technician's saved queues, by name."""
        return await tickets.saved_views(_technician(identity))

    @post("/saved-views", guards=[requires(Scope.TICKETS_READ)], responses=errors(400, 409))
    async def save_view(
        self, identity: ApiIdentity, tickets: TicketRepository, data: NewSavedView
    ) -> SavedViewInfo:
        """Keep a queue (filters and sort) under a name, for the calling technician
        (201); 409 if they have one by that name."""
        return await tickets.save_view(_technician(identity), data)

    @delete(
        "/saved-views/{view_id:int}",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def delete_view(
        self, identity: ApiIdentity, tickets: TicketRepository, view_id: TicketId
    ) -> None:
        """Delete one of the calling technician's saved views (204)."""
        await tickets.delete_view(_technician(identity), view_id)

    @post("/tickets", guards=[requires(Scope.TICKETS_WRITE)], responses=errors(400, 404))
    async def create_ticket(
        self,
        identity: ApiIdentity,
        tickets: TicketRepository,
        data: NewTicket,
    ) -> TicketView:
        """Open a ticket (201)."""
        ticket, _ = await tickets.create_ticket(data, actor=identity.actor, source=TicketSource.API)
        return ticket

    @get(
        "/tickets/{ticket_id:int}",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def get_ticket(
        self,
        identity: ApiIdentity,
        tickets: TicketRepository,
        findings: TicketFindingsReader,
        ticket_id: TicketId,
    ) -> TicketDetail:
        """A ticket, its whole timeline and its findings."""
        detail = await tickets.get_ticket(ticket_id)
        return msgspec.structs.replace(detail, findings=await findings.for_ticket(ticket_id))

    @patch(
        "/tickets/{ticket_id:int}",
        guards=[requires(Scope.TICKETS_WRITE)],
        responses=errors(400, 404, 409),
    )
    async def update_ticket(
        self,
        identity: ApiIdentity,
        tickets: TicketRepository,
        ticket_id: TicketId,
        data: TicketChanges,
    ) -> TicketView:
        """Change a ticket's status, assignee, group, category, impact or urgency.

        With ``version`` (the ticket's ``version`` the editor saw), a ticket changed
        since is refused with 409, the ticket as it is now in ``extra.ticket``.
        """
        return await tickets.update_ticket(ticket_id, data, actor=identity.actor)

    @post(
        "/tickets/{ticket_id:int}/notes",
        guards=[requires(Scope.TICKETS_WRITE)],
        responses=errors(400, 404, 409),
    )
    async def add_note(
        self,
        identity: ApiIdentity,
        tickets: TicketRepository,
        ticket_id: TicketId,
        data: NewNote,
    ) -> TimelineEntry:
        """Add a note to a ticket's timeline (201)."""
        return await tickets.add_note(ticket_id, data.text, actor=identity.actor)

    @post(
        "/tickets/{ticket_id:int}/diagnostics",
        guards=[requires(Scope.TICKETS_WRITE)],
        responses=errors(400, 404, 409, 504),
    )
    async def attach_diagnostics(
        self,
        identity: ApiIdentity,
        tickets: TicketRepository,
        ticket_id: TicketId,
        data: AttachDiagnostics,
        snapshots: Snapshots,
        presence: SnapshotRequests,
        access: DeviceAccess,
        agents: Agents,
    ) -> TimelineEntry:
        """Attach the device's latest snapshot, or (``fresh``) ask the agent for a new one.

        A fresh one needs ``devices:write`` too, and the rights of acting on the device
        (an admin, the ticket's assignee, or a group with rights on the device).

        409 when the ticket has no device, the device has no snapshot, or (fresh)
        the device is offline; 504 when the agent does not answer in time.
        """
        device_id = (await tickets.ticket(ticket_id)).device_id
        if device_id is None:
            raise Conflict(f"ticket #{ticket_id} has no device")
        if data.fresh:  # an action on the device: its rule (``auth/access.py``)
            await access.authorize(
                identity, agents.online, action=DeviceAction.DIAGNOSTICS, ticket_id=ticket_id
            )
            info = await presence.request_snapshot(device_id, data.timeout)
        else:
            latest = await snapshots.latest_snapshot(device_id)
            if latest is None:
                raise Conflict(f"device {device_id} has sent no snapshot yet")
            info = latest
        return await tickets.attach_snapshot(ticket_id, info.id, actor=identity.actor)


def _technician(identity: ApiIdentity) -> str:
    """Saved views are a technician's own: a service token has none."""
    if identity.username is None:
        raise Forbidden("saved views belong to a technician: use a technician's token")
    return identity.username
