"""macOS, by contract: sysctl, route, scutil and ping as recorded there, not run here."""

from __future__ import annotations

import platform

import pytest

from deskside.agent.diagnostics import collectors, network, platforms
from deskside.agent.diagnostics.commands import CommandResult, RecordingTools
from deskside.agent.diagnostics.platforms import macos, posix
from deskside.protocol.messages import OsFamily
from tests.agent.diagnostics.platforms.recordings import (
    MAC_CPU,
    MAC_PING,
    MAC_ROUTE_GET,
    MAC_SCUTIL_DNS,
    answers,
)

TOOLS = {"sysctl": MAC_CPU, "route": MAC_ROUTE_GET, "scutil": MAC_SCUTIL_DNS}


def test_os_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "mac_ver", lambda: ("15.1", ("", "", ""), "arm64"))
    assert macos.MacHost().os_name() == "macOS 15.1"
    assert macos.MacHost.family is OsFamily.MACOS


def test_cpu_model_from_sysctl(monkeypatch: pytest.MonkeyPatch) -> None:
    tools = RecordingTools(answers(TOOLS))
    assert macos.MacHost(tools).cpu_model() == "Apple M2 Pro"
    assert tools.commands == [("sysctl", "-n", "machdep.cpu.brand_string")]
    # sysctl missing or failing: Python's guess.
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert macos.MacHost(RecordingTools(installed=frozenset())).cpu_model() == "arm"
    assert macos.MacHost(RecordingTools(answers({}))).cpu_model() == "arm"


def test_system_volumes_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    host = macos.MacHost()
    assert host.hides_mount("/System/Volumes/Data")
    assert host.hides_mount("/System/Volumes/Preboot")
    assert not host.hides_mount("/")
    assert not host.hides_mount("/Volumes/Backup")
    assert not host.hides_process(0)
    # The disk collector asks the backend.
    monkeypatch.setattr(platforms, "current", lambda: platforms.select("darwin"))
    assert not collectors._is_data_mount("/System/Volumes/Data", "apfs")
    assert collectors._is_data_mount("/", "apfs")


def test_gateway_from_route_get() -> None:
    tools = RecordingTools(answers(TOOLS))
    assert macos.MacNetwork(tools).default_gateway() == "192.168.1.1"
    assert tools.commands == [("route", "-n", "get", "default")]


def test_dns_servers_from_scutil_when_resolv_conf_names_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = {"/etc/resolv.conf": "#\n# macOS Notice\n#\n"}
    monkeypatch.setattr(posix, "read_text", files.get)
    tools = RecordingTools(answers(TOOLS))
    assert macos.MacNetwork(tools).dns_servers() == ["192.168.1.1", "fd00::1"]
    assert tools.commands == [("scutil", "--dns")]
    # resolv.conf first: scutil is not asked then.
    files["/etc/resolv.conf"] = "nameserver 192.168.1.254\n"
    tools = RecordingTools(answers(TOOLS))
    assert macos.MacNetwork(tools).dns_servers() == ["192.168.1.254"]
    assert tools.commands == []


def test_parse_scutil_dns() -> None:
    assert macos.parse_scutil_dns(MAC_SCUTIL_DNS) == ["192.168.1.1", "fd00::1"]
    assert macos.parse_scutil_dns("No DNS configuration available\n") == []


def test_ping_and_ping6(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = macos.MacNetwork()
    assert backend.ping_tool("192.168.1.1") == "ping"
    assert backend.ping_tool("fe80::1%en0") == "ping6"
    runs: list[tuple[list[str], bool]] = []

    def run_tool(argv: list[str], *, timeout: float, c_locale: bool = True) -> CommandResult:
        runs.append((list(argv), c_locale))
        return CommandResult(0, MAC_PING, "")

    monkeypatch.setattr(platforms, "current", lambda: platforms.select("darwin"))
    monkeypatch.setattr(network, "find_tool", lambda name: f"/sbin/{name}")
    monkeypatch.setattr(network, "run_tool", run_tool)
    check = network._check_gateway("192.168.1.1", 2.0)
    assert (check.ok, check.latency_ms) == (True, 3.215)
    assert runs == [(["/sbin/ping", "-n", "-c", "1", "-W", "1000", "192.168.1.1"], True)]
