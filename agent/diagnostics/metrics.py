"""Light metrics for heartbeats: CPU and memory use, load, uptime, fullest disk.

``collect_metrics`` reads the CPU time counters, memory totals, load average, boot
time and the size of each local file system (psutil). It takes a few milliseconds:
CPU usage is averaged since the previous call (the previous heartbeat), from this
module's own counters, so it needs no sampling sleep; only the first call, with
nothing to compare to, measures over ``_FIRST_SAMPLE`` seconds. Network file
systems are skipped: their size can take minutes to read when the server is gone.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Final

import psutil  # type: ignore[import-untyped,unused-ignore]

from deskside.protocol.messages import Metrics

from .collectors import disk_usage, list_mounts
from .limits import number

__all__ = ["collect_metrics"]

# Shortest span CPU usage is measured over; 40 ms holds a few clock ticks.
_FIRST_SAMPLE: Final = 0.04


class _CpuCounter:
    """CPU usage between two calls, independent of psutil's per-thread state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (monotonic time, busy seconds, total seconds) at the previous call.
        self._last: tuple[float, float, float] | None = None

    @staticmethod
    def _read() -> tuple[float, float]:
        times: Any = psutil.cpu_times()
        # As psutil counts it: guest time is already in user time, iowait is idle.
        total = float(sum(times)) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
        idle = float(times.idle) + getattr(times, "iowait", 0.0)
        return total - idle, total

    def percent(self) -> float:
        """Percent of all CPUs busy since the previous call (or over a short sample)."""
        with self._lock:
            last = self._last
            if last is None or time.monotonic() - last[0] < _FIRST_SAMPLE:
                busy, total = self._read()
                last = (time.monotonic(), busy, total)
                time.sleep(_FIRST_SAMPLE)
            busy, total = self._read()
            self._last = (time.monotonic(), busy, total)
        elapsed = total - last[2]
        if elapsed <= 0:
            return 0.0
        return number((busy - last[1]) / elapsed * 100.0, high=100.0)


_cpu: Final = _CpuCounter()


def _min_free_percent() -> float | None:
    lowest: float | None = None
    for mount in list_mounts():
        if mount.is_network:
            continue
        try:
            usage = disk_usage(mount)
        except OSError:
            continue
        if usage is None or usage[0] <= 0:
            continue
        # 100 minus "percent used", which leaves out blocks reserved for root.
        free = number(100.0 - usage[2], high=100.0)
        lowest = free if lowest is None else min(lowest, free)
    return lowest


def collect_metrics() -> Metrics:
    """Light metrics for a heartbeat; blocking, a few milliseconds (run it in a thread).

    ``cpu_percent`` is the average since the previous call, so with one call per
    heartbeat it covers the whole interval. ``disk_min_free_percent`` is the free
    share of the fullest local file system. Raises ``psutil.Error`` or ``OSError``
    only if CPU or memory cannot be read at all.
    """
    load1: float | None = None
    if hasattr(os, "getloadavg"):
        try:
            load1 = number(os.getloadavg()[0], high=1e6)
        except OSError:
            load1 = None
    return Metrics(
        cpu_percent=_cpu.percent(),
        memory_percent=number(psutil.virtual_memory().percent, high=100.0),
        load1=load1,
        uptime=number(time.time() - float(psutil.boot_time())),
        disk_min_free_percent=_min_free_percent(),
    )
