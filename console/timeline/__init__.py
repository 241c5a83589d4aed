"""A ticket's timeline: every step taken on it, in order.

Every capability records its steps with ``add`` (ORM session) or ``add_sync``
(plain statements), in the transaction of the action itself.
"""

from __future__ import annotations

from .entries import add, add_sync, view

__all__ = ["add", "add_sync", "view"]
