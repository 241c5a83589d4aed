"""Many agents on one console: memory per agent, heartbeats a second, time to connect.

    .venv/bin/python benchmarks/fleet.py [--agents 500,2000,5000] [--quick]
        [--clients 4] [--concurrency 100] [--idle-window 20] [--window 30]
        [--burst 5] [--time-limit 600] [--keep]

Theory of operation. For each fleet size N, a fresh console (``deskside-console
init`` and ``serve``, TLS, SQLite, as ``tests.consoleproc`` runs it) listens on
127.0.0.1, and a few client processes (spawned once, reused) simulate N agents
between them: each agent is its own static key and a real Noise channel over a
real WebSocket over TLS, all the agents of a client in one asyncio loop. The
steps for each N, with the console measured by psutil from this process:

1. baseline: the console's RSS before any agent;
2. enrollment pass: every agent connects with the enrollment token, says
   ``Hello`` and closes, as ``deskside-agent enroll`` does (one database write
   per agent, and one more for going offline); like it, an agent the console
   turned away (503 with Retry-After, a handshake that timed out) tries again
   after the console's wait plus jittered backoff, with the same key, until the
   token expires (``deskside.channel.retry``); the tries again are counted;
3. connect pass: every agent, now enrolled, connects without a token, says
   ``Hello`` and stays connected, as ``deskside-agent run`` does (trying again
   the same way); RSS after it, minus the baseline, over N, is the memory per
   agent;
4. idle window: agents connected, no heartbeats (only the channels' keep-alive
   pings): the console's CPU, the baseline for...
5. heartbeat window: each agent sends a ``Heartbeat`` every 30 s, the agents'
   phases spread evenly (N/30 a second); the console's CPU over the window; then
   the REST API says how many devices the console saw (``last_seen``);
6. burst: every agent sends heartbeats as fast as it can for a few seconds
   (within 80 % of the console's per-channel rate limit, which would close the
   channel otherwise), then pings its channel; the console answers a ping only
   after it has read every frame before it, so heartbeats sent over the time
   until the last pong is the rate the console kept up with;
7. the agents close; channels that had closed by themselves are reported, and
   the time the console takes to show every device offline (REST API).

Clients and console share this machine's cores, so the client processes run at a
lower priority (nice 10) and their CPU is printed beside the console's. Nothing
here asserts: the goal is printed with whether this run met it. The whole run has
a hard time limit; the console and the client processes are stopped on any exit,
Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime
import multiprocessing as mp
import os
import re
import resource
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import psutil  # type: ignore[import-untyped]

# Run as ``.venv/bin/python benchmarks/fleet.py``: the repository root holds ``tests``.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from deskside.agent.backoff import Backoff  # noqa: E402 (random and dataclasses only)
from deskside.channel import Channel, connect  # noqa: E402
from deskside.channel.retry import with_retries  # noqa: E402
from deskside.protocol import crypto  # noqa: E402
from deskside.protocol import messages as m  # noqa: E402
from deskside.protocol.connection import ChannelConfig, CloseCode  # noqa: E402
from deskside.protocol.enrollment import parse_enrollment  # noqa: E402
from deskside.protocol.errors import ConnectionClosed  # noqa: E402
from tests.consoleproc import ConsoleProcess  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10

# The goal from the issue.
GOAL_AGENTS = 5000
GOAL_RSS = 1 * GIB
GOAL_CPU_PERCENT = 20.0  # "mostly idle": below this share of one core

HEARTBEAT_INTERVAL = 30.0  # the console's default, told to agents in the handshake
FLUSH_WAIT = 5.0 + 2.0  # the gateway writes heartbeats every 5 s; then some slack
OPEN_TIMEOUT = 10.0  # as deskside-agent's default
PING_TIMEOUT = 60.0  # after the burst: how long a pong may take
OFFLINE_WAIT = 60.0  # after closing the agents, how long the console may take to notice
# The console closes a channel whose agent sends more than 50 messages a second on
# average, beyond a burst of 500 (ChannelConfig in console/gateway.py); the burst
# keeps each agent to 80 % of that, so it measures the console, not its limiter.
BURST_RATE = 0.8 * 50.0
BURST_TOKENS = 0.8 * 500
CLIENT_NICENESS = 10  # the client processes' nice value
CALL_SLACK = 60.0  # beyond its own duration, how long a client command may take

_T = TypeVar("_T")


# -- Commands to the client processes and their answers ---------------------------------------


@dataclasses.dataclass(frozen=True)
class NewAgents:
    """Forget the previous agents; make ``count`` new keys for the console at ``url``."""

    url: str
    console_key: bytes
    tls_fingerprint: str | None
    first: int  # index of the first agent in the whole fleet
    count: int
    total: int  # agents in the whole fleet, to spread heartbeat phases


@dataclasses.dataclass(frozen=True)
class Connect:
    """Connect every agent (``concurrency`` at a time), say Hello; keep or close.

    An attempt that may pass is tried again until ``until`` (wall clock).
    """

    token: str | None
    keep: bool
    concurrency: int
    until: float


@dataclasses.dataclass(frozen=True)
class Heartbeats:
    """Each agent sends a heartbeat every ``interval`` from ``start`` (wall clock) on."""

    start: float
    interval: float
    window: float


@dataclasses.dataclass(frozen=True)
class Burst:
    """Every agent sends heartbeats as fast as it can, then pings its channel."""

    start: float
    duration: float


@dataclasses.dataclass(frozen=True)
class CloseAll:
    """Close every open channel."""


@dataclasses.dataclass(frozen=True)
class Exit:
    """Close everything and end the process."""


@dataclasses.dataclass(frozen=True)
class Connected:
    """Answer to ``Connect``."""

    ok: int
    latencies: list[float]  # seconds from connect() to Hello sent, one per agent
    errors: dict[str, int]  # error text -> how many times
    retried: dict[str, int]  # error text -> how many times tried again after it


@dataclasses.dataclass(frozen=True)
class Sent:
    """Answer to ``Heartbeats`` and ``Burst``."""

    sent: int
    failed: int
    agents: int  # distinct agents that sent at least one
    late: float  # Heartbeats: most seconds a send was behind its schedule
    drained: float  # Burst: seconds from start to the last pong; 0 otherwise
    unanswered: int  # Burst: pings without a pong


@dataclasses.dataclass(frozen=True)
class Status:
    """Answer to ``CloseAll``: how the channels stood before being closed."""

    open: int
    closed: dict[int, int]  # close code -> channels that closed on their own


@dataclasses.dataclass(frozen=True)
class Failed:
    """A command raised in the client process."""

    error: str


# -- The client processes ------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class _Agent:
    """One simulated agent in a client process."""

    index: int
    key: bytes
    # The open channel, once connected and kept.
    channel: Channel | None = None
    # Reads (and drops) what the console sends, so the channel never stalls.
    reader: asyncio.Task[None] | None = None
    # Close code, once the kept channel closed without us asking.
    close_code: int | None = None


def _hello(index: int) -> m.Hello:
    return m.Hello(
        agent_version="fleet-benchmark",
        os=m.OsInfo(
            family=m.OsFamily.LINUX,
            name="Debian GNU/Linux 12 (bookworm)",
            release="6.1.0-fleet",
            arch="x86_64",
            hostname=f"fleet-{index:05d}",
        ),
        boot_time=time.time() - 86_400,
    )


def _heartbeat(index: int) -> m.Heartbeat:
    return m.Heartbeat(
        sent_at=time.time(),
        metrics=m.Metrics(
            cpu_percent=float(index % 100),
            memory_percent=42.0,
            load1=0.25,
            uptime=86_400.0,
            disk_min_free_percent=37.5,
        ),
    )


def _describe(exc: BaseException) -> str:
    """An error's text without the parts that differ per agent (ports, numbers)."""
    text = f"{type(exc).__name__}: {exc}"
    return re.sub(r"\d+", "N", text)[:160]


class _Client:
    """The agents of one client process and the commands they run."""

    def __init__(self) -> None:
        self.agents: list[_Agent] = []
        self.url = ""
        self.console_key = b""
        self.tls_fingerprint: str | None = None
        self.total = 0
        # What deskside.agent.uplink.channel_config gives (not imported: the agent
        # package brings psutil and more into every client process).
        self.config = ChannelConfig(
            software_version="fleet-benchmark",
            handshake_timeout=OPEN_TIMEOUT,
            keepalive_interval=45.0,
            idle_timeout=100.0,
        )
        # One TLS context for all agents; the certificate is pinned by fingerprint.
        self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ssl.check_hostname = False
        self.ssl.verify_mode = ssl.CERT_NONE

    async def run(self, command: object) -> object:
        """Carry out one command; its answer."""
        if isinstance(command, NewAgents):
            await self.close_all()
            self.url, self.console_key = command.url, command.console_key
            self.tls_fingerprint, self.total = command.tls_fingerprint, command.total
            self.agents = [
                _Agent(command.first + i, crypto.generate_private_key())
                for i in range(command.count)
            ]
            return None
        if isinstance(command, Connect):
            return await self.connect(command)
        if isinstance(command, Heartbeats):
            return await self.heartbeats(command)
        if isinstance(command, Burst):
            return await self.burst(command)
        if isinstance(command, CloseAll):
            return await self.close_all()
        raise TypeError(f"unknown command {command!r}")

    async def connect(self, command: Connect) -> Connected:
        """Connect every agent, ``command.concurrency`` at a time."""
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(command.concurrency)
        latencies: list[float] = []
        errors: collections.Counter[str] = collections.Counter()

        retried: collections.Counter[str] = collections.Counter()

        async def attempt(agent: _Agent) -> tuple[Channel, float]:
            # A handshake takes a place; waiting to try again does not.
            async with limit:
                started = loop.time()
                channel = await connect(
                    self.url,
                    agent.key,
                    self.console_key,
                    config=self.config,
                    ssl=self.ssl,
                    open_timeout=OPEN_TIMEOUT,
                    enrollment_token=command.token,
                    tls_fingerprint=self.tls_fingerprint,
                )
                await channel.send(_hello(agent.index))
                return channel, loop.time() - started

        async def one(agent: _Agent) -> None:
            backoff = Backoff(base=1.0, cap=30.0)
            try:
                channel, latency = await with_retries(
                    lambda: attempt(agent),
                    until=command.until,
                    next_delay=backoff.next_delay,
                    on_retry=lambda exc, delay: retried.update([_describe(exc)]),
                )
            except Exception as exc:
                errors[_describe(exc)] += 1
                return
            latencies.append(latency)
            if not command.keep:
                try:
                    await asyncio.wait_for(
                        channel.close(CloseCode.NORMAL, "enrolled"), OPEN_TIMEOUT
                    )
                except Exception as exc:
                    errors[f"closing: {_describe(exc)}"] += 1
                return
            agent.channel, agent.close_code = channel, None
            agent.reader = asyncio.create_task(self._read(agent, channel))

        await asyncio.gather(*(one(a) for a in self.agents if a.channel is None))
        return Connected(len(latencies), latencies, dict(errors), dict(retried))

    @staticmethod
    async def _read(agent: _Agent, channel: Channel) -> None:
        try:
            while True:
                await channel.recv()
        except ConnectionClosed as exc:
            agent.close_code = exc.code

    def _open(self) -> list[_Agent]:
        return [a for a in self.agents if a.channel is not None and not a.channel.closed]

    async def heartbeats(self, command: Heartbeats) -> Sent:
        """Send each agent's heartbeats on its own phase of the interval."""
        loop = asyncio.get_running_loop()
        start = loop.time() + (command.start - time.time())
        schedule: list[tuple[float, _Agent]] = []
        for agent in self._open():
            when = start + agent.index * command.interval / max(self.total, 1)
            while when < start + command.window:
                schedule.append((when, agent))
                when += command.interval
        schedule.sort(key=lambda item: item[0])
        sent = failed = 0
        late = 0.0
        beating: set[int] = set()
        for when, agent in schedule:
            delay = when - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(late, loop.time() - when)
            assert agent.channel is not None
            try:
                await agent.channel.send(_heartbeat(agent.index))
            except ConnectionClosed:
                failed += 1
            else:
                sent += 1
                beating.add(agent.index)
        return Sent(sent, failed, len(beating), late, 0.0, 0)

    async def burst(self, command: Burst) -> Sent:
        """Every agent sends heartbeats until the end of the burst, then pings."""
        loop = asyncio.get_running_loop()
        start = loop.time() + (command.start - time.time())
        end = start + command.duration
        counts = {"sent": 0, "failed": 0, "unanswered": 0}
        last_pong = start

        async def one(agent: _Agent) -> None:
            nonlocal last_pong
            channel = agent.channel
            assert channel is not None
            beat = _heartbeat(agent.index)
            # Stay within the console's per-channel rate limit, as a well-behaved agent.
            tokens, stamp = BURST_TOKENS, loop.time()
            try:
                while (now := loop.time()) < end:
                    tokens = min(BURST_TOKENS, tokens + (now - stamp) * BURST_RATE)
                    stamp = now
                    if tokens < 1:
                        await asyncio.sleep((1 - tokens) / BURST_RATE)
                        continue
                    tokens -= 1
                    await channel.send(beat)
                    counts["sent"] += 1
                    await asyncio.sleep(0)  # let the other agents (and readers) run
            except ConnectionClosed:
                counts["failed"] += 1
                return
            try:
                await asyncio.wait_for(channel.ping(), PING_TIMEOUT)
            except (ConnectionClosed, TimeoutError):
                counts["unanswered"] += 1
            else:
                last_pong = max(last_pong, loop.time())

        agents = self._open()
        await asyncio.sleep(max(0.0, start - loop.time()))
        await asyncio.gather(*(one(a) for a in agents))
        return Sent(
            sent=counts["sent"],
            failed=counts["failed"],
            agents=len(agents),
            late=0.0,
            drained=last_pong - start,
            unanswered=counts["unanswered"],
        )

    async def close_all(self) -> Status:
        """Close every channel; how many were open and how the others had closed."""
        closed: collections.Counter[int] = collections.Counter()
        still_open = 0
        for agent in self.agents:
            if agent.channel is None:
                continue
            if agent.channel.closed:
                closed[agent.close_code if agent.close_code is not None else -1] += 1
            else:
                still_open += 1
        channels = [a.channel for a in self.agents if a.channel is not None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(c.close() for c in channels), return_exceptions=True),
                CALL_SLACK / 2,
            )
        for agent in self.agents:
            if agent.reader is not None:
                agent.reader.cancel()
            agent.channel = agent.reader = None
        return Status(still_open, dict(closed))


async def _receive(conn: Connection) -> object:
    """The next command from the parent, without blocking the loop."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


async def _serve_commands(conn: Connection) -> None:
    client = _Client()
    try:
        while True:
            try:
                command = await _receive(conn)
            except EOFError:
                return  # the parent is gone
            if isinstance(command, Exit):
                return
            try:
                answer = await client.run(command)
            except Exception as exc:
                answer = Failed(f"{type(exc).__name__}: {exc}")
            conn.send(answer)
    finally:
        await client.close_all()


def client_main(conn: Connection, deadline: float) -> None:
    """Entry point of a client process; it ends by itself after ``deadline`` (wall)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    # SIGALRM's default action ends the process: a watchdog should the parent vanish.
    signal.alarm(max(1, int(deadline - time.time())))
    # Agents would run elsewhere: give the console first call on the shared cores.
    with contextlib.suppress(OSError):
        os.nice(CLIENT_NICENESS)
    raise_open_file_limit()
    asyncio.run(_serve_commands(conn))


# -- The parent: console, clients and measurements ---------------------------------------------


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard one; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class ClientPool:
    """The client processes, each holding a share of the agents."""

    def __init__(self, count: int, deadline: float) -> None:
        context = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.processes: list[mp.process.BaseProcess] = []
        for i in range(count):
            parent, child = context.Pipe()
            process = context.Process(
                target=client_main, args=(child, deadline), name=f"fleet-client-{i}", daemon=True
            )
            process.start()
            child.close()
            self.conns.append(parent)
            self.processes.append(process)
        self.psutil = [psutil.Process(p.pid) for p in self.processes]

    def call(self, commands: Sequence[object], timeout: float) -> list[object]:
        """Send one command to each client; their answers, in order."""
        for conn, command in zip(self.conns, commands, strict=True):
            conn.send(command)
        deadline = time.monotonic() + timeout
        answers = []
        for conn in self.conns:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"a client process did not answer within {timeout:.0f} s")
            answer = conn.recv()
            if isinstance(answer, Failed):
                raise RuntimeError(f"a client process failed: {answer.error}")
            answers.append(answer)
        return answers

    def broadcast(self, command: object, timeout: float) -> list[object]:
        """Send the same command to every client."""
        return self.call([command] * len(self.conns), timeout)

    def cpu_seconds(self) -> float:
        """CPU time the client processes used so far."""
        return sum(_cpu_seconds(p) for p in self.psutil)

    def close(self) -> None:
        """Stop every client process: politely, then not."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(Exit())
        deadline = time.monotonic() + CALL_SLACK / 2
        for process in self.processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for conn in self.conns:
            conn.close()


def _tree(process: Any) -> list[Any]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_seconds(process: Any) -> float:
    """User and system CPU time of a process and its live children."""
    total = 0.0
    for p in _tree(process):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def _rss(process: Any) -> int:
    """Resident memory of a process and its children."""
    total = 0
    for p in _tree(process):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return int(total)


class PeakSampler(threading.Thread):
    """Samples the console's RSS a few times a second; keeps the peak."""

    def __init__(self, process: Any) -> None:
        super().__init__(name="fleet-rss-sampler", daemon=True)
        self.process = process
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.2):
            self.peak = max(self.peak, _rss(self.process))

    def stop(self) -> None:
        """End the sampling thread."""
        self._done.set()
        self.join(timeout=2)


def cpu_meter(console: Any, clients: ClientPool) -> Callable[[], tuple[float, float]]:
    """Start measuring; the callable gives (console, clients) CPU % of one core since."""
    started = time.monotonic()
    console0, clients0 = _cpu_seconds(console), clients.cpu_seconds()

    def read() -> tuple[float, float]:
        wall = max(time.monotonic() - started, 1e-9)
        return (
            100 * (_cpu_seconds(console) - console0) / wall,
            100 * (clients.cpu_seconds() - clients0) / wall,
        )

    return read


@dataclasses.dataclass
class StepResult:
    """Everything measured for one fleet size."""

    agents: int
    enrolled: int = 0
    enroll_seconds: float = 0.0
    enroll_errors: dict[str, int] = dataclasses.field(default_factory=dict)
    enroll_retried: dict[str, int] = dataclasses.field(default_factory=dict)
    connected: int = 0
    connect_seconds: float = 0.0
    connect_latencies: list[float] = dataclasses.field(default_factory=list)
    connect_errors: dict[str, int] = dataclasses.field(default_factory=dict)
    connect_retried: dict[str, int] = dataclasses.field(default_factory=dict)
    rss_baseline: int = 0
    rss_enrolled: int = 0
    rss_connected: int = 0
    rss_after: int = 0
    rss_peak: int = 0
    cpu_enroll: float = 0.0
    cpu_enroll_clients: float = 0.0
    cpu_connect: float = 0.0
    cpu_connect_clients: float = 0.0
    cpu_idle: float = 0.0
    cpu_idle_clients: float = 0.0
    cpu_beats: float = 0.0
    cpu_beats_clients: float = 0.0
    beats_sent: int = 0
    beats_failed: int = 0
    beats_agents: int = 0
    beats_late: float = 0.0
    beats_window: float = 0.0
    devices_seen: int = 0
    devices_with_metrics: int = 0
    burst_sent: int = 0
    burst_seconds: float = 0.0
    burst_drained: float = 0.0
    burst_unanswered: int = 0
    burst_failed: int = 0
    cpu_burst: float = 0.0
    cpu_burst_clients: float = 0.0
    still_open: int = 0
    offline_seconds: float = -1.0  # after the agents closed, until none is online
    closed_codes: dict[int, int] = dataclasses.field(default_factory=dict)
    log_summary: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    log_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    log_path: str = ""
    console_exit: int | None = None
    note: str = ""

    @property
    def kib_per_agent(self) -> float:
        """Console memory per connected agent, over the baseline."""
        return (self.rss_connected - self.rss_baseline) / max(self.connected, 1) / KIB

    @property
    def disconnects(self) -> int:
        """Kept channels that closed without the benchmark asking."""
        return sum(self.closed_codes.values())


def _split(total: int, parts: int) -> list[tuple[int, int]]:
    """(first, count) of each part of ``range(total)``, as even as can be."""
    base, extra = divmod(total, parts)
    shares, first = [], 0
    for i in range(parts):
        count = base + (1 if i < extra else 0)
        shares.append((first, count))
        first += count
    return shares


def _merge_errors(answers: Sequence[Connected], retried: bool = False) -> dict[str, int]:
    merged: collections.Counter[str] = collections.Counter()
    for answer in answers:
        merged.update(answer.retried if retried else answer.errors)
    return dict(merged)


def _connect_pass(
    clients: ClientPool,
    token: str | None,
    keep: bool,
    concurrency: int,
    agents: int,
    expires: int | None = None,
) -> tuple[float, list[Connected]]:
    """Connect every agent; tries again until the token expires or the pass's time is up."""
    per_client = max(1, concurrency // len(clients.conns))
    timeout = CALL_SLACK + agents * 0.5  # never stuck: at worst 2 handshakes a second
    until = time.time() + timeout - CALL_SLACK / 2
    if expires is not None:
        until = min(until, expires)
    command = Connect(token=token, keep=keep, concurrency=per_client, until=until)
    started = time.monotonic()
    answers = clients.broadcast(command, timeout)
    return time.monotonic() - started, [a for a in answers if isinstance(a, Connected)]


def _devices(console: ConsoleProcess, token: str) -> list[dict[str, Any]]:
    """Every device, from the REST API."""
    with console.api(token) as api:
        response = api.get("/api/v1/devices")
        response.raise_for_status()
        devices: list[dict[str, Any]] = response.json()
    return devices


def _devices_seen(console: ConsoleProcess, token: str, since: float) -> tuple[int, int]:
    """Devices whose last_seen is at or after ``since`` (wall clock), and with metrics."""
    threshold = datetime.datetime.fromtimestamp(since, datetime.UTC)
    devices = _devices(console, token)
    seen = with_metrics = 0
    for device in devices:
        last = device.get("last_seen")
        if last and datetime.datetime.fromisoformat(last) >= threshold:
            seen += 1
            with_metrics += device.get("metrics") is not None
    return seen, with_metrics


# "2026-01-01 12:00:00,000 LEVEL logger: text" (logging.basicConfig in console/server.py)
# or "LEVEL - 2026-01-01 12:00:00,000 - logger - module - text".
_LOG_LINE = re.compile(
    r"^(?:\S+ \S+ (?P<level>[A-Z]+) (?P<rest>.*)"
    r"|(?P<level2>[A-Z]+) - \S+ \S+ - (?P<rest2>.*))$"
)
_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


def _summarize_log(path: Path) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """Lines per level, and the most frequent warnings and errors, numbers blanked."""
    levels: collections.Counter[str] = collections.Counter()
    problems: collections.Counter[str] = collections.Counter()
    if not path.exists():
        return {}, []
    with path.open(errors="replace") as log:
        for line in log:
            match = _LOG_LINE.match(line.rstrip())
            level = match and (match["level"] or match["level2"])
            if match is None or level not in _LEVELS:
                if line.startswith("Traceback"):
                    levels["Traceback"] += 1
                elif re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|State)\b", line):
                    problems[f"raised {line.strip()[:140]}"] += 1
                continue
            levels[level] += 1
            if level in ("WARNING", "ERROR", "CRITICAL"):
                rest = match["rest"] or match["rest2"] or ""
                text = re.sub(r"\b[0-9a-f]{20}\b|\d+", "N", rest)[:140]
                problems[f"{level} {text}"] += 1
    return dict(levels), [(count, text) for text, count in problems.most_common(8)]


def run_step(
    agents: int,
    workdir: Path,
    clients: ClientPool,
    args: argparse.Namespace,
    consoles: list[ConsoleProcess],
    results: list[StepResult],
    log: Callable[[str], None],
) -> StepResult:
    """Measure a fleet of ``agents`` against a fresh console; appended to ``results``."""
    result = StepResult(agents, note="incomplete")
    results.append(result)
    console = ConsoleProcess(workdir / f"console-{agents}")
    consoles.append(console)
    console.start()
    assert console.process is not None
    result.log_path = str(console.log)
    proc = psutil.Process(console.process.pid)
    sampler = PeakSampler(proc)
    sampler.start()
    try:
        api_token = console.api_token("devices:read")
        enrollment = parse_enrollment(console.enrollment("--uses", str(agents), "--ttl", "2h"))
        time.sleep(1.0)
        result.rss_baseline = _rss(proc)
        log(f"  console pid {proc.pid}, baseline RSS {result.rss_baseline / MIB:.0f} MiB")

        commands = [
            NewAgents(
                url=enrollment.url,
                console_key=enrollment.console_key,
                tls_fingerprint=enrollment.tls_fingerprint,
                first=first,
                count=count,
                total=agents,
            )
            for first, count in _split(agents, len(clients.conns))
        ]
        clients.call(commands, CALL_SLACK)

        log(f"  enrolling {agents} agents...")
        read = cpu_meter(proc, clients)
        seconds, answers = _connect_pass(
            clients, enrollment.token, False, args.concurrency, agents, enrollment.expires
        )
        result.cpu_enroll, result.cpu_enroll_clients = read()
        result.enroll_seconds = seconds
        result.enrolled = sum(a.ok for a in answers)
        result.enroll_errors = _merge_errors(answers)
        result.enroll_retried = _merge_errors(answers, retried=True)
        log(
            f"  {result.enrolled:,} of {agents:,} enrolled in {seconds:.1f} s, "
            f"{sum(result.enroll_retried.values()):,} tries again"
        )
        time.sleep(2.0)
        result.rss_enrolled = _rss(proc)

        log(f"  connecting {agents} enrolled agents...")
        read = cpu_meter(proc, clients)
        seconds, answers = _connect_pass(clients, None, True, args.concurrency, agents)
        result.cpu_connect, result.cpu_connect_clients = read()
        result.connect_seconds = seconds
        result.connected = sum(a.ok for a in answers)
        result.connect_latencies = sorted(x for a in answers for x in a.latencies)
        result.connect_errors = _merge_errors(answers)
        result.connect_retried = _merge_errors(answers, retried=True)
        time.sleep(3.0)
        result.rss_connected = _rss(proc)

        log(f"  idle for {args.idle_window:g} s...")
        read = cpu_meter(proc, clients)
        time.sleep(args.idle_window)
        result.cpu_idle, result.cpu_idle_clients = read()

        log(f"  heartbeats every {HEARTBEAT_INTERVAL:g} s for {args.window:g} s...")
        start = time.time() + 1.0
        for conn in clients.conns:
            conn.send(Heartbeats(start=start, interval=HEARTBEAT_INTERVAL, window=args.window))
        time.sleep(max(0.0, start - time.time()))
        read = cpu_meter(proc, clients)
        time.sleep(args.window)
        result.cpu_beats, result.cpu_beats_clients = read()
        beats = [_answer(conn, CALL_SLACK, Sent) for conn in clients.conns]
        result.beats_window = args.window
        result.beats_sent = sum(b.sent for b in beats)
        result.beats_failed = sum(b.failed for b in beats)
        result.beats_agents = sum(b.agents for b in beats)
        result.beats_late = max(b.late for b in beats)
        time.sleep(FLUSH_WAIT)
        result.devices_seen, result.devices_with_metrics = _devices_seen(console, api_token, start)

        log(f"  burst for {args.burst:g} s...")
        start = time.time() + 0.5
        for conn in clients.conns:
            conn.send(Burst(start=start, duration=args.burst))
        time.sleep(max(0.0, start - time.time()))
        read = cpu_meter(proc, clients)
        bursts = [
            _answer(conn, args.burst + PING_TIMEOUT + CALL_SLACK, Sent) for conn in clients.conns
        ]
        result.cpu_burst, result.cpu_burst_clients = read()
        result.burst_seconds = args.burst
        result.burst_sent = sum(b.sent for b in bursts)
        result.burst_failed = sum(b.failed for b in bursts)
        result.burst_unanswered = sum(b.unanswered for b in bursts)
        result.burst_drained = max(b.drained for b in bursts)
        time.sleep(1.0)
        result.rss_after = _rss(proc)

        statuses = [s for s in clients.broadcast(CloseAll(), CALL_SLACK) if isinstance(s, Status)]
        result.still_open = sum(s.open for s in statuses)
        codes: collections.Counter[int] = collections.Counter()
        for status in statuses:
            codes.update(status.closed)
        result.closed_codes = dict(codes)

        # Stopping the console while it still marks devices offline would cancel that
        # work (and fill its log): wait until it has, and time it.
        log("  waiting until the console has marked every device offline...")
        result.note = ""
        closed_at = time.monotonic()
        while time.monotonic() - closed_at < OFFLINE_WAIT:
            online = sum(bool(d.get("online")) for d in _devices(console, api_token))
            if not online:
                result.offline_seconds = time.monotonic() - closed_at
                break
            time.sleep(1.0)
        else:
            result.note = f"{online:,} devices still online {OFFLINE_WAIT:g} s after closing"
    finally:
        sampler.stop()
        result.rss_peak = max(sampler.peak, result.rss_connected, result.rss_after)
        if console.process is not None:
            result.console_exit = console.process.poll()
            if result.console_exit is None:
                console.stop()
        result.log_counts, result.log_summary = _summarize_log(console.log)
    return result


def _answer(conn: Connection, timeout: float, kind: type[_T]) -> _T:
    if not conn.poll(timeout):
        raise TimeoutError(f"a client process did not answer within {timeout:.0f} s")
    answer = conn.recv()
    if isinstance(answer, Failed):
        raise RuntimeError(f"a client process failed: {answer.error}")
    if not isinstance(answer, kind):
        raise RuntimeError(f"a client process answered {answer!r}")
    return answer


# -- Report --------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "-"


def _ms(samples: Sequence[float], q: float) -> str:
    if not samples:
        return "-"
    return f"{1000 * samples[min(len(samples) - 1, int(q * len(samples)))]:,.0f}"


def report(results: Sequence[StepResult], args: argparse.Namespace, stopped: str) -> str:
    """The tables, the goal line and what the console's logs said."""
    out: list[str] = []
    cores = os.cpu_count() or 1
    out.append(
        f"Fleet on one console: {len(results)} step(s), {args.clients} client processes, "
        f"{args.concurrency} handshakes at a time, TLS + Noise IK on 127.0.0.1."
    )
    out.append(
        f"Console and clients share this machine's {cores} cores (clients at nice "
        f"{CLIENT_NICENESS}): CPU figures are % of one core, clients' beside the console's."
    )
    if stopped:
        out.append(f"NOTE: {stopped}; the last step may be incomplete.")
    out.append("")
    out.append("Connecting and memory (RSS of the console process; baseline: before any agent)")
    rows = []
    for r in results:
        rows.append(
            [
                f"{r.agents:,}",
                f"{r.enrolled:,}",
                f"{r.enroll_seconds:.1f}",
                _rate(r.enrolled, r.enroll_seconds),
                f"{r.cpu_enroll:.0f} ({r.cpu_enroll_clients:.0f})",
                f"{r.connected:,}",
                f"{r.connect_seconds:.1f}",
                _rate(r.connected, r.connect_seconds),
                f"{r.cpu_connect:.0f} ({r.cpu_connect_clients:.0f})",
                f"{_ms(r.connect_latencies, 0.5)} / {_ms(r.connect_latencies, 0.99)}",
                f"{r.rss_baseline / MIB:.0f}",
                f"{r.rss_enrolled / MIB:.0f}",
                f"{r.rss_connected / MIB:.0f}",
                f"{r.kib_per_agent:.0f}" if r.connected else "-",
                f"{r.rss_peak / MIB:.0f}",
                f"{r.offline_seconds:.1f}" if r.offline_seconds >= 0 else "-",
            ]
        )
    out.append(
        _table(
            [
                "agents",
                "enrolled",
                "enroll s",
                "/s",
                "CPU%",
                "connected",
                "connect s",
                "/s",
                "CPU%",
                "handshake p50/p99 ms",
                "base MiB",
                "enrolled MiB",
                "connected MiB",
                "KiB/agent",
                "peak MiB",
                "offline s",
            ],
            rows,
        )
    )
    out.append(
        "  CPU%: console (clients) during the pass. handshake: connect() to Hello sent, per "
        "agent.\n  enrolled MiB: after the enrollment pass, every agent disconnected. "
        "offline s: after every agent\n  closed, until the console showed no device online "
        "(REST API)."
    )
    out.append("")
    out.append(
        f"CPU and heartbeats (idle: connected, keep-alive pings only, {args.idle_window:g} s; "
        f"beats: one every {HEARTBEAT_INTERVAL:g} s per agent, {args.window:g} s; "
        f"burst: as fast as possible, {args.burst:g} s)"
    )
    rows = []
    for r in results:
        handled = r.burst_sent / r.burst_drained if r.burst_drained > 0 else 0.0
        rows.append(
            [
                f"{r.agents:,}",
                f"{r.cpu_idle:.1f} ({r.cpu_idle_clients:.0f})",
                f"{r.cpu_beats:.1f} ({r.cpu_beats_clients:.0f})",
                _rate(r.beats_sent, r.beats_window),
                f"{r.devices_seen:,}/{r.beats_agents:,}",
                f"{r.beats_late:.2f}",
                _rate(r.burst_sent, r.burst_seconds),
                f"{handled:,.0f}",
                f"{r.burst_drained:.1f}",
                f"{r.cpu_burst:.0f} ({r.cpu_burst_clients:.0f})",
                f"{r.disconnects + r.burst_unanswered}",
            ]
        )
    out.append(
        _table(
            [
                "agents",
                "CPU% idle (clients)",
                "CPU% beats (clients)",
                "beats/s",
                "seen in DB",
                "late s",
                "burst sent/s",
                "handled/s",
                "drain s",
                "CPU% burst (clients)",
                "disconnects",
            ],
            rows,
        )
    )
    out.append(
        "  seen in DB: devices whose last_seen moved in the beats window (REST API) / agents "
        "that sent one.\n  handled/s: burst heartbeats over the time until the console "
        "answered every agent's ping after them.\n  late s: how far the clients fell behind "
        "their heartbeat schedule (client overload)."
    )
    out.append("")
    out.append(_goal(results))
    out.append("")
    for r in results:
        out.append(f"N={r.agents:,}: console log {r.log_path}")
        if r.console_exit is not None:
            out.append(f"  the console process had exited with code {r.console_exit}!")
        if r.note:
            out.append(f"  {r.note}")
        levels = ", ".join(f"{k} {v:,}" for k, v in sorted(r.log_counts.items()))
        out.append(f"  log lines: {levels or 'none'}")
        for count, text in r.log_summary:
            out.append(f"  {count:6,} x {text}")
        for label, errors in (
            ("enroll failures", r.enroll_errors),
            ("enroll tries again", r.enroll_retried),
            ("connect failures", r.connect_errors),
            ("connect tries again", r.connect_retried),
        ):
            for text, count in sorted(errors.items(), key=lambda kv: -kv[1])[:5]:
                out.append(f"  {label}: {count:,} x {text}")
        if r.closed_codes:
            codes = ", ".join(f"code {c}: {n:,}" for c, n in sorted(r.closed_codes.items()))
            out.append(f"  channels closed by themselves: {codes}")
        if r.devices_with_metrics < r.devices_seen:
            out.append(f"  only {r.devices_with_metrics:,} devices seen have metrics stored")
        if r.burst_failed or r.burst_unanswered:
            out.append(
                f"  burst: {r.burst_failed:,} agents could not send, "
                f"{r.burst_unanswered:,} pings unanswered"
            )
    return "\n".join(out)


def _goal(results: Sequence[StepResult]) -> str:
    done = [r for r in results if r.connected and r.beats_window]
    full = [r for r in done if r.agents >= GOAL_AGENTS]
    head = (
        f"Goal: {GOAL_AGENTS:,} agents held by one console under {GOAL_RSS // GIB} GiB, and "
        f"heartbeats every {HEARTBEAT_INTERVAL:g} s with the console's CPU under "
        f"{GOAL_CPU_PERCENT:g}% of one core."
    )
    if full:
        r = full[-1]
        held = max(r.rss_connected, r.rss_after)
        rss_met = r.connected >= GOAL_AGENTS and held < GOAL_RSS
        cpu_met = r.cpu_beats < GOAL_CPU_PERCENT and r.devices_seen >= r.beats_agents
        return (
            f"{head}\n  memory: {r.connected:,} agents connected, console RSS "
            f"{held / MIB:.0f} MiB while holding them (peak {r.rss_peak / MIB:.0f} MiB): "
            f"{'met' if rss_met else 'NOT met'}\n  CPU: {r.cpu_beats:.1f}% of one core at "
            f"{_rate(r.beats_sent, r.beats_window)} heartbeats/s, {r.devices_seen:,} of "
            f"{r.beats_agents:,} devices seen: {'met' if cpu_met else 'NOT met'}"
        )
    if not done:
        return f"{head}\n  not measured."
    r = max(done, key=lambda x: x.agents)
    scale = GOAL_AGENTS / r.agents
    rss = r.rss_baseline + (r.rss_connected - r.rss_baseline) * scale
    cpu = r.cpu_beats * scale
    return (
        f"{head}\n  not measured at {GOAL_AGENTS:,} (largest step: {r.agents:,}). Linear "
        f"extrapolation, a guess only: RSS {rss / MIB:.0f} MiB, CPU {cpu:.0f}% of one core."
    )


# -- Main ---------------------------------------------------------------------------------


class TimeLimitReached(Exception):
    """The run's hard time limit has passed."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeLimitReached


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("a comma-separated list of positive numbers")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--agents", type=_sizes, default=[500, 2000, 5000], help="fleet sizes (500,2000,5000)"
    )
    parser.add_argument("--quick", action="store_true", help="only 500 agents")
    parser.add_argument("--clients", type=int, default=4, help="client processes (4)")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes at once (100)")
    parser.add_argument("--idle-window", type=float, default=20.0, help="idle seconds (20)")
    parser.add_argument("--window", type=float, default=30.0, help="heartbeat seconds (30)")
    parser.add_argument("--burst", type=float, default=5.0, help="burst seconds (5)")
    parser.add_argument("--time-limit", type=int, default=600, help="hard limit, s (600)")
    parser.add_argument("--keep", action="store_true", help="keep the consoles' directories")
    args = parser.parse_args(argv)
    if args.quick:
        args.agents = [n for n in args.agents if n <= 500] or [500]
    args.clients = max(1, args.clients)
    args.concurrency = max(args.clients, args.concurrency)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the steps within the time limit; print the report whatever happens."""
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.time_limit

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {text}", flush=True)

    files = raise_open_file_limit()
    needed = max(args.agents) + 1000
    if files < needed:
        log(f"warning: open files limited to {files}, {needed} wanted (console and clients)")
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(args.time_limit)
    workdir = Path(tempfile.mkdtemp(prefix="deskside-fleet-"))
    results: list[StepResult] = []
    consoles: list[ConsoleProcess] = []
    clients: ClientPool | None = None
    stopped = ""
    code = 0
    try:
        clients = ClientPool(args.clients, time.time() + args.time_limit + 30)
        per_agent = 2 / 60  # seconds a step takes per agent, a first guess until measured
        fixed = args.idle_window + args.window + args.burst + 35  # and regardless of agents
        for agents in args.agents:
            needed_s = fixed + agents * per_agent
            if time.monotonic() + needed_s > deadline - 45:
                log(f"skipping {agents} agents: about {needed_s:.0f} s needed, too few left")
                continue
            log(f"step: {agents:,} agents")
            step_started = time.monotonic()
            result = run_step(agents, workdir, clients, args, consoles, results, log)
            per_agent = max(per_agent, (time.monotonic() - step_started - fixed) / agents)
            log(
                f"  done: {result.enrolled:,} of {agents:,} enrolled, "
                f"{result.connected:,} connected, "
                f"{result.kib_per_agent:.0f} KiB/agent, CPU at beats {result.cpu_beats:.1f}%"
            )
    except TimeLimitReached:
        stopped = f"stopped at the time limit ({args.time_limit} s)"
    except KeyboardInterrupt:
        stopped = "interrupted"
    except SystemExit as exc:  # SIGTERM
        stopped = "terminated"
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        traceback.print_exc()
        stopped = f"stopped by an error ({type(exc).__name__}: {exc})"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleaning up takes a few seconds
        log("cleaning up...")
        if clients is not None:
            clients.close()
        for console in consoles:
            if console.process is not None:
                with contextlib.suppress(Exception):
                    console.stop()
        print()
        print(report(results, args, stopped), flush=True)
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return code or (1 if stopped else 0)


if __name__ == "__main__":
    sys.exit(main())
