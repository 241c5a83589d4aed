"""The agent's file helpers (deskside.agent.files), on real files."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from deskside.agent.files import create_durable, write_atomic


def test_create_durable_creates_once(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    create_durable(path, b'{"id": 1}')
    assert path.read_bytes() == b'{"id": 1}'
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        create_durable(path, b'{"id": 2}')  # the first one stays: it is what counts
    assert path.read_bytes() == b'{"id": 1}'


def test_create_durable_says_when_the_directory_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        create_durable(tmp_path / "gone" / "record.json", b"{}")
    assert not (tmp_path / "gone").exists()


def test_write_atomic_replaces_without_leaving_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_atomic(path, b"one")
    write_atomic(path, b"two", durable=False)
    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["status.json"]
