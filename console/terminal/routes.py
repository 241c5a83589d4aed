"""The technicians' terminal endpoint: ``/api/v1/tickets/{id}/terminal`` (a WebSocket;
``.../shell``, its name before, still works), and terminal sessions on record.

Authorization is a bearer token, as for the REST API, with the rights of running
a command. Once open, binary messages are terminal bytes both ways; text
messages are JSON control messages::

    client -> console   {"type": "resize", "cols": 120, "rows": 40}
    console -> client   {"type": "opened", "session": "<id>"}
                        {"type": "started", "consent": "user"}   (the shell runs)
                        {"type": "closed", "exit_code": 0, "refused": false, "error": ""}
                        {"type": "error", "status": 403, "detail": "..."}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated

import msgspec
from litestar import Controller, Response, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.params import Parameter

from deskside.console.api import content, errors
from deskside.console.auth.guards import authenticate, refuse_foreign_origin, requires
from deskside.console.auth.identity import Scope
from deskside.console.errors import ConsoleError, InvalidRequest
from deskside.console.gateway import Gateway
from deskside.console.store import Store
from deskside.protocol import messages as m

from .relay import TerminalHub, TerminalRelay
from .repository import TerminalRepository
from .schemas import TerminalView

__all__ = ["TerminalController", "shell_socket"]


class _Resize(msgspec.Struct, frozen=True):
    type: str
    cols: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 80
    rows: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 24


def _size(value: str | None, default: int) -> int:
    try:
        size = int(value) if value is not None else default
    except ValueError:
        size = -1
    if not 1 <= size <= 1000:
        raise InvalidRequest("cols and rows are 1..1000")
    return size


@websocket(["/api/v1/tickets/{ticket_id:int}/terminal", "/api/v1/tickets/{ticket_id:int}/shell"])
async def shell_socket(socket: WebSocket, ticket_id: int) -> None:  # type: ignore[type-arg]
    """An interactive terminal on the ticket's device, relayed and recorded."""
    store: Store = socket.app.state.store
    gateway: Gateway = socket.app.state.gateway
    hub = gateway.terminals
    if await refuse_foreign_origin(socket):
        return
    await socket.accept()
    try:
        identity = await authenticate(socket)
        cols = _size(socket.query_params.get("cols"), 80)
        rows = _size(socket.query_params.get("rows"), 24)
        view = await store.terminals.open_terminal(
            ticket_id,
            device_id=socket.query_params.get("device"),
            identity=identity,
            online=gateway.online,
        )
        ticket = await store.tickets.ticket(ticket_id)
        relay = await hub.open(view, cols, rows, f"#{ticket_id} {ticket.title}")
    except ConsoleError as exc:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await socket.send_text(
                json.dumps({"type": "error", "status": exc.status_code, "detail": str(exc)})
            )
            await socket.close(4000 + exc.status_code, str(exc)[:120])
        return
    await socket.send_text(json.dumps({"type": "opened", "session": view.id}))
    to_device = asyncio.create_task(_from_client(socket, hub, relay))
    try:
        while True:
            item = await relay.to_client.get()
            if isinstance(item, m.ShellStarted):
                await socket.send_text(json.dumps({"type": "started", "consent": item.consent}))
                continue
            if isinstance(item, m.ShellClosed):
                await socket.send_text(
                    json.dumps(
                        {
                            "type": "closed",
                            "exit_code": item.exit_code,
                            "refused": item.refused,
                            "error": item.error,
                        }
                    )
                )
                break
            await socket.send_bytes(item)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        to_device.cancel()
        await hub.close(relay, "the technician left")
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await socket.close()


async def _from_client(socket: WebSocket, hub: TerminalHub, relay: TerminalRelay) -> None:  # type: ignore[type-arg]
    """Keystrokes and resizes from the technician, until they leave."""
    try:
        while True:
            event = await socket.receive()
            if event["type"] == "websocket.disconnect":
                break
            data = event.get("bytes")
            if isinstance(data, bytes | bytearray):
                await hub.input(relay, bytes(data))
                continue
            try:
                control = msgspec.json.decode(str(event.get("text") or ""), type=_Resize)
            except msgspec.MsgspecError:
                continue  # not a control message we know: ignored
            if control.type == "resize":
                await hub.resize(relay, control.cols, control.rows)
            elif control.type == "close":
                break
    except WebSocketDisconnect:
        pass
    await hub.close(relay, "the technician left")


class TerminalController(Controller):
    """Terminal sessions on record."""

    path = "/api/v1"
    tags = ["terminal"]  # noqa: RUF012 - Litestar's API

    # ``/shells/...``: the paths' names before "terminal" was the one word for it.
    @get(
        ["/terminals/{session_id:str}", "/shells/{session_id:str}"],
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def terminal_view(
        self, terminals: TerminalRepository, session_id: Annotated[str, Parameter(max_length=64)]
    ) -> TerminalView:
        """A terminal session: who, when, how it ended."""
        return await terminals.get_terminal(session_id)

    @get(
        ["/terminals/{session_id:str}/transcript", "/shells/{session_id:str}/transcript"],
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404) | content(200, bytes, "application/x-asciicast"),
    )
    async def terminal_transcript(
        self, terminals: TerminalRepository, session_id: Annotated[str, Parameter(max_length=64)]
    ) -> Response[bytes]:
        """The session's transcript as an asciinema v2 cast (``asciinema play`` plays it)."""
        transcript = await terminals.terminal_transcript(session_id)
        return Response(transcript, media_type="application/x-asciicast")
