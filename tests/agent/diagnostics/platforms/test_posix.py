"""What the Unixes share: resolv.conf, BSD ``route``, ``ping``; the fallback host."""

from __future__ import annotations

import platform

import pytest

from deskside.agent.diagnostics.commands import RecordingTools
from deskside.agent.diagnostics.platforms import posix
from tests.agent.diagnostics.platforms.recordings import (
    MAC_ROUTE_GET,
    MAC_ROUTE_GET_NONE,
    answers,
)


def test_parse_route_get() -> None:
    assert posix.parse_route_get(MAC_ROUTE_GET) == "192.168.1.1"
    assert posix.parse_route_get(MAC_ROUTE_GET_NONE) is None


def test_gateway_from_route_get() -> None:
    tools = RecordingTools(answers({"route": MAC_ROUTE_GET}))
    assert posix.PosixNetwork(tools).default_gateway() == "192.168.1.1"
    assert tools.commands == [("route", "-n", "get", "default")]


def test_no_route_tool_no_gateway() -> None:
    tools = RecordingTools(installed=frozenset())
    assert posix.PosixNetwork(tools).default_gateway() is None
    assert tools.commands == []


def test_dns_servers_behind_the_systemd_resolved_stub(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        "/etc/resolv.conf": "nameserver 127.0.0.53\noptions edns0 trust-ad\n",
        "/run/systemd/resolve/resolv.conf": "nameserver 192.0.2.53\nnameserver 127.0.0.53\n",
    }
    monkeypatch.setattr(posix, "read_text", files.get)
    assert posix.PosixNetwork().dns_servers() == ["127.0.0.53", "192.0.2.53"]
    # A resolv.conf of real servers is the whole answer.
    files["/etc/resolv.conf"] = "nameserver 192.0.2.1\n"
    assert posix.PosixNetwork().dns_servers() == ["192.0.2.1"]


def test_ping_wait_in_seconds_or_milliseconds() -> None:
    seconds = posix.PosixNetwork().ping_argv("ping", "192.0.2.1")
    assert seconds == ["ping", "-n", "-c", "1", "-W", "1", "192.0.2.1"]
    milliseconds = posix.BsdNetwork().ping_argv("ping", "192.0.2.1")
    assert milliseconds == ["ping", "-n", "-c", "1", "-W", "1000", "192.0.2.1"]


def test_fallback_host_names_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    host = posix.PosixHost("sunos5")
    monkeypatch.setattr(platform, "system", lambda: "SunOS")
    assert host.os_name() == "SunOS"
    monkeypatch.setattr(platform, "system", lambda: "")
    assert host.os_name() == "sunos5"
    assert not host.hides_mount("/System/Volumes/Data")
    assert not host.hides_process(0)
