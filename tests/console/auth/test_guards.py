"""Who calls (an API token in ``Authorization: Bearer``), and which ``Origin`` is this
console's own: the host a browser sent the request to, or the console's public URL
(behind a proxy that rewrites ``Host``)."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from litestar import Litestar, Request, WebSocket, get, websocket
from litestar.di import Provide
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import AsyncTestClient, TestClient

from deskside.console.auth.guards import (
    authenticated,
    foreign_origin,
    provide_identity,
    refuse_foreign_origin,
    requires,
)
from deskside.console.auth.identity import ApiIdentity, Scope
from deskside.console.db import migrate
from deskside.console.errors import ConsoleError
from deskside.console.store import Store

# What the probe route decided, for each connection: True to go on.
DECIDED: list[bool] = []


@websocket("/ws")
async def probe(socket: WebSocket[Any, Any, Any]) -> None:
    refused = await refuse_foreign_origin(socket)
    DECIDED.append(not refused)
    if refused is not False:
        return
    await socket.accept()
    await socket.send_text("in")
    await socket.close()


def opens(origin: str | None, host: str = "console.example:8443") -> bool | int:
    """True if the WebSocket opened, or the code it was closed with."""
    app = Litestar([probe], debug=False)
    headers = {"host": host} if origin is None else {"host": host, "origin": origin}
    with TestClient(app, base_url=f"http://{host}") as client:
        try:
            with client.websocket_connect("/ws", headers=headers) as ws:
                return ws.receive_text() == "in"
        except WebSocketDisconnect as exc:
            return exc.code


def test_a_foreign_origin_is_closed_before_the_websocket_is_accepted() -> None:
    DECIDED.clear()
    assert opens(None) is True
    assert opens("http://console.example:8443") is True
    assert opens("https://evil.example") == 4403
    assert DECIDED == [True, True, False]


def own(
    origin: str | None,
    host: str,
    scheme: str = "wss",
    public: str = "wss://helpdesk.example.org/agent",
) -> bool:
    """Whether ``origin`` is the console's own, for a request to ``host``."""
    headers = {"host": host} if origin is None else {"host": host, "origin": origin}
    connection = SimpleNamespace(
        headers=headers,
        scope={"scheme": scheme},
        app=SimpleNamespace(state=SimpleNamespace(origins=(public,))),
    )
    return foreign_origin(connection) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "console.example:8443", True),  # a script: no Origin
        ("https://console.example:8443", "console.example:8443", True),
        ("https://CONSOLE.example:8443", "console.example:8443", True),
        ("https://console.example", "console.example", True),
        ("http://console.example", "console.example", False),
        ("https://helpdesk.example.org", "10.0.0.5:8443", True),  # the public URL
        ("https://helpdesk.example.org:443", "10.0.0.5:8443", True),
        ("https://helpdesk.example.org:8443", "10.0.0.5:8443", False),
        ("https://console.example", "console.example:8443", False),
        ("https://evil.example", "console.example:8443", False),
        ("https://console.example:8443.evil.example", "console.example:8443", False),
        ("ftp://console.example:8443", "console.example:8443", False),
        ("null", "console.example:8443", False),
        ("file://", "console.example:8443", False),
        ("https://[::1", "console.example:8443", False),
        ("https://console.example:99999", "console.example:8443", False),
    ],
)
def test_only_the_consoles_own_origins_open_a_websocket(
    origin: str | None, host: str, allowed: bool
) -> None:
    assert own(origin, host) is allowed


def test_without_tls_the_default_port_is_80() -> None:
    assert own("http://console.example:80", "console.example", "ws")
    assert own("http://console.example", "console.example", "ws")
    assert not own("http://console.example:81", "console.example", "ws")
    assert not own("https://console.example", "console.example", "ws")
    plain = "ws://helpdesk.example.org/agent"  # a console behind a proxy that ends TLS
    assert own("http://helpdesk.example.org:80", "10.0.0.5:8443", "ws", plain)
    assert not own("http://helpdesk.example.org:81", "10.0.0.5:8443", "ws", plain)


@get("/who", guards=[authenticated, requires(Scope.TICKETS_READ)])
async def who(identity: ApiIdentity) -> str:
    return identity.actor


@get("/request-who", guards=[authenticated])
async def request_who(request: Request[Any, Any, Any]) -> str:
    return (await provide_identity(request)).actor


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[AsyncTestClient[Litestar], Store]]:
    url = f"sqlite:///{tmp_path / 'deskside.db'}"
    migrate(url)
    store = Store.connect(url)

    def refused(_: Request[Any, Any, Any], exc: ConsoleError) -> Any:
        from litestar import Response

        return Response({"detail": str(exc)}, status_code=exc.status_code)

    app = Litestar(
        [who, request_who],
        dependencies={"identity": Provide(provide_identity)},
        exception_handlers={ConsoleError: refused},
    )
    app.state.store = store
    try:
        async with AsyncTestClient(app) as test_client:
            yield test_client, store
    finally:
        await store.close()


async def test_a_caller_is_who_their_bearer_token_says(
    client: tuple[AsyncTestClient[Litestar], Store],
) -> None:
    api, store = client
    hour = datetime.timedelta(hours=1)
    reader = (await store.accounts.create_api_token("rt", ["tickets:read"], ttl=hour)).token
    writer = (await store.accounts.create_api_token("w", ["tickets:write"], ttl=hour)).token
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Basic {reader}"}):
        response = await api.get("/who", headers=headers)
        assert response.status_code == 401
        assert "send 'Authorization: Bearer <API token>'" in response.text
    response = await api.get("/who", headers={"Authorization": "Bearer dsk_nothing"})
    assert response.status_code == 401
    for path in ("/who", "/request-who"):
        response = await api.get(path, headers={"Authorization": f"bearer  {reader} "})
        assert (response.status_code, response.text) == (200, "api:rt")
    response = await api.get("/who", headers={"Authorization": f"Bearer {writer}"})
    assert response.status_code == 403
    assert "lacks the 'tickets:read' scope" in response.text
