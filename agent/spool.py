"""Help requests waiting on disk until the console acknowledges them.

One file per request in ``<state dir>/spool/``, named ``<request_id>.msgpack`` and
holding the MessagePack-encoded ``HelpRequest`` (``deskside.protocol.codec``),
written atomically. Theory of operation:

* ``deskside-agent help`` writes the request here *before* trying to send it, so
  nothing the user typed is lost if the console, the network or the machine fails.
* Whoever gets the console's ``Ack`` for a request (the ``help`` command itself or
  the daemon) deletes its file. Until then the daemon sends every spooled request
  after each (re)connect and whenever new files appear.
* A request may therefore reach the console more than once (sent, connection lost
  before the Ack, sent again); the console files one ticket per ``request_id``,
  which turns at-least-once sending into exactly-once filing.
* A file that cannot be read back as a ``HelpRequest`` is moved to ``spool/bad/``
  with a warning, so one damaged file never blocks the others or the daemon.

All methods do blocking file I/O: call them with ``asyncio.to_thread`` from async
code.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Final

from deskside.protocol import codec
from deskside.protocol.errors import DesksideError
from deskside.protocol.messages import HelpRequest

from .files import ensure_private_dir, write_atomic

__all__ = ["SUFFIX", "Spool", "valid_request_id"]

logger = logging.getLogger(__name__)

SUFFIX: Final = ".msgpack"
# Request ids that are safe as file names on every platform (no ':' for Windows).
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def valid_request_id(request_id: str) -> bool:
    """True if ``request_id`` can name a spool file."""
    return bool(_SAFE_ID.fullmatch(request_id))


class Spool:
    """The spool directory of help requests not yet acknowledged."""

    def __init__(self, directory: Path) -> None:
        # Where the request files are; created on first write.
        self.directory = directory
        # Bad files that could not be moved aside: skipped, so they warn only once.
        self._stuck: set[str] = set()

    @property
    def bad_directory(self) -> Path:
        """Where unreadable files are moved."""
        return self.directory / "bad"

    def path_of(self, request_id: str) -> Path:
        """The file of a request."""
        if not valid_request_id(request_id):
            raise ValueError(f"request id {request_id!r} cannot name a spool file")
        return self.directory / f"{request_id}{SUFFIX}"

    def add(self, request: HelpRequest) -> Path:
        """Write ``request`` to the spool atomically; its path."""
        ensure_private_dir(self.directory)
        path = self.path_of(request.request_id)
        write_atomic(path, codec.encode(request))
        return path

    def remove(self, request_id: str) -> bool:
        """Delete a request once acknowledged; False if it was not (or no longer) there."""
        if not valid_request_id(request_id):
            return False
        try:
            self.path_of(request_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def contains(self, request_id: str) -> bool:
        """True if the request is still waiting."""
        return valid_request_id(request_id) and self.path_of(request_id).is_file()

    def _names(self) -> list[str]:
        """Names of the visible regular files in the spool (temp files start with '.')."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        return sorted(
            entry.name
            for entry in entries
            if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False)
        )

    def count(self) -> int:
        """How many requests are waiting (without reading them)."""
        return sum(1 for name in self._names() if name.endswith(SUFFIX))

    def pending(self, skip: Collection[str] = ()) -> list[HelpRequest]:
        """The waiting requests, oldest first, except those named in ``skip``.

        Unreadable files are moved to ``spool/bad/`` with a warning.
        """
        requests: list[HelpRequest] = []
        for name in self._names():
            request_id = name.removesuffix(SUFFIX)
            if (name.endswith(SUFFIX) and request_id in skip) or name in self._stuck:
                continue
            request = self._read(name)
            if request is not None:
                requests.append(request)
        requests.sort(key=lambda r: (r.created_at, r.request_id))
        return requests

    def _read(self, name: str) -> HelpRequest | None:
        path = self.directory / name
        if not name.endswith(SUFFIX) or not valid_request_id(name.removesuffix(SUFFIX)):
            self.set_aside(name, "not named <request id>.msgpack")
            return None
        try:
            size = path.stat().st_size
            if size > codec.DEFAULT_MAX_MESSAGE_SIZE:
                self.set_aside(name, f"{size} bytes, over the message size limit")
                return None
            data = path.read_bytes()
        except FileNotFoundError:
            return None  # acknowledged and removed meanwhile
        except OSError as exc:
            logger.warning("cannot read spool file %s: %s", path, exc.strerror or exc)
            return None
        try:
            message = codec.decode(data)
        except DesksideError as exc:
            self.set_aside(name, str(exc))
            return None
        if not isinstance(message, HelpRequest):
            self.set_aside(name, f"holds a {type(message).__name__}, not a HelpRequest")
            return None
        if message.request_id != name.removesuffix(SUFFIX):
            self.set_aside(name, f"holds request {message.request_id}, not the one it is named")
            return None
        return message

    def set_aside(self, name: str, why: str) -> None:
        """Move a spool file to ``spool/bad/`` (never overwriting), with a warning."""
        source = self.directory / name
        try:
            ensure_private_dir(self.bad_directory)
        except DesksideError as exc:
            logger.warning("cannot set aside spool file %s (%s): %s", source, why, exc)
            self._stuck.add(name)
            return
        target = self.bad_directory / name
        counter = 1
        while target.exists():
            target = self.bad_directory / f"{name}.{counter}"
            counter += 1
        try:
            os.replace(source, target)
        except FileNotFoundError:
            return
        except OSError as exc:
            logger.warning("cannot set aside spool file %s (%s): %s", source, why, exc)
            self._stuck.add(name)
            return
        logger.warning("moved the unreadable spool file %s to %s: %s", name, target, why)
