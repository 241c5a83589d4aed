"""The enrollment string a user pastes into ``deskside-agent enroll``, and device ids.

An enrollment string names the console (its URL), carries a one-time token, and
pins the console's Noise static key (and, optionally, the SHA-256 fingerprint of
its TLS certificate)::

    deskside:1:<base64url of a MessagePack map>

The token is used only inside the Noise handshake, encrypted to the pinned key, so
a proxy that ends TLS never sees it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Annotated, Final
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from .errors import ConfigError
from .messages import DeviceId, Token

__all__ = [
    "PREFIX",
    "Enrollment",
    "certificate_fingerprint",
    "check_agent_url",
    "device_id",
    "parse_enrollment",
]

PREFIX: Final = "deskside:1:"
_MAX_LENGTH: Final = 2048


class Enrollment(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent needs to enroll with a console."""

    url: Annotated[str, Meta(min_length=1, max_length=1024)]
    """Where the console listens for agents: ``wss://host:port/agent``."""

    token: Token
    """The one-time enrollment token."""

    console_key: Annotated[bytes, Meta(min_length=32, max_length=32)]
    """The console's Noise static public key, to pin."""

    tls_fingerprint: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")] | None = None
    """SHA-256 of the console's TLS certificate (DER), lower-case hex, to pin."""

    expires: Annotated[int, Meta(ge=0, le=1 << 40)] | None = None
    """When the token expires (Unix time, seconds); until then an agent that cannot
    enroll because the console is busy or out of reach tries again."""

    def encode(self) -> str:
        """The string form, to print for the user."""
        packed = msgspec.msgpack.encode(self)
        return PREFIX + base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def parse_enrollment(text: str) -> Enrollment:
    """Parse an enrollment string; ``ConfigError`` says what is wrong with it."""
    text = text.strip()
    if len(text) > _MAX_LENGTH:
        raise ConfigError("the enrollment string is too long")
    if not text.startswith(PREFIX):
        raise ConfigError(
            f"an enrollment string starts with {PREFIX!r}; ask your help desk for one"
        )
    body = text[len(PREFIX) :]
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        enrollment = msgspec.msgpack.decode(packed, type=Enrollment)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"the enrollment string is damaged ({exc}); copy it again") from exc
    check_agent_url(enrollment.url)
    return enrollment


def check_agent_url(url: str) -> None:
    """Refuse a console URL that is not ws:// or wss:// with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"the console URL {url!r} is not a ws:// or wss:// URL")


def device_id(public_key: bytes) -> DeviceId:
    """The id of a device: derived from its static key, so both sides agree on it."""
    return DeviceId("d" + hashlib.sha256(b"deskside device\0" + public_key).hexdigest()[:19])


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, lower-case hex, as pinned in enrollment strings."""
    return hashlib.sha256(der).hexdigest()
