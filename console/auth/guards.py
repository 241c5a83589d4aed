"""Who may call a route: API tokens checked once per request, scopes checked by guards.

``ApiTokenAuthentication`` (middleware on the ``/api/v1`` router) turns
``Authorization: Bearer <API token>`` into an ``ApiIdentity`` on
``request.auth``; a route states the scope it needs with
``guards=[requires(Scope.TICKETS_READ)]``, and handlers take the caller as their
``identity`` parameter. WebSockets, which browsers cannot give headers, call
``authenticate`` themselves (see ``screen/routes.py``) and then ``require``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from deskside.console.errors import Forbidden, Unauthorized

from .accounts import AccountRepository
from .identity import ApiIdentity, Scope

__all__ = [
    "ApiTokenAuthentication",
    "authenticate",
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
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """A route guard: the caller's API token has ``scope``."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        identity = connection.scope.get("auth")
        if not isinstance(identity, ApiIdentity):
            raise Unauthorized("send 'Authorization: Bearer <API token>'")
        require(identity, scope)

    guard.__name__ = f"requires_{scope.name.lower()}"
    return guard


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiIdentity:
    """The caller, from its bearer token; ``Unauthorized`` without a valid one."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <API token>'")
    accounts: AccountRepository = connection.app.state.store.accounts
    return await accounts.authenticate_api_token(token.strip())


class ApiTokenAuthentication(AbstractAuthenticationMiddleware):
    """Every HTTP request to the API carries a valid API token."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """The caller as both ``user`` and ``auth``; ``Unauthorized`` otherwise."""
        identity = await authenticate(connection)
        return AuthenticationResult(user=identity, auth=identity)


async def provide_identity(request: Request[Any, Any, Any]) -> ApiIdentity:
    """The authenticated caller, for handlers' ``identity`` parameter."""
    identity = request.scope.get("auth")
    if not isinstance(identity, ApiIdentity):
        identity = await authenticate(request)
    return identity
