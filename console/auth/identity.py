"""Who is calling, and what they may do: API scopes and the caller's identity."""

from __future__ import annotations

import enum
import hashlib
from typing import Final

import msgspec

from .schemas import Role

__all__ = [
    "ADMIN_SCOPES",
    "SCOPES",
    "ApiIdentity",
    "LinkCapability",
    "Scope",
    "ViewerGrant",
    "hash_secret",
]


class Scope(enum.StrEnum):
    """What an API token may be allowed to do."""

    TICKETS_READ = "tickets:read"
    TICKETS_WRITE = "tickets:write"
    DEVICES_READ = "devices:read"
    DEVICES_WRITE = "devices:write"
    COMMANDS_RUN = "commands:run"
    AUDIT_READ = "audit:read"
    WEBHOOKS_MANAGE = "webhooks:manage"
    KNOWLEDGE_WRITE = "knowledge:write"


SCOPES: Final = frozenset(str(scope) for scope in Scope)
# Scopes only an admin's token (or a service token, which only admins create) may use:
# who manages webhooks chooses where the console sends ticket and device data.
ADMIN_SCOPES: Final = frozenset({str(Scope.WEBHOOKS_MANAGE)})


def hash_secret(secret: str) -> bytes:
    """The SHA-256 of a long random secret (a token): how it is stored and looked up.

    Tokens are long random strings, so a plain hash is enough to look them up and
    useless to a thief; passwords, which are not, get argon2 (``accounts.py``).
    """
    return hashlib.sha256(secret.encode()).digest()


class LinkCapability(enum.StrEnum):
    """The one thing a viewer link lets its holder do."""

    VIEW = "view"
    CONTROL = "control"  # view, and ask the user for control
    REPLAY = "replay"  # play back one recording


class ViewerGrant(msgspec.Struct, frozen=True, kw_only=True):
    """What a viewer link grants: one capability on one ticket's screen session."""

    link_id: int
    ticket_id: int
    capability: LinkCapability
    # The screen session it opened (view, control), or the recording (replay).
    screen_session: str | None = None


class ApiIdentity(msgspec.Struct, frozen=True):
    """Who is calling the API, and what they may do."""

    actor: str
    scopes: frozenset[str]
    # The technician the token acts for, and their role; None for a service token.
    username: str | None = None
    role: str | None = None
    # Set for a viewer link: it has no API scope, only this.
    grant: ViewerGrant | None = None

    @property
    def is_admin(self) -> bool:
        """Whether a technician with the admin role calls (a service token is not one)."""
        return self.role == Role.ADMIN
