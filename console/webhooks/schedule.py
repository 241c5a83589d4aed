"""When a failed delivery is tried again: exponential back-off with jitter, for about
three days.

After the n-th failed attempt the next one waits ``min(cap, base * 2**(n-1))``
seconds, less a random part of up to a half ("equal jitter": never sooner than
half the step, so a receiver that is down is not hammered, and receivers that
came back are not hit by every console's retries at once). With the defaults
(10 s, doubling to a cap of 4 h) that is about 27 attempts; a delivery whose
next attempt would fall later than ``give_up_after`` (3 days) after it was
written is given up (``failed``; ``webhook redeliver`` sends it again).

No clock in here: the dispatcher passes ``now``, tests pass their own.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass, field

__all__ = ["RetrySchedule"]

# 2**40 seconds is beyond any cap; stop doubling there.
_MAX_EXPONENT = 40


@dataclass(frozen=True)
class RetrySchedule:
    """Delays between the attempts of one delivery."""

    base: float = 10.0
    """The delay after the first failure, in seconds (before jitter)."""

    cap: float = 4 * 3600.0
    """The longest delay, in seconds."""

    give_up_after: datetime.timedelta = datetime.timedelta(days=3)
    """No attempt later than this after the delivery was written."""

    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    """Source of the jitter (seeded in tests)."""

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError("0 < base <= cap")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed attempts in a row (>= 1)."""
        step = min(self.cap, self.base * 2.0 ** min(max(failures, 1) - 1, _MAX_EXPONENT))
        return step - self.rng.uniform(0.0, step / 2)

    def next_attempt(
        self, failures: int, created_at: datetime.datetime, now: datetime.datetime
    ) -> datetime.datetime | None:
        """When to try again after ``failures`` failed attempts; None: give up."""
        when = now + datetime.timedelta(seconds=self.delay(failures))
        if when > created_at + self.give_up_after:
            return None
        return when
