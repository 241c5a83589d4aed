"""uvicorn's protocols, held to the bounds of ``deskside.console.limits``.

uvicorn (0.55, h11) closes an idle connection only after a response: a connection
that finishes its TLS handshake and then sends nothing, or drips its request head
a byte at a time, is held open forever; and its WebSocket protocol buffers a
whole frame of up to ``ws_max_size`` (16 MiB) from a peer that has not
authenticated. These subclasses add what is missing, in the two places that see
every byte; everything else is uvicorn's.

``HttpProtocol`` (h11): from the moment a connection is made, and again after each
response, the whole request head must arrive within ``header_timeout``; a timer
started then is not moved by the bytes that arrive, only stopped by a complete
head. While it waits, the connection holds a place in an ``Admission`` of
``connections`` (``connections_per_address`` from one address); a connection
made beyond it is answered 503 with ``Retry-After`` and closed at once.

``WebSocketProtocol``: a WebSocket may receive at most ``handshake_bytes`` after
its upgrade request until the application says its peer is authenticated; the
connection is aborted beyond that, before the bytes are buffered as a frame. The
application speaks to it through an ASGI extension in the scope,
``scope["extensions"]["deskside.preauth"]``, with two messages::

    {"type": "deskside.preauth.hold"}   before accepting: keep the limit past the
                                        accept (the peer authenticates inside the
                                        WebSocket, as agents do)
    {"type": "deskside.preauth.end"}    the peer is authenticated: lift the limit

A WebSocket whose application does not hold it (authenticated at the upgrade,
as the browser's are) is freed of the limit when it is accepted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import h11
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from .limits import END, EXTENSION, HOLD, Admission, ConnectionLimits, Slot

__all__ = ["HttpProtocol", "WebSocketProtocol", "busy_response", "protocols"]

logger = logging.getLogger(__name__)


def protocols(
    limits: ConnectionLimits,
) -> tuple[type[HttpProtocol], type[WebSocketProtocol]]:
    """The HTTP and WebSocket protocol classes for one server, sharing one admission."""
    admission = Admission(limits.connections, limits.connections_per_address)
    http = type("BoundHttpProtocol", (HttpProtocol,), {"limits": limits, "admission": admission})
    ws = type("BoundWebSocketProtocol", (WebSocketProtocol,), {"limits": limits})
    return http, ws


def busy_response(retry_after: int) -> bytes:
    """A whole HTTP/1.1 503 response asking to come back in ``retry_after`` seconds."""
    body = b"the console is busy; try again later\n"
    return (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Retry-After: %d\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (retry_after, len(body), body)
    )


class HttpProtocol(H11Protocol):
    """uvicorn's h11 protocol with a time limit and a cap on waiting for a request head."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    admission: ClassVar[Admission] = Admission(
        ConnectionLimits.connections, ConnectionLimits.connections_per_address
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Fires when the request head is late; None while no head is awaited.
        self._header_timer: asyncio.TimerHandle | None = None
        # This connection's place among those waiting for a head.
        self._slot: Slot | None = None
        # Set when refused at connection: nothing it sends is read.
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start waiting for the first request head, unless too many wait already."""
        super().connection_made(transport)
        if not self._await_head():
            logger.warning("refused a connection from %s: too many waiting", self._address)
            self._refused = True
            transport.write(busy_response(self.limits.retry_after))
            transport.close()

    def data_received(self, data: bytes) -> None:
        """Hand the bytes to h11; stop the clock once the request head is complete."""
        if self._refused:
            return
        super().data_received(data)
        if self._slot is not None and self.conn.their_state is not h11.IDLE:
            self._head_received()

    def on_response_complete(self) -> None:
        """After each response, the next request head is awaited again, as the first."""
        super().on_response_complete()
        if (
            self._slot is None
            and not self.transport.is_closing()
            and self.conn.their_state is h11.IDLE
            and not self._await_head()
        ):
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """Give the place back."""
        self._head_received()
        super().connection_lost(exc)

    @property
    def _address(self) -> str:
        return self.client[0] if self.client else ""

    def _await_head(self) -> bool:
        """Take a place and start the clock; False when every place is taken."""
        slot = self.admission.enter(self._address)
        if slot is None:
            return False
        self._slot = slot
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)
        return True

    def _head_received(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    def _head_late(self) -> None:
        self._header_timer = None
        logger.info("closed a connection from %s: no request head in time", self._address)
        self._head_received()
        # abort, not close: a peer that does not read would hold a TLS shutdown open.
        self.transport.abort()


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with a byte limit until the peer is authenticated."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bytes the peer may still send before it is authenticated; None: no limit.
        self._allowance: int | None = self.limits.handshake_bytes
        # Set by the application: the limit outlives the accept.
        self._held = False

    def data_received(self, data: bytes) -> None:
        """Count what an unauthenticated peer sends after its upgrade request."""
        if self._allowance is not None and self.handshake_initiated:
            self._allowance -= len(data)
            if self._allowance < 0:
                logger.warning(
                    "closed a WebSocket from %s: more than %d bytes before authenticating",
                    self.client[0] if self.client else "",
                    self.limits.handshake_bytes,
                )
                self.transport.abort()
                return
        super().data_received(data)

    def handle_connect(self, event: Request) -> None:
        """Tell the application about the limit it may hold and lift."""
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = {"bytes": self.limits.handshake_bytes}

    async def send(self, message: ASGISendEvent) -> None:
        """The extension's two messages; any other goes to uvicorn."""
        kind: str = message["type"]
        if kind == HOLD:
            self._held = True
            return
        if kind == END:
            self._allowance = None
            return
        if kind == "websocket.accept" and not self._held:
            self._allowance = None
        await super().send(message)
