"""Windows, by contract: the registry as a dictionary, route and ping as recorded there."""

from __future__ import annotations

import platform

import pytest

from deskside.agent.diagnostics import collectors, network, platforms
from deskside.agent.diagnostics.commands import CommandResult, RecordingTools, SystemTools
from deskside.agent.diagnostics.platforms import windows
from deskside.protocol.messages import NetworkInfo, OsFamily
from tests.agent.diagnostics.platforms.recordings import (
    WINDOWS_PING,
    WINDOWS_PING_UNREACHABLE,
    WINDOWS_ROUTE_PRINT,
    answers,
)

INTERFACES = r"SYSTEM\CurrentControlSet\Services\Tcpip\Parameters\Interfaces"
INTERFACES6 = r"SYSTEM\CurrentControlSet\Services\Tcpip6\Parameters\Interfaces"
CPU = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"


class DictRegistry:
    """A registry of ``{key: {value name: value}}``; subkeys are the keys below a key."""

    def __init__(self, keys: dict[str, dict[str, object]]) -> None:
        self.keys = keys

    def value(self, key: str, name: str) -> object:
        try:
            return self.keys[key][name]
        except KeyError:
            raise FileNotFoundError(2, "The system cannot find the file specified") from None

    def subkeys(self, key: str) -> list[str]:
        if key not in self.keys:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        prefix = key + "\\"
        return [k[len(prefix) :] for k in self.keys if k.startswith(prefix)]


REGISTRY = DictRegistry(
    {
        CPU: {"ProcessorNameString": "Intel(R) Core(TM) i5-1135G7 @ 2.40GHz   "},
        INTERFACES: {},
        INTERFACES + r"\{4d36e972-e325}": {"NameServer": "", "DhcpNameServer": "10.0.0.1 9.9.9.9"},
        INTERFACES + r"\{7a1f0c2b-11aa}": {"NameServer": "192.168.1.1,10.0.0.1"},
        INTERFACES6: {},
        INTERFACES6 + r"\{4d36e972-e325}": {"DhcpNameServer": "fd00::1"},
    }
)


@pytest.mark.parametrize(
    ("release", "version", "edition", "name"),
    [
        ("10", "10.0.19045", "Professional", "Windows 10 Professional"),
        ("10", "10.0.22631", "Professional", "Windows 11 Professional"),
        ("10", "10.0.26100", None, "Windows 11"),
    ],
)
def test_windows_name(release: str, version: str, edition: str | None, name: str) -> None:
    assert windows.windows_name(release, version, edition) == name


def test_host(monkeypatch: pytest.MonkeyPatch) -> None:
    host = windows.WindowsHost(registry=REGISTRY)
    assert host.family is OsFamily.WINDOWS
    assert host.cpu_model() == "Intel(R) Core(TM) i5-1135G7 @ 2.40GHz"
    monkeypatch.setattr(platform, "processor", lambda: "Intel64 Family 6 Model 140")
    assert windows.WindowsHost(registry=DictRegistry({})).cpu_model() == (
        "Intel64 Family 6 Model 140"
    )
    assert host.hides_process(0)
    assert not host.hides_process(4)
    assert not host.hides_mount("C:\\")


def test_parse_route_print() -> None:
    assert windows.parse_route_print(WINDOWS_ROUTE_PRINT) == "192.168.1.1"
    assert windows.parse_route_print("Active Routes:\n  None\n") is None


def test_network_through_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    tools = RecordingTools(answers({"route": WINDOWS_ROUTE_PRINT}))
    backend = platforms.Platform(
        windows.WindowsHost(tools, REGISTRY), windows.WindowsNetwork(tools, REGISTRY)
    )
    monkeypatch.setattr(platforms, "current", lambda: backend)
    assert network.collect_network() == NetworkInfo(
        default_gateway="192.168.1.1",
        dns_servers=["10.0.0.1", "9.9.9.9", "192.168.1.1", "fd00::1"],
    )
    assert tools.commands == [("route", "print", "-4", "0.0.0.0")]
    assert collectors.os_family() is OsFamily.WINDOWS


def test_no_registry_keys_no_servers() -> None:
    assert windows.WindowsNetwork(registry=DictRegistry({})).dns_servers() == []


def test_tools_run_without_the_posix_locale() -> None:
    assert windows.WindowsNetwork(registry=REGISTRY).tools == SystemTools(c_locale=False)
    assert platforms.select("linux").network.tools == SystemTools(c_locale=True)


@pytest.mark.parametrize(
    ("output", "ok"), [(WINDOWS_PING, True), (WINDOWS_PING_UNREACHABLE, False)]
)
def test_ping(monkeypatch: pytest.MonkeyPatch, output: str, ok: bool) -> None:
    runs: list[tuple[list[str], bool]] = []

    def run_tool(argv: list[str], *, timeout: float, c_locale: bool = True) -> CommandResult:
        runs.append((list(argv), c_locale))
        return CommandResult(0, output, "")  # ping exits 0 on "unreachable" too

    monkeypatch.setattr(platforms, "current", lambda: platforms.select("win32"))
    monkeypatch.setattr(network, "find_tool", lambda name: f"C:\\Windows\\system32\\{name}.exe")
    monkeypatch.setattr(network, "run_tool", run_tool)
    check = network._check_gateway("192.168.1.1", 2.0)
    assert check.ok is ok
    assert check.latency_ms == (1.0 if ok else None)
    argv = ["C:\\Windows\\system32\\ping.exe", "-n", "1", "-w", "1000", "192.168.1.1"]
    assert runs == [(argv, False)]
