"""Trying again after a failure that may pass, until a deadline; time is injected."""

from __future__ import annotations

import pytest

from deskside.channel.retry import is_transient, retry_after, with_retries
from deskside.protocol.connection import CloseCode
from deskside.protocol.errors import (
    ConfigError,
    ConnectionClosedError,
    DesksideError,
    HandshakeError,
    TryAgainLater,
)


def busy(seconds: float = 3.0) -> TryAgainLater:
    return TryAgainLater(CloseCode.TRY_AGAIN_LATER, "busy", retry_after=seconds)


@pytest.mark.parametrize(
    "exc",
    [
        busy(),
        ConnectionClosedError(CloseCode.ABNORMAL, "cannot open a WebSocket", by_peer=True),
        ConnectionClosedError(CloseCode.GOING_AWAY, "console stopping", by_peer=True),
        HandshakeError("handshake timed out", close_code=CloseCode.HANDSHAKE_TIMEOUT),
        HandshakeError("console error", close_code=CloseCode.INTERNAL_ERROR),
    ],
)
def test_failures_that_may_pass(exc: DesksideError) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        HandshakeError("enrollment token expired", close_code=CloseCode.UNKNOWN_PEER),
        HandshakeError("not the pinned console", close_code=CloseCode.HANDSHAKE_FAILED),
        HandshakeError("no common version", close_code=CloseCode.VERSION_MISMATCH),
        ConnectionClosedError(CloseCode.UNKNOWN_PEER, "device revoked", by_peer=True),
        ConfigError("bad"),
        ValueError("a bug"),
    ],
)
def test_definite_failures(exc: Exception) -> None:
    assert not is_transient(exc)


def test_retry_after_is_the_consoles_wait() -> None:
    assert retry_after(busy(4.0)) == 4.0
    assert retry_after(ConnectionClosedError(CloseCode.ABNORMAL)) == 0.0


class Clock:
    """Time that moves only when slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_tries_again_after_backoff_plus_the_consoles_wait() -> None:
    clock = Clock()
    failures: list[DesksideError] = [
        busy(3.0),
        HandshakeError("handshake timed out", close_code=CloseCode.HANDSHAKE_TIMEOUT),
    ]
    told: list[tuple[str, float]] = []

    async def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "channel"

    result = await with_retries(
        attempt,
        until=clock.now + 100,
        next_delay=lambda: 0.5,
        on_retry=lambda exc, delay: told.append((type(exc).__name__, delay)),
        clock=clock,
        sleep=clock.sleep,
    )
    assert result == "channel"
    assert clock.slept == [3.5, 0.5]
    assert told == [("TryAgainLater", 3.5), ("HandshakeError", 0.5)]


async def test_a_definite_refusal_is_raised_at_once() -> None:
    clock = Clock()
    attempts = 0

    async def attempt() -> None:
        nonlocal attempts
        attempts += 1
        raise HandshakeError("enrollment token already used", close_code=CloseCode.UNKNOWN_PEER)

    with pytest.raises(HandshakeError, match="already used"):
        await with_retries(
            attempt, until=clock.now + 100, next_delay=lambda: 1.0, clock=clock, sleep=clock.sleep
        )
    assert attempts == 1
    assert clock.slept == []


async def test_gives_up_with_the_last_failure_when_time_runs_out() -> None:
    clock = Clock()
    attempts = 0

    async def attempt() -> None:
        nonlocal attempts
        attempts += 1
        raise busy(4.0)

    with pytest.raises(TryAgainLater):
        await with_retries(
            attempt, until=clock.now + 10, next_delay=lambda: 1.0, clock=clock, sleep=clock.sleep
        )
    # 5 s each: attempts at 0 and 5; the third would start at 10, the deadline.
    assert attempts == 2
    assert clock.now < 1010
