"""A token bucket with time passed in, for limits on rates of peer input."""

from __future__ import annotations

from .errors import LocalProtocolError

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allows ``rate`` events a second on average and bursts of up to ``burst``.

    Time is given by the caller (``now``, in seconds of a monotonic clock), so the
    bucket does no I/O and tests need no sleeping.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise LocalProtocolError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        # Tokens left at time self._stamp.
        self._tokens = burst
        # When self._tokens was last brought up to date.
        self._stamp = now

    def consume(self, now: float, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if the bucket has them; False (and nothing taken) otherwise."""
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._stamp = max(self._stamp, now)
        if self._tokens < tokens:
            return False
        self._tokens -= tokens
        return True

    def delay(self, now: float, tokens: float = 1.0) -> float:
        """Seconds from ``now`` until ``tokens`` are in the bucket (0.0 if they are)."""
        elapsed = max(0.0, now - self._stamp)
        have = min(self.burst, self._tokens + elapsed * self.rate)
        return 0.0 if have >= tokens else (tokens - have) / self.rate
