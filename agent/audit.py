"""The agent's own audit log: what ran here, what was refused, and who asked.

The console records every command on its ticket, but a breached or buggy console
could lie; this log is the machine owner's independent record. Two files in the
state directory, both 0600 (readable by the agent's user, the machine's owner)::

    audit.log    JSON lines, append-only, one entry per event
    audit.head   {"seq": n, "hash": "..."}: the last entry, rewritten after each append

Each entry is a JSON object with ``seq`` (1, 2, ...), ``at`` (ISO 8601, UTC),
``event`` and the event's fields, ``prev`` (the previous entry's hash; 64 zeros for
the first) and ``hash``::

    hash = sha256(bytes.fromhex(prev) + canonical JSON of the entry without "hash")

where the canonical JSON has sorted keys, no spaces and UTF-8 text. Editing an
entry breaks its hash, deleting one breaks the numbering, and cutting the tail
leaves the log shorter than ``audit.head`` says: ``verify_log`` names the first bad
entry. (Someone able to rewrite both files and recompute every hash can forge a
consistent log; the chain catches edits, not a determined local administrator,
and the console's ticket timeline remains a second, independent record.)

Events, each with ``ticket_id``, ``requested_by`` and ``request_reason`` (what the
technician gave as the reason, usually the ticket's title):

* ``ran``: a command ended: ``command_id``, ``argv`` (as executed: a script's or
  the shell's included), ``consent`` ("user", "notify", "policy"), ``exit_code``
  (negative: killed by that signal), ``duration``, and ``timed_out``,
  ``cancelled``, ``output_truncated``, ``error``, ``run_as``, ``cwd`` when they
  apply;
* ``refused``: by the policy or by the user, ``reason`` saying which and why
  (``what = "terminal"`` for a terminal);
* ``cancelled``: cancelled (or the agent stopped) while the user was being asked;
* ``interrupted``: found on restart, the agent having died while the command ran;
* ``shell_opened`` / ``shell_closed``: an interactive terminal (``session_id``,
  ``consent``, ``shell``, ``transcript``; then ``exit_code``, ``duration``,
  ``bytes_in``, ``bytes_out`` and why it ended).

Writes are serialized by one writer task; an entry is on disk (fsync) before
``append`` returns. Never logged: command output, terminal keystrokes.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from deskside.protocol.errors import ConfigError

from .files import ensure_private_dir, write_atomic

__all__ = [
    "GENESIS",
    "AuditLog",
    "Verification",
    "entry_hash",
    "format_entry",
    "read_entries",
    "verify_log",
]

logger = logging.getLogger(__name__)

GENESIS: Final = "0" * 64
# Longest line read back; an entry is small unless an argv is huge.
_MAX_LINE: Final = 64 << 20


def canonical(entry: dict[str, Any]) -> bytes:
    """The canonical JSON of an entry: sorted keys, no spaces, UTF-8."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    """The hash an entry must carry: sha256(prev bytes + canonical JSON without "hash")."""
    body = {key: value for key, value in entry.items() if key != "hash"}
    prev = bytes.fromhex(str(entry.get("prev", "")))
    return hashlib.sha256(prev + canonical(body)).hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class _Head:
    seq: int
    hash: str


def _read_head(path: Path) -> _Head | None:
    try:
        data = json.loads(path.read_bytes()[:4096])
        seq, digest = data["seq"], data["hash"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is damaged: {exc}") from exc
    if not isinstance(seq, int) or not isinstance(digest, str) or len(digest) != 64:
        raise ConfigError(f"{path} is damaged")
    return _Head(seq, digest)


def _last_line(path: Path) -> bytes | None:
    """The last complete line of a file (reading backwards), or None if it is empty."""
    try:
        with path.open("rb") as file:
            end = file.seek(0, os.SEEK_END)
            block = 65536
            data = b""
            position = end
            while position > 0:
                step = min(block, position)
                position -= step
                file.seek(position)
                data = file.read(step) + data
                stripped = data.rstrip(b"\n")
                if b"\n" in stripped or position == 0:
                    break
                if len(data) > _MAX_LINE:
                    return None
    except FileNotFoundError:
        return None
    stripped = data.rstrip(b"\n")
    if not stripped:
        return None
    return stripped.rsplit(b"\n", 1)[-1]


class AuditLog:
    """Appends hash-chained entries to ``audit.log``, one at a time, and keeps the head."""

    def __init__(self, path: Path, head_path: Path) -> None:
        self.path = path
        self.head_path = head_path
        # The last entry written (seq 0 and the genesis hash before any); None: not loaded.
        self._head: _Head | None = None
        # Entries waiting for the writer task, each with the future its append awaits.
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[int]]] = asyncio.Queue()
        # The one task that writes, so entries are never interleaved.
        self._writer: asyncio.Task[None] | None = None

    async def append(self, event: str, **fields: Any) -> int:
        """Write one entry (fields with None values are left out); its seq, once on disk.

        The write goes on if the caller is cancelled. Raises ``ConfigError`` when the
        log cannot be written.
        """
        entry = {"event": event, **{k: v for k, v in fields.items() if v is not None}}
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((entry, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="deskside-audit-writer")
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Wait for the entries already queued to be written."""
        if self._writer is not None:
            try:
                await asyncio.shield(self._writer)
            except Exception:
                # _write_all hands each entry's error to its append(), so this is a
                # bug; closing must still finish.
                logger.exception("the audit log writer of %s failed", self.path)

    async def _write_all(self) -> None:
        while not self._queue.empty():
            entry, future = self._queue.get_nowait()
            try:
                seq = await asyncio.to_thread(self._write, entry)
            except Exception as exc:
                logger.error("cannot write the audit log %s: %s", self.path, exc)
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(seq)

    def _load_head(self) -> _Head:
        """Where the chain goes on: the head file, or the log's last entry after a crash."""
        head = _read_head(self.head_path) or _Head(0, GENESIS)
        line = _last_line(self.path)
        if line is None:
            return head
        try:
            last = json.loads(line)
            seq, digest, prev = last["seq"], last["hash"], last["prev"]
        except (ValueError, KeyError, TypeError):
            logger.warning(
                "the last line of %s is damaged; 'audit verify' will say more", self.path
            )
            return head
        if seq == head.seq + 1 and prev == head.hash and entry_hash(last) == digest:
            # Written, and the agent stopped before the head was: adopt it.
            return _Head(seq, digest)
        if (seq, digest) != (head.seq, head.hash):
            logger.warning(
                "%s does not end where %s says; run 'deskside-agent audit verify'",
                self.path,
                self.head_path,
            )
        return head

    def _write(self, fields: dict[str, Any]) -> int:
        if self._head is None:
            ensure_private_dir(self.path.parent)
            self._head = self._load_head()
        head = self._head
        entry: dict[str, Any] = {"seq": head.seq + 1, "at": _now(), **fields, "prev": head.hash}
        entry["hash"] = entry_hash(entry)
        line = canonical(entry) + b"\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ConfigError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._head = _Head(entry["seq"], entry["hash"])
        write_atomic(
            self.head_path,
            json.dumps({"seq": entry["seq"], "hash": entry["hash"]}).encode() + b"\n",
        )
        return int(entry["seq"])


def read_entries(path: Path) -> Iterator[dict[str, Any] | None]:
    """The entries of a log, in file order; None for a line that is not a JSON object."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return
    with file:
        for raw in file:
            line = raw.rstrip(b"\n")
            if not line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                yield None
                continue
            yield entry if isinstance(entry, dict) else None


@dataclass(frozen=True)
class Verification:
    """The outcome of ``verify_log``."""

    entries: int
    """How many entries were read."""

    problem: str | None
    """The first thing wrong ("entry 7 was changed"), or None if the chain is intact."""

    @property
    def ok(self) -> bool:
        """True if the chain and the head are intact."""
        return self.problem is None

    def __str__(self) -> str:
        if self.problem is None:
            noun = "entry" if self.entries == 1 else "entries"
            return f"{self.entries} {noun}, chain intact"
        return self.problem


def verify_log(path: Path, head_path: Path) -> Verification:
    """Check every entry's number, link and hash, then the head; the first problem.

    Raises ``ConfigError`` when the files cannot be read.
    """
    try:
        head = _read_head(head_path)
    except ConfigError as exc:
        return Verification(0, str(exc))
    expected = 1
    prev = GENESIS
    count = 0
    try:
        for entry in read_entries(path):
            count += 1
            if entry is None:
                return Verification(count, f"entry {expected} is damaged (not a JSON object)")
            seq = entry.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                return Verification(count, f"entry {expected} was changed (no valid seq)")
            if seq > expected:
                missing = (
                    f"entry {expected}" if seq == expected + 1 else f"entries {expected}-{seq - 1}"
                )
                verb = "is" if seq == expected + 1 else "are"
                return Verification(count, f"{missing} {verb} missing")
            if seq < expected:
                return Verification(count, f"entry {seq} appears again after entry {expected - 1}")
            digest = entry.get("hash")
            try:
                computed = entry_hash(entry)
            except (ValueError, TypeError):
                computed = ""
            if digest != computed:
                return Verification(count, f"entry {seq} was changed")
            if entry.get("prev") != prev:
                # The entry is self-consistent, so the one before it was rewritten.
                return Verification(count, f"entry {seq - 1} was changed")
            prev = str(digest)
            expected += 1
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    last = expected - 1
    if head is None:
        if last > 0:
            return Verification(count, f"{head_path.name} is missing (the log has {last} entries)")
        return Verification(0, None)
    if head.seq > last:
        return Verification(
            count, f"the log ends before entry {last + 1} (the head says {head.seq})"
        )
    if head.seq < last:
        return Verification(
            count, f"the log goes on after entry {head.seq}, where the head says it ends"
        )
    if head.hash != prev:
        return Verification(count, f"entry {last} was changed (it does not match the head)")
    return Verification(count, None)


def format_entry(entry: dict[str, Any] | None) -> str:
    """One entry as a line for people."""
    if entry is None:
        return "(damaged line)"
    import shlex

    seq = entry.get("seq", "?")
    at = str(entry.get("at", ""))
    event = str(entry.get("event", "?"))
    parts = [f"#{seq}", at, event]
    if "ticket_id" in entry:
        parts.append(f"ticket #{entry['ticket_id']}")
    if "requested_by" in entry:
        parts.append(f"by {entry['requested_by']}")
    argv = entry.get("argv")
    if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
        parts.append(f"$ {shlex.join(argv)}")
    details = []
    for key in ("consent", "exit_code", "duration", "reason", "error", "request_reason"):
        if key in entry:
            value = entry[key]
            if key == "duration" and isinstance(value, int | float):
                value = f"{value:.2f} s"
            details.append(f"{key.replace('_', ' ')}: {value}")
    for flag in ("timed_out", "cancelled", "output_truncated"):
        if entry.get(flag):
            details.append(flag.replace("_", " "))
    if "session_id" in entry:
        details.append(f"session {entry['session_id']}")
    if "command_id" in entry:
        details.append(f"command {entry['command_id']}")
    line = "  ".join(parts)
    return f"{line}  ({'; '.join(details)})" if details else line
