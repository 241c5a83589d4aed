"""Interactive terminals for the help desk: a PTY and a login shell (POSIX).

Theory of operation::

    ShellOpen ──> policy (mode "any", terminal = true) ──> consent ("an interactive
        terminal") ──> PTY + login shell (own session, PTY as controlling tty)
        ──> ShellStarted(consent: how it was allowed)
    PTY output ──> ShellData(seq 0, 1, ...) ──> console
    ShellData from the console ──> written to the PTY (Ctrl-C is just byte 0x03)
    ShellResize ──> TIOCSWINSZ on the PTY (the shell gets SIGWINCH)
    shell exits ──> ShellClosed(exit_code)
    ShellClosed from the console, the channel lost, the agent stopping
        ──> SIGHUP to the shell's process group (SIGKILL 2 s later) ──> ShellClosed

* The shell is the run-as user's login shell when ``run_as`` applies, else
  ``$SHELL`` (or the agent user's shell, or ``/bin/sh``), started as a login shell
  (``argv[0]`` begins with ``-``) with ``TERM=xterm-256color``, in the user's home.
* A terminal lives as long as its channel: unlike a command's output, terminal
  bytes are not spooled; when the connection drops the shell is hung up, as ssh
  does.
* Input that arrives while the user is still being asked waits (up to 64 KiB) and
  is typed once the shell starts.
* Every session is recorded to ``shells/<session id>.cast`` (asciinema v2: a
  header line, then ``[seconds, "o"|"i"|"r", text]`` events for output, input
  and resizes; 0600). The transcript holds everything typed, passwords typed at
  echo-less prompts included: it stays on this machine, readable by its owner.
  The audit log gets ``shell_opened`` and ``shell_closed`` (exit code, duration,
  bytes each way) or ``refused``. The daemon's log never holds the bytes.
* Windows: refused, "not supported yet".
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import json
import logging
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import msgspec

from deskside.channel import Channel
from deskside.channel.dispatch import HandlerTable
from deskside.protocol.errors import ConnectionClosed, DesksideError
from deskside.protocol.messages import (
    ShellClosed,
    ShellData,
    ShellOpen,
    ShellResize,
    ShellStarted,
)

from . import consent
from .audit import AuditLog
from .commands import decide_consent, file_stem, is_root
from .executor import end_tree, spawn_options, user_home
from .files import ensure_private_dir
from .policy import CommandPolicy, Refusal, plan_terminal

__all__ = ["CastRecorder", "TerminalService", "login_shell"]

logger = logging.getLogger(__name__)

TERM: Final = "xterm-256color"
_READ_SIZE: Final = 64 * 1024
# Input kept while the user is asked, or while the PTY cannot take more.
_MAX_PENDING_INPUT: Final = 4 << 20
_MAX_EARLY_INPUT: Final = 64 * 1024
# Session ids remembered after they end, so they are not reused.
_ENDED_MEMORY: Final = 1000
_LINE_LIMIT: Final = 4096
# How often the shell process is checked for its exit.
_POLL: Final = 0.1
# Once the shell has exited, the output is over after this long without a byte.
_AFTER_EXIT: Final = 0.3


def login_shell(run_as: str | None) -> str:
    """The shell to start: the run-as user's, else ``$SHELL``, the agent user's, ``/bin/sh``."""
    import pwd

    candidates: list[str | None] = []
    if run_as is not None:
        with contextlib.suppress(KeyError):
            candidates.append(pwd.getpwnam(run_as).pw_shell)
    else:
        candidates.append(os.environ.get("SHELL"))
        with contextlib.suppress(KeyError):
            candidates.append(pwd.getpwuid(os.getuid()).pw_shell)
    for shell in candidates:
        if shell and os.path.isabs(shell) and os.access(shell, os.X_OK):
            return shell
    return "/bin/sh"


def _set_window_size(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _take_controlling_tty() -> None:  # pragma: no cover (runs in the child)
    """In the child, after setsid: make stdin (the PTY) the controlling terminal."""
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _spawn(shell: str, tty: int, cwd: str, options: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Start ``shell`` as a login shell on ``tty`` in a new session (blocking)."""
    # preexec_fn only makes one ioctl, after setsid(), with nothing shared to lock.
    return subprocess.Popen(  # noqa: S603 (the login shell the agent chose)
        ["-" + os.path.basename(shell)],
        executable=shell,
        stdin=tty,
        stdout=tty,
        stderr=tty,
        cwd=cwd,
        preexec_fn=_take_controlling_tty,
        **options,
    )


class CastRecorder:
    """Writes an asciinema v2 transcript; events are written in order by one flusher."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The open transcript; None before start() and after close().
        self._file: IO[bytes] | None = None
        # Seconds since the epoch at start; event times are relative to it.
        self._start = 0.0
        # Lines waiting for the flusher.
        self._lines: list[bytes] = []
        # The flusher writing now, if any.
        self._flusher: asyncio.Task[None] | None = None
        # Per direction: UTF-8 decoders that keep a character split across chunks whole.
        self._decoders = {
            kind: codecs.getincrementaldecoder("utf-8")(errors="replace") for kind in ("o", "i")
        }

    async def start(self, cols: int, rows: int, header: dict[str, Any]) -> None:
        """Create the file (0600) and write the header line."""
        self._start = time.time()
        document = {
            "version": 2,
            "width": cols,
            "height": rows,
            "timestamp": int(self._start),
            **header,
        }

        def create() -> IO[bytes]:
            ensure_private_dir(self.path.parent)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            file = os.fdopen(fd, "wb")
            file.write(json.dumps(document).encode() + b"\n")
            return file

        self._file = await asyncio.to_thread(create)

    def record(self, kind: str, data: bytes | str) -> None:
        """Add an event: ``"o"`` output bytes, ``"i"`` input bytes, ``"r"`` "COLSxROWS"."""
        if self._file is None:
            return
        text = data if isinstance(data, str) else self._decoders[kind].decode(data)
        if not text:
            return
        event = [round(time.time() - self._start, 6), kind, text]
        self._lines.append(json.dumps(event, ensure_ascii=False).encode() + b"\n")
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._lines and self._file is not None:
            lines, self._lines = self._lines, []
            file = self._file
            try:
                await asyncio.to_thread(_write_lines, file, lines)
            except OSError as exc:
                logger.warning("cannot write the transcript %s: %s", self.path, exc)

    async def close(self) -> None:
        """Write what is left, sync and close."""
        if self._flusher is not None:
            try:
                await self._flusher
            except Exception:
                # _flush handles OSError itself, so this is a bug; what is left must
                # still be written and the file closed.
                logger.exception("the transcript writer of %s failed", self.path)
        await self._flush()
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(_close_synced, file)


def _write_lines(file: IO[bytes], lines: list[bytes]) -> None:
    file.write(b"".join(lines))
    file.flush()


def _close_synced(file: IO[bytes]) -> None:
    try:
        file.flush()
        os.fsync(file.fileno())
    finally:
        file.close()


@dataclass(eq=False)
class _Session:
    """One terminal, from ShellOpen to ShellClosed."""

    request: ShellOpen
    channel: Channel
    recorder: CastRecorder
    # The PTY's master side; -1 until the shell runs.
    master: int = -1
    # The shell, leader of its own session and process group.
    process: subprocess.Popen[bytes] | None = None
    # Output chunks numbered so far.
    seq: int = 0
    # Bytes typed before the shell started, or not yet taken by the PTY.
    pending: bytearray = field(default_factory=bytearray)
    # Why the agent ends it ("closed by the console", ...); None while it lives.
    ending: str | None = None
    # Set when the agent wants it to end.
    hangup: asyncio.Event = field(default_factory=asyncio.Event)
    # The task that runs it.
    task: asyncio.Task[None] | None = None
    # How the user allowed it: "user", "notify" or "policy".
    consent: str = "policy"
    # Bytes each way, for the audit log.
    bytes_in: int = 0
    bytes_out: int = 0

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self.request.session_id


class TerminalService:
    """Opens, feeds and closes the console's terminals under the local policy."""

    def __init__(
        self,
        directory: Path,
        audit: AuditLog,
        policy: Callable[[], CommandPolicy],
        *,
        root: Callable[[], bool] = is_root,
        consent_lock: asyncio.Lock | None = None,
        policy_file: Path | None = None,
        hangup_grace: float = 2.0,
    ) -> None:
        # shells/: the transcripts.
        self._directory = directory
        self._audit = audit
        # The policy in force.
        self._policy = policy
        # Where it is written, named in refusals that need the owner's change.
        self._policy_file = policy_file
        self._root = root
        # One consent dialog at a time (shared with the commands).
        self._consent_lock = consent_lock or asyncio.Lock()
        self._hangup_grace = hangup_grace
        # Live sessions, by id.
        self._sessions: dict[str, _Session] = {}
        # Ids of sessions that ended, newest last; reusing one is refused.
        self._ended: deque[str] = deque(maxlen=_ENDED_MEMORY)
        # Set by shutdown(): no new sessions.
        self._stopping = False

    # -- Messages from the console -------------------------------------------------------

    def register(self, table: HandlerTable[Channel]) -> None:
        """Route the console's terminal messages (``Shell*``) to this service."""
        table.register(ShellOpen, self.open)
        table.register(ShellData, self.data)
        table.register(ShellResize, self.resize)
        table.register(ShellClosed, self.close)

    async def open(self, channel: Channel, request: ShellOpen) -> None:
        """A ``ShellOpen``: check, ask, start (in a task); a refusal is a ShellClosed."""
        session_id = request.session_id
        existing = self._sessions.get(session_id)
        if existing is not None and existing.ending is None:
            logger.info("terminal %s asked again: it is open already", session_id)
            return
        # An id whose session is ending (not yet forgotten) counts as used too.
        if existing is not None or session_id in self._ended or self._stopping:
            why = "the agent is stopping" if self._stopping else "this session id was used before"
            with contextlib.suppress(ConnectionClosed):
                await channel.send(ShellClosed(session_id=session_id, refused=True, error=why))
            return
        recorder = CastRecorder(self._directory / f"{file_stem(session_id)}.cast")
        session = _Session(request=request, channel=channel, recorder=recorder)
        self._sessions[session_id] = session
        session.task = asyncio.create_task(
            self._run(session), name=f"deskside-terminal-{session_id}"
        )

    async def data(self, channel: Channel, message: ShellData) -> None:
        """Bytes typed by the technician: to the PTY (or kept until the shell starts)."""
        session = self._sessions.get(message.session_id)
        if session is None or session.ending is not None:
            logger.debug("ShellData for terminal %s, which is not open", message.session_id)
            return
        session.bytes_in += len(message.data)
        if session.master < 0:
            if len(session.pending) + len(message.data) > _MAX_EARLY_INPUT:
                logger.warning(
                    "terminal %s: input before the shell started dropped", message.session_id
                )
                return
            session.pending += message.data
            return
        session.recorder.record("i", message.data)
        self._write(session, message.data)

    async def resize(self, channel: Channel, message: ShellResize) -> None:
        """The technician's window changed size: tell the PTY (and so the shell)."""
        session = self._sessions.get(message.session_id)
        if session is None:
            return
        session.request = msgspec.structs.replace(
            session.request, cols=message.cols, rows=message.rows
        )
        session.recorder.record("r", f"{message.cols}x{message.rows}")
        if session.master >= 0:
            with contextlib.suppress(OSError):
                _set_window_size(session.master, message.rows, message.cols)

    async def close(self, channel: Channel, message: ShellClosed) -> None:
        """The console closed the terminal: hang up the shell."""
        session = self._sessions.get(message.session_id)
        if session is not None:
            self._end(session, "closed by the console")

    def detach(self, channel: Channel) -> None:
        """The channel closed: hang up its terminals."""
        for session in list(self._sessions.values()):
            if session.channel is channel:
                self._end(session, "the connection to the console was lost")

    async def shutdown(self) -> None:
        """The agent stops: hang up every terminal and wait until they are recorded."""
        self._stopping = True
        for session in list(self._sessions.values()):
            self._end(session, "the agent stopped")
        tasks = [s.task for s in self._sessions.values() if s.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self._hangup_grace + 3.0)

    # -- A session -----------------------------------------------------------------------

    def _end(self, session: _Session, why: str) -> None:
        if session.ending is None:
            session.ending = why
            logger.info("terminal %s: %s", session.session_id, why)
        session.hangup.set()

    async def _send(
        self, session: _Session, message: ShellStarted | ShellData | ShellClosed
    ) -> bool:
        if session.channel.closed:
            return False
        try:
            await session.channel.send(message)
        except ConnectionClosed:
            return False
        return True

    async def _run(self, session: _Session) -> None:
        request = session.request
        try:
            refusal = await self._check(session)
            if refusal is not None:
                logger.warning("terminal %s refused: %s", session.session_id, refusal.reason)
                await self._send(
                    session,
                    ShellClosed(
                        session_id=session.session_id,
                        refused=True,
                        error=refusal.reason[:_LINE_LIMIT],
                    ),
                )
                await self._audit_safely(
                    "refused",
                    what="terminal",
                    session_id=session.session_id,
                    ticket_id=request.ticket_id,
                    requested_by=request.requested_by,
                    request_reason=request.reason or None,
                    reason=refusal.reason,
                )
                return
            await self._shell(session)
        except Exception:
            logger.exception("terminal %s failed in the agent", session.session_id)
            await self._send(
                session,
                ShellClosed(session_id=session.session_id, error="the agent failed"),
            )
        finally:
            self._sessions.pop(session.session_id, None)
            self._ended.append(session.session_id)

    async def _check(self, session: _Session) -> Refusal | None:
        """None when the policy and the user allow the terminal; else the refusal."""
        policy = self._policy()
        refusal = plan_terminal(policy, is_root=self._root())
        if refusal is not None:
            return refusal
        request = session.request
        question = consent.ConsentRequest(
            requested_by=request.requested_by,
            ticket_id=request.ticket_id,
            reason=request.reason,
            argv=None,
            run_as=policy.run_as,
            timeout=policy.consent_timeout,
        )
        asking = asyncio.create_task(
            decide_consent(policy, question, self._consent_lock, self._policy_file)
        )
        hangup = asyncio.create_task(session.hangup.wait())
        try:
            await asyncio.wait({asking, hangup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hangup.cancel()
        if not asking.done():
            asking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asking
            return Refusal(f"ended before it started: {session.ending}")
        decision = asking.result()
        if isinstance(decision, Refusal):
            return decision
        session.consent = decision
        return None

    async def _shell(self, session: _Session) -> None:
        request = session.request
        policy = self._policy()
        run_as = policy.run_as
        shell = login_shell(run_as)
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        try:
            _set_window_size(slave, request.rows, request.cols)
            options = spawn_options(run_as)
            options["env"].update(TERM=TERM, SHELL=shell)
            for variable in ("COLUMNS", "LINES"):
                options["env"].pop(variable, None)
            if "user" in options:
                os.fchown(slave, options["user"], -1)
            process = await asyncio.to_thread(_spawn, shell, slave, user_home(run_as), options)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        session.master, session.process = master, process
        opened = loop.time()
        logger.info(
            "terminal %s for ticket #%d from %s: shell pid %d, %dx%d",
            session.session_id,
            request.ticket_id,
            request.requested_by,
            process.pid,
            request.cols,
            request.rows,
        )
        await session.recorder.start(
            request.cols,
            request.rows,
            {
                "env": {"SHELL": shell, "TERM": TERM},
                "title": f"ticket #{request.ticket_id}: terminal for {request.requested_by}",
            },
        )
        await self._audit_safely(
            "shell_opened",
            session_id=session.session_id,
            ticket_id=request.ticket_id,
            requested_by=request.requested_by,
            request_reason=request.reason or None,
            consent=session.consent,
            shell=shell,
            run_as=run_as,
            transcript=str(session.recorder.path),
        )
        await self._send(
            session, ShellStarted(session_id=session.session_id, consent=session.consent)
        )
        if session.pending:
            early, session.pending = bytes(session.pending), bytearray()
            session.recorder.record("i", early)
            self._write(session, early)
        try:
            await self._pump(session)
        finally:
            loop.remove_writer(master)
            exit_code = await self._reap(session)
            os.close(master)
            session.master = -1
        duration = loop.time() - opened
        logger.info(
            "terminal %s ended with exit code %s after %.1f s",
            session.session_id,
            exit_code,
            duration,
        )
        await self._send(session, ShellClosed(session_id=session.session_id, exit_code=exit_code))
        await session.recorder.close()
        await self._audit_safely(
            "shell_closed",
            session_id=session.session_id,
            ticket_id=request.ticket_id,
            requested_by=request.requested_by,
            exit_code=exit_code,
            duration=round(duration, 3),
            bytes_in=session.bytes_in,
            bytes_out=session.bytes_out,
            reason=session.ending,
        )

    async def _pump(self, session: _Session) -> None:
        """Send the PTY's output until the shell closes it or the session is hung up.

        The output ends when every process has closed the PTY (EIO), or when the
        shell has exited and nothing more comes (a background job may keep the PTY
        open; it is not waited for).
        """
        loop = asyncio.get_running_loop()
        hangup: asyncio.Task[Any] = asyncio.create_task(session.hangup.wait())
        exited = asyncio.create_task(self._exited(session))
        try:
            while True:
                readable: asyncio.Future[None] = loop.create_future()
                loop.add_reader(session.master, _resolve, readable)
                try:
                    timeout = _AFTER_EXIT if exited.done() else None
                    await asyncio.wait(
                        {readable, hangup, exited},
                        timeout=timeout,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    loop.remove_reader(session.master)
                if hangup.done() and not readable.done():
                    await self._hang_up(session)
                    hangup = asyncio.create_task(asyncio.sleep(86400))
                    continue
                if not readable.done():
                    if exited.done() and timeout is not None:
                        return  # the shell is gone and its output has gone quiet
                    continue
                try:
                    data = os.read(session.master, _READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:  # every slave fd closed: the shell is gone
                        return
                    raise
                if not data:
                    return
                session.bytes_out += len(data)
                session.recorder.record("o", data)
                sent = await self._send(
                    session, ShellData(session_id=session.session_id, seq=session.seq, data=data)
                )
                session.seq += 1
                if not sent and session.ending is None:
                    self._end(session, "the connection to the console was lost")
        finally:
            hangup.cancel()
            exited.cancel()

    @staticmethod
    async def _exited(session: _Session) -> None:
        """Return once the shell process has exited (polled: no thread per session)."""
        assert session.process is not None
        while session.process.poll() is None:
            await asyncio.sleep(_POLL)

    async def _hang_up(self, session: _Session) -> None:
        """SIGHUP to the shell's group now; SIGKILL later if it is still there."""
        process = session.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGHUP)
        except (ProcessLookupError, PermissionError):
            return

        async def kill_later() -> None:
            await asyncio.sleep(self._hangup_grace)
            if process.poll() is None:
                logger.info("terminal %s ignored SIGHUP; killing it", session.session_id)
                await end_tree(process.pid, 0.0, first=signal.SIGKILL)

        task = asyncio.create_task(kill_later())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _reap(self, session: _Session) -> int | None:
        """The shell's exit code; its group is ended if it does not exit soon."""
        process = session.process
        if process is None:
            return None
        try:
            await asyncio.wait_for(self._exited(session), self._hangup_grace)
        except TimeoutError:
            await end_tree(process.pid, self._hangup_grace, first=signal.SIGHUP)
            await self._exited(session)
        return process.returncode

    def _write(self, session: _Session, data: bytes) -> None:
        """Write to the PTY without blocking; what it cannot take now waits."""
        if session.pending:
            if len(session.pending) + len(data) > _MAX_PENDING_INPUT:
                logger.warning(
                    "terminal %s: input dropped, the shell is not reading", session.session_id
                )
                return
            session.pending += data
            return
        try:
            written = os.write(session.master, data)
        except BlockingIOError:
            written = 0
        except OSError:
            return  # the shell is gone; the reader sees it
        if written < len(data):
            session.pending += data[written:]
            asyncio.get_running_loop().add_writer(session.master, self._drain, session)

    def _drain(self, session: _Session) -> None:
        loop = asyncio.get_running_loop()
        try:
            written = os.write(session.master, session.pending)
        except BlockingIOError:
            return
        except OSError:
            session.pending.clear()
            loop.remove_writer(session.master)
            return
        del session.pending[:written]
        if not session.pending:
            loop.remove_writer(session.master)

    async def _audit_safely(self, event: str, **fields: Any) -> None:
        try:
            await self._audit.append(event, **fields)
        except DesksideError as exc:
            logger.error("the terminal event is not in the audit log: %s", exc)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# Hang-up follow-ups still running.
_background: set[asyncio.Task[None]] = set()
