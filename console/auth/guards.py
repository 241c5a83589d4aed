"""Who may call a route: API tokens checked once per request, scopes checked by guards.

The ``/api/v1`` router's guard (``authenticated``) turns ``Authorization: Bearer
<API token>`` into an ``ApiIdentity`` kept on the request (``caller``), once per
request; a route states the scope it needs with
``guards=[requires(Scope.TICKETS_READ)]``, and handlers take the caller as their
``identity`` parameter. (Guards rather than an authentication middleware: a
middleware's extra ASGI layer cost a quarter of a light request's time.) WebSockets,
which browsers cannot give headers, call ``authenticate`` themselves (see
``screen/routes.py``) and then ``require``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from deskside.console.errors import Forbidden, Unauthorized

from .accounts import AccountRepository
from .identity import ApiIdentity, Scope

__all__ = [
    "authenticate",
    "authenticated",
    "caller",
    "provide_identity",
    "require",
    "requires",
]


def require(identity: ApiIdentity, scope: Scope) -> None:
    """``Forbidden`` unless ``identity`` has ``scope``."""
    if scope not in identity.scopes:
        raise Forbidden(f"this API token lacks the {str(scope)!r} scope")


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
