"""Run the console: migrations, then the application on uvicorn."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import version

import uvicorn

from deskside.protocol.connection import max_frame_size

from .app import Service, build_app
from .cluster.bus import RedisEventBus
from .cluster.registry import PresenceRegistry
from .config import ConsoleConfig, DataDir
from .db import migrate
from .events import EventBus
from .gateway import Gateway
from .limits import ConnectionLimits
from .listener import protocols
from .logs import LogFormat, configure
from .metrics import NodeMetrics
from .store import Store
from .webhooks.dispatcher import DispatcherConfig, WebhookDispatcher

__all__ = ["serve"]


class _Server(uvicorn.Server):
    """uvicorn's server, exiting 0 after a graceful stop on SIGTERM or SIGINT.

    uvicorn re-raises the signal it caught once it has shut down, so the process
    would die of it; a console that stopped cleanly should say so with 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()


def _smaller_tls_buffers() -> None:
    """Give each TLS connection a 64 KiB read buffer instead of asyncio's 256 KiB.

    With thousands of agents connected, asyncio's per-connection buffer was most of
    the console's memory (324 -> 133 KiB per agent, benchmarks/fleet.py). It is a
    private class attribute of asyncio, so this looks before it touches.
    """
    protocol = getattr(asyncio.sslproto, "SSLProtocol", None)
    if isinstance(getattr(protocol, "max_size", None), int):
        protocol.max_size = 64 * 1024  # type: ignore[union-attr]


def _tls_handshake_timeout(seconds: float) -> None:
    """Give a new connection ``seconds`` to finish its TLS handshake instead of 60.

    uvicorn gives asyncio no time-out of its own, so asyncio's default applies; a
    peer that opens TCP connections and sends no ClientHello holds each that long.
    It is a module constant of asyncio, read when a connection is made, so this
    looks before it touches.
    """
    constants = getattr(asyncio, "constants", None)
    if isinstance(getattr(constants, "SSL_HANDSHAKE_TIMEOUT", None), int | float):
        constants.SSL_HANDSHAKE_TIMEOUT = seconds  # type: ignore[union-attr]


def serve(
    config: ConsoleConfig, *, log_level: str = "info", log_format: LogFormat | None = None
) -> None:
    """Serve until SIGTERM or SIGINT; agents are told the console is going away.

    With ``[cluster] redis_url``, the node's events go through Redis to the other
    nodes, its agents are claimed in the presence registry, and ``/readyz`` checks
    Redis too (``deskside.console.cluster``).
    """
    cluster = config.cluster
    node = cluster.node_id if cluster.enabled else ""
    configure(log_level, log_format or config.log_format, node)
    # httpx logs each webhook attempt's URL at info (a receiver's URL may carry its
    # token); the delivery log has every attempt's outcome.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    _smaller_tls_buffers()
    limits: ConnectionLimits = config.limits
    _tls_handshake_timeout(limits.tls_handshake_timeout)
    http_protocol, ws_protocol = protocols(limits)
    key = DataDir(config.data_dir).noise_private_key()
    migrate(config.database)
    metrics = NodeMetrics(node)
    services: list[Service] = []
    bus: EventBus | None = None
    registry: PresenceRegistry | None = None
    redis_bus: RedisEventBus | None = None
    if cluster.enabled:
        logging.getLogger(__name__).info(
            "node %s of a cluster: Redis at %s", node, cluster.safe_url()
        )
        redis_bus = bus = RedisEventBus(cluster.redis_url, node=node, outbox=cluster.outbox)
    store = Store.connect(config.database, config.policy, bus, data_dir=config.data_dir)
    if cluster.enabled:
        registry = PresenceRegistry(
            cluster.redis_url,
            node=node,
            devices=store.devices,
            held=lambda: gateway.daemon_devices(),
            claim_ttl=cluster.claim_ttl,
        )
    gateway = Gateway(
        store,
        key,
        software_version=version("deskside"),
        limits=limits,
        claims=registry,
        metrics=metrics,
    )
    _measure(metrics, store, gateway, redis_bus, registry)
    readiness = {}
    if redis_bus is not None and registry is not None:
        services = [redis_bus, registry]
        readiness["redis"] = redis_bus.ping
    services.append(_Probes(metrics, store, redis_bus))
    dispatcher = WebhookDispatcher(
        store.webhooks,
        config.webhooks.guard(config.own_names()),
        DispatcherConfig.for_timeout(config.webhooks.timeout),
        bus=store.bus,
    )
    app = build_app(
        store,
        gateway,
        config.data_dir,
        origins=[config.agent_url],
        webhooks=dispatcher,
        web=config.web,
        services=services,
        readiness=readiness,
        metrics_settings=config.metrics,
        own_logging=True,
    )
    app.on_shutdown.append(store.close)
    server = _Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
            ssl_keyfile=str(config.tls_key) if config.tls_key else None,
            http=http_protocol,
            ws=ws_protocol,
            timeout_keep_alive=limits.keepalive_timeout,
            ws_max_size=max_frame_size(gateway.channel_config.max_message_size),
            ws_per_message_deflate=False,  # compressing ciphertext gains nothing
            ws_ping_interval=None,  # the channel keeps itself alive, encrypted
            lifespan="on",
            log_level=log_level,
            log_config=None,  # the root logger's handler (deskside.console.logs) writes
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )
    server.run()


def _measure(
    metrics: NodeMetrics,
    store: Store,
    gateway: Gateway,
    bus: RedisEventBus | None,
    registry: PresenceRegistry | None,
) -> None:
    """Tell ``metrics`` where its gauges and counters are read."""
    local = bus.local if bus is not None else store.bus
    gauges = metrics.gauges
    gauges["deskside_agents_connected"] = (
        "Agents with a daemon channel open on this node.",
        lambda: len(gateway.daemon_devices()),
    )
    gauges["deskside_agent_channels"] = (
        "Agent channels open on this node (daemons and one-off CLI connections).",
        lambda: sum(len(group) for group in gateway.sessions.values()),
    )
    gauges["deskside_terminal_sessions"] = (
        "Terminal sessions relayed by this node.",
        lambda: len(gateway.terminals.relays),
    )
    gauges["deskside_screen_sessions"] = (
        "Screen sessions relayed by this node.",
        lambda: len(gateway.screens.relays),
    )
    if hasattr(local, "subscribers"):
        gauges["deskside_bus_subscriptions"] = (
            "Event bus subscriptions open on this node.",
            local.subscribers,
        )
    if hasattr(local, "dropped"):
        metrics.counters["deskside_bus_overflow_events"] = (
            "Events a subscription's full queue refused (the subscriber was behind).",
            lambda: getattr(local, "dropped", 0),
        )
    if bus is not None:
        metrics.counters["deskside_bus_redis_sent_events"] = (
            "Events this node published through Redis.",
            lambda: bus.sent,
        )
        metrics.counters["deskside_bus_redis_received_events"] = (
            "Events of other nodes received through Redis.",
            lambda: bus.received,
        )
        metrics.counters["deskside_bus_redis_dropped_events"] = (
            "Events dropped because Redis was away and the outbox full.",
            lambda: bus.outbox_dropped,
        )
        metrics.counters["deskside_bus_redis_gaps"] = (
            "Gaps seen in other nodes' events (subscribers were told).",
            lambda: bus.gaps,
        )
        metrics.counters["deskside_bus_redis_reconnects"] = (
            "Times this node's connection to Redis broke.",
            lambda: bus.reconnects,
        )
        gauges["deskside_bus_redis_outbox"] = (
            "Events waiting to be published to Redis.",
            lambda: bus.outbox_depth,
        )
        gauges["deskside_redis_up"] = (
            "1 while this node receives events from Redis.",
            lambda: float(bus.receiving),
        )
    if registry is not None:
        metrics.counters["deskside_presence_swept_devices"] = (
            "Devices this node recorded offline because no live node held them.",
            lambda: registry.swept,
        )


class _Probes:
    """Database and Redis latency, measured in the background for ``/metrics``."""

    def __init__(self, metrics: NodeMetrics, store: Store, bus: RedisEventBus | None) -> None:
        self._metrics = metrics
        self._store = store
        self._bus = bus

    async def _database(self) -> float:
        started = time.perf_counter()
        await self._store.ping()
        return time.perf_counter() - started

    async def start(self) -> None:
        probes: list[tuple[str, Callable[[], Awaitable[float]]]] = [("database", self._database)]
        if self._bus is not None:
            probes.append(("redis", self._bus.ping))
        self._metrics.start_probes(probes)

    async def stop(self) -> None:
        await self._metrics.stop()
