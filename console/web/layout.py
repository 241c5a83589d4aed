"""The pages' layout: templates, the navigation, flash messages and error pages.

Templates live in ``templates/``: ``base.html`` (header, navigation, the signed-in
user, sign-out, flash messages, the scripts), ``error.html``, and one folder per
capability (``tickets/queue.html``). A page renders with ``render(request, user,
"tickets/queue.html", tickets=...)``, which adds what the layout needs: the user,
their permissions (``user.may("tickets.work")``: a button shows only when its
action is permitted), the CSRF token (``csrf_field()`` in forms, the ``csrf-token``
meta tag for htmx), the navigation and the flash messages kept for this page.

Errors: a browser asking for a page gets the error in the same layout (404, 403,
...); the API and other clients keep getting JSON (``wants_page``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import msgspec
from litestar import MediaType, Request, Response
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.exceptions import HTTPException
from litestar.exceptions.responses import create_exception_response
from litestar.response import Redirect, Template
from litestar.template.config import TemplateConfig
from markupsafe import Markup

from deskside.console.auth.roles import Permission
from deskside.console.auth.sessions import Stage

from .csrf import FIELD, csrf_token
from .sessions import WebUser, known_user, web_state

__all__ = [
    "NAV",
    "PRODUCT",
    "TEMPLATES",
    "NavItem",
    "error_page",
    "http_error",
    "redirect",
    "render",
    "render_fragment",
    "template_config",
    "wants_page",
]

PRODUCT: Final = "Deskside"
TEMPLATES: Final = Path(__file__).parent / "templates"


class NavItem(msgspec.Struct, frozen=True):
    """An entry of the header's navigation, shown to users with its permission."""

    label: str
    href: str
    permission: Permission
    # The keyboard shortcut, after "g" (static/shortcuts.js).
    key: str


# The header's navigation: a capability that adds a top-level page adds it here.
NAV: Final = (
    NavItem("Queue", "/tickets", Permission.TICKETS_VIEW, "q"),
    NavItem("Devices", "/devices", Permission.DEVICES_VIEW, "d"),
    NavItem("Admin", "/admin", Permission.ADMIN, "a"),
)


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja over ``templates/``, autoescaping on."""
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)


def _context(user: WebUser | None, flashes: list[str], path: str) -> dict[str, Any]:
    # The CSRF token is the session's at any stage (the second factor's form has one);
    # the user is shown, with the navigation, once signed in.
    token = csrf_token(user.token) if user is not None else ""
    shown = user if user is not None and user.session.stage == Stage.SIGNED_IN else None
    return {
        "product": PRODUCT,
        "user": shown,
        "nav": [item for item in NAV if shown is not None and shown.may(item.permission)],
        "path": path,
        "csrf_token": token,
        "csrf_field": lambda: Markup('<input type="hidden" name="{}" value="{}">').format(
            FIELD, token
        ),
        "flashes": flashes,
    }


async def render(
    request: Request[Any, Any, Any],
    user: WebUser | None,
    template: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    """A page in the layout, with the flash messages kept for it. ``user``: the
    request's session, at whatever stage of its sign-in."""
    flashes = await web_state(request).sessions.take_flashes(user.session.id) if user else []
    return Template(
        template_name=template,
        context={**_context(user, flashes, request.url.path), **context},
        status_code=status_code,
        headers=headers,
        media_type=MediaType.HTML,
    )


def render_fragment(
    request: Request[Any, Any, Any], user: WebUser, template: str, **context: Any
) -> str:
    """A template rendered to text (a live update's HTML), without flash messages."""
    engine = request.app.template_engine
    assert isinstance(engine, JinjaTemplateEngine), "build_app configures Jinja"
    return engine.get_template(template).render(**_context(user, [], request.url.path), **context)


def redirect(path: str) -> Redirect:
    """303 See Other to one of the console's own paths."""
    return Redirect(path=path, status_code=303)


def wants_page(request: Request[Any, Any, Any]) -> bool:
    """Whether an error should be a page: a browser's request, outside the API."""
    path = request.url.path
    if path.startswith(("/api/", "/agent", "/healthz", "/readyz")):
        return False
    return "text/html" in request.headers.get("accept", "")


_TITLES: Final = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Conflict",
    413: "Too large",
    429: "Too many attempts",
}


def error_page(
    request: Request[Any, Any, Any],
    status_code: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> Template:
    """An error in the pages' layout (exception handlers are synchronous: the user is
    shown if the request had found its session already)."""
    user = known_user(request)
    return Template(
        template_name="error.html",
        context={
            **_context(user, [], request.url.path),
            "title": _TITLES.get(status_code, "Something went wrong"),
            "status": status_code,
            "detail": detail,
        },
        status_code=status_code,
        headers=headers,
        media_type=MediaType.HTML,
    )


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Litestar's errors (404, 405, a form's 400...): a page for a browser, else as
    Litestar answers them (JSON)."""
    if wants_page(request):
        return error_page(request, exc.status_code, exc.detail, exc.headers)
    return create_exception_response(request, exc)
