"""Commands through a real console process, with an agent channel played by the test.

The agent's own side (policy, consent, processes) is tested in tests/agent; here
the test answers as an agent would, to check what the console records and shows.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import sqlite3
import threading
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from deskside.channel import Channel
from deskside.protocol import crypto
from deskside.protocol import messages as m
from deskside.protocol.enrollment import device_id
from tests.console.test_server import enroll
from tests.consoleproc import ConsoleProcess
from tests.helpers import script

SCOPES = ("tickets:read", "tickets:write", "devices:read", "commands:run", "audit:read")


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
    """An enrolled agent channel that answers commands as the test tells it."""

    def __init__(self, key: bytes, channel: Channel) -> None:
        self.id = device_id(crypto.public_key(key))
        self.channel = channel
        self.requests: asyncio.Queue[m.Message] = asyncio.Queue()
        self.acks: list[str] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.channel:
            if isinstance(message, m.Ack):
                self.acks.append(message.request_id)
            else:
                self.requests.put_nowait(message)

    async def next_request(self) -> m.Message:
        return await asyncio.wait_for(self.requests.get(), 10)

    async def close(self) -> None:
        self._task.cancel()
        await self.channel.close()


@pytest.fixture
async def agent(console: ConsoleProcess) -> AsyncIterator[PlayedAgent]:
    key, channel = await enroll(console, host="finance-3")
    played = PlayedAgent(key, channel)
    await asyncio.sleep(0.2)  # the console records the Hello
    try:
        yield played
    finally:
        await played.close()


def new_ticket(api: httpx.Client, device: str, **fields: object) -> int:
    response = api.post(
        "/api/v1/tickets",
        json={"title": "Slow PC", "description": "d", "device_id": device, **fields},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def post(api: httpx.Client, path: str, **kwargs: object) -> httpx.Response:
    return await asyncio.to_thread(api.post, path, **kwargs)  # type: ignore[arg-type]


async def test_command_output_streams_and_lands_on_the_ticket(
    api: httpx.Client, agent: PlayedAgent
) -> None:
    ticket = new_ticket(api, agent.id)
    response = await post(
        api, f"/api/v1/tickets/{ticket}/commands", json={"argv": ["ping", "-c", "1", "gw"]}
    )
    assert response.status_code == 201, response.text
    command = response.json()
    request = await agent.next_request()
    assert isinstance(request, m.CommandRequest)
    assert (request.command_id, request.argv, request.ticket_id) == (
        command["id"],
        ["ping", "-c", "1", "gw"],
        ticket,
    )
    assert request.requested_by == "api:" + request.requested_by.split(":", 1)[1]
    assert request.reason == f"#{ticket} Slow PC"

    events: list[tuple[str, dict[str, object]]] = []
    first_output = asyncio.Event()

    opened: list[httpx.Response] = []
    stop = threading.Event()

    def follow() -> None:
        with api.stream("GET", f"/api/v1/commands/{command['id']}/stream") as stream:
            opened.append(stream)
            event = ""
            for line in stream.iter_lines():
                if stop.is_set():  # the test failed: a keep-alive (15 s) wakes this
                    return
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((event, json.loads(line.split(":", 1)[1])))
                    if event == "output":
                        loop.call_soon_threadsafe(first_output.set)
                    if event == "exit":
                        return

    loop = asyncio.get_running_loop()
    following = asyncio.create_task(asyncio.to_thread(follow))
    try:
        await agent.channel.send(m.CommandStarted(command_id=command["id"], consent="user"))
        out = m.CommandOutput(
            command_id=command["id"], seq=0, stream=m.OutputStream.STDOUT, data=b"64 bytes\n"
        )
        await agent.channel.send(out)
        await agent.channel.send(out)  # a duplicate after a reconnect: shown once
        await asyncio.wait_for(first_output.wait(), 30)  # output comes before the command ends
        assert not [e for e in events if e[0] == "exit"]
        await agent.channel.send(
            m.CommandOutput(
                command_id=command["id"], seq=1, stream=m.OutputStream.STDERR, data=b"warn\n"
            )
        )
        await agent.channel.send(
            m.CommandExit(command_id=command["id"], exit_code=0, duration=1.25)
        )
        await asyncio.wait_for(following, 30)
    finally:
        # A failure above must not leave the reader's thread blocked on the open stream:
        # the event loop waits for its threads when it closes, and the run would hang.
        if not following.done():
            stop.set()
            for stream in opened:
                stream.close()
    outputs = [base64.b64decode(str(data["data"])) for kind, data in events if kind == "output"]
    assert outputs == [b"64 bytes\n", b"warn\n"]
    assert events[-1][0] == "exit"
    assert events[-1][1]["status"] == "finished"
    assert await _eventually(lambda: command["id"] in agent.acks)  # the agent may forget it

    view = api.get(f"/api/v1/commands/{command['id']}").json()
    assert (view["status"], view["exit_code"], view["consent"]) == ("finished", 0, "user")
    timeline = api.get(f"/api/v1/tickets/{ticket}").json()["timeline"]
    kinds = [event["kind"] for event in timeline]
    assert kinds[-2:] == ["command", "command_result"]
    assert timeline[-1]["data"]["output_tail"] == "64 bytes\nwarn\n"
    actions = [entry["action"] for entry in api.get("/api/v1/audit", params={"limit": 5}).json()]
    assert actions[:3] == ["command.finished", "command.consented", "command.requested"]


async def _eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_start_is_recorded_on_its_own_when_no_exit_follows(
    api: httpx.Client, agent: PlayedAgent, console: ConsoleProcess
) -> None:
    ticket = new_ticket(api, agent.id)
    command = (
        await post(api, f"/api/v1/tickets/{ticket}/commands", json={"argv": ["sleep", "600"]})
    ).json()
    await agent.next_request()
    other = await enroll(console, host="intruder")  # not this command's device
    await other[1].send(m.CommandStarted(command_id=command["id"], consent="policy"))
    await agent.channel.send(m.CommandStarted(command_id=command["id"], consent="user"))

    def view() -> dict[str, object]:
        return api.get(f"/api/v1/commands/{command['id']}").json()  # type: ignore[no-any-return]

    assert await _eventually(lambda: view()["status"] == "running")
    assert view()["consent"] == "user"
    await other[1].close()
    await agent.channel.send(m.CommandExit(command_id=command["id"], exit_code=0, duration=9.0))
    assert await _eventually(lambda: view()["status"] == "finished")
    assert view()["consent"] == "user"


async def test_refusal_by_the_agent_is_recorded(api: httpx.Client, agent: PlayedAgent) -> None:
    ticket = new_ticket(api, agent.id)
    command = (
        await post(api, f"/api/v1/tickets/{ticket}/commands", json={"argv": ["rm", "-rf", "/"]})
    ).json()
    await agent.next_request()
    await agent.channel.send(
        m.CommandExit(
            command_id=command["id"], exit_code=None, duration=0.0, refused=True,
            error="not allowed by this device's policy",
        )
    )  # fmt: skip
    assert await _eventually(
        lambda: api.get(f"/api/v1/commands/{command['id']}").json()["status"] == "refused"
    )
    last = api.get(f"/api/v1/tickets/{ticket}").json()["timeline"][-1]
    assert last["data"]["error"] == "not allowed by this device's policy"


async def test_a_named_script_of_the_device_is_requested_with_its_arguments(
    api: httpx.Client, agent: PlayedAgent
) -> None:
    ticket = new_ticket(api, agent.id)
    path = f"/api/v1/tickets/{ticket}/commands"
    for body, detail in (
        ({"argv": []}, "argv is empty"),
        ({"argv": [], "script": "a b"}, "script"),
        ({"argv": [], "script": "flush-dns", "shell": True}, "not run through a shell"),
    ):
        refused = await post(api, path, json=body)
        assert refused.status_code == 400, refused.text
        assert detail in refused.text
    response = await post(api, path, json={"argv": [], "script": "flush-dns"})
    assert response.status_code == 201, response.text
    assert response.json()["script"] == "flush-dns"
    request = await agent.next_request()
    assert isinstance(request, m.CommandRequest)
    assert (request.script, request.argv) == ("flush-dns", [])
    with_args = (await post(api, path, json={"argv": ["-v"], "script": "flush-dns"})).json()
    request = await agent.next_request()
    assert isinstance(request, m.CommandRequest)
    assert (request.command_id, request.script, request.argv) == (
        with_args["id"],
        "flush-dns",
        ["-v"],
    )
    timeline = api.get(f"/api/v1/tickets/{ticket}").json()["timeline"]
    assert [e["data"].get("script") for e in timeline if e["kind"] == "command"] == [
        "flush-dns",
        "flush-dns",
    ]


async def test_closed_tickets_rights_scopes_and_offline_devices(
    api: httpx.Client, agent: PlayedAgent, console: ConsoleProcess
) -> None:
    closed = new_ticket(api, agent.id)
    api.patch(f"/api/v1/tickets/{closed}", json={"status": "closed"})
    response = await post(api, f"/api/v1/tickets/{closed}/commands", json={"argv": ["id"]})
    assert response.status_code == 409
    assert "closed" in response.json()["detail"]
    assert api.get(f"/api/v1/tickets/{closed}").json()["timeline"][-1]["kind"] == "command_refused"

    ticket = new_ticket(api, agent.id)
    api.patch(f"/api/v1/tickets/{ticket}", json={"assignee": "alice"})
    as_bob = console.cli("run", "--ticket", str(ticket), "--as", "bob", "--", "id", check=False)
    assert as_bob.returncode == 1
    assert "bob may not act on ticket" in as_bob.stderr
    with console.api(console.api_token("tickets:read")) as reader:
        response = reader.post(f"/api/v1/tickets/{ticket}/commands", json={"argv": ["id"]})
        assert response.status_code == 403
    audit = api.get("/api/v1/audit", params={"limit": 10}).json()
    refusals = [e for e in audit if e["action"] == "command.refused"]
    assert any("bob may not act" in str(e["data"]["reason"]) for e in refusals)
    assert any(e["actor"] == "user:bob" for e in refusals)

    offline = new_ticket(api, agent.id)
    await agent.close()
    await asyncio.sleep(0.3)
    response = await post(api, f"/api/v1/tickets/{offline}/commands", json={"argv": ["id"]})
    assert response.status_code == 409
    assert "not connected" in response.json()["detail"]
    assert agent.requests.empty()  # nothing was sent to the device


async def test_cli_run_streams_output_and_exits_with_the_code(
    api: httpx.Client, agent: PlayedAgent, console: ConsoleProcess
) -> None:
    ticket = new_ticket(api, agent.id)
    api.patch(f"/api/v1/tickets/{ticket}", json={"assignee": "alice"})
    process = await asyncio.create_subprocess_exec(
        script("deskside-console"), "--data-dir", str(console.data_dir),
        "run", "--ticket", str(ticket), "--as", "alice", "--timeout", "30",
        "--", "systemctl", "status",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    request = await agent.next_request()
    assert isinstance(request, m.CommandRequest)
    assert request.requested_by == "user:alice"
    assert request.timeout == 30.0
    await agent.channel.send(m.CommandStarted(command_id=request.command_id, consent="policy"))
    await agent.channel.send(
        m.CommandOutput(
            command_id=request.command_id,
            seq=0,
            stream=m.OutputStream.STDOUT,
            data=b"cups.service failed\n",
        )
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 10)
    assert line == b"cups.service failed\n"  # before the command ended
    await agent.channel.send(
        m.CommandExit(command_id=request.command_id, exit_code=3, duration=0.4)
    )
    await asyncio.wait_for(process.wait(), 20)
    assert process.returncode == 3
    view = api.get(f"/api/v1/commands/{request.command_id}").json()
    assert view["requested_by"] == "user:alice"


def test_run_needs_a_technician(console: ConsoleProcess) -> None:
    result = console.cli("run", "--ticket", "1", "--as", "mallory", "--", "id", check=False)
    assert result.returncode == 2
    assert "no technician named 'mallory'" in result.stderr


def test_audit_verify_detects_edits_and_deletions(tmp_path: Path) -> None:
    console = ConsoleProcess(tmp_path / "data")
    console.cli("user", "add", "carol")
    console.cli("token", "create")
    console.cli("apitoken", "create", "rt", "--scope", "tickets:read")
    good = console.cli("audit", "verify")
    assert good.stdout.startswith("3 entries, chain intact")
    listed = console.cli("audit").stdout
    assert "user.added" in listed
    assert "apitoken.created" in listed

    database = console.data_dir / "deskside.db"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE id = 2")
    edited = console.cli("audit", "verify", check=False)
    assert edited.returncode == 1
    assert "entry 2 was changed" in edited.stderr
    with sqlite3.connect(database) as db:
        db.execute("UPDATE audit_log SET actor = 'cli' WHERE id = 2")
    assert console.cli("audit", "verify").returncode == 0
    with sqlite3.connect(database) as db:
        db.execute("DELETE FROM audit_log WHERE id = 2")
    deleted = console.cli("audit", "verify", check=False)
    assert deleted.returncode == 1
    assert "entry 2 is missing" in deleted.stderr


# -- Terminals --------------------------------------------------------------------------------


async def test_terminal_is_relayed_recorded_and_replayable(
    api: httpx.Client, agent: PlayedAgent, console: ConsoleProcess
) -> None:
    ticket = new_ticket(api, agent.id, title="Printer queue stuck")
    api.patch(f"/api/v1/tickets/{ticket}", json={"assignee": "alice"})
    process = await asyncio.create_subprocess_exec(
        script("deskside-console"), "--data-dir", str(console.data_dir),
        "shell", "--ticket", str(ticket), "--as", "alice",
        stdin=PIPE, stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    assert process.stdin is not None
    assert process.stdout is not None
    opened = await agent.next_request()
    assert isinstance(opened, m.ShellOpen)
    assert (opened.ticket_id, opened.requested_by) == (ticket, "user:alice")
    assert opened.reason == f"#{ticket} Printer queue stuck"
    assert api.get(f"/api/v1/shells/{opened.session_id}").json()["consent"] == ""
    await agent.channel.send(m.ShellStarted(session_id=opened.session_id, consent="user"))
    await agent.channel.send(m.ShellData(session_id=opened.session_id, seq=0, data=b"$ "))
    assert await asyncio.wait_for(process.stdout.readexactly(2), 10) == b"$ "
    process.stdin.write(b"echo h\xc3\xa9llo\n")
    await process.stdin.drain()
    typed = await agent.next_request()
    assert isinstance(typed, m.ShellData)
    assert (typed.seq, typed.data) == (0, b"echo h\xc3\xa9llo\n")
    await agent.channel.send(
        m.ShellData(session_id=opened.session_id, seq=1, data=b"h\xc3\xa9llo\r\n$ ")
    )
    assert await asyncio.wait_for(process.stdout.readexactly(10), 10) == b"h\xc3\xa9llo\r\n$ "
    await agent.channel.send(m.ShellClosed(session_id=opened.session_id, exit_code=0))
    assert await asyncio.wait_for(process.wait(), 10) == 0

    assert api.get(f"/api/v1/terminals/{opened.session_id}").json()["consent"] == "user"
    # The paths' and commands' names before "terminal" still work.
    assert api.get(f"/api/v1/shells/{opened.session_id}").json()["consent"] == "user"
    shown = console.cli("ticket", "show", str(ticket)).stdout
    assert f"terminal opened (session {opened.session_id})" in shown
    assert "terminal started, allowed by user" in shown
    assert "terminal closed, exit 0" in shown
    cast = console.cli("terminal-replay", opened.session_id, "--cast").stdout.splitlines()
    header = json.loads(cast[0])
    assert header["version"] == 2
    events = [json.loads(line) for line in cast[1:]]
    assert [(kind, data) for _, kind, data in events] == [
        ("o", "$ "),
        ("i", "echo héllo\n"),
        ("o", "héllo\r\n$ "),
    ]
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(events))
    played = console.cli("shell-replay", opened.session_id, "--speed", "100").stdout
    assert played == "$ héllo\n$ "  # read in text mode: the terminal's \r\n comes out as \n


async def test_terminal_refused_on_the_device(
    api: httpx.Client, agent: PlayedAgent, console: ConsoleProcess
) -> None:
    ticket = new_ticket(api, agent.id)
    process = await asyncio.create_subprocess_exec(
        script("deskside-console"), "--data-dir", str(console.data_dir),
        "terminal", "--ticket", str(ticket), "--as", "admin",
        stdin=PIPE, stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    opened = await agent.next_request()
    assert isinstance(opened, m.ShellOpen)
    await agent.channel.send(
        m.ShellClosed(session_id=opened.session_id, refused=True, error="denied by the user")
    )
    assert await asyncio.wait_for(process.wait(), 10) == 126
    assert process.stderr is not None
    assert b"denied by the user" in await process.stderr.read()
    last = api.get(f"/api/v1/tickets/{ticket}").json()["timeline"][-1]
    assert (last["kind"], last["data"]["status"]) == ("shell_closed", "refused")


async def test_terminal_resize_and_refusals_over_the_websocket(
    api: httpx.Client, agent: PlayedAgent, console: ConsoleProcess
) -> None:
    from websockets.asyncio.client import connect as ws_connect

    ticket = new_ticket(api, agent.id)
    token = console.api_token("commands:run", "tickets:read")
    url = f"wss://127.0.0.1:{console.port}/api/v1/tickets/{ticket}/terminal?cols=100&rows=30"
    async with ws_connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, ssl=console.ssl_context()
    ) as websocket:
        assert json.loads(await websocket.recv())["type"] == "opened"
        opened = await agent.next_request()
        assert isinstance(opened, m.ShellOpen)
        assert (opened.cols, opened.rows) == (100, 30)
        await websocket.send(json.dumps({"type": "resize", "cols": 132, "rows": 43}))
        resize = await agent.next_request()
        assert resize == m.ShellResize(session_id=opened.session_id, cols=132, rows=43)
    closed = await agent.next_request()  # the technician left: the device is told
    assert isinstance(closed, m.ShellClosed)
    reader = console.api_token("tickets:read")
    async with ws_connect(
        url, additional_headers={"Authorization": f"Bearer {reader}"}, ssl=console.ssl_context()
    ) as websocket:
        refusal = json.loads(await websocket.recv())
    assert (refusal["type"], refusal["status"]) == ("error", 403)
    assert "commands:run" in refusal["detail"]


async def post_waiting(
    api: httpx.Client, agent: PlayedAgent, argv: list[str], *, wait: float
) -> tuple[int, asyncio.Task[httpx.Response], m.CommandRequest]:
    """(ticket, the POST with ``wait`` on its way, the request the agent got)."""
    ticket = new_ticket(api, agent.id)
    posting = asyncio.create_task(
        post(
            api,
            f"/api/v1/tickets/{ticket}/commands",
            params={"wait": wait},
            json={"argv": argv},
        )
    )
    request = await agent.next_request()
    assert isinstance(request, m.CommandRequest)
    return ticket, posting, request


async def test_a_post_with_wait_answers_with_the_recorded_result(
    api: httpx.Client, agent: PlayedAgent
) -> None:
    ticket, posting, request = await post_waiting(api, agent, ["hostname"], wait=10)
    await asyncio.sleep(0.2)
    assert not posting.done()  # it waits for the end
    await agent.channel.send(
        m.CommandOutput(
            command_id=request.command_id, seq=0, stream=m.OutputStream.STDOUT, data=b"pc-7\n"
        )
    )
    await agent.channel.send(
        m.CommandExit(command_id=request.command_id, exit_code=3, duration=0.5)
    )
    response = await asyncio.wait_for(posting, 10)
    assert response.status_code == 201, response.text
    answered = response.json()
    assert answered["id"] == request.command_id
    assert (answered["status"], answered["exit_code"], answered["output_bytes"]) == (
        "finished",
        3,
        5,
    )
    # Recorded before it was answered: a read right after finds the same.
    assert api.get(f"/api/v1/commands/{request.command_id}").json() == answered
    kinds = [e["kind"] for e in api.get(f"/api/v1/tickets/{ticket}").json()["timeline"]]
    assert kinds[-1] == "command_result"


async def test_a_post_whose_wait_runs_out_answers_with_the_command_running(
    api: httpx.Client, agent: PlayedAgent
) -> None:
    _, posting, request = await post_waiting(api, agent, ["sleep", "60"], wait=0.5)
    await agent.channel.send(m.CommandStarted(command_id=request.command_id, consent="policy"))
    response = await asyncio.wait_for(posting, 10)
    assert response.status_code == 201, response.text
    assert response.json()["finished_at"] is None
    assert response.json()["status"] in ("pending", "running")
    await agent.channel.send(m.CommandExit(command_id=request.command_id, exit_code=0, duration=1))
    assert await _eventually(
        lambda: api.get(f"/api/v1/commands/{request.command_id}").json()["status"] == "finished"
    )


@pytest.mark.parametrize("wait", ["-1", "301", "soon"])
def test_a_bad_wait_is_refused(api: httpx.Client, wait: str) -> None:
    response = api.post(
        "/api/v1/tickets/1/commands", params={"wait": wait}, json={"argv": ["true"]}
    )
    assert response.status_code == 400, response.text
