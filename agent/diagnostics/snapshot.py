"""Taking a snapshot: every collector at once, each in its thread, each with its bound.

Theory of operation
-------------------

``COLLECTORS`` names every collector with the time it may take. ``collect_snapshot``
starts each one in its own daemon thread (the collectors block: psutil, files,
subprocesses) and waits for all of them with ``asyncio.wait``, each for at most
``min(bound, timeout)`` seconds, so the snapshot is back within ``timeout`` however
the collectors behave. A collector that raises or overruns its bound becomes a
``CollectorError`` and leaves its section empty; the other sections are unaffected.

Threads, not the loop's default executor: a collector stuck in the kernel (a hung
NFS mount, a resolver waiting on dead servers) cannot be stopped, and it would hold
an executor worker that the rest of the agent needs, and keep ``asyncio.run`` from
returning. A daemon thread is simply left behind. So that a machine where something
hangs does not pile up one more stuck thread per snapshot, a collector whose earlier
thread has outlived its bound is not started again until that thread ends; its
section reports the hang at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

import msgspec

from deskside.protocol.messages import (
    BatteryInfo,
    CollectorError,
    CpuInfo,
    DiskInfo,
    InterfaceInfo,
    LogEntry,
    MemoryInfo,
    NetworkInfo,
    OsInfo,
    ProcessInfo,
    ReachabilityCheck,
    ServiceInfo,
    Snapshot,
    UserSession,
)

from . import collectors, network, systemd
from .limits import MAX_ERROR, MAX_ERRORS, MAX_NAME, clip, fit

__all__ = ["COLLECTORS", "Collector", "CollectorContext", "collect_snapshot"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class CollectorContext:
    """What a collector may use besides the machine itself."""

    # The console's URL, for the reachability checks; None when not enrolled.
    console_url: str | None
    # Seconds this collector may take; it may share them among its own steps.
    budget: float
    # Partial failures worth telling the technician (a hung mount among good ones).
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Collector:
    """One section of a snapshot: a blocking function and the time it may take."""

    name: str
    bound: float  # seconds, before the snapshot's own ``timeout`` caps it
    run: Callable[[CollectorContext], object]


# Module attributes are looked up on each run, so tests can monkeypatch a collector.
COLLECTORS: dict[str, Collector] = {
    c.name: c
    for c in (
        Collector("os", 2.0, lambda ctx: collectors.collect_os()),
        Collector("uptime", 2.0, lambda ctx: collectors.collect_uptime()),
        Collector("cpu", 3.0, lambda ctx: collectors.collect_cpu()),
        Collector("memory", 2.0, lambda ctx: collectors.collect_memory()),
        Collector("disks", 5.0, lambda ctx: collectors.collect_disks(ctx.problems)),
        Collector("interfaces", 3.0, lambda ctx: collectors.collect_interfaces()),
        Collector("network", 3.0, lambda ctx: network.collect_network()),
        Collector(
            "reachability",
            8.0,
            lambda ctx: network.collect_reachability(ctx.console_url, ctx.budget),
        ),
        Collector("processes", 5.0, lambda ctx: collectors.collect_processes()),
        Collector("services", 5.0, lambda ctx: systemd.collect_failed_services()),
        Collector("users", 2.0, lambda ctx: collectors.collect_users()),
        Collector("battery", 3.0, lambda ctx: collectors.collect_battery()),
        Collector("reboot", 2.0, lambda ctx: collectors.collect_pending_reboot()),
        Collector("logs", 5.0, lambda ctx: systemd.collect_recent_errors()),
    )
}
"""Every collector of a snapshot, by the name its errors carry."""


class _Running:
    """Collector threads still at work, with when they started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Token of each running thread -> (collector name, monotonic start time).
        self._threads: dict[int, tuple[str, float]] = {}
        self._tokens = itertools.count()

    def begin(self, name: str) -> int:
        with self._lock:
            token = next(self._tokens)
            self._threads[token] = (name, time.monotonic())
            return token

    def end(self, token: int) -> None:
        with self._lock:
            self._threads.pop(token, None)

    def hung_for(self, name: str, bound: float) -> float | None:
        """Seconds the oldest thread of ``name`` has run, if that is over ``bound``."""
        now = time.monotonic()
        with self._lock:
            ages = [now - start for n, start in self._threads.values() if n == name]
        oldest = max(ages, default=0.0)
        return oldest if oldest > bound else None


_running: Final = _Running()


def _settle(future: asyncio.Future[object], value: object, error: Exception | None) -> None:
    if future.done():
        return  # the snapshot stopped waiting
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _start(collector: Collector, context: CollectorContext) -> asyncio.Future[object]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[object] = loop.create_future()
    token = _running.begin(collector.name)

    def work() -> None:
        value: object = None
        error: Exception | None = None
        try:
            value = collector.run(context)
        except Exception as exc:  # handed to the loop, recorded as a CollectorError
            error = exc
        finally:
            _running.end(token)
        # A closed loop raises RuntimeError: nobody waits for this result any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, value, error)

    thread = threading.Thread(
        target=work, name=f"deskside-diagnostics-{collector.name}", daemon=True
    )
    thread.start()
    return future


def _error(name: str, message: str) -> CollectorError:
    return CollectorError(collector=clip(name, MAX_NAME), error=clip(message, MAX_ERROR))


async def _run(
    collector: Collector, console_url: str | None, timeout: float
) -> tuple[object, list[CollectorError]]:
    """The value of ``collector`` (None on failure) and the errors to record."""
    bound = min(collector.bound, timeout)
    hung = _running.hung_for(collector.name, bound)
    if hung is not None:
        message = f"not started: its previous run is still going after {hung:.0f} s"
        return None, [_error(collector.name, message)]
    context = CollectorContext(console_url=console_url, budget=bound)
    future = _start(collector, context)
    try:
        done, _ = await asyncio.wait({future}, timeout=bound)
    finally:
        future.cancel()  # no-op once done; on time-out or cancellation, stop waiting
    if not done:
        logger.warning("diagnostics collector %s timed out after %g s", collector.name, bound)
        return None, [_error(collector.name, f"timed out after {bound:g} s")]
    error = future.exception()
    if error is not None:
        logger.warning("diagnostics collector %s failed: %r", collector.name, error)
        text = str(error)
        message = f"{type(error).__name__}: {text}" if text else type(error).__name__
        return None, [_error(collector.name, message)]
    return future.result(), [_error(collector.name, p) for p in context.problems]


class _Results:
    """The collectors' values, handed out by the type each section needs."""

    def __init__(self, values: Mapping[str, object], errors: list[CollectorError]) -> None:
        self._values = values
        # Grows when a collector returned something of the wrong type.
        self.errors = errors

    def one(self, name: str, kind: type[T]) -> T | None:
        value = self._values.get(name)
        if value is None or isinstance(value, kind):
            return value
        self.errors.append(_error(name, f"returned {type(value).__name__}, not {kind.__name__}"))
        return None

    def many(self, name: str, kind: type[T], limit: int) -> list[T]:
        value = self._values.get(name)
        if value is None:
            return []
        if isinstance(value, list) and all(isinstance(item, kind) for item in value):
            return value[:limit]
        self.errors.append(_error(name, f"returned {type(value).__name__}, not a list"))
        return []


async def collect_snapshot(*, console_url: str | None = None, timeout: float = 10.0) -> Snapshot:
    """Take a diagnostics snapshot of this machine within ``timeout`` seconds.

    Every collector in ``COLLECTORS`` runs at once, in its own thread, for at most its
    own bound (capped by ``timeout``). With ``console_url``, the console's host is
    resolved and its port connected to. Sections whose collector failed or overran
    are left empty and named in ``errors``. The result respects every limit of the
    wire schema and encodes well under 256 KB.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, not {timeout!r}")
    taken_at = time.time()
    chosen = list(COLLECTORS.values())
    outcomes = await asyncio.gather(*(_run(c, console_url, timeout) for c in chosen))
    values = {c.name: value for c, (value, _) in zip(chosen, outcomes, strict=True)}
    results = _Results(values, [error for _, errors in outcomes for error in errors])

    network_info = results.one("network", NetworkInfo)
    checks = results.many("reachability", ReachabilityCheck, 64)
    if checks:
        network_info = msgspec.structs.replace(network_info or NetworkInfo(), checks=checks)
    uptime = results.one("uptime", float)
    snapshot = Snapshot(
        taken_at=taken_at,
        # The OS section is mandatory: without its collector, the family still shows.
        os=results.one("os", OsInfo) or OsInfo(family=collectors.os_family(), name=""),
        uptime=uptime,
        cpu=results.one("cpu", CpuInfo),
        memory=results.one("memory", MemoryInfo),
        disks=results.many("disks", DiskInfo, 256),
        interfaces=results.many("interfaces", InterfaceInfo, 256),
        network=network_info,
        processes=results.many("processes", ProcessInfo, 256),
        failed_services=results.many("services", ServiceInfo, 1024),
        users=results.many("users", UserSession, 256),
        battery=results.one("battery", BatteryInfo),
        pending_reboot=results.one("reboot", bool),
        logs=results.many("logs", LogEntry, 1024),
        errors=results.errors[:MAX_ERRORS],
    )
    return fit(snapshot)
