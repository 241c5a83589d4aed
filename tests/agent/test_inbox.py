"""Help requests handed to a system-wide daemon through its inbox."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from click.testing import CliRunner

from deskside.agent.cli import main
from deskside.agent.help_request import build_help_request
from deskside.agent.inbox import INBOX_ENV, Inbox, hand_over, system_inbox
from deskside.agent.spool import Spool


def test_default_inbox_and_override() -> None:
    assert system_inbox({}) == Path("/var/spool/deskside-agent")
    assert system_inbox({INBOX_ENV: "/tmp/x"}) == Path("/tmp/x")


def test_requests_move_to_the_spool_in_the_owners_name(tmp_path: Path) -> None:
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    request = build_help_request("printer is on fire", requester="someone else")
    path = hand_over(inbox_dir, request)
    assert path.stat().st_mode & 0o777 == 0o640
    spool = Spool(tmp_path / "spool")
    assert Inbox(inbox_dir, spool).collect() == 1
    assert list(inbox_dir.iterdir()) == []
    (taken,) = spool.pending()
    assert taken.request_id == request.request_id
    assert taken.description == "printer is on fire"
    assert taken.requester == getpass.getuser()  # the file's owner, not what it claimed


def test_one_user_cannot_flood_the_help_desk(tmp_path: Path) -> None:
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    spool = Spool(tmp_path / "spool")
    inbox = Inbox(inbox_dir, spool, per_hour=3)
    for i in range(5):
        hand_over(inbox_dir, build_help_request(f"request {i}"))
    assert inbox.collect() == 3
    assert list(inbox_dir.iterdir()) == []  # the rest are dropped, not left to pile up
    assert len(spool.pending()) == 3
    hand_over(inbox_dir, build_help_request("one more"))
    assert inbox.collect() == 0


def test_bad_files_are_dropped(tmp_path: Path) -> None:
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    good = build_help_request("ok")
    other = build_help_request("renamed")
    hand_over(inbox_dir, good)
    renamed = hand_over(inbox_dir, other)
    renamed.rename(inbox_dir / "0123.msgpack")  # not named after its id
    (inbox_dir / "garbage.msgpack").write_bytes(b"\xc1 not msgpack")
    secret = tmp_path / "secret"
    secret.write_bytes(b"key")
    (inbox_dir / "link.msgpack").symlink_to(secret)
    (inbox_dir / ".partial").write_bytes(b"being written")
    spool = Spool(tmp_path / "spool")
    assert Inbox(inbox_dir, spool).collect() == 1
    assert [r.request_id for r in spool.pending()] == [good.request_id]
    assert sorted(p.name for p in inbox_dir.iterdir()) == [".partial"]
    assert secret.read_bytes() == b"key"


def test_help_without_an_agent_of_ones_own_uses_the_inbox(tmp_path: Path) -> None:
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    result = CliRunner().invoke(
        main,
        [
            "--config-dir",
            str(tmp_path / "config"),
            "--state-dir",
            str(tmp_path / "state"),
            "help",
            "cannot print",
        ],
        env={INBOX_ENV: str(inbox_dir)},
    )
    assert result.exit_code == 0, result.output
    assert "handed to this machine's Deskside service" in result.output
    (handed,) = os.listdir(inbox_dir)
    assert handed.endswith(".msgpack")
    result = CliRunner().invoke(
        main,
        ["--config-dir", str(tmp_path / "config"), "--state-dir", str(tmp_path / "s"), "status"],
        env={INBOX_ENV: str(inbox_dir)},
    )
    assert result.exit_code == 3
    assert "A system-wide agent runs here" in result.output
    # Without an inbox it is still "not enrolled".
    result = CliRunner().invoke(
        main,
        ["--config-dir", str(tmp_path / "c2"), "--state-dir", str(tmp_path / "s2"), "help", "x"],
        env={INBOX_ENV: str(tmp_path / "missing")},
    )
    assert result.exit_code == 1
    assert "not enrolled" in result.output
