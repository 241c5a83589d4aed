"""Two console nodes on one PostgreSQL and one Redis, as processes on 127.0.0.1.

An agent (played by the test, as in tests/console/commands) connects to node A; the
technician's API calls go to node A and node B. What node A records reaches a
stream on node B through the Redis event bus; presence is right on both; node A
killed with SIGKILL leaves its device offline on B within seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deskside.channel import connect
from deskside.protocol import messages as m
from deskside.protocol.enrollment import parse_enrollment
from tests.console.commands.test_routes import PlayedAgent, new_ticket
from tests.console.test_server import enroll
from tests.consoleproc import ConsoleProcess
from tests.postgres import create_database
from tests.redisserver import RedisServer

SCOPES = ("tickets:read", "tickets:write", "devices:read", "commands:run")
# Seconds a node's claims outlive it (console.toml [cluster] claim_ttl).
CLAIM_TTL = 2


@pytest.fixture
def nodes(
    tmp_path: Path, postgres_url: str, redis: RedisServer
) -> Iterator[tuple[ConsoleProcess, ConsoleProcess]]:
    env = {"DESKSIDE_REDIS_URL": redis.url}
    a = ConsoleProcess(tmp_path / "a", database_url=create_database(postgres_url), env=env)
    with (a.data_dir / "console.toml").open("a") as config:
        config.write(f"\n[cluster]\nclaim_ttl = {CLAIM_TTL}\n")
    b = a.node(tmp_path / "b")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        for node in (a, b):
            if node.process is not None:
                node.stop()


def online(api: httpx.Client, device: str) -> bool:
    response = api.get(f"/api/v1/devices/{device}")
    assert response.status_code == 200, response.text
    return bool(response.json()["online"])


async def until(predicate: object, timeout: float = 20.0) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    assert callable(predicate)
    began = time.monotonic()
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() - began < timeout, "never happened"
        await asyncio.sleep(0.1)
    return time.monotonic() - began


async def test_what_node_a_records_streams_on_node_b_and_presence_follows_a_kill(
    nodes: tuple[ConsoleProcess, ConsoleProcess],
) -> None:
    a, b = nodes
    key, channel = await enroll(a, host="cluster-pc")
    agent = PlayedAgent(key, channel)
    token = a.api_token(*SCOPES)  # one database: a token works on every node
    with a.api(token) as api_a, b.api(token) as api_b:
        await until(lambda: online(api_b, agent.id))
        await stream_on_b(api_a, api_b, agent, b"cluster-pc\n")

        # Node A dies without a word: B shows the device offline once A's claims expire.
        assert online(api_b, agent.id)
        a.stop(signal.SIGKILL)
        await agent.close()
        took = await until(lambda: not online(api_b, agent.id), timeout=CLAIM_TTL + 15)
        print(f"offline on node B {took:.1f} s after node A was killed")


async def stream_on_b(
    api_a: httpx.Client, api_b: httpx.Client, agent: PlayedAgent, output: bytes
) -> None:
    """A command asked of node A (which holds the agent), followed on node B."""
    ticket = new_ticket(api_a, agent.id)
    created = api_a.post(f"/api/v1/tickets/{ticket}/commands", json={"argv": ["hostname"]})
    assert created.status_code == 201, created.text
    command = created.json()["id"]
    request = await agent.next_request()
    assert isinstance(request, m.CommandRequest)

    # A stream of the command on node B, which holds neither the agent nor the call.
    events: list[tuple[str, dict[str, object]]] = []
    subscribed, first_output = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def follow() -> None:
        with api_b.stream("GET", f"/api/v1/commands/{command}/stream") as stream:
            loop.call_soon_threadsafe(subscribed.set)  # headers: it is subscribed
            event = ""
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((event, json.loads(line.split(":", 1)[1])))
                    if event == "output":
                        loop.call_soon_threadsafe(first_output.set)
                    if event == "exit":
                        return

    following = asyncio.create_task(asyncio.to_thread(follow))
    await asyncio.wait_for(subscribed.wait(), 10)
    await agent.channel.send(m.CommandStarted(command_id=command, consent="user"))
    await agent.channel.send(
        m.CommandOutput(command_id=command, seq=0, stream=m.OutputStream.STDOUT, data=output)
    )
    # The output reaches B while the command runs: only the bus can bring it there
    # (B's stream reads the store only every 15 s, and then the command is over).
    await asyncio.wait_for(first_output.wait(), 10)
    await agent.channel.send(m.CommandExit(command_id=command, exit_code=0, duration=0.1))
    await asyncio.wait_for(following, 10)
    assert [kind for kind, _ in events] == ["output", "exit"], events
    assert base64.b64decode(str(events[0][1]["data"])) == output
    assert events[1][1]["status"] == "finished"


async def test_a_device_that_moves_to_another_node_stays_online(
    nodes: tuple[ConsoleProcess, ConsoleProcess],
) -> None:
    a, b = nodes
    key, channel = await enroll(a, host="moving-pc")
    agent = PlayedAgent(key, channel)
    token = a.api_token(*SCOPES)
    with b.api(token) as api_b:
        await until(lambda: online(api_b, agent.id))
        # The same agent connects to B, then its channel to A ends (it moved): A
        # records nothing, B holds it.
        moved = await _connect(b, key)
        await asyncio.sleep(0.5)
        await agent.close()
        await asyncio.sleep(CLAIM_TTL + 2.0)  # sweeps have run
        assert online(api_b, agent.id)
        await moved.close()
        await until(lambda: not online(api_b, agent.id))


async def _connect(node: ConsoleProcess, key: bytes) -> PlayedAgent:
    """The enrolled ``key``'s daemon channel to ``node``."""
    enrollment = parse_enrollment(node.enrollment())
    channel = await connect(
        f"wss://127.0.0.1:{node.port}/agent",
        key,
        enrollment.console_key,
        tls_fingerprint=enrollment.tls_fingerprint,
    )
    await channel.send(
        m.Hello(agent_version="test", os=m.OsInfo(family=m.OsFamily.LINUX, name="Debian"))
    )
    return PlayedAgent(key, channel)


async def test_events_and_presence_after_redis_restarts(
    nodes: tuple[ConsoleProcess, ConsoleProcess], redis: RedisServer
) -> None:
    a, b = nodes
    key, channel = await enroll(a, host="steady-pc")
    agent = PlayedAgent(key, channel)
    token = a.api_token(*SCOPES)
    try:
        with a.api(token) as api_a, b.api(token) as api_b:
            await until(lambda: online(api_b, agent.id))
            redis.stop()
            await until(lambda: api_b.get("/readyz").status_code == 503)
            redis.start()  # empty: no claims, no node keys
            await until(lambda: api_b.get("/readyz").status_code == 200)
            await until(lambda: api_a.get("/readyz").status_code == 200)
            await stream_on_b(api_a, api_b, agent, b"after the restart\n")
            await asyncio.sleep(2 * CLAIM_TTL + 2.0)  # sweeps have judged everyone again
            assert online(api_b, agent.id)  # node A claimed it again
    finally:
        await agent.close()
