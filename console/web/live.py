"""Live pages: server-sent events fed by the event bus, for one signed-in user.

A page that updates itself subscribes with htmx's SSE extension
(``hx-ext="sse" sse-connect="/tickets/live"``, and ``sse-swap="<name>"`` on the
element to replace); its route returns ``stream(request, user, name, types,
render)``. On each event of ``types`` (several close together are taken as one:
``COALESCE``) the stream sends ``render()``'s HTML under the event ``name``: the
part of the page, read again from the store, so a missed or coalesced event loses
nothing and the page is as the store is.

Bounds: at most ``PER_USER`` streams per user (429 beyond), a small queue per
stream (a stream that falls behind renders once for all it missed), and a stream
ends with its session: its session is looked up again every ``RECHECK`` seconds
(without counting as the user's activity) and the stream ends at the session's
idle or absolute time-out, at sign-out, or when the session is revoked.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from litestar import Request
from litestar.response import ServerSentEvent, ServerSentEventMessage

from deskside.console.db import utcnow
from deskside.console.errors import ConsoleError
from deskside.console.events import DomainEvent

from .sessions import WebUser, web_state

__all__ = ["COALESCE", "PER_USER", "RECHECK", "TooManyStreams", "stream"]

logger = logging.getLogger(__name__)

PER_USER: Final = 8
RECHECK: Final = 15.0
COALESCE: Final = 0.2
_QUEUE: Final = 64


class TooManyStreams(ConsoleError):
    """A user has too many live pages open."""

    status_code = 429


def stream(
    request: Request[Any, Any, Any],
    user: WebUser,
    name: str,
    types: tuple[type[DomainEvent], ...],
    render: Callable[[], Awaitable[str]],
    *,
    topic: str | None = None,
) -> ServerSentEvent:
    """The response of a live route: ``render()`` under event ``name`` on each event."""
    web = web_state(request)
    if web.streams.get(user.username, 0) >= PER_USER:
        raise TooManyStreams(f"at most {PER_USER} live pages per user; close some tabs")

    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        # Counted and subscribed once the response starts: a stream never started
        # holds nothing.
        web.streams[user.username] = web.streams.get(user.username, 0) + 1
        subscription = request.app.state.store.bus.subscribe(*types, topic=topic, maxsize=_QUEUE)
        try:
            while True:
                deadline = await _session_deadline(request, user)
                if deadline is None:
                    return
                wait = min(RECHECK, deadline)
                try:
                    await asyncio.wait_for(subscription.get(), wait)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive")
                    continue
                await asyncio.sleep(COALESCE)
                while subscription.get_nowait() is not None:
                    pass
                yield ServerSentEventMessage(event=name, data=await render())
        finally:
            subscription.close()
            left = web.streams.get(user.username, 1) - 1
            if left > 0:
                web.streams[user.username] = left
            else:
                web.streams.pop(user.username, None)

    return ServerSentEvent(messages(), headers={"Cache-Control": "no-store"})


async def _session_deadline(request: Request[Any, Any, Any], user: WebUser) -> float | None:
    """Seconds the session has left (None: it has ended), looked up again."""
    web = web_state(request)
    now = utcnow()
    try:
        session = await web.sessions.find(user.token, times=web.times, now=now, touch=False)
    except Exception:  # the store failing ends the stream: the page reconnects later
        logger.warning("a live stream's session could not be looked up", exc_info=True)
        return None
    if session is None:
        return None
    ends = min(session.expires_at, session.last_seen_at + web.times.idle)
    left = (ends - now) / datetime.timedelta(seconds=1)
    return left if left > 0 else None
