"""Cross-site request forgery: every state-changing request of the web pages is checked.

Two checks, both needed to pass (a guard on the web router, ``protect``):

* Same origin: a request whose ``Origin`` is another site's is refused
  (``auth.guards.foreign_origin``, the rule browser WebSockets follow), and so is
  one a browser marks other than ``Sec-Fetch-Site: same-origin``. Browsers send
  ``Origin: null`` with the pages' own form posts, since the console tells them
  ``Referrer-Policy: no-referrer`` (``headers.py``); such a request passes only when
  the browser vouches for it with ``Sec-Fetch-Site: same-origin``, a header no page
  can set.
* A synchronizer token: with a session, the request carries the session's token,
  in the form (``_csrf``, put there by the templates' ``csrf_field``) or in the
  ``X-CSRF-Token`` header (htmx requests: ``static/app.js`` copies it from the
  page's ``<meta name="csrf-token">``). The token is an HMAC of the session's id, so
  it needs no storage, changes with every new session id (rotation) and cannot be
  made without the cookie, which another site's page cannot read.

The sign-in form has no session yet and so no token; the same-origin check guards it.
A refusal is a 403, logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any, Final

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from deskside.console.auth.guards import foreign_origin
from deskside.console.errors import Forbidden

from .sessions import current_session

__all__ = ["FIELD", "HEADER", "csrf_token", "protect"]

logger = logging.getLogger(__name__)

FIELD: Final = "_csrf"
HEADER: Final = "x-csrf-token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session_token: str) -> str:
    """The synchronizer token of the session whose id is ``session_token``."""
    return hmac.new(session_token.encode(), b"deskside csrf v1", hashlib.sha256).hexdigest()


async def protect(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The web router's guard: unsafe requests come from this console's own pages."""
    method = connection.scope.get("method", "GET")
    if method in SAFE_METHODS:
        return
    site = connection.headers.get("sec-fetch-site")
    origin = connection.headers.get("origin")
    # "null": the pages' own posts (see above) or a sandboxed frame's; the browser says.
    null_and_unvouched = origin == "null" and site != "same-origin"
    foreign = origin != "null" and foreign_origin(connection) is not None
    if null_and_unvouched or foreign or (site is not None and site != "same-origin"):
        logger.warning(
            "refused a cross-site %s %s (Origin %r, Sec-Fetch-Site %r)",
            method,
            connection.url.path,
            origin,
            site,
        )
        raise Forbidden("cross-site request refused")
    user = await current_session(connection)
    if user is None:
        return  # nothing of a session to abuse; the handler decides (sign-in, or 401)
    sent = connection.headers.get(HEADER)
    if sent is None and isinstance(connection, Request):
        form = await connection.form()
        value = form.get(FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), csrf_token(user.token).encode()):
        logger.warning("refused a %s %s without its CSRF token", method, connection.url.path)
        raise Forbidden("the form's security token is missing or wrong; reload the page")
