"""Files the agent writes: atomically, privately, and with errors it can report.

Every file the agent keeps (config, identity key, status, spooled help requests) is
replaced in one step: the new content goes to a temporary file in the same
directory, is flushed to disk, and is renamed over the old one. A crash or a power
cut leaves either the old file or the new one, never half of each, and a reader in
another process never sees a partial file. The one exception is ``create_durable``,
for a file whose mere existence is what counts (a command's record: its id is
known, so it never runs again).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from deskside.protocol.errors import ConfigError

__all__ = ["create_durable", "ensure_private_dir", "write_atomic"]


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if needed; the directory itself is 0700.

    Raises ``ConfigError`` naming the directory when it cannot be created.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if sys.platform != "win32":
            path.chmod(0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create the directory {path}: {exc.strerror or exc}") from exc


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` in one step (temp file, fsync, rename).

    The file gets permissions ``mode`` (0600 unless told otherwise). With
    ``durable=False`` nothing is synced: readers still see the old file or the new
    one, never a mix, but after a power loss either may be there. Raises
    ``ConfigError`` naming the file when it cannot be written.
    """
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            if durable:
                os.fsync(file.fileno())
        if sys.platform != "win32":
            os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    if durable:
        _fsync_directory(path.parent)


def create_durable(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Create ``path`` with ``data``, synced with its directory entry.

    ``FileExistsError`` if it exists (checked and created in one step),
    ``FileNotFoundError`` if its directory does not; ``ConfigError`` naming the file
    for other failures. No temporary file: there is nothing to replace. A crash
    before the sync can leave the file empty or short, so a reader must take such
    a file as there all the same.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except (FileExistsError, FileNotFoundError):
        raise
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX only; best effort)."""
    if sys.platform == "win32":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
