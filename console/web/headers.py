"""What the console's answers tell browsers: security headers, and no third-party code.

Every HTTP response carries the headers below (``security_headers``, a Litestar
``before_send`` hook, so error pages, static files and the API alike), unless
the response set one itself:

* ``Content-Security-Policy``: scripts, styles, images and connections (the
  viewer's WebSocket, the replay's fetch) from the console's own origin only; no
  inline script or style, no ``eval``, no plugins, no ``<base>``; no page may
  frame the console's (``frame-ancestors 'none'``, and ``X-Frame-Options`` for
  browsers that predate it).
* ``Strict-Transport-Security``, over TLS only (a browser ignores it over plain
  HTTP, and a console without TLS sits behind a proxy that decides).
* ``Referrer-Policy: no-referrer``: the viewer's links carry a token in their
  fragment, and nothing of a console's URLs should leave it.
* ``X-Content-Type-Options: nosniff``.

The OpenAPI document is served as JSON and YAML (``/api/schema/openapi.json``,
``.yaml``), and no HTML documentation page: Litestar's pages (Swagger UI,
ReDoc, ...) load their JavaScript from third-party CDNs without integrity, and
run inline script, which the policy above forbids (``schema_pages``).
"""

from __future__ import annotations

from typing import Final

from litestar.datastructures import MutableScopeHeaders
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, YamlRenderPlugin
from litestar.types import Message, Scope

__all__ = ["CONTENT_SECURITY_POLICY", "HSTS", "schema_pages", "security_headers"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# A year; no includeSubDomains: the console's domain may serve others that are not ours.
HSTS: Final = "max-age=31536000"

_HEADERS: Final = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
)


async def security_headers(message: Message, scope: Scope) -> None:
    """Add the security headers to a response's start (a ``before_send`` hook)."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in _HEADERS:
        if name not in headers:
            headers[name] = value
    if scope.get("scheme") == "https" and "Strict-Transport-Security" not in headers:
        headers["Strict-Transport-Security"] = HSTS


def schema_pages() -> list[OpenAPIRenderPlugin]:
    """What ``/api/schema`` serves: the document as JSON (also at ``/api/schema``) and
    YAML; no documentation page that would load code from elsewhere."""
    return [JsonRenderPlugin(), YamlRenderPlugin()]
