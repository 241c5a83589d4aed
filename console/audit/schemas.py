"""An audit entry as the console shows it."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec

from deskside.console.api import Id

__all__ = ["AuditView"]


class AuditView(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the audit log."""

    id: Id
    at: datetime.datetime
    actor: str
    action: str
    data: dict[str, Any]
    hash: str
