"""The agent's hash-chained audit log, and ``deskside-agent audit [verify]``."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from deskside.agent.audit import GENESIS, AuditLog, entry_hash, verify_log
from deskside.agent.cli import main
from deskside.agent.config import AgentPaths
from tests.agent.conftest import Agent


async def write_log(paths: AgentPaths, count: int) -> AuditLog:
    """An audit log with ``count`` entries, written concurrently (so serialized)."""
    log = AuditLog(paths.audit_file, paths.audit_head_file)
    seqs = await asyncio.gather(
        *(
            log.append(
                "ran",
                command_id=f"c{n}",
                ticket_id=n,
                requested_by="tech",
                argv=["echo", f"{n}", "ünïcode"],
                consent="user",
                exit_code=0,
                duration=0.5,
                error=None,
            )
            for n in range(count)
        )
    )
    assert sorted(seqs) == list(range(1, count + 1))
    return log


def verify(paths: AgentPaths) -> str:
    return str(verify_log(paths.audit_file, paths.audit_head_file))


def lines(paths: AgentPaths) -> list[str]:
    return paths.audit_file.read_text().splitlines(keepends=True)


@pytest.fixture
def paths(tmp_path: Path) -> AgentPaths:
    return AgentPaths(config_dir=tmp_path / "config", state_dir=tmp_path / "state")


async def test_entries_are_chained(paths: AgentPaths) -> None:
    await write_log(paths, 5)
    entries = [json.loads(line) for line in lines(paths)]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev"] == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after["prev"] == before["hash"]
    for entry in entries:
        assert entry["hash"] == entry_hash(entry)
        assert "error" not in entry  # None values are left out
    head = json.loads(paths.audit_head_file.read_text())
    assert head == {"seq": 5, "hash": entries[-1]["hash"]}
    assert (paths.audit_file.stat().st_mode & 0o777) == 0o600
    assert (paths.audit_head_file.stat().st_mode & 0o777) == 0o600
    assert verify(paths) == "5 entries, chain intact"

    # Another writer later (the daemon restarted) goes on from the head.
    again = AuditLog(paths.audit_file, paths.audit_head_file)
    assert await again.append("refused", command_id="c9", reason="denied by the user") == 6
    assert verify(paths) == "6 entries, chain intact"


async def test_a_crash_between_entry_and_head_is_repaired(paths: AgentPaths) -> None:
    await write_log(paths, 3)
    head = paths.audit_head_file.read_bytes()
    log = AuditLog(paths.audit_file, paths.audit_head_file)
    await log.append("ran", command_id="c3")
    paths.audit_head_file.write_bytes(head)  # as if the agent died before the head
    assert verify(paths) == "the log goes on after entry 3, where the head says it ends"
    log = AuditLog(paths.audit_file, paths.audit_head_file)
    assert await log.append("ran", command_id="c4") == 5
    assert verify(paths) == "5 entries, chain intact"


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("edit", "entry 3 was changed"),
        ("edit-and-rehash", "entry 3 was changed"),
        ("delete", "entry 4 is missing"),
        ("delete-two", "entries 2-3 are missing"),
        ("cut-tail", "the log ends before entry 6 (the head says 6)"),
        ("cut-two", "the log ends before entry 5 (the head says 6)"),
        ("rehash-last", "entry 6 was changed (it does not match the head)"),
        ("garbage", "entry 2 is damaged (not a JSON object)"),
        ("no-head", "audit.head is missing (the log has 6 entries)"),
    ],
)
async def test_tampering_is_detected(paths: AgentPaths, tamper: str, problem: str) -> None:
    await write_log(paths, 6)
    text = lines(paths)
    if tamper == "edit":
        text[2] = text[2].replace('"exit_code":0', '"exit_code":1')
    elif tamper in ("edit-and-rehash", "rehash-last"):
        index = 2 if tamper == "edit-and-rehash" else 5
        entry = json.loads(text[index])
        entry["requested_by"] = "mallory"
        entry["hash"] = entry_hash(entry)
        text[index] = json.dumps(entry) + "\n"
    elif tamper == "delete":
        del text[3]
    elif tamper == "delete-two":
        del text[1:3]
    elif tamper == "cut-tail":
        del text[-1]
    elif tamper == "cut-two":
        del text[-2:]
    elif tamper == "garbage":
        text[1] = "not json\n"
    elif tamper == "no-head":
        paths.audit_head_file.unlink()
    paths.audit_file.write_text("".join(text))
    assert verify(paths) == problem


async def test_audit_cli(paths: AgentPaths, agent: Agent) -> None:
    runner = CliRunner()
    options = ["--config-dir", str(paths.config_dir), "--state-dir", str(paths.state_dir)]
    result = runner.invoke(main, [*options, "audit", "verify"])
    assert (result.exit_code, result.output) == (0, "0 entries, chain intact\n")
    result = runner.invoke(main, [*options, "audit"])
    assert result.exit_code == 0
    assert "Nothing was run or refused here yet" in result.output

    await write_log(paths, 3)
    result = runner.invoke(main, [*options, "audit"])
    assert result.exit_code == 0
    first = result.output.splitlines()[0]
    assert first.startswith("#1 ")
    assert "ran  ticket #0  by tech  $ echo 0 'ünïcode'" in first
    assert "consent: user; exit code: 0; duration: 0.50 s" in first
    result = runner.invoke(main, [*options, "audit", "--json"])
    assert [json.loads(line)["seq"] for line in result.output.splitlines()] == [1, 2, 3]

    # The real command line, as the owner would run it.
    agent.paths = paths
    intact = await agent.cli("audit", "verify")
    assert (intact.returncode, intact.stdout) == (0, "3 entries, chain intact\n")
    text = lines(paths)
    paths.audit_file.write_text(text[0] + text[2])
    broken = await agent.cli("audit", "verify")
    assert broken.returncode == 1
    assert broken.stderr == "Error: the audit log is not intact: entry 2 is missing\n"
