"""Accounts, roles and API tokens as the console shows them."""

from __future__ import annotations

import datetime
import enum

import msgspec

__all__ = ["ApiTokenCreated", "Role", "ViewerLinkCreated"]


class Role(enum.StrEnum):
    """What a technician account may do."""

    ADMIN = "admin"
    TECHNICIAN = "technician"
    READONLY = "readonly"  # auditors, managers: see everything, change nothing


class ApiTokenCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new API token; the token itself is shown this once."""

    id: int
    name: str
    token: str
    scopes: list[str]
    expires_at: datetime.datetime | None


class ViewerLinkCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new viewer link's secret (shown once) and when it must be opened by."""

    id: int
    token: str
    expires_at: datetime.datetime
