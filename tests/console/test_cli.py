"""The console's command line: exit codes and messages, on a real data directory."""

from __future__ import annotations

import shlex
import stat
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from deskside.console.cli import main
from deskside.protocol.enrollment import parse_enrollment
from tests.consoleproc import ConsoleProcess
from tests.helpers import script


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


def modes(directory: Path) -> dict[str, int]:
    """Mode of the directory ("."), and of everything in it, by relative name."""
    found = {".": stat.S_IMODE(directory.stat().st_mode)}
    for path in directory.rglob("*"):
        found[path.relative_to(directory).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return found


@pytest.mark.parametrize(
    ("umask", "existing"),
    [
        pytest.param(0o000, False, id="umask-000"),
        pytest.param(0o022, True, id="existing-0755-directory"),
        pytest.param(0o000, True, id="umask-000-existing-0777-directory"),
    ],
)
def test_the_data_directory_is_private_whatever_the_umask(
    tmp_path: Path, umask: int, existing: bool
) -> None:
    """init, then serve with a database being written: nothing for group or others."""
    data_dir = tmp_path / "data"
    if existing:
        data_dir.mkdir()
        data_dir.chmod(0o777 if umask == 0 else 0o755)
        (data_dir / "notes.txt").write_text("the admin's, made before init")
        (data_dir / "notes.txt").chmod(0o644)
    console = ConsoleProcess(data_dir, umask=umask)
    after_init = modes(data_dir)
    assert {"console.toml", "tls/cert.pem", "tls/key.pem", "noise.key", "deskside.db"} <= set(
        after_init
    )
    with console:
        token = console.api_token("tickets:read", "tickets:write")
        with console.api(token) as api:
            for n in range(3):  # a write that a checkpoint has not yet copied: the WAL
                response = api.post("/api/v1/tickets", json={"title": f"t{n}", "description": "d"})
                assert response.status_code == 201, response.text
        console.cli("tickets")  # a second process on the same database
        while_serving = modes(data_dir)
    assert {"deskside.db-wal", "deskside.db-shm"} <= set(while_serving)
    for name, mode in {**after_init, **while_serving}.items():
        assert mode & 0o077 == 0, f"{name} is {mode:04o}"


def test_serve_refuses_a_data_directory_others_can_read(tmp_path: Path) -> None:
    """A console made before this rule, or opened up by hand, is not served from until
    the command the refusal names has closed it."""
    console = ConsoleProcess(tmp_path / "data")
    data_dir = console.data_dir
    data_dir.chmod(0o755)
    (data_dir / "deskside.db").chmod(0o644)
    result = subprocess.run(
        [script("deskside-console"), "--data-dir", str(data_dir), "serve"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "deskside.db (0644)" in result.stderr
    fix = f"chmod -R go-rwx {shlex.quote(str(data_dir.resolve()))}"
    assert result.stderr.rstrip().endswith(fix)
    subprocess.run(shlex.split(fix), check=True)
    with console:  # now it serves
        assert console.process is not None


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
