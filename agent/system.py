"""Who this agent is: its version and the machine it runs on, for ``Hello``."""

from __future__ import annotations

import asyncio
import logging
import os
from importlib.metadata import PackageNotFoundError, version

import psutil  # type: ignore[import-untyped]

from deskside.agent.diagnostics.collectors import collect_os
from deskside.protocol.messages import Hello, OsInfo

__all__ = ["agent_version", "make_hello", "os_info"]

# Longest string a ``Name`` field of the wire messages holds.
_NAME_LIMIT = 256

logger = logging.getLogger(__name__)


def agent_version() -> str:
    """The installed version of the ``deskside`` distribution."""
    try:
        return version("deskside")
    except PackageNotFoundError:
        return "0+unknown"


def os_info() -> OsInfo:
    """The operating system and machine identity (blocking: reads files)."""
    return collect_os()


def _hello(daemon: bool) -> Hello:
    boot_time: float | None = None
    try:
        boot_time = float(psutil.boot_time())
    except Exception:
        # Broad: the boot time is optional, and psutil raises different types by
        # platform (psutil.Error, OSError, RuntimeError for a /proc/stat without
        # btime); an unexpected one must not stop every Hello, and so every connection.
        logger.debug("the boot time is unknown", exc_info=True)
    return Hello(
        agent_version=agent_version()[:_NAME_LIMIT],
        os=os_info(),
        boot_time=boot_time,
        # Capture is X11's (README: not yet elsewhere). Only the daemon captures, so
        # only its display counts: a one-off ``help`` or ``enroll`` says nothing.
        display=bool(os.environ.get("DISPLAY")) if daemon else None,
    )


async def make_hello(*, daemon: bool = False) -> Hello:
    """The ``Hello`` this agent sends first on every channel (built off the loop);
    the ``daemon``'s says whether it has a display to capture."""
    return await asyncio.to_thread(_hello, daemon)
