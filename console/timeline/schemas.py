"""A timeline entry as the API gives it."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec

__all__ = ["EventView"]


class EventView(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a ticket's timeline."""

    id: int
    at: datetime.datetime
    kind: str
    actor: str
    data: dict[str, Any]
    snapshot_id: int | None = None
