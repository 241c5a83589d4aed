"""Run the console: migrations, then the application on uvicorn."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import logging
from collections.abc import Iterator
from importlib.metadata import version

import uvicorn

from deskside.protocol.connection import max_frame_size

from .app import build_app
from .config import ConsoleConfig, DataDir
from .db import migrate
from .gateway import Gateway
from .limits import ConnectionLimits
from .listener import protocols
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


def serve(config: ConsoleConfig, *, log_level: str = "info") -> None:
    """Serve until SIGTERM or SIGINT; agents are told the console is going away."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs each webhook attempt's URL at info (a receiver's URL may carry its
    # token); the delivery log has every attempt's outcome.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    _smaller_tls_buffers()
    limits: ConnectionLimits = config.limits
    _tls_handshake_timeout(limits.tls_handshake_timeout)
    http_protocol, ws_protocol = protocols(limits)
    key = DataDir(config.data_dir).noise_private_key()
    migrate(config.database)
    store = Store.connect(config.database, config.policy, data_dir=config.data_dir)
    gateway = Gateway(store, key, software_version=version("deskside"), limits=limits)
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
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )
    server.run()
