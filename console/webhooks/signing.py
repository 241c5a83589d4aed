"""Signing webhooks as the Standard Webhooks specification says.

A secret is ``whsec_`` followed by the base64 of 24 to 64 random bytes (the
console makes 32). Each attempt carries::

    webhook-id: msg_...            the same on every attempt (receivers dedupe on it)
    webhook-timestamp: 1733241600  seconds since the epoch, of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.".encode() + body)>

During a secret's rotation the header holds one signature per secret in force,
separated by spaces; a receiver accepts the message if any of them matches.
Checked against the specification's published test vector and the
``standardwebhooks`` package's verifier (``tests/console/webhooks``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Final

from deskside.console.errors import InvalidRequest

__all__ = [
    "SECRET_PREFIX",
    "new_message_id",
    "new_secret",
    "secret_key",
    "sign",
    "signature_header",
]

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, no secret
_SECRET_BYTES: Final = 32


def new_secret() -> str:
    """A fresh signing secret, ``whsec_<base64 of 32 random bytes>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def new_message_id() -> str:
    """A ``webhook-id``: unique per message, kept across its retries."""
    return "msg_" + secrets.token_urlsafe(18)


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ``InvalidRequest`` if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidRequest("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("a webhook secret is whsec_ and base64") from exc
    if not 24 <= len(key) <= 64:
        raise InvalidRequest("a webhook secret's key is 24 to 64 bytes")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One signature, ``v1,<base64>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    secrets_in_force: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> str:
    """The ``webhook-signature`` header: one signature per secret, space-separated."""
    return " ".join(sign(s, message_id, timestamp, body) for s in secrets_in_force)
