"""The console's command line: exit codes and messages, on a real data directory."""

from __future__ import annotations

import time
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from deskside.console.cli import main
from deskside.protocol.enrollment import parse_enrollment
from tests.consoleproc import ConsoleProcess


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return ConsoleProcess(tmp_path / "data").data_dir


def run(data_dir: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), *args], input=stdin)
    return result.exit_code, result.output


def test_version_and_help() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert (result.exit_code, result.output) == (
        0,
        f"deskside-console, version {version('deskside')}\n",
    )
    result = CliRunner().invoke(main, ["-h"])
    assert result.exit_code == 0
    for command in (
        "init",
        "serve",
        "token",
        "devices",
        "tickets",
        "ticket",
        "user",
        "apitoken",
        "demo",
    ):
        assert command in result.output


def test_init_refuses_to_overwrite_a_console(data_dir: Path) -> None:
    key = (data_dir / "noise.key").read_bytes()
    code, output = run(data_dir, "init")
    assert code == 1
    assert "holds a console already" in output
    assert (data_dir / "noise.key").read_bytes() == key
    assert (data_dir / "noise.key").stat().st_mode & 0o777 == 0o600
    assert (data_dir / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600


def test_token_create_prints_a_parsable_enrollment_string(data_dir: Path) -> None:
    code, output = run(
        data_dir, "token", "create", "--ttl", "2h", "--uses", "3", "--group", "sales"
    )
    assert code == 0
    enrollment = parse_enrollment(output.splitlines()[0])
    assert enrollment.url.startswith("wss://127.0.0.1:")
    assert enrollment.tls_fingerprint is not None
    assert enrollment.expires is not None
    assert 7190 < enrollment.expires - time.time() <= 7200
    code, output = run(data_dir, "token", "create", "--ttl", "forever")
    assert code == 2
    assert "not a duration" in output


def test_users_and_api_tokens(data_dir: Path) -> None:
    code, output = run(data_dir, "user", "add", "bob", "--role", "technician")
    assert code == 0
    assert "password:" in output
    code, output = run(data_dir, "user", "add", "bob")
    assert (code, "exists already" in output) == (1, True)
    code, output = run(data_dir, "user", "add", "carol", "--password-stdin", stdin="short\n")
    assert (code, "12 characters" in output) == (1, True)
    code, output = run(data_dir, "apitoken", "create", "rt", "--scope", "tickets:read")
    assert code == 0
    assert output.startswith("dsk_")
    code, output = run(data_dir, "apitoken", "create", "rt", "--scope", "root")
    assert code == 2


def test_tickets_by_hand(data_dir: Path) -> None:
    code, output = run(
        data_dir, "ticket", "new", "--title", "Phone call", "--description", "Mail is slow",
        "--impact", "high", "--urgency", "high",
    )  # fmt: skip
    assert (code, output.startswith("Ticket #1 opened (P1")) == (0, True)
    code, output = run(data_dir, "tickets")
    assert "Phone call" in output
    code, output = run(data_dir, "ticket", "show", "1")
    assert "created: Phone call (P1, from cli)" in output
    code, output = run(data_dir, "ticket", "show", "7")
    assert (code, "no ticket 7" in output) == (1, True)
    code, output = run(data_dir, "ticket", "new", "--title", "", "--description", "x")
    assert code == 2
    code, output = run(data_dir, "tickets", "--status", "resolved")
    assert "Phone call" not in output


def test_missing_or_broken_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    code, output = run(tmp_path / "nothing", "tickets")
    assert code == 1
    assert "not a console data directory" in output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "console.toml").write_text("[server]\nport = 'many'\n")
    code, output = run(broken, "tickets")
    assert code == 1
    assert "port must be" in output
    (broken / "console.toml").write_text("[server\n")
    code, output = run(broken, "tickets")
    assert (code, "cannot read" in output) == (1, True)


def test_demo_runs_a_console_and_an_agent_until_interrupted(tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    from tests.consoleproc import free_port
    from tests.helpers import script

    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [
            script("deskside-console"),
            "--data-dir",
            str(data_dir),
            "demo",
            "--port",
            str(free_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ready."):
                break
        output = "".join(lines)
        assert "Ready." in output, output
        assert "admin password" in output
        assert "Local agent enrolled" in output
        assert "Ticket #1 filed." in output
        _, listed = run(data_dir, "tickets")
        assert "Demo: the printer on floor 2" in listed
        _, devices = run(data_dir, "devices")
        assert "online" in devices
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    _, devices = run(data_dir, "devices")
    assert "offline" in devices
