"""Chat end to end: a real console and a real agent as processes, the chat window on
a real X server (Xvfb), the user's answer typed with xdotool.

The technician writes through the REST API and the CLI; the device goes offline and
comes back in the middle (lines wait, then arrive once and in order, even when the
console sends one again), and the ``[chat]`` policy switches chat off. A screenshot
of the window is kept in ``test-artifacts/`` (ignored by git).
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import simplejpeg

from deskside.agent.chat.policy import ChatPolicy
from deskside.agent.chat.window import TITLE
from deskside.agent.config import load_config, save_config
from tests.agent.conftest import Agent, eventually
from tests.agent.screen.xserver import display, screenshot, xdotool  # noqa: F401 (a fixture)
from tests.consoleproc import ConsoleProcess
from tests.test_end_to_end import enroll

SCOPES = ("tickets:read", "tickets:write", "devices:read")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    process = ConsoleProcess(tmp_path_factory.mktemp("console") / "data")
    process.cli("user", "add", "alice", "--role", "technician")
    with process:
        yield process


@pytest.fixture
async def agent(tmp_path: Path) -> Any:
    the_agent = Agent(tmp_path / "agent")
    try:
        yield the_agent
    finally:
        await the_agent.stop_all()


def online(console: ConsoleProcess, device: str) -> bool:
    lines = console.cli("devices").stdout.splitlines()
    return any(device in line and "  online  " in line for line in lines)


async def call(api: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return await asyncio.to_thread(api.request, method, path, **kwargs)


async def conversation(api: httpx.Client, ticket: int) -> list[dict[str, Any]]:
    response = await call(api, "GET", f"/api/v1/tickets/{ticket}/chat")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def wait_lines(api: httpx.Client, ticket: int, predicate: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    found = await conversation(api, ticket)
    while not predicate(found):
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.2)
        found = await conversation(api, ticket)
    return found


async def stop_daemon(agent: Agent) -> None:
    process = agent.processes[-1]
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), 20)


def history(agent: Agent) -> list[str]:
    """What the agent showed the user, in order (its chat state)."""
    state = json.loads(agent.paths.chat_file.read_text())
    return [item["text"] for item in state["history"] if not item.get("mine")]


async def save_window(display: str, window: str, name: str) -> Path:
    """A JPEG of the window as the X server shows it, in test-artifacts/."""
    geometry = dict(
        line.split("=")
        for line in (await xdotool(display, "getwindowgeometry", "--shell", window)).split()
    )
    x, y = int(geometry["X"]), int(geometry["Y"])
    width, height = int(geometry["WIDTH"]), int(geometry["HEIGHT"])
    screen = await screenshot(display)
    image = screen[y : y + height, x : x + width].copy()
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(simplejpeg.encode_jpeg(image, quality=90, colorspace="RGB"))
    return path


async def test_chat_both_ways_offline_and_back_and_the_policy_switch(
    console: ConsoleProcess, agent: Agent, display: str
) -> None:
    device = await enroll(agent, console)
    await agent.start_daemon(DISPLAY=display)
    await eventually(lambda: online(console, device), 20)
    with console.api(console.api_token(*SCOPES)) as api:
        created = await call(
            api,
            "POST",
            "/api/v1/tickets",
            json={"title": "Outlook hangs", "description": "d", "device_id": device},
        )
        ticket = int(created.json()["id"])
        await call(api, "PATCH", f"/api/v1/tickets/{ticket}", json={"assignee": "alice"})
        chat = f"/api/v1/tickets/{ticket}/chat"

        # The technician writes (the CLI); the window opens and shows it.
        sent = await asyncio.to_thread(
            console.cli, "chat", "--ticket", str(ticket), "--as", "alice", "Is Outlook closed?"
        )
        assert "delivered" in sent.stdout, sent.stdout + sent.stderr
        window = (await xdotool(display, "search", "--sync", "--name", TITLE)).split()[0]
        await asyncio.sleep(0.5)  # drawn

        # The user clicks into the answer box, types and presses Return; the ticket has it.
        shape = await xdotool(display, "getwindowgeometry", "--shell", window)
        height = int(dict(line.split("=") for line in shape.split())["HEIGHT"])
        box = ("100", str(height - 22))  # the answer box: the bottom row's left part
        await xdotool(display, "mousemove", "--window", window, *box, "click", "1")
        await xdotool(display, "type", "--delay", "20", "Yes, <closed> & restarted")
        await xdotool(display, "key", "Return")
        found = await wait_lines(api, ticket, lambda ls: len(ls) == 2)
        shot = await save_window(display, window, "chat-window.jpg")
        assert shot.stat().st_size > 1000
        answer = found[1]
        assert answer["direction"] == "from_user"
        assert answer["text"] == "Yes, <closed> & restarted"  # plain text, as typed
        assert answer["author"] == f"device-user:{getpass.getuser()}"
        timeline = (await call(api, "GET", f"/api/v1/tickets/{ticket}")).json()["timeline"]
        said = [
            (e["data"]["direction"], e["data"]["text"]) for e in timeline if e["kind"] == "chat"
        ]
        assert said == [
            ("to_user", "Is Outlook closed?"),
            ("from_user", "Yes, <closed> & restarted"),
        ]

        # The device goes away; lines wait for it, then arrive once, in order.
        await stop_daemon(agent)
        await eventually(lambda: not online(console, device), 20)
        for text in ("one", "two"):
            response = await call(api, "POST", chat, json={"text": text})
            assert response.json()["status"] == "pending"
        await agent.start_daemon(DISPLAY=display)
        await wait_lines(api, ticket, lambda ls: all(x["status"] != "pending" for x in ls))
        assert history(agent) == ["Is Outlook closed?", "one", "two"]

        # The console sends "two" again (its acknowledgement was lost): not shown twice.
        await stop_daemon(agent)
        await eventually(lambda: not online(console, device), 20)
        with sqlite3.connect(console.data_dir / "deskside.db") as db:
            db.execute("UPDATE chat_lines SET status = 'pending' WHERE text = 'two'")
        await agent.start_daemon(DISPLAY=display)
        await wait_lines(api, ticket, lambda ls: all(x["status"] != "pending" for x in ls))
        assert history(agent) == ["Is Outlook closed?", "one", "two"]

        # The owner switches chat off: the technician is told so.
        await stop_daemon(agent)
        config = load_config(agent.paths)
        assert config is not None
        save_config(agent.paths, dataclasses.replace(config, chat=ChatPolicy(enabled=False)))
        await agent.start_daemon(DISPLAY=display)
        await eventually(lambda: online(console, device), 20)
        refused = await call(api, "POST", chat, params={"wait": 15}, json={"text": "Hello?"})
        assert refused.json()["status"] == "refused"
        assert refused.json()["error"] == "chat is off on this device"
        off = await asyncio.to_thread(
            console.cli,
            "chat",
            "--ticket",
            str(ticket),
            "--as",
            "alice",
            "Still there?",
            check=False,
        )
        assert off.returncode == 1
        assert "chat is off on this device" in off.stdout
        assert history(agent) == ["Is Outlook closed?", "one", "two"]
