"""The chat API: a technician writes to the user of a ticket's device, and follows
the conversation.

Lines are plain text, given back exactly as written (``text/plain`` semantics inside
JSON): whoever shows them must escape them for their medium.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Annotated, Final

import msgspec
from litestar import Controller, get, post
from litestar.params import Parameter
from litestar.response import Stream

from deskside.console.agents import Agents
from deskside.console.api import content, errors
from deskside.console.auth.guards import requires
from deskside.console.auth.identity import ApiIdentity, Scope
from deskside.console.events import Subscription

from .events import ChatLineAdded, ChatLineChanged
from .relay import ChatRelay
from .repository import ChatRepository
from .schemas import ChatEvent, ChatLineView, NewChatLine

__all__ = ["MAX_FOLLOW", "MAX_WAIT", "ChatController"]

# Longest a POST may wait for its line to reach the user (``wait``), in seconds.
MAX_WAIT: Final = 30.0
# Longest one stream of a conversation lasts (``seconds``); a client opens another.
MAX_FOLLOW: Final = 3600.0

TicketId = Annotated[int, Parameter(ge=1, le=2**31 - 1)]

_encoder = msgspec.json.Encoder()
# A comment line: keeps proxies from closing a quiet stream.
_KEEP_ALIVE = b": keep-alive\n\n"


def _line_event(line: ChatLineView) -> bytes:
    """One server-sent ``line`` event; JSON has no line breaks (they are escaped)."""
    return b"event: line\ndata: " + _encoder.encode(line) + b"\n\n"


class ChatController(Controller):
    """A ticket's chat with the user of its device."""

    path = "/api/v1"
    tags = ["chat"]  # noqa: RUF012 - Litestar's API

    @post("/tickets/{ticket_id:int}/chat", responses=errors(400, 404, 409, 429))
    async def send_line(
        self,
        identity: ApiIdentity,
        chat: ChatRepository,
        chat_relay: ChatRelay,
        agents: Agents,
        ticket_id: TicketId,
        data: NewChatLine,
        wait: Annotated[float, Parameter(ge=0, le=MAX_WAIT)] = 0.0,
    ) -> ChatLineView:
        """Write a line to the user of the ticket's device (201), plain text.

        The line is kept and shown to the user in their chat window; a device that
        is offline gets it when it comes back (``status`` stays ``pending`` until
        then). With ``wait`` (seconds, up to 30), answer once the device showed the
        line (``delivered``) or refused it (``refused``, with ``error``: "chat is off
        on this device"), or when ``wait`` runs out.

        Needs ``tickets:write``; a technician must be an admin, the ticket's assignee
        or in a group with rights on the device's group
        (``deskside.console.auth.access``: a refusal is recorded there). At most 20
        lines a minute per ticket (429).
        """
        with contextlib.ExitStack() as stack:
            events = stack.enter_context(chat_relay.follow(ticket_id)) if wait else None
            line = await chat.add_line(
                ticket_id, data.text, identity=identity, online=agents.online
            )
            await chat_relay.deliver(line.device_id)
            if events is None:
                return line
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    while True:
                        event = await events.get()
                        if isinstance(event, ChatLineChanged) and event.line.id == line.id:
                            return event.line
        return line

    @get(
        "/tickets/{ticket_id:int}/chat",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def conversation(self, chat: ChatRepository, ticket_id: TicketId) -> list[ChatLineView]:
        """Every line of the ticket's chat, oldest first, with where each one is.
        ``text`` is plain text, exactly as written: escape it to show it."""
        return await chat.conversation(ticket_id)

    @get(
        "/tickets/{ticket_id:int}/chat/stream",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404) | content(200, ChatEvent, "text/event-stream"),
    )
    async def follow(
        self,
        chat: ChatRepository,
        chat_relay: ChatRelay,
        ticket_id: TicketId,
        seconds: Annotated[float, Parameter(ge=0, le=MAX_FOLLOW)] = 600.0,
    ) -> Stream:
        """Server-sent events, one ``line`` (a line as ``GET .../chat`` gives it) for
        every line so far, then one for each new line and each change of a line (its
        delivery), for ``seconds`` (then the stream ends: open another)."""
        events = chat_relay.follow(ticket_id)  # before reading: nothing falls between
        try:
            lines = await chat.conversation(ticket_id)
        except BaseException:
            events.close()
            raise
        stream = _chat_events(lines, events, seconds)
        weakref.finalize(stream, events.close)
        return Stream(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


async def _chat_events(
    lines: list[ChatLineView], events: Subscription, seconds: float
) -> AsyncIterator[bytes]:
    """The lines so far, then the live ones and their changes, until ``seconds`` pass."""
    try:
        for line in lines:
            yield _line_event(line)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                event = await asyncio.wait_for(events.get(), min(15.0, left))
            except TimeoutError:
                yield _KEEP_ALIVE
                continue
            if isinstance(event, ChatLineAdded | ChatLineChanged):
                yield _line_event(event.line)
    finally:
        events.close()
