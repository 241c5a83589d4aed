"""The user's own account: their sessions (list, revoke) and their second factors
(TOTP enrolment with a QR code drawn on the server, security keys through
``static/webauthn.js``, recovery codes shown once)."""

from __future__ import annotations

from typing import Annotated, Any

import segno
from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from markupsafe import Markup

from deskside.console.auth.factors import SecondFactorRepository
from deskside.console.auth.keys import KeyRefused, KeyView, WebAuthnKeys
from deskside.console.auth.sessions import Stage
from deskside.console.db import utcnow
from deskside.console.errors import InvalidRequest, NotFound

from .forms import form_field, read_form
from .layout import redirect, render
from .sessions import SignInRequired, WebUser, current_session, set_session, signed_in, web_state
from .webauthn import json_options, read_answer, relying_party

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
        keys = await web_keys(request).keys(user.username)
        if await factors.has_totp(user.username):
            left = await factors.recovery_codes_left(user.username)
            return await render(
                request, user, "account/totp.html", enrolled=True, left=left, keys=keys
            )
        secret = await factors.begin_totp(user.username, now=utcnow())
        return await _enrol_page(request, user, secret, keys=keys)

    @post("/totp", status_code=303)
    async def confirm_totp(
        self, request: Request[Any, Any, Any], factors: SecondFactorRepository
    ) -> Response[Any]:
        web = web_state(request)
        user = await _enrolling(request)
        form = await read_form(request)
        code = form_field(form, "code", max_length=16)
        if await factors.has_totp(user.username):
            return redirect("/account/totp")
        now = utcnow()
        codes = await factors.confirm_totp(user.username, code, now=now)
        if codes is None:
            secret = await factors.begin_totp(user.username, now=now)
            return await _enrol_page(
                request,
                user,
                secret,
                keys=await web_keys(request).keys(user.username),
                error="That code is wrong; type the one shown now.",
            )
        token = await _finish_enrolment(request, user, "totp")
        signed = WebUser(user.session, token)
        response = await render(request, signed, "account/recovery.html", codes=codes)
        set_session(response, token, web.settings)
        return response

    @post("/keys/options", status_code=200)
    async def key_options(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The options of ``navigator.credentials.create`` for a new security key."""
        user = await _enrolling(request)
        try:
            challenge, options = await web_keys(request).registration_options(
                user.username, relying_party(request)
            )
        except KeyRefused as exc:
            raise InvalidRequest(str(exc)) from exc
        await web_state(request).sessions.set_challenge(user.session.id, challenge)
        return json_options(options)

    @post("/keys", status_code=200)
    async def add_key(
        self, request: Request[Any, Any, Any], factors: SecondFactorRepository
    ) -> Response[Any]:
        """Keep a new security key; the page to go to, with recovery codes made for a
        user who had none."""
        user = await _enrolling(request)
        body, credential = await read_answer(request)
        name = body.get("name", "")
        if not isinstance(name, str) or len(name) > 64:
            raise InvalidRequest("a key's name is at most 64 characters")
        web = web_state(request)
        challenge = await web.sessions.take_challenge(user.session.id)
        if challenge is None:
            raise InvalidRequest("ask for the key's options first")
        now = utcnow()
        try:
            await web_keys(request).register(
                user.username,
                credential,
                name.strip(),
                challenge=challenge,
                rp=relying_party(request),
                now=now,
            )
        except KeyRefused as exc:
            raise InvalidRequest(f"the key was not accepted: {exc}") from exc
        codes = None
        if not await factors.recovery_codes_left(user.username):
            codes = await factors.new_recovery_codes(user.username, now=now)
        token = await _finish_enrolment(request, user, "webauthn")
        response = Response(
            {"redirect": "/account/totp" if codes is None else "/tickets", "recovery_codes": codes}
        )
        set_session(response, token, web.settings)
        return response


async def _finish_enrolment(request: Request[Any, Any, Any], user: WebUser, factor: str) -> str:
    """The session's id once a factor is added: a new one if this finishes a sign-in."""
    if user.session.stage == Stage.SIGNED_IN:
        return user.token
    web = web_state(request)
    now = utcnow()
    rotated = await web.sessions.rotate(user.token, Stage.SIGNED_IN, times=web.times, now=now)
    if rotated is None:
        raise SignInRequired("sign in again")
    await web.sessions.record(
        f"user:{user.username}", "signin", {"factors": ["password", factor]}, now=now
    )
    return rotated


def web_keys(request: Request[Any, Any, Any]) -> WebAuthnKeys:
    """The users' WebAuthn keys."""
    keys: WebAuthnKeys = request.app.state.store.keys
    return keys


async def _enrolling(request: Request[Any, Any, Any]) -> WebUser:
    """A signed-in user, or one whose sign-in waits for enrolment."""
    user = await current_session(request)
    if user is None or user.session.stage not in (Stage.SIGNED_IN, Stage.ENROL):
        raise SignInRequired("sign in first")
    return user


async def _enrol_page(
    request: Request[Any, Any, Any],
    user: WebUser,
    secret: str,
    *,
    keys: list[KeyView],
    error: str = "",
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
        keys=keys,
        status_code=400 if error else 200,
    )
