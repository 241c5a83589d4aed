"""The web router: the sign-in and account pages, and each capability's pages, behind
the CSRF guard, with the signed-in user and the repositories given by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, Router, get
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from deskside.console.auth.sessions import Stage

from . import csrf
from .account import AccountController
from .layout import error_page, redirect, wants_page
from .sessions import SignInRequired, current_session, provide_user
from .signin import SignInController

__all__ = ["web_router"]


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Response[Any]:
    """The queue when signed in, the sign-in page otherwise."""
    user = await current_session(request)
    signed = user is not None and user.session.stage == Stage.SIGNED_IN
    return redirect("/tickets" if signed else "/signin")


def _to_signin(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
    """A browser's GET goes to the sign-in page, and comes back after it; other
    requests (a form posted after the session ended, htmx, a script) get 401."""
    if request.method == "GET" and wants_page(request) and "hx-request" not in request.headers:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect("/signin?" + urlencode({"next": target}))
    if wants_page(request):
        return error_page(request, 401, str(exc))
    return Response({"status_code": 401, "detail": str(exc)}, status_code=401)


def _provide(value: Any) -> Provide:
    return Provide(lambda: value, use_cache=True, sync_to_thread=False)


def web_router(pages: Sequence[ControllerRouterHandler], dependencies: Mapping[str, Any]) -> Router:
    """The web pages: ours and ``pages`` (each capability's), given ``dependencies``
    (name -> repository) besides the signed-in ``user``."""
    provided = {name: _provide(value) for name, value in dependencies.items()}
    provided["user"] = Provide(provide_user)
    return Router(
        path="/",
        route_handlers=[home, SignInController, AccountController, *pages],
        guards=[csrf.protect],
        dependencies=provided,
        exception_handlers={SignInRequired: _to_signin},
        include_in_schema=False,
    )
