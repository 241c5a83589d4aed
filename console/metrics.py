"""What a console node tells Prometheus: ``/metrics``, and who may read it.

Every node serves its own figures (Prometheus scrapes each node, not the load
balancer): agents connected, messages and bytes from agents per message type (the
capability that owns it), commands running on this node's agents, terminal and
screen sessions, event-bus subscriptions and what they lost, the Redis bus's
traffic, and database and Redis latency (measured every ``PROBE_INTERVAL`` s).
The metrics live in a registry of the node's own, not prometheus-client's global
one, so that several consoles in one process (the tests) do not mix.

The webhooks' outbox (being built) feeds ``deskside_outbox_depth`` by setting
``NodeMetrics.outbox_depth`` to a function that returns its depth; until then
the gauge is not exported at all, rather than a made-up zero.

Who may read it (``[metrics]`` in ``console.toml``): peers from the networks in
``allow`` (default: this machine only, ``127.0.0.1/32`` and ``::1/128``), or anyone
with ``Authorization: Bearer <token>`` when a ``token`` is set
(``DESKSIDE_METRICS_TOKEN``; compared in constant time). Everyone else gets 403:
the figures (agents, hosts' traffic) are not for the internet. Behind a proxy the
peer is the proxy: let the proxy not forward ``/metrics``, and scrape nodes
directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from deskside.protocol.errors import ConfigError

__all__ = ["CONTENT_TYPE", "MetricsSettings", "NodeMetrics"]

logger = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
# Seconds between latency probes of the database and Redis.
PROBE_INTERVAL: Final = 5.0
_LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_LOCAL: Final = ("127.0.0.1/32", "::1/128")
# Commands followed at once per node, at most (a bound on memory, not a limit on work).
_MAX_RUNNING: Final = 100_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """Who may read ``/metrics`` (``[metrics]``)."""

    allow: tuple[Network, ...] = field(
        default_factory=lambda: tuple(ipaddress.ip_network(n) for n in _LOCAL)
    )
    """Networks whose peers may read it without a token."""

    token: str = ""
    """A bearer token that may read it from anywhere; empty: none."""

    def __post_init__(self) -> None:
        if self.token and len(self.token) < 16:
            raise ConfigError("metrics.token must be at least 16 characters")

    @classmethod
    def from_toml(cls, data: Mapping[str, object], env: Mapping[str, str]) -> MetricsSettings:
        """Read ``[metrics]`` (``allow``, ``token``), then ``DESKSIDE_METRICS_TOKEN``."""
        table = data.get("metrics", {})
        if not isinstance(table, Mapping):
            raise ConfigError("[metrics] must be a table")
        unknown = set(table) - {"allow", "token"}
        if unknown:
            raise ConfigError(f"unknown setting metrics.{sorted(unknown)[0]}")
        allow = table.get("allow", list(_LOCAL))
        if not isinstance(allow, list) or not all(isinstance(n, str) for n in allow):
            raise ConfigError('metrics.allow must be a list of networks ("10.0.0.0/8")')
        try:
            networks = tuple(ipaddress.ip_network(n, strict=False) for n in allow)
        except ValueError as exc:
            raise ConfigError(f"metrics.allow: {exc}") from exc
        token = table.get("token", "")
        if not isinstance(token, str):
            raise ConfigError("metrics.token must be a string")
        return cls(allow=networks, token=env.get("DESKSIDE_METRICS_TOKEN", token))

    def permits(self, peer: str | None, authorization: str | None) -> bool:
        """Whether a request from ``peer`` with this ``Authorization`` header may read."""
        if self.token and authorization is not None:
            scheme, _, given = authorization.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                return True
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)


class NodeMetrics:
    """The figures of one console node, in a Prometheus registry of its own.

    Counters are counted where things happen (``message_received``); gauges are read
    from their sources when Prometheus scrapes (``gauges``: name -> (help, function)).
    """

    def __init__(self, node: str = "") -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter(
            "deskside_agent_messages",
            "Messages received from agents, by message type.",
            ["type"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "deskside_agent_received_bytes",
            "Bytes received from agents (encrypted frames), by the message type they carried.",
            ["type"],
            registry=self.registry,
        )
        self.sent_bytes = Counter(
            "deskside_agent_sent_bytes",
            "Bytes sent to agents (encrypted frames).",
            registry=self.registry,
        )
        self.database_latency = Histogram(
            "deskside_database_latency_seconds",
            "Time the database takes to answer a probe (SELECT 1).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.redis_latency = Histogram(
            "deskside_redis_latency_seconds",
            "Time Redis takes to answer a probe (PING).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.probe_failures = Counter(
            "deskside_probe_failures",
            "Latency probes that got no answer, by what was probed.",
            ["target"],
            registry=self.registry,
        )
        # Gauges read at scrape time: name -> (help, source).
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        # Counters kept elsewhere, read at scrape time: name -> (help, source).
        self.counters: dict[str, tuple[str, Callable[[], float]]] = {}
        # The webhooks' outbox: set it to a function giving its depth (see the module).
        self.outbox_depth: Callable[[], int] | None = None
        # Commands running on this node's agents: command id -> device id.
        self._running: dict[str, str] = {}
        self.registry.register(_Sources(self))
        self._prober: asyncio.Task[None] | None = None

    # -- Counted where it happens ----------------------------------------------------

    def message_received(self, device_id: str, message_type: str, size: int) -> None:
        """An agent's message of ``size`` frame bytes."""
        self.messages.labels(message_type).inc()
        if size:
            self.bytes.labels(message_type).inc(size)

    def command_started(self, device_id: str, command_id: str) -> None:
        """A command began on an agent of this node."""
        if len(self._running) < _MAX_RUNNING:
            self._running[command_id] = device_id

    def command_ended(self, command_id: str) -> None:
        """A command ended (its exit came)."""
        self._running.pop(command_id, None)

    def agent_gone(self, device_id: str) -> None:
        """The device's daemon left this node: its commands are followed elsewhere."""
        for command_id in [c for c, d in self._running.items() if d == device_id]:
            del self._running[command_id]

    @property
    def commands_running(self) -> int:
        """Commands this node saw start and not end."""
        return len(self._running)

    # -- Scrapes and probes ------------------------------------------------------------

    def render(self) -> bytes:
        """The text Prometheus reads."""
        return generate_latest(self.registry)

    def start_probes(self, probes: Sequence[tuple[str, Callable[[], Awaitable[float]]]]) -> None:
        """Measure each ``(target, probe)`` every ``PROBE_INTERVAL`` s; ``target`` is
        ``database`` or ``redis``, ``probe`` returns the seconds it took."""
        histograms = {"database": self.database_latency, "redis": self.redis_latency}

        async def run() -> None:
            while True:
                for target, probe in probes:
                    try:
                        async with asyncio.timeout(PROBE_INTERVAL):
                            histograms[target].observe(await probe())
                    except Exception as exc:  # whatever the driver raises: counted
                        self.probe_failures.labels(target).inc()
                        logger.debug("%s probe failed: %s", target, type(exc).__name__)
                await asyncio.sleep(PROBE_INTERVAL)

        self._prober = asyncio.create_task(run(), name="deskside-probes")

    async def stop(self) -> None:
        """Stop probing."""
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober


class _Sources(Collector):
    """The gauges and counters whose values live in other objects."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        yield GaugeMetricFamily(
            "deskside_commands_running",
            "Commands running on this node's agents.",
            value=metrics.commands_running,
        )
        for name, (text, source) in sorted(metrics.gauges.items()):
            yield GaugeMetricFamily(name, text, value=_read(name, source))
        for name, (text, source) in sorted(metrics.counters.items()):
            yield CounterMetricFamily(name, text, value=_read(name, source))
        if metrics.outbox_depth is not None:
            yield GaugeMetricFamily(
                "deskside_outbox_depth",
                "Webhook deliveries waiting in the outbox.",
                value=_read("outbox", metrics.outbox_depth),
            )


def _read(name: str, source: Callable[[], float]) -> float:
    try:
        return float(source())
    except Exception:  # a source that fails must not fail the whole scrape
        logger.exception("metric %s could not be read", name)
        return float("nan")
