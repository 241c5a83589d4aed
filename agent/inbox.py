"""Help requests handed by users to a system-wide agent daemon.

A daemon installed for the whole machine runs as its own account and keeps its
identity key to itself, so a user's ``deskside-agent help`` cannot open a channel
of its own. Instead it drops the request into the daemon's *inbox*, a directory
that everyone may write to but nobody else may list::

    /var/spool/deskside-agent   mode 3733 (sticky, setgid), owned by the daemon's account
        <request_id>.msgpack    mode 0640, owned by the user, group of the daemon

Theory of operation:

* The user's command writes the MessagePack ``HelpRequest`` (with a diagnostics
  snapshot taken in the user's own session) to a dot-file and renames it, so the
  daemon never reads half a file. The setgid bit gives it the daemon's group, so
  it need not be readable by other users.
* The daemon looks into the inbox every few seconds (``Inbox.collect``), checks
  each file (regular, not linked elsewhere, within the size limit, a valid
  ``HelpRequest`` named after its id), sets the requester to the file owner's
  login name (a user cannot file in another's name), moves it into its own spool
  and deletes the inbox file. The spool does the rest, as for its own requests.
  A bad file is deleted with a warning.
* A user may hand over at most ``PER_USER_PER_HOUR`` requests an hour; more are
  deleted with a warning, so one account cannot flood the help desk.

The user learns that the request was handed over, not the ticket number.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import msgspec

from deskside.protocol import codec
from deskside.protocol.errors import ConfigError, DesksideError
from deskside.protocol.messages import HelpRequest

from .spool import SUFFIX, Spool, valid_request_id

__all__ = ["INBOX_ENV", "Inbox", "hand_over", "system_inbox"]

logger = logging.getLogger(__name__)

INBOX_ENV: Final = "DESKSIDE_AGENT_INBOX"
_DEFAULT: Final = Path("/var/spool/deskside-agent")
# Files at most this long; a request with a full snapshot is far smaller.
_MAX_FILE: Final = codec.DEFAULT_MAX_MESSAGE_SIZE
# Requests one user may hand over in an hour.
PER_USER_PER_HOUR: Final = 10


def system_inbox(environ: Mapping[str, str] | None = None) -> Path | None:
    """The inbox of a system-wide daemon here (``DESKSIDE_AGENT_INBOX`` overrides).

    None on Windows, where the system service takes no help requests from users.
    """
    env = os.environ if environ is None else environ
    value = env.get(INBOX_ENV, "")
    if value:
        return Path(value)
    return None if sys.platform == "win32" else _DEFAULT


def hand_over(inbox: Path, request: HelpRequest) -> Path:
    """Drop ``request`` into the daemon's inbox; the file's path.

    Raises ``ConfigError`` when the inbox cannot be written.
    """
    if not valid_request_id(request.request_id):
        raise ConfigError(f"request id {request.request_id!r} cannot name a file")
    target = inbox / f"{request.request_id}{SUFFIX}"
    try:
        fd, temp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=inbox)
    except OSError as exc:
        raise ConfigError(f"cannot write to {inbox}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(codec.encode(request))
        os.chmod(temp, 0o640)
        os.rename(temp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ConfigError(f"cannot write to {inbox}: {exc.strerror or exc}") from exc
    return target


def _owner_name(uid: int) -> str:
    """The login name of ``uid`` (the owner of an inbox file)."""
    if sys.platform == "win32":
        return f"uid {uid}"
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


class Inbox:
    """The daemon's side of the inbox: moves valid requests into its spool."""

    def __init__(self, directory: Path, spool: Spool, *, per_hour: int = PER_USER_PER_HOUR) -> None:
        # The inbox directory.
        self.directory = directory
        # Where accepted requests go.
        self.spool = spool
        self._per_hour = per_hour
        # Requests taken in the last hour, by the owner's login name (monotonic times).
        self._taken: dict[str, deque[float]] = {}

    def _allowed(self, requester: str, now: float) -> bool:
        """Whether ``requester`` may hand over one more request now (and count it)."""
        taken = self._taken.setdefault(requester, deque())
        while taken and now - taken[0] > 3600.0:
            taken.popleft()
        if len(taken) >= self._per_hour:
            return False
        taken.append(now)
        return True

    def collect(self) -> int:
        """Move every complete request file into the spool; how many were moved.

        Blocking file I/O: call it with ``asyncio.to_thread``.
        """
        try:
            names = sorted(e.name for e in os.scandir(self.directory))
        except OSError:
            return 0
        moved = 0
        for name in names:
            if name.startswith("."):
                continue  # being written
            path = self.directory / name
            try:
                request = self._read(path)
            except (OSError, DesksideError, ValueError) as exc:
                logger.warning("dropped the inbox file %s: %s", name, exc)
                request = None
            if request is not None and not self._allowed(request.requester, time.monotonic()):
                logger.warning(
                    "dropped help request %s: %s handed over %d in the last hour already",
                    request.request_id,
                    request.requester,
                    self._per_hour,
                )
                request = None
            if request is not None:
                try:
                    self.spool.add(request)
                except DesksideError as exc:
                    logger.warning("cannot spool help request %s: %s", request.request_id, exc)
                    continue  # left in the inbox, tried again later
                moved += 1
                logger.info("took help request %s from %s", request.request_id, request.requester)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return moved

    def _read(self, path: Path) -> HelpRequest:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ValueError("not a regular file")
            if info.st_nlink != 1:
                raise ValueError("linked from elsewhere")
            if info.st_size > _MAX_FILE:
                raise ValueError(f"{info.st_size} bytes, over the limit")
            data = file.read(_MAX_FILE + 1)
        message = codec.decode(data)
        if not isinstance(message, HelpRequest):
            raise ValueError(f"holds a {type(message).__name__}, not a HelpRequest")
        if path.name != f"{message.request_id}{SUFFIX}" or not valid_request_id(message.request_id):
            raise ValueError("not named after its request id")
        return msgspec.structs.replace(message, requester=_owner_name(info.st_uid))
