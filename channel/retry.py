"""Opening a channel again after a failure that may pass, until a deadline.

A failure *may pass* when the console was busy (``TryAgainLater``: it refused the
connection at once and said how long to wait), out of reach, going away, or did
not finish the handshake in time. It is *definite* when the console refused this
agent or its token (close code 4003: unknown, revoked, spent, expired), is not
the pinned console, or speaks no common version: trying again changes nothing,
so it is raised at once.

Between attempts the caller's delay (jittered exponential backoff) is waited, on
top of the console's ``retry_after`` (so the agents it turned away do not all come
back at the same instant); an attempt that could not start
before ``until`` is not made and the last failure is raised. Time and sleeping
are injected, so the policy is tested without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from deskside.protocol.connection import CloseCode
from deskside.protocol.errors import (
    ConnectionClosed,
    DesksideError,
    HandshakeError,
    TryAgainLater,
)

__all__ = ["is_transient", "retry_after", "with_retries"]

_T = TypeVar("_T")

# Close codes after which the same attempt may succeed later.
_PASSING: Final = frozenset(
    {
        CloseCode.GOING_AWAY,  # the console is restarting
        CloseCode.ABNORMAL,  # unreachable, or the connection dropped
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.HANDSHAKE_TIMEOUT,
        CloseCode.INTERNAL_ERROR,
    }
)


def is_transient(exc: BaseException) -> bool:
    """Whether the same attempt may succeed later (see the module's docstring)."""
    if isinstance(exc, HandshakeError):
        return exc.close_code in _PASSING
    if isinstance(exc, ConnectionClosed):
        return exc.code in _PASSING
    return False


def retry_after(exc: BaseException) -> float:
    """How long the console asked to wait before the next attempt; 0 if it did not."""
    return exc.retry_after if isinstance(exc, TryAgainLater) else 0.0


async def with_retries(
    attempt: Callable[[], Awaitable[_T]],
    *,
    until: float,
    next_delay: Callable[[], float],
    on_retry: Callable[[DesksideError, float], None] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> _T:
    """Await ``attempt()`` until it succeeds, a failure is definite, or ``until`` passes.

    ``until`` is on ``clock``'s scale (wall-clock seconds by default: a token's expiry);
    ``on_retry(failure, delay)`` is told before each wait.
    """
    while True:
        try:
            return await attempt()
        except DesksideError as exc:
            if not is_transient(exc):
                raise
            delay = retry_after(exc) + next_delay()
            if clock() + delay >= until:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
        await sleep(delay)
