"""Failed sign-ins, counted per account and per client address, in a sliding window.

Sans-I/O: the clock is passed in (``now``, seconds of a monotonic clock). Only
failures are counted, so a user who signs in is never slowed, and a window full of
failures refuses further attempts (right or wrong) until the oldest failure leaves
it: ``retry_after`` says when. The counts live in the console process: each node of
a cluster counts its own (a shared store would make the limits global).
"""

from __future__ import annotations

import collections
import math
from typing import Final

__all__ = ["SignInLimiter"]

# Distinct keys remembered at most (the oldest are forgotten first).
_MAX_KEYS: Final = 100_000


class SignInLimiter:
    """How many failures an account and an address may have in ``window`` seconds."""

    def __init__(self, *, per_account: int, per_address: int, window: float) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window = window
        # Times of recent failures, by ("account", name) or ("address", address).
        self._failures: collections.OrderedDict[tuple[str, str], collections.deque[float]] = (
            collections.OrderedDict()
        )

    def retry_after(self, account: str, address: str, now: float) -> int:
        """Seconds until an attempt for ``account`` from ``address`` is allowed (0: now)."""
        wait = 0.0
        for key, limit in (
            (("account", account), self.per_account),
            (("address", address), self.per_address),
        ):
            times = self._recent(key, now)
            if len(times) >= limit:
                wait = max(wait, times[len(times) - limit] + self.window - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, account: str, address: str, now: float) -> None:
        """Count a failure of ``account`` from ``address``."""
        for key in (("account", account), ("address", address)):
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
        while len(self._failures) > _MAX_KEYS:
            self._failures.popitem(last=False)

    def _recent(self, key: tuple[str, str], now: float) -> collections.deque[float]:
        times = self._failures.get(key, collections.deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times
