"""The technicians' screen viewer: ``/api/v1/tickets/{id}/screen`` (a WebSocket) and
the viewer page, ``/viewer/screen.html``, served from ``static/`` (no build step).

Authentication: a bearer token with the rights of running a command, as for the
terminal, or a viewer link (``deskside-console screen``; ``auth/links.py``), which
grants viewing (or viewing and control) of this ticket's screen and nothing else.
A page of another site is refused (``Origin``).

Browsers cannot set headers on a WebSocket, so the token may instead be the first
text message, ``{"type": "auth", "token": "dsk_..."}``; the viewer page
takes it from its URL *fragment* (``screen.html#ticket=7&token=dsk_...``), which
browsers never send to a server, so the token stays out of access logs, proxies
and ``Referer`` headers. (A ``?token=`` query parameter would leak into all
three.) The page is static and holds no secret itself.

Once authenticated, text messages are JSON both ways; frames are binary (layout in
``deskside.console.screen.relay``)::

    client -> console   {"type": "auth", "token": "..."}  (first, unless a header)
                        {"type": "ack", "seq": 12}
                        {"type": "keyframe"}
                        {"type": "settings", "quality": 60, "max_fps": 10, "monitor": 1}
                        {"type": "close"}
                        guidance, control and input: see deskside.console.screen.remote
    console -> client   {"type": "asking", "session": "<id>"}   the user is asked
                        {"type": "started", "session": ..., "monitors": [...],
                         "monitor": 1, "consent": "user"}
                        {"type": "refused" | "ended", "reason": "...", "error": "..."}
                        {"type": "error", "status": 403, "detail": "..."}

Query parameters: ``device`` (default: the ticket's), ``monitor`` (0 = all,
default 1), ``quality`` (1..100, default 70), ``fps`` (0.5..30, default 15),
``record`` (1: record the session; the user is told when asked).

``GET /api/v1/screens/{session_id}/recording`` (``tickets:read``) gives the
recording of a recorded session ("DSR1", see ``deskside.console.screen.relay``);
``/viewer/replay.html#session=ID&token=...`` plays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from litestar import Controller, Response, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.params import Parameter
from litestar.router import Router
from litestar.static_files import create_static_files_router

from deskside.console.api import content, errors
from deskside.console.auth.access import may_control, replay_refusal
from deskside.console.auth.guards import authenticate, refuse_foreign_origin
from deskside.console.auth.identity import ApiIdentity, LinkCapability
from deskside.console.errors import Conflict, ConsoleError, Forbidden, InvalidRequest, Unauthorized
from deskside.console.gateway import Gateway
from deskside.console.store import Store

from .remote import CONTROL_TYPES, VIEWER_TYPES
from .repository import ScreenRepository
from .session import ScreenRelay, ScreenViewer, SessionState

logger = logging.getLogger(__name__)

__all__ = ["STATIC_DIR", "ScreenController", "screen_socket", "viewer_files"]

STATIC_DIR: Final = Path(__file__).parent.parent / "static"
# Seconds a client has to send its token.
_AUTH_TIMEOUT: Final = 10.0


class _Control(msgspec.Struct, frozen=True):
    """A text message from the viewer; only the fields of its ``type`` matter."""

    type: Annotated[str, msgspec.Meta(max_length=32)]
    token: Annotated[str, msgspec.Meta(max_length=256)] = ""
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0
    quality: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    max_fps: Annotated[float, msgspec.Meta(ge=0.5, le=30.0)] | None = None
    monitor: Annotated[int, msgspec.Meta(ge=0, le=64)] | None = None


def _number(value: str | None, default: float, low: float, high: float, name: str) -> float:
    try:
        number = float(value) if value is not None else default
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise InvalidRequest(f"{name} must be between {low:g} and {high:g}")
    return number


async def _authenticate(socket: WebSocket) -> ApiIdentity:  # type: ignore[type-arg]
    """The caller: from an ``Authorization`` header, or the first message's token."""
    if socket.headers.get("authorization"):
        return await authenticate(socket)
    try:
        text = await asyncio.wait_for(socket.receive_text(), _AUTH_TIMEOUT)
        control = msgspec.json.decode(text, type=_Control)
    except (TimeoutError, msgspec.MsgspecError) as exc:
        raise Unauthorized("send {'type': 'auth', 'token': '<API token>'} first") from exc
    if control.type != "auth" or not control.token:
        raise Unauthorized("send {'type': 'auth', 'token': '<API token>'} first")
    store: Store = socket.app.state.store
    return await store.accounts.authenticate_api_token(control.token.strip())


@websocket("/api/v1/tickets/{ticket_id:int}/screen")
async def screen_socket(socket: WebSocket, ticket_id: int) -> None:  # type: ignore[type-arg]
    """View the ticket's device's screen, after its user's consent."""
    store: Store = socket.app.state.store
    gateway: Gateway = socket.app.state.gateway
    hub = gateway.screens
    if await refuse_foreign_origin(socket):
        return
    await socket.accept()
    viewer: ScreenViewer | None = None
    relay: ScreenRelay | None = None
    identity: ApiIdentity | None = None
    try:
        identity = await _authenticate(socket)
        bound = await _bound_session(store, hub, identity)
        query = socket.query_params
        monitor = int(_number(query.get("monitor"), 1, 0, 64, "monitor"))
        quality = int(_number(query.get("quality"), 70, 1, 100, "quality"))
        max_fps = _number(query.get("fps"), 15.0, 0.5, 30.0, "fps")
        record = query.get("record", "0") not in ("", "0", "false", "no")
        device = query.get("device")
        if device is None:
            device = (await store.tickets.ticket(ticket_id)).device_id
        viewer = ScreenViewer(actor=identity.actor)
        existing = hub.find(ticket_id, device, identity.actor) if device else None
        if bound is not None and existing is not bound:
            raise Unauthorized("this viewer link is for another screen session")
        if existing is not None:
            # Checked again, and recorded, but the user is not asked twice.
            await store.screens.request_screen(
                ticket_id,
                device_id=device,
                identity=identity,
                online=gateway.online,
                join=existing.session_id,
            )
            relay = existing
            await hub.join(relay, viewer)
        else:
            session_id, device = await store.screens.request_screen(
                ticket_id, device_id=device, identity=identity, online=gateway.online
            )
            busy = hub.busy(device)
            if busy is not None:
                refusal = Conflict(f"the screen of {device} is being viewed by {busy.actor}")
                await store.screens.record_screen_event(
                    ticket_id,
                    "screen_refused",
                    actor=identity.actor,
                    data={
                        "screen_session": session_id,
                        "device": device,
                        "reason": "busy",
                        "error": str(refusal),
                    },
                )
                raise refusal
            grant = identity.grant
            if grant is not None and not await store.accounts.links.bind(grant.link_id, session_id):
                raise Unauthorized("this viewer link has been used")
            ticket = await store.tickets.ticket(ticket_id)
            relay = await hub.open(
                gateway.daemon_session(device),
                viewer,
                session_id=session_id,
                ticket_id=ticket_id,
                requested_by=identity.username or identity.actor,
                reason=ticket.title,
                monitor=monitor,
                quality=quality,
                max_fps=max_fps,
                record=record,
            )
    except ConsoleError as exc:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await socket.send_text(
                json.dumps({"type": "error", "status": exc.status_code, "detail": str(exc)})
            )
            await socket.close(4000 + exc.status_code, str(exc)[:120])
        if relay is not None and viewer is not None:
            await hub.leave(relay, viewer)
        return
    reader = asyncio.create_task(
        _from_viewer(socket, hub, relay, viewer, controls=may_control(identity))
    )
    try:
        while True:
            item = await viewer.get()
            if item is None:
                break
            if isinstance(item, bytes):
                await socket.send_bytes(item)
            else:
                await socket.send_text(json.dumps(item))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()
        try:
            await reader
        except asyncio.CancelledError:
            pass  # what cancel() is for
        except Exception:
            logger.exception("screen %s: the viewer's reader failed", relay.session_id)
        await hub.leave(relay, viewer)
        if identity.grant is not None and relay.state == SessionState.ENDED:
            await store.accounts.links.end(identity.grant.link_id)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await socket.close()


async def _bound_session(store: Store, hub: Any, identity: ApiIdentity) -> ScreenRelay | None:
    """The live session a viewer link opened before, if it did; ``Unauthorized`` if
    that session has ended (the link is spent)."""
    grant = identity.grant
    if grant is None or grant.screen_session is None:
        return None
    if grant.capability == LinkCapability.REPLAY:
        raise Forbidden("a replay link only plays its recording")
    relay: ScreenRelay | None = hub.relays.get(grant.screen_session)
    if relay is None or relay.state == SessionState.ENDED:
        await store.accounts.links.end(grant.link_id)
        raise Unauthorized("this viewer link's session has ended; ask for a new link")
    return relay


async def _from_viewer(
    socket: WebSocket,  # type: ignore[type-arg]
    hub: Any,
    relay: ScreenRelay,
    viewer: ScreenViewer,
    *,
    controls: bool,
) -> None:
    """Acknowledgements and settings from the viewer, until it leaves; control only
    if it ``controls`` (a viewer link may grant view only)."""
    try:
        while True:
            event = await socket.receive()
            if event["type"] == "websocket.disconnect":
                break
            try:
                control = msgspec.json.decode(str(event.get("text") or ""), type=_Control)
            except msgspec.MsgspecError:
                continue  # not a control message we know: ignored
            if control.type == "ack":
                await hub.viewer_ack(relay, viewer, control.seq)
            elif control.type == "keyframe":
                await hub.keyframe(relay)
            elif control.type == "settings":
                await hub.settings(
                    relay, quality=control.quality, max_fps=control.max_fps, monitor=control.monitor
                )
            elif control.type in CONTROL_TYPES and not controls:
                viewer.put(
                    {"type": "error", "status": 403, "detail": "this viewer link grants no control"}
                )
            elif control.type in VIEWER_TYPES:
                await hub.from_viewer(relay, viewer, control.type, str(event.get("text")))
            elif control.type == "close":
                break
    except WebSocketDisconnect:
        pass
    viewer.put(None)


class ScreenController(Controller):
    """Screen sessions on record."""

    path = "/api/v1/screens"
    tags = ["screen"]  # noqa: RUF012 - Litestar's API

    @get(
        "/{session_id:str}/recording",
        responses=errors(400, 404) | content(200, bytes, "application/octet-stream"),
    )
    async def screen_recording(
        self,
        identity: ApiIdentity,
        screens: ScreenRepository,
        session_id: Annotated[str, Parameter(max_length=64)],
    ) -> Response[bytes]:
        """A recorded screen session, as relayed ("DSR1"); ``replay.html`` plays it.

        Needs ``tickets:read``, or a replay link of this recording.
        """
        refusal = replay_refusal(identity, session_id)
        if refusal is not None:
            raise refusal
        recording = await screens.screen_recording(session_id)
        return Response(recording, media_type="application/octet-stream")


def viewer_files() -> Router:
    """The viewer page and its scripts, at ``/viewer``."""
    return create_static_files_router(
        path="/viewer", directories=[STATIC_DIR], name="viewer", include_in_schema=False
    )
