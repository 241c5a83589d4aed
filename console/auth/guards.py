"""Who may call a route: API tokens checked once per request, scopes checked by guards.

The ``/api/v1`` router's guard (``authenticated``) turns ``Authorization: Bearer
<API token>`` into an ``ApiIdentity`` kept on the request (``caller``), once per
request; a route states the scope it needs with
``guards=[requires(Scope.TICKETS_READ)]``, and handlers take the caller as their
``identity`` parameter. (Guards rather than an authentication middleware: a
middleware's extra ASGI layer cost a quarter of a light request's time.) WebSockets,
which browsers cannot give headers, call ``authenticate`` themselves (see
``screen/routes.py``) and then ``require``; browser-facing ones first refuse a
foreign ``Origin`` (``refuse_foreign_origin``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from litestar import Request, WebSocket
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from deskside.console.errors import Forbidden, Unauthorized

from .accounts import AccountRepository
from .identity import ADMIN_SCOPES, ApiIdentity, Scope
from .roles import scope_permitted

__all__ = [
    "authenticate",
    "authenticated",
    "caller",
    "foreign_origin",
    "provide_identity",
    "refuse_foreign_origin",
    "require",
    "requires",
]


def require(identity: ApiIdentity, scope: Scope) -> None:
    """``Forbidden`` unless ``identity`` has ``scope`` (an admin scope: and acts for an
    admin, or for no technician: a service token)."""
    if scope not in identity.scopes:
        raise Forbidden(f"this API token lacks the {str(scope)!r} scope")
    if not scope_permitted(identity.role, scope):
        only = "; it is for admins" if scope in ADMIN_SCOPES else ""
        raise Forbidden(f"the {identity.role} role may not use the {str(scope)!r} scope{only}")


def requires(
    scope: Scope,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A route guard: the caller's API token has ``scope``."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        require(await caller(connection), scope)

    guard.__name__ = f"requires_{scope.name.lower()}"
    return guard


async def authenticated(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """The API router's guard: every request carries a valid API token."""
    await caller(connection)


async def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiIdentity:
    """Who calls: their API token checked once per request, kept on the request."""
    identity = connection.scope.get("auth")
    if not isinstance(identity, ApiIdentity):
        identity = await authenticate(connection)
        connection.scope["auth"] = identity
    return identity


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiIdentity:
    """The caller, from its bearer token; ``Unauthorized`` without a valid one."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <API token>'")
    accounts: AccountRepository = connection.app.state.store.accounts
    return await accounts.authenticate_api_token(token.strip())


async def provide_identity(request: Request[Any, Any, Any]) -> ApiIdentity:
    """The caller, for handlers' ``identity`` parameter."""
    return await caller(request)


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _netloc(url: str) -> tuple[str, int] | None:
    """(host, port) of an origin or URL, or None if it is not an http(s)/ws(s) one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def foreign_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The request's ``Origin`` if it is another site's (None if it is this console's,
    or if there is none: not a browser).

    This console's origins: the host the request was sent to (its ``Host``), and the
    console's public URL (``app.state.origins``). A browser sends ``Origin`` with every
    WebSocket: a page of another site that opens one of ours (cross-site WebSocket
    hijacking, with the user's cookies) is refused.
    """
    origin = connection.headers.get("origin")
    if origin is None:
        return None
    found = _netloc(origin)
    scheme = "https" if connection.scope.get("scheme") in ("https", "wss") else "http"
    own = {_netloc(f"{scheme}://{connection.headers.get('host', '')}")}
    own.update(_netloc(url) for url in getattr(connection.app.state, "origins", ()))
    if found is None or found not in own:
        return origin
    return None


async def refuse_foreign_origin(socket: WebSocket[Any, Any, Any]) -> bool:
    """Close a WebSocket from another site's page before accepting it (the browser
    sees 403); whether it was refused."""
    origin = foreign_origin(socket)
    if origin is None:
        return False
    await socket.close(code=4403, reason="cross-origin WebSocket refused")
    return True
