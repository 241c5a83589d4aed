"""Linux: /proc/cpuinfo, the kernel's routes, and ping through the network collector."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from deskside.agent.diagnostics import network, platforms
from deskside.agent.diagnostics.commands import CommandResult
from deskside.agent.diagnostics.platforms import linux, posix
from tests.agent.diagnostics.platforms.recordings import LINUX_PING

X86_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model\t\t: 142
model name\t: Intel(R) Core(TM) i7-8565U CPU @ 1.80GHz

processor\t: 1
model name\t: Intel(R) Core(TM) i7-8565U CPU @ 1.80GHz
"""

RASPBERRY_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 108.00
Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def test_parse_cpuinfo() -> None:
    assert linux.parse_cpuinfo(X86_CPUINFO) == "Intel(R) Core(TM) i7-8565U CPU @ 1.80GHz"
    # "Model" names the board better than "Hardware" (the SoC).
    assert linux.parse_cpuinfo(RASPBERRY_CPUINFO) == "Raspberry Pi 4 Model B Rev 1.4"
    assert linux.parse_cpuinfo("processor\t: 0\n") is None


def test_cpu_model_falls_back_to_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linux, "read_text", lambda path: None)
    monkeypatch.setattr(platform, "processor", lambda: "x86_64")
    assert linux.LinuxHost().cpu_model() == "x86_64"


def test_ipv6_gateway_when_there_is_no_ipv4_one(monkeypatch: pytest.MonkeyPatch) -> None:
    zero = "0" * 32
    files = {
        "/proc/net/route": "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n",
        "/proc/net/ipv6_route": f"{zero} 00 {zero} 00 20010db8000000000000000000000001 "
        "00000400 0 0 3 eth0\n",
    }
    monkeypatch.setattr(linux, "read_text", files.get)
    assert linux.LinuxNetwork().default_gateway() == "2001:db8::1"


def test_dns_servers_are_the_unix_ones() -> None:
    assert linux.LinuxNetwork.dns_servers is posix.PosixNetwork.dns_servers


def test_gateway_ping_uses_the_backend_s_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[tuple[list[str], bool]] = []

    def run_tool(argv: list[str], *, timeout: float, c_locale: bool = True) -> CommandResult:
        runs.append((list(argv), c_locale))
        return CommandResult(0, LINUX_PING, "")

    monkeypatch.setattr(platforms, "current", lambda: platforms.select("linux"))
    monkeypatch.setattr(network, "find_tool", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(network, "run_tool", run_tool)
    check = network._check_gateway("192.0.2.1", 2.0)
    assert (check.ok, check.latency_ms, check.detail) == (True, 0.045, "ping reply")
    assert runs == [(["/usr/bin/ping", "-n", "-c", "1", "-W", "1", "192.0.2.1"], True)]


def test_pending_reboot(tmp_path: Path) -> None:
    root = tmp_path
    assert linux.pending_reboot_in(root) is None  # nothing says, either way
    (root / "etc").mkdir()
    (root / "etc" / "debian_version").write_text("12.8\n")
    assert linux.pending_reboot_in(root) is False
    (root / "run").mkdir()
    (root / "run" / "reboot-required").write_text("*** System restart required ***\n")
    assert linux.pending_reboot_in(root) is True


def _supply(root: Path, name: str, **files: str) -> None:
    (root / name).mkdir(parents=True)
    for file, text in files.items():
        (root / name / file).write_text(text + "\n")


def test_battery_health(tmp_path: Path) -> None:
    root = tmp_path / "power_supply"
    assert linux.battery_health_in(root) is None  # no such directory
    _supply(root, "AC", type="Mains", online="1")
    assert linux.battery_health_in(root) is None
    # A laptop's battery as the kernel shows it (µWh), worn to 62.5 %.
    _supply(root, "BAT0", type="Battery", energy_full="35000000", energy_full_design="56000000")
    assert linux.battery_health_in(root) == 62.5
    # Batteries that count charge (µAh) instead; the first battery is the one read.
    root2 = tmp_path / "other"
    _supply(root2, "BAT1", type="Battery", charge_full="4100000", charge_full_design="4000000")
    assert linux.battery_health_in(root2) == 100.0  # a new battery may beat its design
    root3 = tmp_path / "broken"
    _supply(root3, "BAT0", type="Battery", energy_full="n/a", energy_full_design="0")
    assert linux.battery_health_in(root3) is None


def test_this_machine_says_whether_it_waits_for_a_reboot() -> None:
    host = linux.LinuxHost()
    expected = Path("/run/reboot-required").exists() or (
        None if not Path("/etc/debian_version").exists() else False
    )
    assert host.pending_reboot() is expected
