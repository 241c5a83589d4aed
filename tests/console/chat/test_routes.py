"""The chat through a real console process, with an agent channel played by the test.

The agent's own side (its window, its policy, its memory of what it showed) is
tested end to end in tests/test_chat.py; here the test answers as an agent would, to
check what the console sends, keeps, shows and refuses.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from deskside.channel import Channel, connect
from deskside.protocol import crypto
from deskside.protocol import messages as m
from deskside.protocol.enrollment import Enrollment, device_id, parse_enrollment
from tests.consoleproc import ConsoleProcess

SCOPES = ("tickets:read", "tickets:write", "devices:read", "audit:read")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    process = ConsoleProcess(tmp_path_factory.mktemp("console") / "data")
    process.cli("user", "add", "alice", "--role", "technician")
    process.cli("user", "add", "bob", "--role", "technician")
    with process:
        yield process


@pytest.fixture(scope="module")
def api(console: ConsoleProcess) -> Iterator[httpx.Client]:
    with console.api(console.api_token(*SCOPES)) as client:
        yield client


class PlayedAgent:
    """An enrolled device whose channel the test opens, reads and closes."""

    def __init__(self, console: ConsoleProcess) -> None:
        self.enrollment: Enrollment = parse_enrollment(console.enrollment())
        self.key = crypto.generate_private_key()
        self.id = device_id(crypto.public_key(self.key))
        self.channel: Channel | None = None
        self.received: asyncio.Queue[m.Message] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._token: str | None = self.enrollment.token

    async def connect(self) -> None:
        """Open a channel (enrolling the key the first time) and say Hello."""
        self.channel = await connect(
            self.enrollment.url,
            self.key,
            self.enrollment.console_key,
            enrollment_token=self._token,
            tls_fingerprint=self.enrollment.tls_fingerprint,
        )
        self._token = None
        self._reader = asyncio.create_task(self._read(self.channel))
        await self.channel.send(
            m.Hello(agent_version="test", os=m.OsInfo(family=m.OsFamily.LINUX, name="Debian"))
        )

    async def _read(self, channel: Channel) -> None:
        async for message in channel:
            self.received.put_nowait(message)

    async def next(self, kind: type[Any], timeout: float = 10.0) -> Any:
        """The next message of ``kind`` from the console (others are dropped)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.received.get()
                if isinstance(message, kind):
                    return message

    async def send(self, message: m.Message) -> None:
        assert self.channel is not None
        await self.channel.send(message)

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.channel is not None:
            await self.channel.close()
        self.channel = None


@pytest.fixture
async def agent(console: ConsoleProcess) -> AsyncIterator[PlayedAgent]:
    played = PlayedAgent(console)
    await played.connect()
    try:
        yield played
    finally:
        await played.disconnect()


def new_ticket(api: httpx.Client, device: str, **fields: object) -> int:
    response = api.post(
        "/api/v1/tickets",
        json={"title": "Outlook hangs", "description": "d", "device_id": device, **fields},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def post(api: httpx.Client, path: str, **kwargs: Any) -> httpx.Response:
    return await asyncio.to_thread(api.post, path, **kwargs)


async def lines(api: httpx.Client, ticket: int) -> list[dict[str, Any]]:
    response = await asyncio.to_thread(api.get, f"/api/v1/tickets/{ticket}/chat")
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def until(api: httpx.Client, ticket: int, predicate: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        found = await lines(api, ticket)
        if predicate(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


def chat_entries(api: httpx.Client, ticket: int) -> list[dict[str, Any]]:
    timeline = api.get(f"/api/v1/tickets/{ticket}").json()["timeline"]
    return [e for e in timeline if e["kind"] in ("chat", "chat_refused")]


async def test_a_line_reaches_the_user_and_the_answer_the_ticket(
    api: httpx.Client, agent: PlayedAgent
) -> None:
    ticket = new_ticket(api, agent.id)
    text = "Please close Outlook.\n<b>Then</b> open it again & tell me."
    response = await post(api, f"/api/v1/tickets/{ticket}/chat", json={"text": text})
    assert response.status_code == 201, response.text
    sent = response.json()
    assert sent["status"] in ("pending", "delivered")
    line = await agent.next(m.ChatMessage)
    assert (line.seq, line.ticket_id, line.text) == (sent["seq"], ticket, text)
    assert line.sender.startswith("api:")
    await agent.send(m.ChatDelivered(seq=line.seq))
    found = await until(api, ticket, lambda ls: ls[0]["status"] == "delivered")
    assert found[0]["status"] == "delivered"
    assert found[0]["text"] == text  # plain text, exactly as written: nothing escaped

    reply = m.ChatReply(
        reply_id="r-1", ticket_id=ticket, text="Done, it works", sent_at=time.time(), user="eve"
    )
    await agent.send(reply)
    assert (await agent.next(m.ChatAck)).reply_id == "r-1"
    await agent.send(reply)  # sent again after a lost acknowledgement
    assert (await agent.next(m.ChatAck)).reply_id == "r-1"
    found = await until(api, ticket, lambda ls: len(ls) >= 2)
    assert [(x["direction"], x["author"], x["text"]) for x in found] == [
        ("to_user", sent["author"], text),
        ("from_user", "device-user:eve", "Done, it works"),
    ]
    entries = chat_entries(api, ticket)
    assert [(e["data"]["direction"], e["data"]["text"], e["actor"]) for e in entries] == [
        ("to_user", text, sent["author"]),
        ("from_user", "Done, it works", "device-user:eve"),
    ]


async def test_the_stream_gives_the_lines_so_far_then_the_new_ones(
    api: httpx.Client, agent: PlayedAgent
) -> None:
    ticket = new_ticket(api, agent.id)
    await post(api, f"/api/v1/tickets/{ticket}/chat", json={"text": "first"})
    seen: list[dict[str, Any]] = []

    def follow() -> None:
        params = {"seconds": 5}
        with api.stream("GET", f"/api/v1/tickets/{ticket}/chat/stream", params=params) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            for text in r.iter_lines():
                if text.startswith("data: "):
                    seen.append(json.loads(text[6:]))
                if len(seen) == 3:
                    return

    reader = asyncio.create_task(asyncio.to_thread(follow))
    first = await agent.next(m.ChatMessage)
    await asyncio.sleep(0.3)
    await agent.send(m.ChatDelivered(seq=first.seq))
    await agent.send(m.ChatReply(reply_id="s-1", ticket_id=ticket, text="hi", sent_at=1.0))
    await asyncio.wait_for(reader, 10)
    assert [(x["text"], x["status"]) for x in seen] == [
        ("first", "pending"),
        ("first", "delivered"),
        ("hi", "received"),
    ]


async def test_lines_for_an_offline_device_wait_and_arrive_once_in_order(
    api: httpx.Client, agent: PlayedAgent
) -> None:
    ticket = new_ticket(api, agent.id)
    await agent.disconnect()
    await asyncio.sleep(0.3)
    for text in ("one", "two", "three"):
        response = await post(api, f"/api/v1/tickets/{ticket}/chat", json={"text": text})
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "pending"

    await agent.connect()
    got = [await agent.next(m.ChatMessage) for _ in range(3)]
    assert [x.text for x in got] == ["one", "two", "three"]
    assert [x.seq for x in got] == sorted(x.seq for x in got)
    await agent.send(m.ChatDelivered(seq=got[0].seq))

    # Gone before acknowledging the rest: they come again, and only they.
    await until(api, ticket, lambda ls: ls[0]["status"] == "delivered")
    await agent.disconnect()
    await asyncio.sleep(0.3)
    await agent.connect()
    again = [await agent.next(m.ChatMessage) for _ in range(2)]
    assert [x.text for x in again] == ["two", "three"]
    for line in again:
        await agent.send(m.ChatDelivered(seq=line.seq))
    await until(api, ticket, lambda ls: all(x["status"] == "delivered" for x in ls))

    # Everything acknowledged: a reconnect brings nothing more.
    await agent.disconnect()
    await asyncio.sleep(0.3)
    await agent.connect()
    with pytest.raises(TimeoutError):
        await agent.next(m.ChatMessage, timeout=1.5)


async def test_chat_off_on_the_device_is_what_the_technician_sees(
    api: httpx.Client, agent: PlayedAgent
) -> None:
    ticket = new_ticket(api, agent.id)

    async def refuse() -> None:
        line = await agent.next(m.ChatMessage)
        await agent.send(
            m.ChatDelivered(seq=line.seq, refused=True, error="chat is off on this device")
        )

    refuser = asyncio.create_task(refuse())
    response = await post(
        api, f"/api/v1/tickets/{ticket}/chat", params={"wait": 10}, json={"text": "hello?"}
    )
    await refuser
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "refused"
    assert response.json()["error"] == "chat is off on this device"


async def test_who_may_write_and_what(
    api: httpx.Client, agent: PlayedAgent, console: ConsoleProcess
) -> None:
    ticket = new_ticket(api, agent.id)
    api.patch(f"/api/v1/tickets/{ticket}", json={"assignee": "alice"})
    as_bob = await asyncio.to_thread(
        console.cli, "chat", "--ticket", str(ticket), "--as", "bob", "hi", check=False
    )
    assert as_bob.returncode == 1
    assert "bob may not act on ticket" in as_bob.stderr
    entries = chat_entries(api, ticket)
    assert [(e["kind"], e["actor"]) for e in entries] == [("chat_refused", "user:bob")]
    assert "bob may not act" in entries[0]["data"]["reason"]
    audit = api.get("/api/v1/audit", params={"limit": 10}).json()
    assert any(e["action"] == "chat.refused" and e["actor"] == "user:bob" for e in audit)

    with console.api(console.api_token("tickets:read")) as reader:
        refused = reader.post(f"/api/v1/tickets/{ticket}/chat", json={"text": "hi"})
        assert refused.status_code == 403
        assert "tickets:write" in refused.json()["detail"]

    for body in (
        {"text": ""},
        {"text": "x" * (m.CHAT_TEXT_MAX + 1)},
        {"text": "\x1b]0;owned\x07"},
        {"text": "a\rb"},
        {"text": "hi", "html": True},
        {},
    ):
        response = await post(api, f"/api/v1/tickets/{ticket}/chat", json=body)
        assert response.status_code == 400, (body, response.text)
    assert (await post(api, "/api/v1/tickets/999999/chat", json={"text": "x"})).status_code == 404
    closed = new_ticket(api, agent.id)
    api.patch(f"/api/v1/tickets/{closed}", json={"status": "closed"})
    response = await post(api, f"/api/v1/tickets/{closed}/chat", json={"text": "x"})
    assert response.status_code == 409
    assert [x["direction"] for x in await lines(api, ticket)] == []  # nothing kept

    as_alice = await asyncio.to_thread(
        console.cli, "chat", "--ticket", str(ticket), "--as", "alice", "Restarting", check=False
    )
    line = await agent.next(m.ChatMessage)
    assert (line.text, line.sender) == ("Restarting", "user:alice")
    assert as_alice.returncode == 0, as_alice.stderr
    assert "line " in as_alice.stdout  # delivered or queued: nobody acknowledged it yet


async def test_a_ticket_takes_twenty_lines_a_minute(api: httpx.Client, agent: PlayedAgent) -> None:
    ticket = new_ticket(api, agent.id)
    codes = [
        (await post(api, f"/api/v1/tickets/{ticket}/chat", json={"text": f"{n}"})).status_code
        for n in range(21)
    ]
    assert codes == [201] * 20 + [429]
    assert [e["kind"] for e in chat_entries(api, ticket)][-1] == "chat_refused"


async def test_an_answer_for_a_ticket_of_another_device_is_refused(
    api: httpx.Client, agent: PlayedAgent, console: ConsoleProcess
) -> None:
    other = PlayedAgent(console)
    await other.connect()
    try:
        theirs = new_ticket(api, other.id)
    finally:
        await other.disconnect()
    await agent.send(m.ChatReply(reply_id="x-1", ticket_id=theirs, text="hi", sent_at=1.0))
    error = await agent.next(m.Error)
    assert (error.code, error.request_id) == (m.ErrorCode.NOT_FOUND, "x-1")
    assert await lines(api, theirs) == []


async def test_the_interactive_cli_sends_lines_and_prints_the_answers(
    api: httpx.Client, agent: PlayedAgent, console: ConsoleProcess
) -> None:
    ticket = new_ticket(api, agent.id)
    api.patch(f"/api/v1/tickets/{ticket}", json={"assignee": "alice"})
    process = await asyncio.create_subprocess_exec(
        console.command,
        "--data-dir",
        str(console.data_dir),
        "chat",
        "--ticket",
        str(ticket),
        "--as",
        "alice",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        banner = await asyncio.wait_for(process.stdout.readline(), 20)
        assert f"chat on ticket #{ticket}" in banner.decode()
        process.stdin.write(b"Can you see the printer?\n")
        await process.stdin.drain()
        line = await agent.next(m.ChatMessage)
        assert (line.text, line.sender) == ("Can you see the printer?", "user:alice")
        await agent.send(
            m.ChatReply(reply_id="i-1", ticket_id=ticket, text="No, it is gone", sent_at=1.0)
        )
        printed = b""
        async with asyncio.timeout(15):
            while b"No, it is gone" not in printed:
                printed += await process.stdout.readline()
        assert b"Can you see the printer?" in printed  # the technician's own line too
        assert b"user: No, it is gone" in printed
        process.stdin.close()
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
