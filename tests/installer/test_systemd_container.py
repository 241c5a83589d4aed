"""The installer for real under systemd: install, restart on failure, help, upgrade, uninstall.

systemd is not PID 1 here, so it runs in a container booted from this machine's
own file system (``tests/installer/container.py``), against a console on the host.
The install line is the one ``token create --install-line`` prints, run as root
(without ``sudo``, which is not needed as root).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.consoleproc import ConsoleProcess
from tests.installer.container import SystemdContainer

AGENT = "/opt/deskside-agent/venv/bin/deskside-agent"


@pytest.fixture
def container(tmp_path: Path) -> Iterator[SystemdContainer]:
    machine = SystemdContainer(tmp_path / "container")
    try:
        machine.start()
        yield machine
    finally:
        machine.stop()


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``check()`` is true."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def _install_line(console: ConsoleProcess, scope: str = "system") -> str:
    out = console.cli("token", "create", "--install-line").stdout
    machine, user = [line for line in out.splitlines() if line.startswith("curl ")]
    return (machine if scope == "system" else user).replace("| sudo sh -s --", "| sh -s --")


@pytest.mark.timeout(900)
def test_system_service_under_real_systemd(
    console: ConsoleProcess, container: SystemdContainer
) -> None:
    # Debian's python3, which the service's account can read (not a shim in /root).
    python = {"DESKSIDE_PYTHON": "/usr/bin/python3"}
    out = container.run(_install_line(console), env=python).stdout
    assert "Enrolled and installed: device d" in out
    assert "systemd unit /etc/systemd/system/deskside-agent.service enabled and started" in out
    device = out.split("device ", 1)[1].split()[0]

    def show(prop: str) -> str:
        return container.run(f"systemctl show -p {prop} --value deskside-agent").stdout.strip()

    assert container.run("systemctl is-enabled deskside-agent").stdout.strip() == "enabled"
    eventually(lambda: f"{device}" in console.cli("devices").stdout and "online" in
               console.cli("devices").stdout)  # fmt: skip
    # Its own account, its files private, the inbox open to all but listable by none.
    assert container.run("ps -o user= -p $(systemctl show -p MainPID --value deskside-agent)"
                         ).stdout.strip() == "deskside-agent"  # fmt: skip
    listing = container.run("stat -c '%A %U %n' /etc/deskside-agent/identity.key "
                            "/var/lib/deskside-agent /var/spool/deskside-agent").stdout  # fmt: skip
    assert listing.splitlines() == [
        "-rw------- deskside-agent /etc/deskside-agent/identity.key",
        "drwx------ deskside-agent /var/lib/deskside-agent",
        "drwx-ws-wt deskside-agent /var/spool/deskside-agent",
    ]
    # Logs: the journal and the file in the state directory.
    journal = container.run("journalctl -u deskside-agent --no-pager -o cat").stdout
    assert f"connected to wss://127.0.0.1:{console.port}/agent as device {device}" in journal
    assert "agent started" in container.run("cat /var/lib/deskside-agent/agent.log").stdout
    # The sandbox holds: in the service's mount namespace /etc is read-only, even for
    # root, and the state directory is writable.
    pid = show("MainPID")
    in_service = container.run(
        f"nsenter -t {pid} -m sh -c 'touch /etc/deskside-x; touch /var/lib/deskside-agent/x'",
        check=False,
    )
    assert "Read-only file system" in in_service.stderr
    assert container.run(f"nsenter -t {pid} -m touch /var/lib/deskside-agent/x").returncode == 0
    security = container.run("systemd-analyze security --no-pager deskside-agent").stdout
    print(security.splitlines()[-1])  # the exposure score, for the report

    # A user without an agent of their own asks for help through the daemon.
    container.run("useradd --create-home ann")
    # The install linked the command into /usr/local/bin, on everyone's PATH.
    asked = container.run("su ann -c 'deskside-agent help \"the printer prints blank pages\"'")
    assert "handed to this machine's Deskside service" in asked.stdout
    eventually(lambda: "the printer prints blank pages" in console.cli("tickets").stdout)
    assert "ann" in console.cli("ticket", "show", "1").stdout

    # Killed, it is started again.
    first = show("MainPID")
    container.run(f"kill -9 {first}")
    eventually(lambda: show("NRestarts") == "1" and show("ActiveState") == "active")
    assert show("MainPID") != first

    # The line again: an upgrade in place, same identity, restarted.
    before = show("MainPID")
    out = container.run(_install_line(console), env=python).stdout
    assert f"Upgraded in place (identity kept): device {device}" in out
    assert show("MainPID") != before
    assert console.cli("devices").stdout.count(device) == 1

    # Removed, and everything with it.
    out = container.run(f"{AGENT} uninstall").stdout
    assert "service removed (systemd)" in out
    gone = container.run(
        "ls -d /usr/local/bin/deskside-agent "
        "/etc/systemd/system/deskside-agent.service /etc/deskside-agent "
        "/var/lib/deskside-agent /var/spool/deskside-agent /opt/deskside-agent/venv",
        check=False,
    )
    assert gone.stdout == ""
    assert container.run("getent passwd deskside-agent", check=False).returncode == 2
    assert container.run("systemctl is-active deskside-agent", check=False).stdout.strip() in (
        "inactive",
        "unknown",
    )


@pytest.mark.timeout(900)
def test_user_service_under_real_systemd(
    console: ConsoleProcess, container: SystemdContainer
) -> None:
    container.run("useradd --create-home bob")
    uid = container.run("id -u bob").stdout.strip()
    # What a login would do: the user's runtime directory and systemd.
    container.run(f"systemctl start user-runtime-dir@{uid} user@{uid}")
    line = _install_line(console, "user")
    container.run(f"cat > /tmp/install-line <<'EOF'\n{line}\nEOF\nchmod 644 /tmp/install-line")
    as_bob = f"runuser -u bob -- env XDG_RUNTIME_DIR=/run/user/{uid} HOME=/home/bob "
    python = {"DESKSIDE_PYTHON": "/usr/bin/python3"}
    out = container.run(as_bob + "sh /tmp/install-line", env=python).stdout
    assert "Enrolled and installed: device d" in out
    assert "/home/bob/.config/systemd/user/deskside-agent.service enabled and started" in out
    device = out.split("device ", 1)[1].split()[0]

    def user_show(prop: str) -> str:
        return container.run(
            as_bob + f"systemctl --user show -p {prop} --value deskside-agent"
        ).stdout.strip()

    assert user_show("ActiveState") == "active"
    assert container.run(f"ps -o user= -p {user_show('MainPID')}").stdout.strip() == "bob"
    eventually(lambda: device in console.cli("devices").stdout)
    assert container.run("ls /home/bob/.config/deskside-agent").stdout.split() == [
        "agent.toml",
        "identity.key",
    ]
    eventually(
        lambda: "connected to" in container.run(
            "journalctl --no-pager -o cat _SYSTEMD_USER_UNIT=deskside-agent.service"
        ).stdout
    )  # fmt: skip

    out = container.run(
        as_bob + "/home/bob/.local/share/deskside-agent/venv/bin/deskside-agent uninstall --user"
    ).stdout
    assert "service removed (systemd)" in out
    gone = container.run(
        "ls -d /home/bob/.config/systemd/user/deskside-agent.service "
        "/home/bob/.config/deskside-agent /home/bob/.local/state/deskside-agent "
        "/home/bob/.local/bin/deskside-agent /home/bob/.local/share/deskside-agent",
        check=False,
    )
    assert gone.stdout == ""
