"""The console's one ASGI application: agents' WebSocket, REST API, health."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from litestar import Litestar, MediaType, Request, Response, WebSocket, get, websocket
from litestar.config.response_cache import ResponseCacheConfig
from litestar.openapi import OpenAPIConfig
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from .api import ApiV1
from .downloads import install_file, wheel_cache
from .errors import ConsoleError
from .gateway import Gateway
from .screens import screen_recording, screen_socket, viewer_files
from .shells import shell_socket, shell_transcript, shell_view
from .store import Store

__all__ = ["build_app"]

# Largest request body the API accepts.
MAX_BODY = 1 << 20


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
    """Readiness: the database answers."""
    store: Store = request.app.state.store
    try:
        await store.ping()
    except Exception as exc:
        return Response(
            {"status": "unavailable", "detail": type(exc).__name__},
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
        )
    return Response({"status": "ready"})


def _console_error(request: Request, exc: ConsoleError) -> Response[dict[str, object]]:  # type: ignore[type-arg]
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return Response(
        {"status_code": exc.status_code, "detail": str(exc)},
        status_code=exc.status_code,
        headers=headers,
    )


def build_app(store: Store, gateway: Gateway, data_dir: Path | None = None) -> Litestar:
    """The application, serving ``store`` and ``gateway``; starts and stops the gateway."""

    async def start() -> None:
        await gateway.start()

    async def stop() -> None:
        await gateway.stop()

    app = Litestar(
        route_handlers=[
            agent_socket,
            healthz,
            readyz,
            ApiV1,
            shell_socket,
            shell_view,
            shell_transcript,
            install_file,
            screen_socket,
            screen_recording,
            viewer_files(),
        ],
        exception_handlers={ConsoleError: _console_error},
        openapi_config=OpenAPIConfig(
            title="Deskside console API", version=version("deskside"), path="/api/schema"
        ),
        on_startup=[start],
        on_shutdown=[stop],
        request_max_body_size=MAX_BODY,
        response_cache_config=ResponseCacheConfig(),
        debug=False,
    )
    app.state.store = store
    app.state.gateway = gateway
    app.state.wheels = wheel_cache(data_dir or Path.cwd() / "data")
    return app
