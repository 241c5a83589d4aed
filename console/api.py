"""The REST API for ticket systems and scripts: ``/api/v1``.

Every call carries ``Authorization: Bearer <API token>`` (``deskside-console
apitoken create``); each route names the scope it needs. Errors are JSON,
``{"status_code": 404, "detail": "no ticket 7"}``, with the fitting 4xx (or 504
when an agent does not answer). The OpenAPI document is at ``/api/schema/openapi.json``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.di import Provide
from litestar.params import Parameter
from litestar.response import Stream

from deskside.protocol.errors import DesksideError

from .errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from .gateway import CommandEvent, Gateway
from .runbooks import Runbook
from .schemas import (
    AttachDiagnostics,
    AuditView,
    CommandView,
    DeviceView,
    EventView,
    NewCommand,
    NewNote,
    NewTicket,
    OutputChunk,
    RunbookRunView,
    RunRunbook,
    SnapshotInfo,
    SnapshotView,
    TicketChanges,
    TicketDetail,
    TicketView,
)
from .store import ApiIdentity, Store
from .store.audit import AuditVerification
from .store.models import TicketStatus

# Longest a POST of a command may wait for the command's end (``wait``), in seconds.
MAX_WAIT = 300.0

__all__ = ["ApiV1", "provide_identity", "store_for"]


async def provide_identity(request: Request) -> ApiIdentity:  # type: ignore[type-arg]
    """The caller, from its bearer token; ``Unauthorized`` without a valid one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <API token>'")
    store: Store = request.app.state.store
    return await store.authenticate_api_token(token.strip())


async def store_for(request: Request, scope: str) -> Store:  # type: ignore[type-arg]
    """The store, for a caller whose API token has ``scope`` (401 or 403 otherwise):
    for the handlers outside ``ApiV1``."""
    _require(await provide_identity(request), scope)
    return _store(request)


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
        device_id = (await store.ticket(ticket_id)).device_id
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

    # -- Commands ---------------------------------------------------------------------------

    @post("/tickets/{ticket_id:int}/commands")
    async def run_command(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        ticket_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)],
        data: NewCommand,
        wait: Annotated[float, Parameter(ge=0, le=MAX_WAIT)] = 0.0,
    ) -> CommandView:
        """Run a command on the ticket's device (201); follow it with ``/stream``.

        With ``wait`` (seconds, up to 300), answer once the command has ended and its
        result is recorded, or when ``wait`` runs out (then ``finished_at`` is null):
        one call for a short command. Its output is at ``/output``.

        Needs ``commands:run``; a technician must be an admin or the ticket's assignee.
        The device's own policy and its user have the last word: a refusal there
        ends the command with status ``refused``.
        """
        gateway = _gateway(request)
        store = _store(request)
        view, title = await store.create_command(
            ticket_id, data, identity=identity, online=gateway.online
        )
        if not wait:
            await gateway.run_command(view, reason=f"#{ticket_id} {title}")
            return view
        queue = gateway.watch(view.id)  # before it is sent: its end cannot come first
        try:
            await gateway.run_command(view, reason=f"#{ticket_id} {title}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    while True:
                        event = await queue.get()
                        if event.kind == "exit" and event.view is not None:
                            return event.view
        finally:
            gateway.unwatch(view.id, queue)
        return await store.get_command(view.id)

    @get("/tickets/{ticket_id:int}/commands")
    async def ticket_commands(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        ticket_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)],
    ) -> list[CommandView]:
        """The commands run for a ticket, oldest first."""
        _require(identity, "tickets:read")
        await _store(request).ticket(ticket_id)
        return await _store(request).ticket_commands(ticket_id)

    @get("/commands/{command_id:str}")
    async def get_command(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        command_id: Annotated[str, Parameter(max_length=64)],
    ) -> CommandView:
        """A command and how it went."""
        _require(identity, "tickets:read")
        return await _store(request).get_command(command_id)

    @get("/commands/{command_id:str}/output")
    async def command_output(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        command_id: Annotated[str, Parameter(max_length=64)],
    ) -> list[OutputChunk]:
        """The output the console kept (bytes in base64), in order."""
        _require(identity, "tickets:read")
        await _store(request).get_command(command_id)
        return await _gateway(request).output.read(command_id)

    @get("/commands/{command_id:str}/stream")
    async def stream_command(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        command_id: Annotated[str, Parameter(max_length=64)],
    ) -> Stream:
        """Server-sent events: ``output`` (``{"seq", "stream", "data"}``, data in
        base64), then ``exit`` with the command. Output kept so far comes first."""
        _require(identity, "tickets:read")
        store, gateway = _store(request), _gateway(request)
        # Watched before it is read: an end recorded after the read reaches the queue.
        queue = gateway.watch(command_id)
        try:
            view = await store.get_command(command_id)
        except BaseException:
            gateway.unwatch(command_id, queue)
            raise
        events = _command_events(store, gateway, view, queue)
        # The stream gives the queue back when it ends; this, if it never starts.
        weakref.finalize(events, gateway.unwatch, command_id, queue)
        return Stream(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @post("/commands/{command_id:str}/cancel", status_code=202)
    async def cancel_command(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        command_id: Annotated[str, Parameter(max_length=64)],
    ) -> CommandView:
        """Ask the device to end a running command's process tree (202)."""
        _require(identity, "commands:run")
        view = await _store(request).get_command(command_id)
        if view.finished_at is not None:
            raise Conflict(f"command {command_id} has ended already")
        await _gateway(request).cancel_command(view)
        return view

    # -- Runbooks --------------------------------------------------------------------------

    @get("/runbooks")
    async def list_runbooks(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
    ) -> list[Runbook]:
        """Every runbook: built-in and added ones."""
        _require(identity, "tickets:read")
        return sorted((await _store(request).runbooks()).values(), key=lambda r: r.name)

    @post("/tickets/{ticket_id:int}/runbooks/{name:str}", status_code=202)
    async def run_runbook(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        ticket_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)],
        name: Annotated[str, Parameter(max_length=64)],
        data: RunRunbook,
    ) -> RunbookRunView:
        """Run a runbook's steps on the ticket's device, one after the other (202).

        Each step is a command with the same rights and records as any other; a
        step that fails stops the run unless it says ``continue_on_error``.
        """
        _require(identity, "commands:run")
        store = _store(request)
        runbook = await store.get_runbook(name)
        try:
            values = runbook.resolve(data.params)
        except DesksideError as exc:
            raise InvalidRequest(str(exc)) from exc
        ticket = await store.ticket(ticket_id)
        device_id = data.device_id or ticket.device_id
        if device_id is None:
            raise Conflict(f"ticket #{ticket_id} has no device; name one")
        run_id = await _gateway(request).start_runbook(
            ticket_id,
            runbook,
            values,
            identity=identity,
            device_id=device_id,
            reason=f"#{ticket_id} {ticket.title}",
        )
        return RunbookRunView(id=run_id, runbook=name, done=False, commands=[])

    @get("/runbook-runs/{run_id:str}")
    async def runbook_run(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        run_id: Annotated[str, Parameter(max_length=64)],
    ) -> RunbookRunView:
        """A runbook run: its steps' commands so far, and whether it has ended."""
        _require(identity, "tickets:read")
        gateway = _gateway(request)
        done = gateway.runbook_done(run_id)  # read first: a step may end in between
        commands = await _store(request).runbook_commands(run_id)
        if not commands and run_id not in gateway.runbook_runs:
            raise NotFound(f"no runbook run {run_id}")
        return RunbookRunView(id=run_id, runbook="", done=done, commands=commands)

    # -- Audit --------------------------------------------------------------------------------

    @get("/audit")
    async def audit_log(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
        limit: Limit = 100,
        before: Annotated[int | None, Parameter(ge=1)] = None,
    ) -> list[AuditView]:
        """The audit log, newest first."""
        _require(identity, "audit:read")
        return await _store(request).audit_log(limit=limit, before=before)

    @get("/audit/verify")
    async def verify_audit(
        self,
        request: Request,  # type: ignore[type-arg]
        identity: ApiIdentity,
    ) -> AuditVerification:
        """Check the audit log's hash chain."""
        _require(identity, "audit:read")
        return await _store(request).verify_audit()


_encoder = msgspec.json.Encoder()


def _event(kind: str, data: bytes) -> bytes:
    """One server-sent event; ``data`` is JSON, which has no line breaks."""
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def _chunk_event(chunk: OutputChunk) -> bytes:
    # Encoded here rather than by Litestar's ServerSentEventMessage, whose line
    # splitting of each 87 KB line cost a third of the console's time at full output.
    data = {"seq": chunk.seq, "stream": chunk.stream, "data": base64.b64encode(chunk.data).decode()}
    return _event("output", _encoder.encode(data))


# A comment line: keeps proxies from closing a quiet stream.
_KEEP_ALIVE = b": keep-alive\n\n"


async def _command_events(
    store: Store, gateway: Gateway, view: CommandView, queue: asyncio.Queue[CommandEvent]
) -> AsyncIterator[bytes]:
    """Everything kept so far, then the live events, until the command ends.

    ``view`` was read after ``queue`` started watching the command, so its end is
    either in ``view`` or on its way. A chunk missed in between shows as a gap in
    the chunk numbers, filled from the store.
    """
    command_id = view.id
    try:
        next_seq = 0
        # Nothing stored yet (the common case for a command just started): only
        # what is in memory, without a query.
        stored = view.output_bytes > 0 or view.output_truncated
        for chunk in await gateway.output.read(command_id, stored=stored):
            next_seq = chunk.seq + 1
            yield _chunk_event(chunk)
        end_seq: int | None = None
        while view.finished_at is None:
            try:
                event = await asyncio.wait_for(queue.get(), 15.0)
            except TimeoutError:
                yield _KEEP_ALIVE
                view = await store.get_command(command_id)
                continue
            if event.kind == "output" and event.chunk is not None:
                if event.chunk.seq < next_seq:
                    continue
                if event.chunk.seq > next_seq:  # fell behind: the store has the rest
                    for missed in await gateway.output.read(command_id, next_seq):
                        if missed.seq < event.chunk.seq:
                            yield _chunk_event(missed)
                next_seq = event.chunk.seq + 1
                yield _chunk_event(event.chunk)
            elif event.kind == "started" and event.view is not None:
                yield _event("started", _encoder.encode(event.view))
            elif event.kind == "exit" and event.view is not None:
                view, end_seq = event.view, event.next_seq
        silent = view.output_bytes == 0 and not view.output_truncated
        if not silent and (end_seq is None or next_seq < end_seq):
            for chunk in await gateway.output.read(command_id, next_seq):
                yield _chunk_event(chunk)
        yield _event("exit", _encoder.encode(view))
    finally:
        gateway.unwatch(command_id, queue)
