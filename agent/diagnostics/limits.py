"""Bounds on what a snapshot holds and on how long one blocking call may take.

Every string that goes into a snapshot passes through ``clip()``: it becomes valid
UTF-8, loses its control characters (a process name or a log line must not be able to
drive the technician's terminal, nor break a line-oriented report) and is cut to a
length, well under the ``Meta`` limits of ``deskside.protocol.messages``. Numbers pass
through ``number()`` and ``count()``, so a NaN or a negative counter from the system
cannot make the console's decoder refuse the whole snapshot.

``fit()`` is the last guard: it halves the longest list until the encoded snapshot is
under ``SNAPSHOT_BUDGET`` bytes, and says so in ``errors``.

``call_with_timeout()`` runs a call that has no time-out of its own (``getaddrinfo``,
``statvfs`` on a hung network file system) in a daemon thread and stops waiting for it;
the thread is abandoned, never joined at exit.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from typing import Final, TypeVar

import msgspec

from deskside.protocol.messages import CollectorError, Snapshot

__all__ = [
    "MAX_ADDRESSES",
    "MAX_CMDLINE",
    "MAX_DESCRIPTION",
    "MAX_DISKS",
    "MAX_DNS_SERVERS",
    "MAX_ERROR",
    "MAX_ERRORS",
    "MAX_INTERFACES",
    "MAX_LOGS",
    "MAX_LOG_MESSAGE",
    "MAX_NAME",
    "MAX_PATH",
    "MAX_SERVICES",
    "MAX_USERS",
    "SNAPSHOT_BUDGET",
    "TOP_PROCESSES",
    "call_with_timeout",
    "clip",
    "count",
    "fit",
    "number",
]

T = TypeVar("T")

# String lengths, in characters (what msgspec's ``max_length`` counts).
MAX_NAME: Final = 128  # names, users, states; the wire allows 256
MAX_PATH: Final = 512  # mount points and devices; the wire allows 4096
MAX_CMDLINE: Final = 200  # a command line says what runs, not its secrets
MAX_DESCRIPTION: Final = 200
MAX_LOG_MESSAGE: Final = 1000
MAX_ERROR: Final = 300

# List lengths, each under the wire's limit.
MAX_DISKS: Final = 64
MAX_INTERFACES: Final = 64
MAX_ADDRESSES: Final = 16  # per interface
MAX_DNS_SERVERS: Final = 8
MAX_SERVICES: Final = 100
MAX_USERS: Final = 64
MAX_LOGS: Final = 20
TOP_PROCESSES: Final = 10  # by CPU, and again by memory
MAX_ERRORS: Final = 64  # the wire's limit

# Largest encoded snapshot (MessagePack); a typical one is a few kilobytes.
SNAPSHOT_BUDGET: Final = 192 * 1024

# Largest value of a ``Count`` field.
_MAX_COUNT: Final = 2**63 - 1

# Lone surrogates: undecodable bytes of file names and command lines, not UTF-8.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")

# C0 and C1 control characters and DEL: terminal escapes, NULs, line breaks.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]+")

# Lists that ``fit()`` may shorten, all of them ordered most useful first.
_TRIMMABLE: Final = ("logs", "processes", "failed_services", "users", "interfaces", "disks")


def clip(text: str, limit: int) -> str:
    """``text`` as one clean line of at most ``limit`` characters.

    Invalid UTF-8 (lone surrogates from undecodable file names) becomes U+FFFD, runs of
    control characters become one space, and a cut string ends with an ellipsis.
    """
    # Never scan megabytes to keep a few hundred characters.
    text = text[: limit * 2 + 16]
    text = _SURROGATE.sub("\ufffd", text)
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "\u2026"
    return text


def number(value: float, low: float = 0.0, high: float = 1e12) -> float:
    """``value`` clamped to ``[low, high]``; NaN becomes ``low``."""
    value = float(value)
    if math.isnan(value):
        return low
    return min(max(value, low), high)


def count(value: int) -> int:
    """``value`` clamped to the range of a ``Count`` field."""
    return min(max(int(value), 0), _MAX_COUNT)


def fit(snapshot: Snapshot, budget: int = SNAPSHOT_BUDGET) -> Snapshot:
    """``snapshot``, with its longest lists halved until it encodes under ``budget`` bytes.

    Each cut is recorded in ``errors`` (as collector ``snapshot``), so a reader knows
    the lists are incomplete.
    """
    encoder = msgspec.msgpack.Encoder()
    trimmed: list[str] = []
    while len(encoder.encode(snapshot)) > budget:
        name = max(_TRIMMABLE, key=lambda field: len(getattr(snapshot, field)))
        items: list[object] = getattr(snapshot, name)
        if not items:
            break  # nothing left to trim: the fixed-size sections alone are too big
        snapshot = msgspec.structs.replace(snapshot, **{name: items[: len(items) // 2]})
        if name not in trimmed:
            trimmed.append(name)
    if trimmed:
        note = CollectorError(
            collector="snapshot",
            error=f"shortened {', '.join(trimmed)} to stay under {budget} bytes",
        )
        errors = [*snapshot.errors[: MAX_ERRORS - 1], note]
        snapshot = msgspec.structs.replace(snapshot, errors=errors)
    return snapshot


def call_with_timeout(func: Callable[[], T], timeout: float, *, name: str) -> T:
    """``func()``, or ``TimeoutError`` if it has not returned after ``timeout`` seconds.

    ``func`` runs in a daemon thread named after ``name``; on time-out that thread is
    left to finish (or hang) on its own: Python cannot stop a thread.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(func())
        except BaseException as exc:  # handed over to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"deskside-diagnostics-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if errors:
        raise errors[0]
    return results[0]
