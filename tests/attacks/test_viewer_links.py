"""A viewer link grants what it shows and nothing more (issue 12, item 4).

``deskside-console screen --ticket N --as tech-c`` used to print an API token with
``commands:run``: the link that let tech-c watch one screen also ran commands and
opened terminals on every device tech-c could reach, and stayed valid in the
browser's history. Now it is a ``dsv_`` link: one capability on one ticket's screen
session, to be opened within minutes, spent once that session has ended.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx

from deskside.protocol import messages as m
from tests.attacks.probes import first_message, quiet, refusal, socket, ticket
from tests.console.commands.test_routes import PlayedAgent
from tests.consoleproc import ConsoleProcess


def link(console: ConsoleProcess, *options: str) -> str:
    """The token of a viewer link the CLI prints."""
    printed = console.cli("screen", *options).stdout
    found = re.search(r"token=(dsv_[A-Za-z0-9_-]+)", printed)
    assert found, printed
    return found.group(1)


async def screen_request(agent: PlayedAgent, kind: type[m.Message]) -> Any:
    """The next request of ``kind`` that reaches the agent (acks and the like skipped)."""
    while True:
        request = await agent.next_request()
        if isinstance(request, kind):
            return request


async def start(agent: PlayedAgent) -> str:
    """Answer the agent's ``ScreenOpen`` as a user who allowed it; the session."""
    opened = await screen_request(agent, m.ScreenOpen)
    monitor = m.ScreenMonitor(index=1, left=0, top=0, width=640, height=480, primary=True)
    await agent.channel.send(
        m.ScreenStarted(
            session_id=opened.session_id, monitors=[monitor], monitor=1, consent="policy"
        )
    )
    return str(opened.session_id)


async def next_of(websocket: Any, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await websocket.recv(decode=True))
        if message["type"] == kind:
            return message


async def test_a_view_link_views_one_session_and_does_nothing_else(
    console: ConsoleProcess, admin: httpx.Client, agent: PlayedAgent
) -> None:
    number = ticket(admin, agent.id, "tech-c")
    other = ticket(admin, agent.id, "tech-c")
    token = link(console, "--ticket", str(number), "--as", "tech-c")

    # Not an API token: no REST route, no terminal, no other ticket's screen.
    with console.api(token) as holder:
        for method, path, body in (
            ("GET", "/api/v1/tickets", None),
            ("GET", f"/api/v1/tickets/{number}", None),
            ("POST", f"/api/v1/tickets/{number}/commands", {"argv": ["id"]}),
            ("POST", f"/api/v1/tickets/{number}/runbooks/flush-dns", {}),
            ("POST", f"/api/v1/devices/{agent.id}/snapshots", None),
        ):
            response = holder.request(method, path, json=body)
            assert response.status_code == 403, (path, response.text)
    async with socket(console, f"/api/v1/tickets/{number}/terminal", token=token) as websocket:
        assert (await first_message(websocket))["status"] == 403
    answer = await refusal(console, f"/api/v1/tickets/{other}/screen", token)
    assert (answer["status"], answer["detail"]) == (
        403,
        f"this viewer link is for ticket #{number}",
    )

    # Its screen: viewed, but control is refused before it reaches the device.
    async with socket(console, f"/api/v1/tickets/{number}/screen") as viewer:
        await viewer.send(json.dumps({"type": "auth", "token": token}))
        session = await start(agent)
        assert (await next_of(viewer, "started"))["session"] == session
        await viewer.send(json.dumps({"type": "control_request"}))
        assert (await next_of(viewer, "error"))["status"] == 403
        # A second window of the same session may use it while the session lasts.
        async with socket(console, f"/api/v1/tickets/{number}/screen") as second:
            await second.send(json.dumps({"type": "auth", "token": token}))
            assert (await next_of(second, "started"))["session"] == session
    ended = await screen_request(agent, m.ScreenEnded)
    assert ended.session_id == session
    await asyncio.sleep(0.3)
    assert not any(isinstance(r, m.ScreenControlRequest) for r in await quiet(agent))

    # The session has ended: the link is spent.
    answer = await refusal(console, f"/api/v1/tickets/{number}/screen", token)
    assert answer["status"] == 401
    assert "session has ended" in answer["detail"]


async def test_a_control_link_asks_for_control(
    console: ConsoleProcess, admin: httpx.Client, agent: PlayedAgent
) -> None:
    number = ticket(admin, agent.id, "tech-c")
    token = link(console, "--ticket", str(number), "--as", "tech-c", "--control")
    async with socket(console, f"/api/v1/tickets/{number}/screen") as viewer:
        await viewer.send(json.dumps({"type": "auth", "token": token}))
        session = await start(agent)
        await next_of(viewer, "started")
        await viewer.send(json.dumps({"type": "control_request"}))
        asked = await screen_request(agent, m.ScreenControlRequest)
        assert asked.session_id == session


async def test_a_link_expires_and_carries_no_more_rights_than_its_technician(
    console: ConsoleProcess, admin: httpx.Client, agent: PlayedAgent
) -> None:
    number = ticket(admin, agent.id, "tech-c")
    late = link(console, "--ticket", str(number), "--as", "tech-c", "--ttl", "1s")
    await asyncio.sleep(1.5)
    answer = await refusal(console, f"/api/v1/tickets/{number}/screen", late)
    assert (answer["status"], answer["detail"]) == (
        401,
        "this viewer link has expired; ask for a new link",
    )
    # tech-b's link to tech-c's ticket: refused, as tech-b would be.
    borrowed = link(console, "--ticket", str(number), "--as", "tech-b")
    answer = await refusal(console, f"/api/v1/tickets/{number}/screen", borrowed)
    assert answer["status"] == 403
    assert "tech-b may not act on ticket" in answer["detail"]
    too_long = console.cli("screen", "--ticket", str(number), "--ttl", "2h", check=False)
    assert too_long.returncode != 0
    assert "up to an hour" in too_long.stderr
