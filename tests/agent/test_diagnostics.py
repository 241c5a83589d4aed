"""Diagnostics snapshots, taken for real on this machine."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import msgspec
import psutil  # type: ignore[import-untyped,unused-ignore]
import pytest

from deskside.agent.diagnostics import (
    collect_metrics,
    collect_snapshot,
    collectors,
    network,
    render_text,
    snapshot,
    snapshot_json,
    systemd,
)
from deskside.agent.diagnostics.limits import SNAPSHOT_BUDGET, TOP_PROCESSES, clip, fit
from deskside.agent.diagnostics.platforms import linux, posix
from deskside.protocol.codec import decode as decode_message
from deskside.protocol.codec import encode
from deskside.protocol.messages import (
    CollectorError,
    DiagnosticsSnapshot,
    LogEntry,
    OsFamily,
    OsInfo,
    ProcessInfo,
    ReachabilityCheck,
    Snapshot,
)


def roundtrip(taken: Snapshot) -> Snapshot:
    """``taken`` through the wire codec, which enforces every limit of the schema."""
    data = encode(DiagnosticsSnapshot(snapshot=taken))
    assert len(data) < 256 * 1024
    message = decode_message(data)
    assert isinstance(message, DiagnosticsSnapshot)
    return message.snapshot


@pytest.fixture(scope="module")
def real() -> Snapshot:
    """One real snapshot of this machine, shared by the tests that only read it."""
    return asyncio.run(collect_snapshot())


# -- A real snapshot ------------------------------------------------------------------------


def test_real_snapshot_describes_this_machine(real: Snapshot) -> None:
    assert real.schema == 1
    assert abs(real.taken_at - time.time()) < 120
    assert real.errors == []
    assert real.os.family is OsFamily.LINUX
    assert real.os.hostname == socket.gethostname()
    assert real.os.name  # PRETTY_NAME of /etc/os-release
    assert real.os.release
    assert real.os.arch
    assert real.uptime is not None
    assert real.uptime > 0

    assert real.cpu is not None
    assert real.cpu.logical == psutil.cpu_count()
    assert 0.0 <= real.cpu.percent <= 100.0
    assert len(real.cpu.load) == 3

    assert real.memory is not None
    assert real.memory.total == psutil.virtual_memory().total
    assert 0 < real.memory.available <= real.memory.total

    assert real.disks
    assert all(d.total > 0 and d.fstype not in collectors.PSEUDO_FILESYSTEMS for d in real.disks)

    loopback = {i.name: i for i in real.interfaces}["lo"]
    assert loopback.is_up
    assert "127.0.0.1/8" in loopback.addresses

    assert real.network is not None
    assert real.network.checks == [] or all(
        c.target.startswith("gateway ") for c in real.network.checks
    )


def test_real_snapshot_lists_top_processes(real: Snapshot) -> None:
    assert 0 < len(real.processes) <= 2 * TOP_PROCESSES
    pids = [p.pid for p in real.processes]
    assert len(pids) == len(set(pids))
    names = {p.name for p in real.processes}
    assert os.getpid() in pids or psutil.Process().name() in names
    assert all(len(p.cmdline) <= 200 for p in real.processes)


def test_real_snapshot_roundtrips_through_the_codec(real: Snapshot) -> None:
    assert roundtrip(real) == real


def test_snapshot_json_is_indented_with_schema_first(real: Snapshot) -> None:
    data = snapshot_json(real)
    document = json.loads(data)
    assert document["schema"] == 1
    assert list(document)[:3] == ["schema", "taken_at", "os"]
    assert b'\n  "schema": 1,' in data
    assert msgspec.json.decode(data, type=Snapshot) == real
    assert snapshot_json(real) == data


def test_render_text_shows_each_section(real: Snapshot) -> None:
    text = render_text(real)
    assert real.os.hostname in text
    assert "Memory" in text
    assert "GiB" in text
    assert real.disks[0].mountpoint in text
    assert "127.0.0.1/8" in text
    for heading in ("System", "CPU", "Disks", "Network", "Top processes", "Collector errors"):
        assert f"\n{heading}" in text


def test_render_text_neutralizes_control_characters() -> None:
    hostile = Snapshot(
        taken_at=time.time(),
        os=OsInfo(family=OsFamily.LINUX, name="x", hostname="host\x1b[2J"),
        processes=[ProcessInfo(pid=1, name="evil\x1b]0;pwned\x07", cmdline="a\nFAKE LINE")],
        errors=[CollectorError(collector="cpu", error="boom\r\nforged")],
    )
    text = render_text(hostile)
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\r" not in text
    assert "\nFAKE LINE" not in text
    assert "\nforged" not in text
    assert "not collected: boom forged" in text


# -- Reachability ---------------------------------------------------------------------------


@pytest.fixture
async def listener() -> AsyncIterator[int]:
    """The port of a TCP server on 127.0.0.1 that accepts and closes connections."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def checks_of(taken: Snapshot) -> dict[str, ReachabilityCheck]:
    assert taken.network is not None
    return {check.target.split()[0]: check for check in taken.network.checks}


async def test_console_port_that_listens_is_reachable(listener: int) -> None:
    taken = await collect_snapshot(console_url=f"wss://127.0.0.1:{listener}/agent")
    checks = checks_of(taken)
    tcp = checks["tcp"]
    assert tcp.target == f"tcp 127.0.0.1:{listener}"
    assert tcp.ok
    assert tcp.latency_ms is not None
    assert tcp.latency_ms >= 0
    assert "dns" not in checks  # an address needs no lookup
    assert roundtrip(taken) == taken


async def test_closed_console_port_is_unreachable_and_says_why() -> None:
    taken = await collect_snapshot(console_url=f"wss://127.0.0.1:{closed_port()}/agent")
    tcp = checks_of(taken)["tcp"]
    assert not tcp.ok
    assert tcp.latency_ms is None
    assert "connection refused" in tcp.detail


async def test_console_host_name_is_resolved_first(listener: int) -> None:
    checks = await asyncio.to_thread(
        network.collect_reachability, f"wss://user:secret@localhost:{listener}/agent?t=x", 4.0
    )
    by_kind = {check.target.split()[0]: check for check in checks}
    assert by_kind["dns"].target == "dns localhost"
    assert by_kind["dns"].ok
    assert by_kind["dns"].latency_ms is not None
    assert by_kind["tcp"].target == f"tcp localhost:{listener}"
    assert all("secret" not in c.target + c.detail for c in checks)


async def test_unresolvable_console_host_fails_both_checks() -> None:
    checks = await asyncio.to_thread(
        network.collect_reachability, "wss://deskside-test.invalid/agent", 4.0
    )
    by_kind = {check.target.split()[0]: check for check in checks}
    assert not by_kind["dns"].ok
    assert by_kind["dns"].detail
    assert by_kind["tcp"].target == "tcp deskside-test.invalid:443"
    assert not by_kind["tcp"].ok
    assert by_kind["tcp"].detail == "not tried: no address"


def test_gateway_check_without_ping_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "find_tool", lambda name: None)
    check = network._check_gateway("127.0.0.1", 2.0)
    assert check.target == "gateway 127.0.0.1"
    assert check.detail.startswith("ping not available")


# -- Isolation and bounds -------------------------------------------------------------------


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event a hanging collector waits on; set at the end so its thread ends too."""
    event = threading.Event()
    yield event
    event.set()


def hang_users(monkeypatch: pytest.MonkeyPatch, release: threading.Event) -> None:
    def hang() -> list[object]:
        release.wait(30)
        return []

    monkeypatch.setattr(collectors, "collect_users", hang)
    users = snapshot.COLLECTORS["users"]
    monkeypatch.setitem(snapshot.COLLECTORS, "users", dataclasses.replace(users, bound=0.5))


async def test_failing_and_hanging_collectors_are_isolated(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    def boom() -> None:
        raise RuntimeError("battery driver exploded")

    monkeypatch.setattr(collectors, "collect_battery", boom)
    hang_users(monkeypatch, release)

    start = time.monotonic()
    taken = await asyncio.wait_for(collect_snapshot(timeout=5.0), 6.0)
    elapsed = time.monotonic() - start

    assert elapsed < 4.0  # neither the hang (30 s) nor the whole timeout is waited out
    errors = {error.collector: error.error for error in taken.errors}
    assert set(errors) == {"battery", "users"}
    assert errors["battery"] == "RuntimeError: battery driver exploded"
    assert errors["users"] == "timed out after 0.5 s"
    assert taken.battery is None
    assert taken.users == []
    assert taken.memory is not None
    assert taken.cpu is not None
    assert taken.disks
    assert taken.interfaces
    assert taken.processes
    assert taken.os.hostname == socket.gethostname()
    assert "not collected: timed out after 0.5 s" in render_text(taken)
    assert roundtrip(taken) == taken


async def test_hung_collector_is_not_started_again(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    calls = 0

    def hang() -> list[object]:
        nonlocal calls
        calls += 1
        release.wait(30)
        return []

    monkeypatch.setattr(collectors, "collect_users", hang)
    users = snapshot.COLLECTORS["users"]
    monkeypatch.setitem(snapshot.COLLECTORS, "users", dataclasses.replace(users, bound=0.2))
    await collect_snapshot(timeout=5.0)
    await asyncio.sleep(0.1)
    again = await collect_snapshot(timeout=5.0)
    assert calls == 1
    [error] = again.errors
    assert error.collector == "users"
    assert error.error.startswith("not started: its previous run is still going")


async def test_whole_snapshot_is_bounded_by_timeout(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    hang_users(monkeypatch, release)
    monkeypatch.setitem(
        snapshot.COLLECTORS,
        "users",
        dataclasses.replace(snapshot.COLLECTORS["users"], bound=60.0),
    )
    start = time.monotonic()
    taken = await collect_snapshot(timeout=1.0)
    assert time.monotonic() - start < 2.5
    assert {e.collector: e.error for e in taken.errors}["users"] == "timed out after 1 s"


async def test_collector_returning_the_wrong_type_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collectors, "collect_memory", lambda: "lots")
    taken = await collect_snapshot(timeout=5.0)
    assert taken.memory is None
    assert [e.collector for e in taken.errors] == ["memory"]


async def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        await collect_snapshot(timeout=0)


# -- Limits ---------------------------------------------------------------------------------


async def test_oversized_process_table_still_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    huge = [
        collectors.ProcessSample(
            pid=100_000 + i,
            name="n\x1b[31m" * 200 + "\udcff",
            user="u" * 5000,
            cpu_percent=float("nan") if i == 0 else float(i % 97),
            memory_rss=i * 4096,
            cmdline=["/usr/bin/tool", "--password=hunter2", "x" * 10_000, "y" * 10_000],
        )
        for i in range(5000)
    ]
    monkeypatch.setattr(collectors, "list_processes", lambda: huge)
    taken = await collect_snapshot(timeout=5.0)
    assert 0 < len(taken.processes) <= 2 * TOP_PROCESSES
    for process in taken.processes:
        assert len(process.cmdline) <= 200
        assert "hunter2" not in process.cmdline
        assert "--password=***" in process.cmdline
        assert "\x1b" not in process.name
        assert len(process.name) <= 256
    assert roundtrip(taken) == taken


def test_fit_trims_lists_to_the_budget() -> None:
    bulky = Snapshot(
        taken_at=time.time(),
        os=OsInfo(family=OsFamily.LINUX, name="x"),
        logs=[LogEntry(message="m" * 4096) for _ in range(1024)],
        processes=[ProcessInfo(pid=i, name="p" * 256, cmdline="c" * 4096) for i in range(256)],
    )
    trimmed = fit(bulky)
    assert len(msgspec.msgpack.encode(trimmed)) <= SNAPSHOT_BUDGET
    assert trimmed.logs
    assert trimmed.processes
    assert trimmed.logs == bulky.logs[: len(trimmed.logs)]
    assert trimmed.errors[-1].collector == "snapshot"
    assert roundtrip(trimmed) == trimmed


def test_clip_makes_one_clean_line() -> None:
    assert clip("a\x00b\r\n\tc\x9b", 100) == "a b c"
    assert clip("bad \udcff byte", 100) == "bad \ufffd byte"
    cut = clip("z" * 1000, 10)
    assert len(cut) == 10
    assert cut.endswith("\u2026")


def test_redact_arguments_hides_secret_values() -> None:
    args = [
        "app",
        "--password=hunter2",
        "--token",
        "abc",
        "DB_SECRET=s3",
        "https://bob:pw@example.org/x",
        '{"api_key": "k", "name": "n"}',
        "--verbose",
    ]
    assert collectors.redact_arguments(args) == [
        "app",
        "--password=***",
        "--token",
        "***",
        "DB_SECRET=***",
        "https://***@example.org/x",
        '{"api_key": "***", "name": "n"}',
        "--verbose",
    ]


# -- Parsers --------------------------------------------------------------------------------


def test_parse_proc_net_route() -> None:
    text = (
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    )
    assert linux.parse_proc_net_route(text) == "192.0.2.1"
    assert linux.parse_proc_net_route(text.splitlines()[0]) is None


def test_parse_ipv6_route() -> None:
    zero = "0" * 32
    text = (
        f"{zero} 00 {zero} 00 fd000000000000000000000000000001 00000400 0 0 3 eth0\n"
        f"{zero} 00 {zero} 00 fe800000000000000000000000000001 00000100 0 0 3 wlan0\n"
        f"{zero} 00 {zero} 00 {zero} ffffffff 1 0 00200200 lo\n"
    )
    assert linux.parse_ipv6_route(text) == "fe80::1%wlan0"


def test_parse_resolv_conf() -> None:
    text = "# generated\nsearch example.org\nnameserver 192.0.2.53\nnameserver ::1\nnameserver\n"
    assert posix.parse_resolv_conf(text) == ["192.0.2.53", "::1"]


def test_parse_systemctl_failed() -> None:
    text = (
        "nginx.service loaded failed failed A high performance web server\n"
        "backup.timer  loaded failed failed\n"
    )
    services = systemd.parse_systemctl_failed(text)
    assert [(s.name, s.state, s.description) for s in services] == [
        ("nginx.service", "failed", "A high performance web server"),
        ("backup.timer", "failed", ""),
    ]


def test_parse_journal() -> None:
    lines = [
        json.dumps(
            {
                "__REALTIME_TIMESTAMP": "1700000000123456",
                "SYSLOG_IDENTIFIER": "kernel",
                "MESSAGE": "EXT4-fs error\x1b[0m",
            }
        ),
        json.dumps({"_COMM": "sshd", "MESSAGE": list(b"bytes \xff here")}),
        "not json",
    ]
    entries = systemd.parse_journal("\n".join(lines))
    first = LogEntry(time=1700000000.123456, source="kernel", message="EXT4-fs error [0m")
    assert entries[0] == first
    assert entries[1].source == "sshd"
    assert entries[1].message == "bytes \ufffd here"
    assert len(entries) == 2


async def test_services_and_logs_degrade_without_systemd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(systemd, "find_tool", lambda name: None)
    assert systemd.collect_failed_services() == []
    assert systemd.collect_recent_errors() == []


# -- Metrics --------------------------------------------------------------------------------


def test_collect_metrics_is_sane_and_fast() -> None:
    for _ in range(3):
        start = time.monotonic()
        metrics = collect_metrics()
        assert time.monotonic() - start < 1.0
        assert 0.0 <= metrics.cpu_percent <= 100.0
        assert 0.0 < metrics.memory_percent <= 100.0
        assert metrics.uptime > 0
        assert metrics.load1 is not None
        assert metrics.load1 >= 0
        assert metrics.disk_min_free_percent is not None
        assert 0.0 <= metrics.disk_min_free_percent <= 100.0
