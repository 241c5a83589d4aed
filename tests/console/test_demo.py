"""The first hour: ``deskside-console demo`` (what ``scripts/run.sh`` runs) as a new
user meets it on a machine with no display, with real processes."""

from __future__ import annotations

import datetime
import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.consoleproc import free_port
from tests.helpers import script


@contextmanager
def demo(data_dir: Path, port: int) -> Iterator[str]:
    """A demo process until it says "Ready."; its output so far. SIGINT at the end."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    process = subprocess.Popen(
        [script("deskside-console"), "--data-dir", str(data_dir), "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ready."):
                break
        output = "".join(lines)
        assert "Ready." in output, output
        yield output
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0


def cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = subprocess.run(
        [script("deskside-console"), "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return result.returncode, result.stdout + result.stderr


def test_the_first_hour(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    with demo(data_dir, port) as first:
        # The web console and the admin's sign-in, from a private file.
        assert f"Web console: https://127.0.0.1:{port}/" in first
        password_file = data_dir / "admin-password"
        password = password_file.read_text().strip()
        assert f"sign in as admin, password {password}  (kept in {password_file})" in first
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        # The demo serves and enrolls itself: no "Next: serve, token create".
        assert "Next:" not in first
        assert re.search(r"\btoken create|\bserve\b", first) is None
        # The agent allows this console's commands, said in the output and in agent.toml.
        agent_toml = data_dir / "demo-agent" / "config" / "agent.toml"
        assert f"without asking: see the comment in {agent_toml}" in first
        policy = agent_toml.read_text()
        assert "Added by 'deskside-console demo'" in policy
        assert 'mode = "any"' in policy
        assert policy.count("[commands]") == 1
        assert "Ticket #1 filed." in first
        assert "ticket show 1" in first
        assert f"curl --cacert {data_dir / 'tls' / 'cert.pem'}" in first
        # curl trusts the console with --cacert, as the demo and the README show it.
        code, token = cli(
            data_dir, "apitoken", "create", "c", "--user", "admin", "--scope", "tickets:read"
        )
        curl = subprocess.run(
            [
                "curl", "-sS", "--fail", "--cacert", str(data_dir / "tls" / "cert.pem"),
                "-H", f"Authorization: Bearer {token.splitlines()[0]}",
                f"https://127.0.0.1:{port}/api/v1/tickets",
            ],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        assert (curl.returncode, "Demo: the printer" in curl.stdout) == (0, True), curl.stderr
        # A command from this console runs.
        code, output = cli(data_dir, "run", "--ticket", "1", "--as", "admin", "--", "uname", "-s")
        assert (code, output.strip()) == (0, "Linux"), output
        # No display here: a virtual desktop with a window on it.
        found = re.search(r"virtual desktop \(Xvfb (:\d+), with a window\)", first)
        assert found is not None, first
        display = found.group(1)
        deadline = time.monotonic() + 30
        windows = ""
        while time.monotonic() < deadline and not windows:
            windows = subprocess.run(
                ["xdotool", "search", "--name", "Deskside demo desktop"],
                capture_output=True,
                text=True,
                env={**os.environ, "DISPLAY": display},
                check=False,
            ).stdout.strip()
            time.sleep(0.2)
        assert windows, "no window on the virtual desktop"
        # Its agent said it has a display: the screen link is given.
        code, output = cli(data_dir, "screen", "--ticket", "1", "--as", "admin")
        assert (code, "/viewer/screen.html#ticket=1&token=dsv_" in output) == (0, True), output
    # Stopped with the demo.
    assert not Path(f"/tmp/.X11-unix/X{display[1:]}").exists()

    with demo(data_dir, port) as second:
        assert "The demo's ticket is #1 (filed at the first start)." in second
        assert "Help request" not in second
        assert "ticket show 1" in second
        assert f"sign in as admin, password {password}" in second
        assert "Next:" not in second
    code, listed = cli(data_dir, "tickets", "--all")
    assert "(1-1 of 1)" in listed, listed


README = Path(__file__).parents[2] / "README.md"


def readme_block(after: str) -> list[str]:
    """The lines of the README's first ``sh`` block after the text ``after``."""
    text = README.read_text()
    start = text.index("```sh\n", text.index(after)) + len("```sh\n")
    return text[start : text.index("```", start)].splitlines()


def test_the_readme_shows_what_install_line_prints(tmp_path: Path) -> None:
    from tests.consoleproc import ConsoleProcess

    console = ConsoleProcess(tmp_path / "data")
    printed = console.cli("token", "create", "--install-line").stdout.splitlines()
    shown = readme_block("token create --install-line` prints")
    assert len(printed) == len(shown)
    for ours, theirs in zip(printed, shown, strict=True):
        if theirs.startswith("#"):
            assert ours == theirs
        else:  # the same command, its key and string elided
            assert ours.split()[0] == theirs.split()[0]
            assert ours.endswith("--user") == theirs.endswith("--user")
            assert ("| sudo sh" in ours) == ("| sudo sh" in theirs)


def test_the_readme_puts_the_commands_on_the_path_and_trusts_the_certificate(
    tmp_path: Path,
) -> None:
    from deskside.console.config import ConsoleConfig
    from tests.consoleproc import ConsoleProcess

    path_lines = readme_block("are installed in")
    assert path_lines[0] == 'export PATH="$PWD/.venv/bin:$PATH"      # or: . .venv/bin/activate'
    venv_bin = Path(script("deskside-console")).parent
    assert (venv_bin / "deskside-console").exists()
    assert (venv_bin / "deskside-agent").exists()
    (curl,) = readme_block("give it to curl with `--cacert`")
    cert = curl.split("--cacert ")[1].split()[0]
    console = ConsoleProcess(tmp_path / "data")
    config = ConsoleConfig.load(console.data_dir)
    assert config.tls_cert == console.data_dir / cert.removeprefix("./data/")
    assert config.tls_cert.exists()


def test_screen_says_no_display_before_printing_a_link(tmp_path: Path) -> None:

    from deskside.console.clitools import Context
    from deskside.console.store import Store
    from deskside.console.tickets.lifecycle import TicketSource
    from deskside.console.tickets.schemas import NewTicket
    from deskside.protocol import crypto
    from deskside.protocol import messages as m
    from tests.consoleproc import ConsoleProcess

    data_dir = ConsoleProcess(tmp_path / "data").data_dir
    key = crypto.public_key(crypto.generate_private_key())

    async def device_with_ticket(store: Store) -> str:
        token = await store.devices.create_enrollment_token(
            ttl=datetime.timedelta(hours=1), uses=1, group=None, created_by="test"
        )
        device = await store.devices.enroll(key, token.token)
        new = NewTicket(title="Screen", description="d", device_id=device.id)
        await store.tickets.create_ticket(new, actor="test", source=TicketSource.API)
        return device.id

    context = Context(data_dir)
    device_id = context.run(device_with_ticket)

    def hello(display: bool | None) -> None:
        os_info = m.OsInfo(family=m.OsFamily.LINUX, name="Debian", hostname="kiosk-7")
        message = m.Hello(agent_version="1", os=os_info, display=display)
        context.run(lambda store: store.devices.record_hello(device_id, message))

    for display in (False, None):  # None: a one-off help request's Hello says nothing
        hello(display)
        code, output = cli(data_dir, "screen", "--ticket", "1", "--as", "admin")
        assert code == 1
        assert "no display: device kiosk-7 of ticket #1 reported none" in output
        assert "viewer" not in output
    hello(True)
    code, output = cli(data_dir, "screen", "--ticket", "1", "--as", "admin")
    assert (code, "/viewer/screen.html#ticket=1" in output) == (0, True), output
