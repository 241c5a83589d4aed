"""Reconnection delays: exponential backoff with full jitter.

After the n-th failure in a row the agent waits a random time between 0 and
``min(cap, base * 2**n)`` seconds ("full jitter"), so a console that comes back
after an outage is not hit by every agent at the same instant. A connection that
stayed up ``reset_after`` seconds proves the console healthy again: the count
starts over.

No clock and no sleeping in here: the caller says how long a connection lasted
and sleeps for the delays it gets, so the policy is tested without waiting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]

# 2**62 seconds is beyond any cap; stop doubling there so the float stays finite.
_MAX_EXPONENT = 62


@dataclass
class Backoff:
    """Full-jitter exponential backoff between reconnection attempts."""

    base: float = 1.0
    """The first delay's upper bound, in seconds."""

    cap: float = 60.0
    """The largest delay, in seconds."""

    reset_after: float = 60.0
    """A connection up this long (seconds) resets the count of failures."""

    rng: random.Random = field(default_factory=random.Random, repr=False)
    """Source of the jitter (seeded in tests)."""

    # Failures since the last reset; the exponent of the next delay's bound.
    failures: int = 0

    def bound(self) -> float:
        """The upper bound of the next delay."""
        return min(self.cap, self.base * 2.0 ** min(self.failures, _MAX_EXPONENT))

    def next_delay(self) -> float:
        """Count one more failure; how long to wait before the next attempt."""
        delay = self.rng.uniform(0.0, self.bound())
        self.failures += 1
        return delay

    def connection_lasted(self, seconds: float) -> None:
        """Report how long a connection stayed up; a long one resets the count."""
        if seconds >= self.reset_after:
            self.failures = 0
