"""Who is signed in: the session cookie, the signed-in user, and the pages' guards.

A page states what it needs as a guard: ``guards=[permits(Permission.TICKETS_WORK)]``
(which implies a signed-in user); its handler takes the user as its ``user``
parameter. Without a session a page's request is sent to the sign-in page (a
browser's GET) or refused with 401; a user whose role lacks the permission is
refused with 403, and the refusal goes to the audit log. What each role may do is
one table, ``deskside.console.auth.roles``.

The cookie is ``__Host-deskside``: Secure, HttpOnly, SameSite=Lax, Path=/, no
Domain (the ``__Host-`` prefix makes browsers hold the console to all of it). Its
value is the session's id, which the database knows only by its hash
(``deskside.console.auth.sessions``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers.base import BaseRouteHandler

from deskside.console.auth.roles import Permission, permitted
from deskside.console.auth.sessions import SessionRepository, SessionTimes, SessionView, Stage
from deskside.console.db import utcnow
from deskside.console.errors import Forbidden, Unauthorized

from .limiter import SignInLimiter
from .settings import WebSettings

__all__ = [
    "COOKIE",
    "SignInRequired",
    "WebState",
    "WebUser",
    "client_address",
    "current_session",
    "known_user",
    "permits",
    "provide_user",
    "session_cookie",
    "signed_in",
    "web_state",
]

logger = logging.getLogger(__name__)

COOKIE: Final = "__Host-deskside"
# Where the signed-in user of a request is kept (``connection.state``).
_STATE_KEY: Final = "web_user"


class WebState:
    """What the web pages share in one console process (``app.state.web``)."""

    def __init__(self, settings: WebSettings, sessions: SessionRepository) -> None:
        self.settings = settings
        self.sessions = sessions
        self.times = SessionTimes(idle=settings.idle, absolute=settings.absolute)
        # Failed sign-ins per account and per address.
        self.limiter = SignInLimiter(
            per_account=settings.signin_failures_per_account,
            per_address=settings.signin_failures_per_address,
            window=settings.signin_window.total_seconds(),
        )
        # Live streams open, per user (``live.py`` bounds them).
        self.streams: dict[str, int] = {}

    @staticmethod
    def clock() -> float:
        """The limiter's clock: seconds, monotonic."""
        return time.monotonic()


def web_state(connection: ASGIConnection[Any, Any, Any, Any]) -> WebState:
    """The web pages' shared state."""
    state: WebState = connection.app.state.web
    return state


class WebUser(msgspec.Struct, frozen=True):
    """The user of a request, and their session."""

    session: SessionView
    # The session's id, as in the cookie: the CSRF token is derived from it.
    token: str

    @property
    def username(self) -> str:
        """The user's account name."""
        return self.session.username

    @property
    def role(self) -> str:
        """The user's role (``auth.schemas.Role``)."""
        return self.session.role

    def may(self, permission: Permission | str) -> bool:
        """Whether the user's role permits ``permission`` (templates ask this)."""
        try:
            return permitted(self.role, Permission(permission))
        except ValueError:
            return False


class SignInRequired(Unauthorized):
    """No signed-in session: a browser's GET goes to the sign-in page."""


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The client's address as the console sees it."""
    client = connection.client
    return client.host if client is not None else "unknown"


async def current_session(connection: ASGIConnection[Any, Any, Any, Any]) -> WebUser | None:
    """The request's session at whatever stage (None without a live one), found once
    per request."""
    if _STATE_KEY in connection.state:
        found: WebUser | None = connection.state[_STATE_KEY]
        return found
    token = connection.cookies.get(COOKIE, "")
    user = None
    if token:
        web = web_state(connection)
        session = await web.sessions.find(token, times=web.times, now=utcnow())
        user = WebUser(session, token) if session is not None else None
    connection.state[_STATE_KEY] = user
    return user


def known_user(connection: ASGIConnection[Any, Any, Any, Any]) -> WebUser | None:
    """The request's session if it was looked up already (for synchronous code)."""
    found: WebUser | None = connection.state.get(_STATE_KEY)
    return found


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard: the request has a fully signed-in session."""
    user = await current_session(connection)
    if user is None or user.session.stage != Stage.SIGNED_IN:
        raise SignInRequired("sign in first")


def permits(
    permission: Permission,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A page's guard: a signed-in user whose role permits ``permission``; a refusal
    is audited."""

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        await signed_in(connection, handler)
        user = await current_session(connection)
        assert user is not None
        if user.may(permission):
            return
        await web_state(connection).sessions.record(
            f"user:{user.username}",
            "web.refused",
            {
                "method": connection.scope.get("method", ""),
                "path": connection.url.path[:256],
                "permission": str(permission),
                "role": user.role,
            },
            now=utcnow(),
        )
        raise Forbidden(f"the {user.role} role may not do this ({permission})")

    guard.__name__ = f"permits_{permission.name.lower()}"
    return guard


async def provide_user(request: Request[Any, Any, Any]) -> WebUser:
    """The signed-in user, for handlers' ``user`` parameter (after a guard)."""
    user = await current_session(request)
    if user is None:
        raise SignInRequired("sign in first")
    return user


def session_cookie(token: str | None, settings: WebSettings) -> Cookie:
    """The cookie that holds a session's id (None: the one that removes it)."""
    return Cookie(
        key=COOKIE,
        value=token or "",
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
        max_age=int(settings.absolute.total_seconds()) if token else 0,
    )


def set_session(response: Response[Any], token: str | None, settings: WebSettings) -> None:
    """Put the session's cookie on ``response`` (None: remove it)."""
    response.set_cookie(session_cookie(token, settings))
