"""Which ``Origin`` is this console's own: the host a browser sent the request to, or
the console's public URL (behind a proxy that rewrites ``Host``)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from deskside.console.auth.guards import refuse_foreign_origin


@websocket("/ws")
async def probe(socket: WebSocket[Any, Any, Any]) -> None:
    if await refuse_foreign_origin(socket):
        return
    await socket.accept()
    await socket.send_text("in")
    await socket.close()


def opens(origin: str | None, host: str = "console.example:8443") -> bool:
    app = Litestar([probe], debug=False)
    app.state.origins = ("wss://helpdesk.example.org/agent",)
    headers = {"host": host} if origin is None else {"host": host, "origin": origin}
    with TestClient(app, base_url="https://console.example:8443") as client:
        try:
            with client.websocket_connect("/ws", headers=headers) as ws:
                return ws.receive_text() == "in"
        except WebSocketDisconnect:
            return False


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "console.example:8443", True),  # a script: no Origin
        ("https://console.example:8443", "console.example:8443", True),
        ("https://CONSOLE.example:8443", "console.example:8443", True),
        ("https://helpdesk.example.org", "10.0.0.5:8443", True),  # the public URL
        ("https://helpdesk.example.org:443", "10.0.0.5:8443", True),
        ("https://helpdesk.example.org:8443", "10.0.0.5:8443", False),
        ("https://console.example", "console.example:8443", False),
        ("https://evil.example", "console.example:8443", False),
        ("https://console.example:8443.evil.example", "console.example:8443", False),
        ("null", "console.example:8443", False),
        ("file://", "console.example:8443", False),
        ("https://[::1", "console.example:8443", False),
        ("https://console.example:99999", "console.example:8443", False),
    ],
)
def test_only_the_consoles_own_origins_open_a_websocket(
    origin: str | None, host: str, allowed: bool
) -> None:
    assert opens(origin, host) is allowed
