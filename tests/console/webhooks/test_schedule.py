"""The retry schedule: exponential back-off with jitter, given up after about 3 days."""

from __future__ import annotations

import datetime
import random

import pytest

from deskside.console.webhooks.schedule import RetrySchedule

START = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


def test_delays_double_up_to_the_cap_with_jitter_of_at_most_half() -> None:
    schedule = RetrySchedule(base=10, cap=4 * 3600, rng=random.Random(7))
    for failures in range(1, 40):
        step = min(4 * 3600.0, 10.0 * 2 ** (failures - 1))
        for _ in range(20):
            assert step / 2 <= schedule.delay(failures) <= step


def test_the_jitter_is_random() -> None:
    schedule = RetrySchedule(rng=random.Random(1))
    assert len({round(schedule.delay(5), 6) for _ in range(50)}) > 40


def test_a_delivery_is_tried_for_about_three_days_then_given_up() -> None:
    schedule = RetrySchedule(rng=random.Random(3))
    now, failures = START, 0
    times = []
    while True:
        failures += 1
        after = schedule.next_attempt(failures, START, now)
        if after is None:
            break
        assert after > now
        now = after
        times.append(now)
    assert times[-1] <= START + datetime.timedelta(days=3)
    assert times[-1] >= START + datetime.timedelta(days=3) - datetime.timedelta(hours=4)
    assert 20 <= len(times) <= 40
    assert times[0] - START <= datetime.timedelta(seconds=10)


def test_a_redelivery_starts_the_three_days_again() -> None:
    schedule = RetrySchedule(rng=random.Random(3))
    late = START + datetime.timedelta(days=3)
    assert schedule.next_attempt(30, START, late) is None
    assert schedule.next_attempt(30, late, late) is not None


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="base"):
        RetrySchedule(base=0)
    with pytest.raises(ValueError, match="base"):
        RetrySchedule(base=100, cap=10)
