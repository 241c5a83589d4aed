"""The spool of help requests."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from deskside.agent.help_request import build_help_request
from deskside.agent.spool import Spool, valid_request_id
from deskside.protocol import codec
from deskside.protocol import messages as m


def test_add_pending_remove(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.pending() == []
    assert spool.count() == 0
    first = build_help_request("first")
    second = m.HelpRequest(
        request_id="b" * 32, description="second", created_at=first.created_at + 1
    )
    spool.add(second)
    spool.add(first)
    assert spool.count() == 2
    assert spool.pending() == [first, second]  # oldest first
    assert spool.pending(skip={first.request_id}) == [second]
    assert spool.contains(first.request_id)
    assert spool.remove(first.request_id)
    assert not spool.contains(first.request_id)
    assert spool.contains(second.request_id)
    assert spool.remove(first.request_id) is False
    assert spool.remove("../../etc/passwd") is False
    assert not spool.contains("../../etc/passwd")
    assert spool.pending() == [second]
    assert spool.count() == 1


@pytest.mark.parametrize(
    ("request_id", "valid"),
    [("a", True), ("A-z_09", True), ("x" * 64, True), ("", False), ("x" * 65, False)]
    + [(name, False) for name in ("a:b", "a.b", "../a", "a/b", "a b", "a\n")],
)
def test_request_ids_that_can_name_a_file(request_id: str, valid: bool) -> None:
    assert valid_request_id(request_id) is valid
    spool = Spool(Path("/nonexistent/spool"))
    if valid:
        assert spool.path_of(request_id).name == f"{request_id}.msgpack"
    else:
        with pytest.raises(ValueError, match="cannot name a spool file"):
            spool.path_of(request_id)
        assert spool.contains(request_id) is False
        assert spool.remove(request_id) is False


def test_pending_is_oldest_first_whatever_the_file_names(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    requests = [
        m.HelpRequest(request_id="z", description="first", created_at=1.0),
        m.HelpRequest(request_id="b", description="tied, b", created_at=2.0),
        m.HelpRequest(request_id="a", description="tied, a", created_at=2.0),
        m.HelpRequest(request_id="m", description="last", created_at=3.0),
    ]
    for request in requests:
        spool.add(request)
    assert [r.request_id for r in spool.pending()] == ["z", "a", "b", "m"]


def test_temp_files_are_not_requests(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (tmp_path / ".abc.msgpack.123.tmp").write_bytes(b"partial")
    assert spool.count() == 0
    assert spool.pending() == []
    assert (tmp_path / ".abc.msgpack.123.tmp").exists()


def test_links_and_directories_are_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool")
    request = build_help_request("elsewhere")
    outside = tmp_path / "outside.msgpack"
    outside.write_bytes(codec.encode(request))
    spool.directory.mkdir()
    (spool.directory / f"{request.request_id}.msgpack").symlink_to(outside)
    (spool.directory / "dir.msgpack").mkdir()
    with caplog.at_level(logging.WARNING):
        assert spool.pending() == []
    assert spool.count() == 0
    assert not caplog.text  # neither read nor set aside
    assert not spool.bad_directory.exists()


def test_only_request_files_are_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.add(build_help_request("one"))
    (tmp_path / "notes.txt").write_bytes(b"hello")
    assert spool.count() == 1


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("abc.msgpack", b"\xc1garbage", "undecodable"),
        ("abc.msgpack", codec.encode(m.Ack(request_id="abc")), "holds a Ack"),
        (
            "abc.msgpack",
            codec.encode(m.HelpRequest(request_id="xyz", description="d", created_at=1.0)),
            "holds request xyz",
        ),
        ("notes.txt", b"hello", "not named"),
        ("a b.msgpack", codec.encode(build_help_request("misnamed")), "not named"),
    ],
)
def test_bad_files_are_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, data: bytes, why: str
) -> None:
    spool = Spool(tmp_path / "spool")
    good = build_help_request("fine")
    spool.add(good)
    (spool.directory / name).write_bytes(data)
    with caplog.at_level(logging.WARNING):
        assert spool.pending() == [good]
    assert why in caplog.text
    assert (spool.bad_directory / name).read_bytes() == data
    assert not (spool.directory / name).exists()
    # A second bad file with the same name does not overwrite the first.
    (spool.directory / name).write_bytes(b"again")
    spool.pending()
    assert (spool.bad_directory / f"{name}.1").read_bytes() == b"again"
    (spool.directory / name).write_bytes(b"and again")
    spool.pending()
    assert (spool.bad_directory / f"{name}.2").read_bytes() == b"and again"


def test_requests_round_trip_with_snapshot(tmp_path: Path) -> None:
    snapshot = m.Snapshot(taken_at=time.time(), os=m.OsInfo(family=m.OsFamily.LINUX, name="Debian"))
    request = build_help_request(
        "with snapshot", impact=m.Impact.HIGH, urgency=m.Urgency.LOW, snapshot=snapshot
    )
    spool = Spool(tmp_path)
    path = spool.add(request)
    assert path.name == f"{request.request_id}.msgpack"
    assert codec.decode(path.read_bytes()) == request
    assert spool.pending() == [request]


def spool_with_a_bad_file(tmp_path: Path) -> tuple[Spool, m.HelpRequest]:
    """A spool holding one good request and ``abc.msgpack``, which is not one."""
    spool = Spool(tmp_path / "spool")
    good = build_help_request("fine")
    spool.add(good)
    (spool.directory / "abc.msgpack").write_bytes(b"\xc1garbage")
    return spool, good


def test_a_file_that_cannot_be_set_aside_warns_once_and_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool, good = spool_with_a_bad_file(tmp_path)
    spool.bad_directory.write_bytes(b"")  # a file where the bad/ directory should be
    with caplog.at_level(logging.WARNING):
        assert spool.pending() == [good]
    assert "cannot set aside spool file" in caplog.text
    assert (spool.directory / "abc.msgpack").exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert spool.pending() == [good]  # skipped, not tried (and warned about) again
    assert not caplog.text
    assert spool.count() == 2


def test_a_failed_move_warns_once_and_leaves_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, good = spool_with_a_bad_file(tmp_path)
    moves: list[str] = []

    def refuse(source: object, target: object) -> None:
        moves.append(str(source))
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with caplog.at_level(logging.WARNING):
        assert spool.pending() == [good]
        assert spool.pending() == [good]
    assert moves == [str(spool.directory / "abc.msgpack")]  # tried once
    assert caplog.text.count("cannot set aside spool file") == 1
    assert "Permission denied" in caplog.text
    assert (spool.directory / "abc.msgpack").exists()


def test_setting_aside_a_file_already_gone_is_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool")
    with caplog.at_level(logging.WARNING):
        spool.set_aside("gone.msgpack", "acknowledged meanwhile")
    assert not caplog.text
    assert list(spool.bad_directory.iterdir()) == []
    # Not remembered as stuck: a new file of that name is looked at.
    (spool.directory / "gone.msgpack").write_bytes(b"\xc1")
    spool.pending()
    assert (spool.bad_directory / "gone.msgpack").exists()


def test_a_file_over_the_message_size_limit_is_set_aside_unread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.directory.mkdir()
    for name, size in (("big.msgpack", codec.DEFAULT_MAX_MESSAGE_SIZE + 1), ("fits.msgpack", 0)):
        with (spool.directory / name).open("wb") as file:
            file.truncate(size or codec.DEFAULT_MAX_MESSAGE_SIZE)  # sparse: no real bytes
    with caplog.at_level(logging.WARNING):
        assert spool.pending() == []
    assert f"big.msgpack to {spool.bad_directory / 'big.msgpack'}" in caplog.text
    assert f"{codec.DEFAULT_MAX_MESSAGE_SIZE + 1} bytes, over the message size" in caplog.text
    # Exactly at the limit, it is read (and found to be no request).
    assert "fits.msgpack: 16777216 bytes" not in caplog.text
    assert (spool.bad_directory / "fits.msgpack").exists()


@pytest.mark.parametrize(
    ("error", "warning"),
    [(PermissionError(13, "Permission denied"), "cannot read"), (FileNotFoundError(), "")],
)
def test_a_file_that_cannot_be_read_is_left_alone(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    error: OSError,
    warning: str,
) -> None:
    spool = Spool(tmp_path / "spool")
    request = build_help_request("unreadable for now")
    spool.add(request)

    def fail(path: Path) -> bytes:
        raise error

    monkeypatch.setattr(Path, "read_bytes", fail)
    with caplog.at_level(logging.WARNING):
        assert spool.pending() == []
    assert (warning in caplog.text) if warning else not caplog.text
    assert spool.contains(request.request_id)  # not set aside: it may be readable later
    assert not spool.bad_directory.exists()
    monkeypatch.undo()
    assert spool.pending() == [request]
