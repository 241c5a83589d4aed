"""status.json and tickets.json."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from deskside.agent.state import (
    DaemonStatus,
    StatusRecorder,
    daemon_alive,
    read_status,
    read_tickets,
    record_ticket,
)


def this_process() -> DaemonStatus:
    return DaemonStatus(pid=os.getpid(), started_at=psutil.Process().create_time())


async def test_recorder_writes_every_change_in_order(tmp_path: Path) -> None:
    path = tmp_path / "state" / "status.json"
    recorder = StatusRecorder(path, this_process())
    await asyncio.gather(*(recorder.update(last_contact=float(i)) for i in range(50)))
    status = read_status(path)
    assert status is not None
    assert status.last_contact == 49.0
    # A cancelled caller does not stop its write, and later writes come after it.
    task = asyncio.create_task(recorder.update(connected=True))
    await asyncio.sleep(0)
    task.cancel()
    await recorder.update(last_error="later")
    status = read_status(path)
    assert status is not None
    assert status.connected
    assert status.last_error == "later"


def test_daemon_alive(tmp_path: Path) -> None:
    status = this_process()
    assert daemon_alive(status)
    assert not daemon_alive(DaemonStatus(pid=os.getpid(), started_at=status.started_at - 100))
    assert not daemon_alive(
        DaemonStatus(pid=status.pid, started_at=status.started_at, running=False)
    )
    assert not daemon_alive(DaemonStatus(pid=2**22 + 12345, started_at=time.time()))


def test_unreadable_status(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    assert read_status(path) is None
    path.write_text("{not json")
    assert read_status(path) is None


def test_tickets(tmp_path: Path) -> None:
    path = tmp_path / "tickets.json"
    assert read_tickets(path) == []
    record_ticket(path, "a", 1)
    record_ticket(path, "b", 2)
    record_ticket(path, "a", 1)
    assert [(t.request_id, t.ticket_id) for t in read_tickets(path)] == [("b", 2), ("a", 1)]


async def test_a_status_file_that_cannot_be_written_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    path = blocker / "status.json"
    recorder = StatusRecorder(path, this_process())
    with caplog.at_level(logging.WARNING, logger="deskside.agent.state"):
        for i in range(3):
            await recorder.update(last_contact=float(i))  # never raises
    said = [r.getMessage() for r in caplog.records if "status file" in r.getMessage()]
    assert len(said) == 1
    assert str(blocker) in said[0]
    # Once it can be written again, the next failure is said again.
    blocker.unlink()
    await recorder.update(last_contact=3.0)
    assert read_status(path) is not None
    caplog.clear()
    path.unlink()
    path.parent.rmdir()
    blocker.write_text("again")
    with caplog.at_level(logging.WARNING, logger="deskside.agent.state"):
        await recorder.update(last_contact=4.0)
    assert [r for r in caplog.records if "status file" in r.getMessage()]
