"""The console's one ASGI application: agents' WebSocket, REST API, health."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol

from litestar import Litestar, MediaType, Request, Response, Router, WebSocket, get, websocket
from litestar.config.response_cache import ResponseCacheConfig
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.routes import HTTPRoute
from litestar.status_codes import (
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import Empty

from . import api
from .audit.routes import AuditController
from .auth.guards import authenticated, provide_identity
from .chat.routes import ChatController
from .commands.routes import CommandController, RunbookController
from .devices.routes import DeviceController
from .downloads import install_file, wheel_cache
from .errors import ConsoleError, StaleVersion
from .findings.routes import FindingController
from .gateway import Gateway
from .knowledge.routes import KnowledgeController
from .metrics import CONTENT_TYPE, MetricsSettings, NodeMetrics
from .screen.routes import ScreenController, screen_socket, viewer_files
from .store import Store
from .terminal.routes import TerminalController, shell_socket
from .tickets.pages import QueuePages
from .tickets.routes import TicketController
from .web import schema_pages, security_headers
from .web.assets import static_files
from .web.layout import error_page, http_error, template_config, wants_page
from .web.routes import web_router
from .web.sessions import WebState
from .web.settings import WebSettings
from .webhooks.addresses import AddressGuard
from .webhooks.dispatcher import WebhookDispatcher
from .webhooks.routes import WebhookController

__all__ = ["api_router", "build_app"]

logger = logging.getLogger(__name__)

# Largest request body the API accepts.
MAX_BODY = 1 << 20
# Longest /readyz waits for each thing it checks, in seconds.
READY_TIMEOUT = 2.0


class Service(Protocol):
    """Something the node runs beside the gateway (the cluster's bus and registry)."""

    async def start(self) -> None:
        """Begin; called before the gateway starts."""
        ...

    async def stop(self) -> None:
        """End; called after the gateway stopped."""
        ...


@websocket("/agent")
async def agent_socket(socket: WebSocket) -> None:  # type: ignore[type-arg]
    """Where agents connect: the Noise-encrypted channel, over this WebSocket."""
    gateway: Gateway = socket.app.state.gateway
    await gateway.handle(socket)


@get("/healthz", media_type=MediaType.JSON)
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/readyz", media_type=MediaType.JSON)
async def readyz(request: Request) -> Response[dict[str, str]]:  # type: ignore[type-arg]
    """Readiness: the database answers, and Redis when the node is one of several."""
    store: Store = request.app.state.store
    checks: dict[str, Callable[[], Awaitable[object]]] = {"database": store.ping}
    checks.update(request.app.state.readiness)
    for name, check in checks.items():
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await check()
        except Exception as exc:  # whatever the driver raises, the node is not ready
            what = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            logger.warning("not ready: the %s did not answer: %s", name, what)
            return Response(
                {"status": "unavailable", "detail": f"{name}: {what}"},
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
            )
    return Response({"status": "ready"})


@get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """This node's figures for Prometheus, to the peers ``[metrics]`` allows."""
    node: NodeMetrics | None = request.app.state.metrics
    settings: MetricsSettings = request.app.state.metrics_settings
    if node is None:
        return Response(
            b"no metrics here\n", status_code=HTTP_404_NOT_FOUND, media_type=MediaType.TEXT
        )
    peer = request.client.host if request.client else None
    if not settings.permits(peer, request.headers.get("authorization")):
        logger.info("/metrics refused to %s", peer)
        return Response(
            b"/metrics is not open to this address; see [metrics] in console.toml\n",
            status_code=HTTP_403_FORBIDDEN,
            media_type=MediaType.TEXT,
        )
    return Response(node.render(), media_type=CONTENT_TYPE)


async def _log_unexpected(exc: Exception, scope: Any) -> None:
    """Every 5xx goes to the log with its traceback: a bug (the caller gets a bare 500) as
    an error, a console's own 5xx (an agent that did not answer: 504) as a warning."""
    method, path = scope.get("method", "WS"), scope.get("path")
    if isinstance(exc, ConsoleError):
        if exc.status_code >= 500:
            logger.warning("%s %s: %s", method, path, exc.status_code, exc_info=exc)
        return
    if not isinstance(exc, HTTPException) or exc.status_code >= 500:
        logger.error("%s %s failed", method, path, exc_info=exc)


def _console_error(request: Request, exc: ConsoleError) -> Response[Any]:  # type: ignore[type-arg]
    if wants_page(request):  # a browser's page: the error in the pages' layout
        return error_page(request, exc.status_code, str(exc))
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    body: dict[str, object] = {"status_code": exc.status_code, "detail": str(exc)}
    if isinstance(exc, StaleVersion):  # what the object is now, to look at before retrying
        body["extra"] = exc.current
    return Response(
        body,
        status_code=exc.status_code,
        headers=headers,
    )


def _provide(value: Any) -> Provide:
    return Provide(lambda: value, use_cache=True, sync_to_thread=False)


def api_router(
    store: Store, gateway: Gateway, *, webhook_guard: AddressGuard | None = None
) -> Router:
    """The REST API, ``/api/v1``: every capability's controller, behind API tokens.

    Handlers are given what they use by name: the caller (``identity``), a
    capability's repository (``tickets``, ``commands``...) or its part of the
    gateway (``presence``, ``command_relay``...). ``webhook_guard``: where webhooks
    may go (public addresses only if not given).
    """
    router = Router(
        path="/",
        route_handlers=[
            TicketController,
            DeviceController,
            CommandController,
            RunbookController,
            TerminalController,
            ScreenController,
            AuditController,
            WebhookController,
            FindingController,
            KnowledgeController,
            ChatController,
        ],
        guards=[authenticated, api.refuse_nul],
        before_request=api.strict_body,
        security=api.SECURITY,
        dependencies={
            "identity": Provide(provide_identity),
            "accounts": _provide(store.accounts),
            "access": _provide(store.access),
            "audit": _provide(store.audit),
            "devices": _provide(store.devices),
            "snapshots": _provide(store.snapshots),
            "tickets": _provide(store.tickets),
            "commands": _provide(store.commands),
            "runbooks": _provide(store.runbooks),
            "terminals": _provide(store.terminals),
            "screens": _provide(store.screens),
            "chat": _provide(store.chat),
            "agents": _provide(gateway),
            "presence": _provide(gateway.presence),
            "command_relay": _provide(gateway.commands),
            "runbook_runner": _provide(gateway.runbooks),
            "webhooks": _provide(store.webhooks),
            "webhook_guard": _provide(webhook_guard or AddressGuard()),
            "findings": _provide(store.findings),
            "categories": _provide(store.categories),
            "knowledge": _provide(store.knowledge),
            "chat_relay": _provide(gateway.chat),
        },
    )
    _allow_every_method(router)
    return router


def _allow_every_method(router: Router) -> None:
    """Each path's ``OPTIONS`` answers with every method of the path.

    Litestar 2 registers a controller's handlers one by one and gives a path the
    automatic ``OPTIONS`` handler of its first one, which lists only that one's
    methods (litestar#4169, fixed in 3.0): it is made again from the whole route.
    """
    for route in router.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for index, handler in enumerate(route.route_handlers):
            if set(handler.http_methods) == {"OPTIONS"} and not handler.include_in_schema:
                options = route.create_options_handler(route.path)
                options.owner = handler.owner
                route.route_handlers[index] = options


def build_app(
    store: Store,
    gateway: Gateway,
    data_dir: Path | None = None,
    *,
    origins: Sequence[str] = (),
    webhooks: WebhookDispatcher | None = None,
    web: WebSettings | None = None,
    services: Sequence[Service] = (),
    readiness: Mapping[str, Callable[[], Awaitable[object]]] | None = None,
    metrics_settings: MetricsSettings | None = None,
    own_logging: bool = False,
) -> Litestar:
    """The application, serving ``store`` and ``gateway``; starts and stops the gateway
    (and ``webhooks``, the dispatcher sending the outbox, if given).

    ``origins``: URLs of this console as browsers may know it besides the host they
    send (its public URL behind a proxy): pages of these may open its WebSockets.
    ``web``: the web console's settings (``[web]``).
    ``services`` start before the gateway and stop after it, in reverse order;
    ``readiness``: what else ``/readyz`` checks besides the database (name -> check).
    ``/metrics`` serves ``gateway.metrics`` to whom ``metrics_settings`` allows.
    ``own_logging``: the caller configured logging (``deskside.console.logs``), so
    Litestar must not put its own handler and format on the root logger.
    """

    async def start() -> None:
        for service in services:
            await service.start()
        await gateway.start()
        if webhooks is not None:
            await webhooks.start()

    async def stop() -> None:
        if webhooks is not None:
            await webhooks.stop()
        try:
            await gateway.stop()
        finally:
            for service in reversed(services):
                await service.stop()

    app = Litestar(
        route_handlers=[
            agent_socket,
            healthz,
            readyz,
            metrics,
            api_router(
                store, gateway, webhook_guard=webhooks.guard if webhooks is not None else None
            ),
            shell_socket,
            install_file,
            screen_socket,
            viewer_files(),
            static_files(),
            web_router(
                [QueuePages],
                {
                    "accounts": store.accounts,
                    "factors": store.factors,
                    "tickets": store.tickets,
                },
            ),
        ],
        exception_handlers={ConsoleError: _console_error, HTTPException: http_error},
        template_config=template_config(),
        after_exception=[_log_unexpected],
        openapi_config=OpenAPIConfig(
            title="Deskside console API",
            version=version("deskside"),
            path="/api/schema",
            render_plugins=schema_pages(),
            components=api.COMPONENTS,
        ),
        plugins=[api.StructSchemas()],
        before_send=[security_headers],
        on_startup=[start],
        on_shutdown=[stop],
        request_max_body_size=MAX_BODY,
        response_cache_config=ResponseCacheConfig(),
        debug=False,
        logging_config=None if own_logging else Empty,
    )
    app.state.store = store
    app.state.gateway = gateway
    app.state.origins = tuple(origins)
    app.state.web = WebState(web or WebSettings(), store.sessions)
    app.state.readiness = dict(readiness or {})
    app.state.metrics = gateway.metrics
    app.state.metrics_settings = metrics_settings or MetricsSettings()
    app.state.wheels = wheel_cache(data_dir or Path.cwd() / "data")
    return app
