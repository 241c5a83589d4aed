"""A ticket's timeline: every step taken on it, typed, in order.

Every capability records its steps with ``add`` (ORM session) or ``add_sync``
(plain statements), in the transaction of the action itself; ``kinds`` has one
struct per kind of entry, ``describe`` puts an entry in words.
"""

from __future__ import annotations

from .entries import add, add_sync, typed, view

__all__ = ["add", "add_sync", "typed", "view"]
