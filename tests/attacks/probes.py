"""What the probes share: tickets set up through the API, WebSockets opened as a
browser or a script would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from deskside.protocol import messages as m
from tests.console.commands.test_routes import PlayedAgent
from tests.consoleproc import ConsoleProcess


def ticket(admin: httpx.Client, device: str | None, assignee: str) -> int:
    """A new ticket (of ``device``, if not None) assigned to ``assignee``."""
    fields = {"title": "Slow PC", "description": "d"}
    if device is not None:
        fields["device_id"] = device
    created = admin.post("/api/v1/tickets", json=fields)
    assert created.status_code == 201, created.text
    number = int(created.json()["id"])
    assigned = admin.patch(f"/api/v1/tickets/{number}", json={"assignee": assignee})
    assert assigned.status_code == 200, assigned.text
    return number


def timeline(admin: httpx.Client, number: int) -> list[dict[str, Any]]:
    response = admin.get(f"/api/v1/tickets/{number}")
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["timeline"]
    return entries


def socket(
    console: ConsoleProcess, path: str, *, token: str | None = None, origin: str | None = None
) -> Any:
    """A WebSocket to ``path``: with the token as a header (a script), and an
    ``Origin`` (a browser's page)."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return connect(
        f"wss://127.0.0.1:{console.port}{path}",
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
        ssl=console.ssl_context(),
        open_timeout=10,
    )


async def first_message(websocket: ClientConnection, token: str | None = None) -> dict[str, Any]:
    """The first text message, after sending ``token`` as the screen's first message."""
    if token is not None:
        await websocket.send(json.dumps({"type": "auth", "token": token}))
    message: dict[str, Any] = json.loads(await websocket.recv(decode=True))
    return message


async def refusal(console: ConsoleProcess, path: str, token: str) -> dict[str, Any]:
    """The error a WebSocket answers with, the token sent as a header."""
    async with socket(console, path, token=token) as websocket:
        return await first_message(websocket)


async def quiet(agent: PlayedAgent) -> list[m.Message]:
    """What reached the agent in a moment (nothing, when all was refused)."""
    await asyncio.sleep(0.3)
    got = []
    while not agent.requests.empty():
        got.append(agent.requests.get_nowait())
    return got
