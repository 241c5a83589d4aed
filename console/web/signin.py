"""Signing in and out: password, then a second factor; the sessions' start and end.

::

    GET/POST /signin ──password──┬─ has TOTP ─────────────> /signin/code ──code──┐
                                 ├─ none, policy requires ─> /account/totp (enrol)┤
                                 └─ none, not required ───────────────────────────┴─> signed in
    POST /signout ──> the session deleted on the server, the cookie removed

Each step gives the session a new id (``auth.sessions``). Attempts are limited per
account and per address (``limiter.py``: 429 with ``Retry-After``); every failure
and every refusal goes to the audit log with the user name and the address, never
what was typed.
"""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect, Template

from deskside.console.auth.accounts import AccountRepository
from deskside.console.auth.factors import SecondFactorRepository
from deskside.console.auth.keys import KeyRefused, WebAuthnKeys
from deskside.console.auth.sessions import Stage
from deskside.console.db import utcnow

from .forms import form_field, read_form, safe_next
from .layout import redirect, render
from .sessions import (
    SignInRequired,
    WebState,
    WebUser,
    client_address,
    current_session,
    set_session,
    web_state,
)
from .webauthn import json_options, read_answer, relying_party

__all__ = ["SignInController"]

logger = logging.getLogger(__name__)

_MAX_PASSWORD: Final = 1024


class SignInController(Controller):
    """``/signin``, ``/signin/code``, ``/signout``."""

    path = "/"
    include_in_schema = False

    @get("/signin")
    async def signin_page(
        self, request: Request[Any, Any, Any], next: str | None = None
    ) -> Response[Any]:
        user = await current_session(request)
        if user is not None and user.session.stage == Stage.SIGNED_IN:
            return redirect(safe_next(next))
        return await render(request, user, "signin/password.html", next=safe_next(next))

    @post("/signin", status_code=303)
    async def signin(
        self,
        request: Request[Any, Any, Any],
        accounts: AccountRepository,
        factors: SecondFactorRepository,
    ) -> Response[Any]:
        web = web_state(request)
        form = await read_form(request)
        username = form_field(form, "username", max_length=64)
        password = form_field(form, "password", max_length=_MAX_PASSWORD)
        target = safe_next(form.get("next"))
        address = client_address(request)
        refused = await _limited(request, web, username, address, "password", target)
        if refused is not None:
            return refused
        role = await accounts.check_password(username, password)
        if role is None:
            await _failed(web, username, address, "password")
            return await render(
                request,
                await current_session(request),
                "signin/password.html",
                status_code=401,
                error="Wrong user name or password.",
                next=target,
                username=username,
            )
        if await factors.has_second_factor(username):
            stage = Stage.SECOND_FACTOR
        elif web.settings.require_second_factor:
            stage = Stage.ENROL
        else:
            stage = Stage.SIGNED_IN
        old = await current_session(request)
        if old is not None:  # whatever it was, this browser's session id changes now
            await web.sessions.delete(old.token)
        now = utcnow()
        token = await web.sessions.create(
            username,
            stage,
            times=web.times,
            address=address,
            user_agent=request.headers.get("user-agent", ""),
            now=now,
        )
        if stage == Stage.SIGNED_IN:
            await web.sessions.record(
                f"user:{username}", "signin", {"address": address, "factors": ["password"]}, now=now
            )
            response: Response[Any] = redirect(target)
        elif stage == Stage.SECOND_FACTOR:
            response = redirect("/signin/code?" + urlencode({"next": target}))
        else:
            response = redirect("/account/totp")
        set_session(response, token, web.settings)
        return response

    @get("/signin/code")
    async def code_page(
        self, request: Request[Any, Any, Any], next: str | None = None
    ) -> Response[Any]:
        user = await current_session(request)
        if user is None or user.session.stage != Stage.SECOND_FACTOR:
            return redirect("/signin")
        keys: WebAuthnKeys = request.app.state.store.keys
        has_keys = bool(await keys.keys(user.username))
        return await render(
            request, user, "signin/code.html", next=safe_next(next), has_keys=has_keys
        )

    @post("/signin/code", status_code=303)
    async def code(
        self, request: Request[Any, Any, Any], factors: SecondFactorRepository
    ) -> Response[Any]:
        web = web_state(request)
        user = await current_session(request)
        if user is None or user.session.stage != Stage.SECOND_FACTOR:
            return redirect("/signin")
        form = await read_form(request)
        code = form_field(form, "code", max_length=64).strip()
        target = safe_next(form.get("next"))
        address = client_address(request)
        refused = await _limited(request, web, user.username, address, "code", target, user)
        if refused is not None:
            return refused
        now = utcnow()
        digits = code.replace(" ", "")
        if len(digits) == 6 and digits.isdigit():
            kind, accepted = "totp", await factors.verify_totp(user.username, digits, now=now)
        else:
            kind = "recovery_code"
            accepted = await factors.use_recovery_code(user.username, code, now=now)
        if not accepted:
            await _failed(web, user.username, address, kind)
            return await render(
                request,
                user,
                "signin/code.html",
                status_code=401,
                next=target,
                error="That code is wrong or was used already. Try the next one.",
            )
        token = await web.sessions.rotate(user.token, Stage.SIGNED_IN, times=web.times, now=now)
        if token is None:
            return redirect("/signin")
        await web.sessions.record(
            f"user:{user.username}",
            "signin",
            {"address": address, "factors": ["password", kind]},
            now=now,
        )
        response = redirect(target)
        set_session(response, token, web.settings)
        return response

    @post("/signin/key/options", status_code=200)
    async def key_options(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The options of ``navigator.credentials.get`` for this sign-in's user."""
        user = await _pending(request)
        keys: WebAuthnKeys = request.app.state.store.keys
        challenge, options = await keys.authentication_options(
            user.username, relying_party(request)
        )
        await web_state(request).sessions.set_challenge(user.session.id, challenge)
        return json_options(options)

    @post("/signin/key", status_code=200)
    async def key(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The second factor by a security key: where to go next, or 401."""
        web = web_state(request)
        user = await _pending(request)
        body, credential = await read_answer(request)
        next_page = body.get("next")
        target = safe_next(next_page if isinstance(next_page, str) else None)
        address = client_address(request)
        if await _limited(request, web, user.username, address, "key", target, user):
            wait = web.limiter.retry_after(user.username, address, web.clock())
            return Response(
                {"status_code": 429, "detail": "too many failed attempts; try again later"},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        challenge = await web.sessions.take_challenge(user.session.id)
        now = utcnow()
        keys: WebAuthnKeys = request.app.state.store.keys
        try:
            if challenge is None:
                raise KeyRefused("no challenge was given")
            await keys.authenticate(
                user.username, credential, challenge=challenge, rp=relying_party(request), now=now
            )
        except KeyRefused as exc:
            logger.info("a security key was refused for %s: %s", user.username, exc)
            await _failed(web, user.username, address, "webauthn")
            return Response(
                {"status_code": 401, "detail": "the security key was not accepted"},
                status_code=401,
            )
        token = await web.sessions.rotate(user.token, Stage.SIGNED_IN, times=web.times, now=now)
        if token is None:
            raise SignInRequired("sign in again")
        await web.sessions.record(
            f"user:{user.username}",
            "signin",
            {"address": address, "factors": ["password", "webauthn"]},
            now=now,
        )
        response = Response({"redirect": target})
        set_session(response, token, web.settings)
        return response

    @post("/signout", status_code=303)
    async def signout(self, request: Request[Any, Any, Any]) -> Redirect:
        web = web_state(request)
        user = await current_session(request)
        if user is not None:
            await web.sessions.delete(user.token)
            await web.sessions.record(
                f"user:{user.username}",
                "signout",
                {"address": client_address(request)},
                now=utcnow(),
            )
        response = redirect("/signin")
        set_session(response, None, web.settings)
        return response


async def _pending(request: Request[Any, Any, Any]) -> WebUser:
    """The session whose sign-in waits for its second factor."""
    user = await current_session(request)
    if user is None or user.session.stage != Stage.SECOND_FACTOR:
        raise SignInRequired("sign in with your password first")
    return user


async def _failed(web: WebState, username: str, address: str, kind: str) -> None:
    """Count and audit a failed attempt (the name and address; never what was typed)."""
    web.limiter.failed(username, address, web.clock())
    await web.sessions.record(
        "web",
        "signin.failed",
        {"user": username, "address": address, "reason": kind},
        now=utcnow(),
    )


async def _limited(
    request: Request[Any, Any, Any],
    web: WebState,
    username: str,
    address: str,
    step: str,
    target: str,
    pending: WebUser | None = None,
) -> Template | None:
    """The 429 page if this account or address has failed too often lately (audited)."""
    wait = web.limiter.retry_after(username, address, web.clock())
    if not wait:
        return None
    await web.sessions.record(
        "web",
        "signin.failed",
        {"user": username, "address": address, "reason": "rate_limited", "step": step},
        now=utcnow(),
    )
    minutes = max(1, round(wait / 60))
    return await render(
        request,
        await current_session(request),
        "signin/code.html" if pending is not None else "signin/password.html",
        status_code=429,
        headers={"Retry-After": str(wait)},
        next=target,
        username=username,
        error=f"Too many failed attempts. Try again in about {minutes} minute"
        + ("s." if minutes != 1 else "."),
    )
