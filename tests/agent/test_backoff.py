"""Reconnection delays: full jitter, cap, reset."""

from __future__ import annotations

import random

from deskside.agent.backoff import Backoff


def test_bounds_double_up_to_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(1))
    bounds = []
    for _ in range(10):
        bounds.append(backoff.bound())
        delay = backoff.next_delay()
        assert 0.0 <= delay <= bounds[-1]
    assert bounds == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_full_jitter_spreads_delays() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(2))
    for _ in range(4):
        backoff.next_delay()
    delays = [backoff.next_delay() for _ in range(200)]
    assert min(delays) < 1.0
    assert max(delays) > 7.0
    assert all(0 <= d <= 8.0 for d in delays)


def test_long_connection_resets() -> None:
    backoff = Backoff(base=1.0, cap=60.0, reset_after=60.0, rng=random.Random(3))
    for _ in range(5):
        backoff.next_delay()
    backoff.connection_lasted(10.0)
    assert backoff.bound() == 32
    backoff.connection_lasted(60.0)
    assert backoff.bound() == 1


def test_many_failures_stay_finite() -> None:
    backoff = Backoff(base=1.0, cap=5.0, rng=random.Random(4))
    backoff.failures = 10_000
    assert backoff.bound() == 5.0
    assert 0 <= backoff.next_delay() <= 5.0


def test_defaults_suit_the_agent() -> None:
    # Up to a minute between attempts; a connection up a minute proves the console healthy.
    backoff = Backoff(rng=random.Random(5))
    bounds = []
    for _ in range(8):
        bounds.append(backoff.bound())
        backoff.next_delay()
    assert bounds == [1, 2, 4, 8, 16, 32, 60, 60]
    backoff.connection_lasted(59.9)
    assert backoff.bound() == 60
    backoff.connection_lasted(60.0)
    assert backoff.bound() == 1
    assert "rng" not in repr(backoff)  # the random source's state is noise in logs


def test_doubling_stops_at_two_to_the_62() -> None:
    backoff = Backoff(base=1.0, cap=float("inf"), rng=random.Random(6))
    backoff.failures = 62
    assert backoff.bound() == 2.0**62
    backoff.failures = 10_000
    assert backoff.bound() == 2.0**62  # finite, with no cap at all
    backoff.failures = 61
    assert backoff.bound() == 2.0**61
