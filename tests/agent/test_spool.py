"""The spool of help requests."""

from __future__ import annotations

import logging
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
    assert not spool.remove(first.request_id)
    assert not spool.remove("../../etc/passwd")
    assert spool.pending() == [second]


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
        assert not spool.contains(request_id)
        assert not spool.remove(request_id)


def test_temp_files_are_not_requests(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (tmp_path / ".abc.msgpack.123.tmp").write_bytes(b"partial")
    assert spool.count() == 0
    assert spool.pending() == []
    assert (tmp_path / ".abc.msgpack.123.tmp").exists()


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
