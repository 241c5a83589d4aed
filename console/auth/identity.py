"""Who is calling, and what they may do: API scopes and the caller's identity."""

from __future__ import annotations

import enum
import hashlib
from typing import Final

import msgspec

from .schemas import Role

__all__ = ["SCOPES", "ApiIdentity", "Scope", "hash_secret"]


class Scope(enum.StrEnum):
    """What an API token may be allowed to do."""

    TICKETS_READ = "tickets:read"
    TICKETS_WRITE = "tickets:write"
    DEVICES_READ = "devices:read"
    DEVICES_WRITE = "devices:write"
    COMMANDS_RUN = "commands:run"
    AUDIT_READ = "audit:read"


SCOPES: Final = frozenset(str(scope) for scope in Scope)


def hash_secret(secret: str) -> bytes:
    """The SHA-256 of a long random secret (a token): how it is stored and looked up.

    Tokens are long random strings, so a plain hash is enough to look them up and
    useless to a thief; passwords, which are not, get argon2 (``accounts.py``).
    """
    return hashlib.sha256(secret.encode()).digest()


class ApiIdentity(msgspec.Struct, frozen=True):
    """Who is calling the API, and what they may do."""

    actor: str
    scopes: frozenset[str]
    # The technician the token acts for, and their role; None for a service token.
    username: str | None = None
    role: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether a technician with the admin role calls (a service token is not one)."""
        return self.role == Role.ADMIN
