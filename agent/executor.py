"""Running one command: its own process group, output streamed, the whole tree ended.

``run_process`` starts a ``RunPlan`` (``deskside.agent.policy``) and hands each piece
of output to a sink as it arrives, until the command is done: its process has
exited *and* its output has closed (a background child still holding stdout keeps
the command going, as with ssh). Then it says how the command ended.

* No shell unless the plan says ``/bin/sh -c`` (the policy decides); stdin is
  ``/dev/null``; the environment is the agent's (with ``HOME``, ``USER`` and
  ``LOGNAME`` of the run-as user when it switches user).
* On POSIX the command leads a new session (``start_new_session``), so its whole
  tree shares one process group. The time-out, a cancel, the output cap and the
  agent stopping all end that group: SIGTERM, then SIGKILL after ``kill_grace``
  seconds. A process that leaves the group on purpose (``setsid``) escapes; so does
  everything after a SIGKILL of the agent itself.
* On Windows the tree is found with psutil and ended child first.
* stdout and stderr are read at once by two readers, so chunks (at most 64 KiB)
  reach the sink in arrival order; a full sink slows the readers, and then the
  command, instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from deskside.protocol.messages import OutputStream

from .policy import RunPlan

__all__ = ["CHUNK_SIZE", "ProcessResult", "StopReason", "end_tree", "run_process", "user_home"]

logger = logging.getLogger(__name__)

CHUNK_SIZE: Final = 256 * 1024
# Chunks read but not yet taken by the sink.
_QUEUE: Final = 8
# After the tree is ended, how long the output may take to close.
_DRAIN: Final = 2.0

Sink = Callable[[OutputStream, bytes], Awaitable[None]]


class StopReason(enum.Enum):
    """Why the agent ended a command before it was done."""

    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    OUTPUT_CAP = "output_cap"
    AGENT_STOPPING = "agent_stopping"


@dataclass(frozen=True, kw_only=True)
class ProcessResult:
    """How a command ended."""

    exit_code: int | None
    """The exit status; a negative signal number when killed (POSIX); None: never started."""

    duration: float
    """Seconds from start to done."""

    stopped: StopReason | None = None
    """Why the agent ended it, if it did."""

    output_truncated: bool = False
    """Output beyond the cap was not sent."""

    error: str = ""
    """Why it did not start, or other trouble, in words."""


def user_home(run_as: str | None) -> str:
    """The home directory of ``run_as`` (or the agent's user), if it exists; else ``/``."""
    home: str | None = None
    if run_as is not None:
        import pwd

        with contextlib.suppress(KeyError):
            home = pwd.getpwnam(run_as).pw_dir
    else:
        with contextlib.suppress(RuntimeError, KeyError):
            home = str(Path.home())
    if home and os.path.isdir(home):
        return home
    return os.path.abspath(os.sep)


def spawn_options(run_as: str | None) -> dict[str, Any]:
    """Keyword arguments of ``subprocess.Popen`` that run a command as ``run_as``."""
    env = dict(os.environ)
    options: dict[str, Any] = {"env": env}
    if sys.platform == "win32":
        options["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
        return options
    options["start_new_session"] = True
    if run_as is not None:
        import pwd

        entry = pwd.getpwnam(run_as)
        options.update(
            user=entry.pw_uid,
            group=entry.pw_gid,
            extra_groups=os.getgrouplist(run_as, entry.pw_gid),
        )
        env.update(HOME=entry.pw_dir, USER=run_as, LOGNAME=run_as)
    return options


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def end_tree(pid: int, grace: float, *, first: int | None = None) -> None:
    """End the process group ``pid`` leads: ``first`` (SIGTERM), then SIGKILL after ``grace``."""
    if sys.platform == "win32":
        await asyncio.to_thread(_end_tree_windows, pid, grace)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM if first is None else first)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while _group_alive(pid) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _end_tree_windows(pid: int, grace: float) -> None:  # pragma: no cover (Windows)
    import psutil  # type: ignore[import-untyped]

    try:
        parent = psutil.Process(pid)
        tree = [*parent.children(recursive=True), parent]
    except psutil.Error:
        return
    for process in tree:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()


async def run_process(
    plan: RunPlan,
    sink: Sink,
    *,
    stop: asyncio.Future[StopReason],
    kill_grace: float = 2.0,
) -> ProcessResult:
    """Run ``plan`` to the end, feeding its output to ``sink``; how it ended.

    ``stop`` resolving (to ``CANCELLED`` or ``AGENT_STOPPING``) ends the command's
    tree early. A command that cannot start is a result with ``exit_code`` None
    and ``error`` saying why, not an exception. Exceptions of ``sink`` end the tree
    and propagate.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    cwd = plan.cwd if plan.cwd is not None else user_home(plan.run_as)
    if not os.path.isdir(cwd):
        return ProcessResult(
            exit_code=None, duration=0.0, error=f"the working directory {cwd} does not exist"
        )
    try:
        options = spawn_options(plan.run_as)
    except KeyError:
        return ProcessResult(
            exit_code=None, duration=0.0, error=f"there is no user {plan.run_as!r} on this device"
        )
    try:
        process = await asyncio.create_subprocess_exec(
            *plan.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            # Reads return up to CHUNK_SIZE when that much is buffered: fewer, larger
            # messages when output comes faster than the channel takes it.
            limit=CHUNK_SIZE,
            **options,
        )
    except OSError as exc:
        return ProcessResult(
            exit_code=None,
            duration=loop.time() - started,
            error=f"cannot start {plan.argv[0]!r}: {exc.strerror or exc}",
        )
    logger.debug("command process %d started", process.pid)
    queue: asyncio.Queue[tuple[OutputStream, bytes | None]] = asyncio.Queue(_QUEUE)
    overflow: asyncio.Future[StopReason] = loop.create_future()

    async def read(stream: asyncio.StreamReader | None, which: OutputStream) -> None:
        if stream is not None:
            while chunk := await stream.read(CHUNK_SIZE):
                await queue.put((which, chunk))
        await queue.put((which, None))

    sent = 0
    truncated = False

    async def pump() -> None:
        nonlocal sent, truncated
        open_streams = 2
        while open_streams:
            which, chunk = await queue.get()
            if chunk is None:
                open_streams -= 1
                continue
            if truncated:
                continue  # drained and dropped until the tree is gone
            room = plan.output_cap - sent
            if len(chunk) > room:
                chunk = chunk[:room]
                truncated = True
            if chunk:
                sent += len(chunk)
                await sink(which, chunk)
            if truncated and not overflow.done():
                overflow.set_result(StopReason.OUTPUT_CAP)

    readers = [
        asyncio.create_task(read(process.stdout, OutputStream.STDOUT)),
        asyncio.create_task(read(process.stderr, OutputStream.STDERR)),
    ]
    pumping = asyncio.create_task(pump())

    async def done() -> None:
        await asyncio.gather(process.wait(), pumping)

    finished = asyncio.create_task(done())
    reason: StopReason | None = None
    try:
        waiting: set[asyncio.Future[Any]] = {finished, stop, overflow}
        ready, _ = await asyncio.wait(
            waiting, timeout=plan.timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if finished in ready:
            finished.result()  # a failing sink raises here
        else:
            if overflow.done():
                reason = overflow.result()
            elif stop.done():
                reason = stop.result()
            else:
                reason = StopReason.TIMED_OUT
            logger.info("ending command process group %d: %s", process.pid, reason.value)
            await end_tree(process.pid, kill_grace)
            await process.wait()
            try:
                await asyncio.wait_for(asyncio.shield(finished), _DRAIN)
            except TimeoutError:
                logger.warning(
                    "output of process group %d is still open after it was ended; "
                    "a process left the group",
                    process.pid,
                )
            if finished.done():
                finished.result()
    except BaseException:
        if process.returncode is None:
            await asyncio.shield(end_tree(process.pid, kill_grace))
        raise
    finally:
        for task in (*readers, pumping, finished):
            task.cancel()
        await asyncio.gather(*readers, pumping, finished, return_exceptions=True)
    return ProcessResult(
        exit_code=process.returncode,
        duration=loop.time() - started,
        stopped=reason,
        output_truncated=truncated,
    )
