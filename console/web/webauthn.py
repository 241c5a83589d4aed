"""What the WebAuthn routes share: the console as a relying party, JSON in and out."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar import MediaType, Request, Response

from deskside.console.auth.keys import KeyRefused, RelyingParty, parse_answer
from deskside.console.errors import InvalidRequest

__all__ = ["json_options", "read_answer", "relying_party"]


def relying_party(request: Request[Any, Any, Any]) -> RelyingParty:
    """The console as the browser reached it: the host name is the relying party's id
    (keys are bound to it) and the origin is what the browser signs."""
    host = request.headers.get("host", "")
    hostname = urlsplit(f"//{host}").hostname
    if not hostname or len(host) > 255:
        raise InvalidRequest("no usable Host header")
    return RelyingParty(rp_id=hostname, origin=f"{request.url.scheme}://{host}")


def json_options(options: str) -> Response[str]:
    """Options made by py_webauthn (JSON text), sent as they are."""
    return Response(options, media_type=MediaType.JSON, headers={"Cache-Control": "no-store"})


async def read_answer(request: Request[Any, Any, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request's JSON (``{"credential": ..., ...}``) and its credential."""
    try:
        body = parse_answer(await request.body())
    except KeyRefused as exc:
        raise InvalidRequest(str(exc)) from exc
    credential = body.get("credential")
    if not isinstance(credential, dict):
        raise InvalidRequest("send the authenticator's answer as 'credential'")
    return body, credential
