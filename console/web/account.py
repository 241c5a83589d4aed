"""The user's own account: their sessions (list, revoke) and their second factor
(TOTP enrolment with a QR code drawn on the server, recovery codes shown once)."""

from __future__ import annotations

from typing import Annotated, Any

import segno
from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from markupsafe import Markup

from deskside.console.auth.factors import SecondFactorRepository
from deskside.console.auth.sessions import Stage
from deskside.console.db import utcnow
from deskside.console.errors import NotFound

from .forms import form_field, read_form
from .layout import redirect, render
from .sessions import SignInRequired, WebUser, current_session, set_session, signed_in, web_state

__all__ = ["AccountController"]

SessionId = Annotated[int, Parameter(ge=1, le=2**63 - 1)]


class AccountController(Controller):
    """``/account/sessions`` and ``/account/totp``."""

    path = "/account"
    include_in_schema = False

    @get("/sessions", guards=[signed_in])
    async def sessions_page(self, request: Request[Any, Any, Any], user: WebUser) -> Response[Any]:
        sessions = await web_state(request).sessions.list_for(user.username)
        return await render(request, user, "account/sessions.html", sessions=sessions)

    @post("/sessions/{session_id:int}/revoke", guards=[signed_in], status_code=303)
    async def revoke(
        self, request: Request[Any, Any, Any], user: WebUser, session_id: SessionId
    ) -> Response[Any]:
        web = web_state(request)
        if not await web.sessions.revoke(user.username, session_id, now=utcnow()):
            raise NotFound("no such session of yours")
        if session_id == user.session.id:
            response = redirect("/signin")
            set_session(response, None, web.settings)
            return response
        await web.sessions.flash(user.session.id, "The session was signed out.")
        return redirect("/account/sessions")

    @get("/totp")
    async def totp_page(
        self, request: Request[Any, Any, Any], factors: SecondFactorRepository
    ) -> Response[Any]:
        user = await _enrolling(request)
        if await factors.has_second_factor(user.username):
            left = await factors.recovery_codes_left(user.username)
            return await render(request, user, "account/totp.html", enrolled=True, left=left)
        secret = await factors.begin_totp(user.username, now=utcnow())
        return await _enrol_page(request, user, secret)

    @post("/totp", status_code=303)
    async def confirm_totp(
        self, request: Request[Any, Any, Any], factors: SecondFactorRepository
    ) -> Response[Any]:
        web = web_state(request)
        user = await _enrolling(request)
        form = await read_form(request)
        code = form_field(form, "code", max_length=16)
        if await factors.has_second_factor(user.username):
            return redirect("/account/totp")
        now = utcnow()
        codes = await factors.confirm_totp(user.username, code, now=now)
        if codes is None:
            secret = await factors.begin_totp(user.username, now=now)
            return await _enrol_page(
                request, user, secret, error="That code is wrong; type the one shown now."
            )
        token = user.token
        if user.session.stage != Stage.SIGNED_IN:
            rotated = await web.sessions.rotate(
                user.token, Stage.SIGNED_IN, times=web.times, now=now
            )
            if rotated is None:
                raise SignInRequired("sign in again")
            token = rotated
            await web.sessions.record(
                f"user:{user.username}", "signin", {"factors": ["password", "totp"]}, now=now
            )
        signed = WebUser(user.session, token)
        response = await render(request, signed, "account/recovery.html", codes=codes)
        set_session(response, token, web.settings)
        return response


async def _enrolling(request: Request[Any, Any, Any]) -> WebUser:
    """A signed-in user, or one whose sign-in waits for enrolment."""
    user = await current_session(request)
    if user is None or user.session.stage not in (Stage.SIGNED_IN, Stage.ENROL):
        raise SignInRequired("sign in first")
    return user


async def _enrol_page(
    request: Request[Any, Any, Any], user: WebUser, secret: str, error: str = ""
) -> Response[Any]:
    uri = SecondFactorRepository.provisioning_uri(secret, user.username)
    # An SVG in the page: drawn with attributes only (no style), which the CSP allows.
    svg = segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff", border=4)
    return await render(
        request,
        user,
        "account/totp.html",
        enrolled=False,
        qr=Markup(svg),  # noqa: S704 - segno's own SVG of our URI
        secret=secret,
        grouped=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        error=error,
        status_code=400 if error else 200,
    )
