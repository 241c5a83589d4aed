"""Probes of an attacker who has no credentials, against a real console process.

Each probe is bounded in time and size: it floods the agents' WebSocket before the
Noise handshake, or holds TLS connections that send nothing or drip their request
head, and checks what the console pays (its RSS, read from /proc) and that it
closes what it must within its time-outs (``[limits]`` of ``console.toml``, made
short here so that each probe takes a few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from deskside.channel import connect
from deskside.protocol import crypto
from deskside.protocol.enrollment import parse_enrollment
from tests.consoleproc import ConsoleProcess
from tests.helpers import script

MIB = 1 << 20

LIMITS = """
[limits]
tls_handshake_timeout = 1.0
header_timeout = 1.0
keepalive_timeout = 1
connections_per_address = 40
handshake_timeout = 2.0
handshakes_per_address = 8
retry_after = 3
"""
# What the console may be late by, beyond a time-out, on a loaded CI machine.
SLACK = 2.0


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    process = ConsoleProcess(tmp_path_factory.mktemp("attacks") / "data")
    with (process.data_dir / "console.toml").open("a", encoding="utf-8") as config:
        config.write(LIMITS)
    with process:
        yield process


def rss(console: ConsoleProcess) -> int:
    """The console process's resident memory, from /proc."""
    assert console.process is not None
    status = Path(f"/proc/{console.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


class PeakRss(threading.Thread):
    """Samples the console's RSS every 20 ms while a probe runs; keeps the peak."""

    def __init__(self, console: ConsoleProcess) -> None:
        super().__init__(daemon=True)
        self.console = console
        self.peak = rss(console)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, rss(self.console))

    def __enter__(self) -> PeakRss:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self.join(timeout=2)


def tls_socket(console: ConsoleProcess) -> ssl.SSLSocket:
    """A TLS connection to the console, handshake done, nothing sent."""
    raw = socket.create_connection(("127.0.0.1", console.port), timeout=5)
    return console.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    """How long until the console closes ``sock`` (reading and dropping what it sends)."""
    started = time.monotonic()
    while (left := limit - (time.monotonic() - started)) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(4096):
                break
        except (ssl.SSLError, ConnectionError):
            break
        except TimeoutError:
            return float("inf")
    else:
        return float("inf")
    return time.monotonic() - started


async def agent_socket(console: ConsoleProcess) -> ClientConnection:
    """A WebSocket to ``/agent`` that has said nothing yet."""
    return await ws_connect(
        f"wss://127.0.0.1:{console.port}/agent",
        ssl=console.ssl_context(),
        max_size=None,
        compression=None,
        ping_interval=None,
        open_timeout=5,
    )


async def closed_within(websocket: ClientConnection, limit: float) -> bool:
    """Whether the console closes ``websocket`` within ``limit`` seconds."""
    try:
        await asyncio.wait_for(websocket.wait_closed(), limit)
    except TimeoutError:
        return False
    return True


# -- Before the Noise handshake ---------------------------------------------------------------


async def test_large_frames_before_the_handshake_cost_no_memory(
    console: ConsoleProcess,
) -> None:
    """16 peers each sending a 15 MiB frame instead of a handshake: refused (beyond
    the 8 handshakes one address may have) or closed; the console's RSS stays flat."""
    baseline = rss(console)
    frame = bytes(15 * MIB)

    async def flood() -> str:
        try:
            websocket = await agent_socket(console)
        except websockets.InvalidStatus:
            return "refused"
        with contextlib.suppress(websockets.ConnectionClosed):
            await websocket.send(frame)
        return "closed" if await closed_within(websocket, 5.0) else "open"

    with PeakRss(console) as sampler:
        outcomes = await asyncio.wait_for(asyncio.gather(*(flood() for _ in range(16))), 30)
    assert "open" not in outcomes
    assert outcomes.count("closed") >= 8
    assert sampler.peak - baseline < 40 * MIB, (
        f"RSS {baseline / MIB:.0f} -> {sampler.peak / MIB:.0f} MiB"
    )


async def test_silent_agents_are_capped_per_address_and_closed_at_the_deadline(
    console: ConsoleProcess,
) -> None:
    """Agents that open the WebSocket and say nothing: 8 from one address at most, the
    ninth is told 503 with Retry-After at once; each is closed at the handshake's
    deadline, after which a real agent enrolls."""
    sockets = await asyncio.gather(*(agent_socket(console) for _ in range(8)))
    started = time.monotonic()
    with pytest.raises(websockets.InvalidStatus) as refused:
        await agent_socket(console)
    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["Retry-After"] == "3"
    closed = await asyncio.gather(*(closed_within(ws, 2.0 + SLACK) for ws in sockets))
    assert all(closed)
    assert time.monotonic() - started < 2.0 + SLACK

    enrollment = parse_enrollment(console.enrollment())
    channel = await connect(
        enrollment.url,
        crypto.generate_private_key(),
        enrollment.console_key,
        enrollment_token=enrollment.token,
        tls_fingerprint=enrollment.tls_fingerprint,
    )
    await channel.close()


async def test_an_agent_turned_away_by_a_busy_console_enrolls_when_it_can(
    tmp_path: Path,
) -> None:
    """``deskside-agent enroll`` while the address's 2 handshake places are taken by
    silent peers: it is told 503 and says it will try again; once the places are
    free it enrolls, with the token's one use."""
    busy = ConsoleProcess(tmp_path / "busy" / "data")
    with (busy.data_dir / "console.toml").open("a", encoding="utf-8") as config:
        config.write("[limits]\nhandshakes_per_address = 2\nretry_after = 1\n")
    with busy:
        enrollment = busy.enrollment("--uses", "1")
        sockets = [await agent_socket(busy) for _ in range(2)]
        process = await asyncio.create_subprocess_exec(
            script("deskside-agent"),
            "--config-dir",
            str(tmp_path / "config"),
            "--state-dir",
            str(tmp_path / "state"),
            "enroll",
            enrollment,
            "--retry-for",
            "30",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        told = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
        for websocket in sockets:
            await websocket.close()
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert "busy" in told
    assert "trying again in" in told
    assert process.returncode == 0, told + stderr.decode()
    assert b"Enrolled with" in stdout


# -- TLS connections that send nothing, or too slowly -----------------------------------------


def test_connections_that_send_nothing_after_tls_are_closed(console: ConsoleProcess) -> None:
    """30 connections complete TLS and go quiet: each is closed at the header time-out."""
    sockets = [tls_socket(console) for _ in range(30)]
    try:
        waits = [seconds_until_closed(sock, 1.0 + SLACK) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert max(waits) < 1.0 + SLACK


def test_a_dripped_request_head_is_closed_at_the_header_timeout(
    console: ConsoleProcess,
) -> None:
    """A request head sent a header line every 0.2 s: the bytes do not extend the time."""
    sock = tls_socket(console)
    started = time.monotonic()
    closed_after = float("inf")
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for i in range(int((1.0 + SLACK) / 0.2)):
            time.sleep(0.2)
            try:
                sock.sendall(b"X-Drip-%d: 1\r\n" % i)
            except (ssl.SSLError, OSError):
                closed_after = time.monotonic() - started
                break
        else:
            closed_after = seconds_until_closed(sock, 0.1) + time.monotonic() - started
    finally:
        sock.close()
    assert closed_after < 1.0 + SLACK


def test_an_idle_connection_after_a_response_is_closed(console: ConsoleProcess) -> None:
    """Keep-alive: a connection that asked once and then idles is closed in a second."""
    sock = tls_socket(console)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert seconds_until_closed(sock, 1.0 + SLACK) < 1.0 + SLACK
    finally:
        sock.close()


def test_a_tcp_connection_without_a_tls_handshake_is_closed(console: ConsoleProcess) -> None:
    """A peer that connects and never sends its ClientHello."""
    sock = socket.create_connection(("127.0.0.1", console.port), timeout=5)
    try:
        assert seconds_until_closed(sock, 1.0 + SLACK) < 1.0 + SLACK
    finally:
        sock.close()


def test_connections_waiting_for_a_head_are_capped_per_address(console: ConsoleProcess) -> None:
    """Beyond 40 quiet connections from one address, the next gets 503 at once."""
    sockets = [tls_socket(console) for _ in range(40)]
    try:
        extra = tls_socket(console)
        try:
            extra.settimeout(1.0)
            answer = extra.recv(4096)
        finally:
            extra.close()
    finally:
        for sock in sockets:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 503")
    assert b"\r\nRetry-After: 3\r\n" in answer
