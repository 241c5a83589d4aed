"""Routing, name servers and reachability: what "the network is down" comes down to.

What each part reads (the per-OS part through this OS's ``Network``, in
``deskside.agent.diagnostics.platforms``):

* ``find_default_gateway``: ``/proc/net/route``, then ``/proc/net/ipv6_route``
  (Linux); ``route -n get default`` (macOS, BSD); ``route print -4`` (Windows).
* ``find_dns_servers``: ``/etc/resolv.conf``, and the upstream servers of
  systemd-resolved (``/run/systemd/resolve/resolv.conf``) behind its local stub;
  ``scutil --dns`` (macOS, when resolv.conf is empty); the TCP/IP registry keys
  (Windows).
* ``collect_reachability``: resolves the console's host name, connects to its TCP
  port, and pings the default gateway (``ping`` binary; without it, a TCP probe of
  ports 53 and 80, where a refusal proves the gateway is up). Only the host and port
  of the console URL are ever reported, never its path, query or credentials.

Each check has its own time-out, derived from the collector's budget, so one slow
answer costs that check and not the rest.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Final
from urllib.parse import urlsplit

from deskside.protocol.messages import NetworkInfo, ReachabilityCheck

from . import platforms
from .commands import find_tool, run_tool
from .limits import MAX_DNS_SERVERS, MAX_NAME, call_with_timeout, clip, number

__all__ = [
    "collect_network",
    "collect_reachability",
    "find_default_gateway",
    "find_dns_servers",
]

# Default ports of the console URL schemes.
_DEFAULT_PORTS: Final = {"wss": 443, "https": 443, "ws": 80, "http": 80}

# Most console addresses tried per TCP check (IPv6 and IPv4, a few each).
_MAX_ADDRESSES: Final = 4

# Ports probed on the gateway when there is no ping: DNS forwarders and admin pages.
_GATEWAY_PORTS: Final = (53, 80)

# "time=0.045 ms" (Linux, macOS), "time=3ms" or "time<1ms" (Windows).
_PING_TIME: Final = re.compile(r"time[=<]\s*([0-9.]+)\s*ms")


# -- Default gateway ----------------------------------------------------------------------


def find_default_gateway() -> str | None:
    """The address of the default gateway, or None if there is no default route."""
    gateway = platforms.current().network.default_gateway()
    return None if gateway is None else clip(gateway, MAX_NAME)


# -- Name servers -------------------------------------------------------------------------


def find_dns_servers() -> list[str]:
    """The DNS servers this machine asks, in order (at most ``MAX_DNS_SERVERS``)."""
    servers = platforms.current().network.dns_servers()
    return [clip(server, MAX_NAME) for server in servers[:MAX_DNS_SERVERS]]


def collect_network() -> NetworkInfo:
    """The default gateway and DNS servers; the checks come from ``collect_reachability``."""
    return NetworkInfo(default_gateway=find_default_gateway(), dns_servers=find_dns_servers())


# -- Reachability -------------------------------------------------------------------------


def _elapsed_ms(start: float) -> float:
    return number((time.perf_counter() - start) * 1000.0)


def _reason(exc: OSError, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


Address = tuple[int, tuple[object, ...]]


def _resolve(host: str, port: int, timeout: float) -> list[Address]:
    def lookup() -> list[Address]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [(int(family), tuple(sockaddr)) for family, _, _, _, sockaddr in infos]

    # getaddrinfo has no time-out of its own and may wait on several servers in turn.
    addresses = call_with_timeout(lookup, timeout, name="resolve")
    unique: list[Address] = []
    for address in addresses:
        if address not in unique:
            unique.append(address)
    return unique[:_MAX_ADDRESSES]


def _check_dns(host: str, port: int, timeout: float) -> tuple[ReachabilityCheck, list[Address]]:
    target = clip(f"dns {host}", MAX_NAME)
    start = time.perf_counter()
    try:
        addresses = _resolve(host, port, timeout)
    except socket.gaierror as exc:
        detail = f"does not resolve: {exc.strerror or exc}"
        return ReachabilityCheck(target=target, ok=False, detail=clip(detail, MAX_NAME)), []
    except OSError as exc:
        detail = _reason(exc, timeout)
        return ReachabilityCheck(target=target, ok=False, detail=clip(detail, MAX_NAME)), []
    shown = ", ".join(str(sockaddr[0]) for _, sockaddr in addresses)
    check = ReachabilityCheck(
        target=target, ok=True, latency_ms=_elapsed_ms(start), detail=clip(shown, MAX_NAME)
    )
    return check, addresses


def _connect(address: Address, timeout: float) -> float:
    family, sockaddr = address
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        start = time.perf_counter()
        sock.connect(sockaddr)
        return _elapsed_ms(start)


def _check_tcp(target: str, addresses: list[Address], timeout: float) -> ReachabilityCheck:
    target = clip(target, MAX_NAME)
    if not addresses:
        return ReachabilityCheck(target=target, ok=False, detail="not tried: no address")
    failures: list[str] = []
    deadline = time.monotonic() + timeout
    for address in addresses:
        remaining = max(deadline - time.monotonic(), 0.05)
        try:
            latency = _connect(address, remaining)
        except OSError as exc:
            failures.append(f"{address[1][0]}: {_reason(exc, round(remaining, 1))}")
            continue
        detail = f"connected to {address[1][0]}"
        return ReachabilityCheck(target=target, ok=True, latency_ms=latency, detail=detail)
    return ReachabilityCheck(target=target, ok=False, detail=clip("; ".join(failures), 1000))


def _check_console(console_url: str, timeout: float) -> list[ReachabilityCheck]:
    try:
        parts = urlsplit(console_url)
        host, port = parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        host = port = None
    if not host or port is None:
        return [ReachabilityCheck(target="console", ok=False, detail="invalid console URL")]
    checks: list[ReachabilityCheck] = []
    if _is_address(host):
        # An address needs no lookup: a DNS check would say nothing about DNS.
        addresses: list[Address] = []
        with contextlib.suppress(OSError):
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
            addresses = [(int(f), tuple(s)) for f, _, _, _, s in infos][:1]
    else:
        check, addresses = _check_dns(host, port, timeout)
        checks.append(check)
    checks.append(_check_tcp(f"tcp {_host_port(host, port)}", addresses, timeout))
    return checks


def _ping(
    network: platforms.Network, tool: str, gateway: str, target: str, timeout: float
) -> ReachabilityCheck:
    start = time.perf_counter()
    try:
        argv = network.ping_argv(tool, gateway)
        result = run_tool(argv, timeout=timeout, c_locale=network.c_locale)
    except OSError as exc:
        return ReachabilityCheck(target=target, ok=False, detail=clip(f"ping: {exc}", MAX_NAME))
    except subprocess.TimeoutExpired:
        return ReachabilityCheck(target=target, ok=False, detail="ping did not finish")
    elapsed = _elapsed_ms(start)
    # Windows' ping exits 0 on "destination host unreachable"; a reply has a TTL.
    answered = result.returncode == 0 and "ttl=" in result.stdout.lower()
    if not answered:
        return ReachabilityCheck(target=target, ok=False, detail="no reply to ping")
    match = _PING_TIME.search(result.stdout)
    latency = number(float(match.group(1))) if match else elapsed
    return ReachabilityCheck(target=target, ok=True, latency_ms=latency, detail="ping reply")


def _probe(gateway: str, target: str, timeout: float) -> ReachabilityCheck:
    # A refused connection is an answer from the gateway itself: it is up.
    per_port = max(timeout / len(_GATEWAY_PORTS), 0.1)
    for port in _GATEWAY_PORTS:
        try:
            family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
            infos = socket.getaddrinfo(
                gateway, port, family, socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
            address: Address = (int(infos[0][0]), tuple(infos[0][4]))
            start = time.perf_counter()
            how = "open"
            try:
                _connect(address, per_port)
            except ConnectionRefusedError:
                how = "refused"
            latency = _elapsed_ms(start)
        except OSError:
            continue
        detail = f"ping not available; TCP port {port} answered ({how})"
        return ReachabilityCheck(target=target, ok=True, latency_ms=latency, detail=detail)
    ports = ", ".join(str(port) for port in _GATEWAY_PORTS)
    detail = f"ping not available; no answer on TCP ports {ports}"
    return ReachabilityCheck(target=target, ok=False, detail=detail)


def _check_gateway(gateway: str, timeout: float) -> ReachabilityCheck:
    target = clip(f"gateway {gateway}", MAX_NAME)
    network = platforms.current().network
    tool = find_tool(network.ping_tool(gateway))
    if tool is None:
        return _probe(gateway, target, min(timeout, 1.5))
    return _ping(network, tool, gateway, target, timeout)


def collect_reachability(console_url: str | None, budget: float = 8.0) -> list[ReachabilityCheck]:
    """Checks of the console (DNS, then TCP) and of the default gateway, run side by side.

    ``budget`` is the time the caller allows in all; each check gets a share of it.
    """
    gateway = find_default_gateway()
    step = min(3.0, max(budget * 0.4, 0.1))
    with ThreadPoolExecutor(2, thread_name_prefix="deskside-diagnostics-check") as pool:
        console = pool.submit(_check_console, console_url, step) if console_url else None
        router = pool.submit(_check_gateway, gateway, min(3.0, budget * 0.8)) if gateway else None
        checks = console.result() if console is not None else []
        if router is not None:
            checks.append(router.result())
    return checks
