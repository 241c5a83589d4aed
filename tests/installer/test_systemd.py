"""systemd units: rendered text, ``systemd-analyze verify``, the systemctl sequences."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deskside.installer.base import (
    CommandResult,
    InstallerError,
    RecordingRunner,
    Scope,
    ServiceSpec,
)
from deskside.installer.systemd import (
    SystemdManager,
    quote_exec,
    render_system_unit,
    render_user_unit,
)
from tests.helpers import script

SYSTEM_SPEC = ServiceSpec(
    scope=Scope.SYSTEM,
    command=(
        "/opt/deskside-agent/venv/bin/deskside-agent",
        "--config-dir",
        "/etc/deskside-agent",
        "--state-dir",
        "/var/lib/deskside-agent",
        "run",
        "--log-file",
        "/var/lib/deskside-agent/agent.log",
        "--inbox",
        "/var/spool/deskside-agent",
    ),
    config_dir=Path("/etc/deskside-agent"),
    state_dir=Path("/var/lib/deskside-agent"),
    inbox_dir=Path("/var/spool/deskside-agent"),
    log_file=Path("/var/lib/deskside-agent/agent.log"),
)

USER_SPEC = ServiceSpec(
    scope=Scope.USER,
    command=(
        "/home/ann/.local/share/deskside-agent/venv/bin/deskside-agent",
        "--config-dir",
        "/home/ann/.config/deskside-agent",
        "--state-dir",
        "/home/ann/.local/state/deskside-agent",
        "run",
        "--log-file",
        "/home/ann/.local/state/deskside-agent/agent.log",
    ),
    config_dir=Path("/home/ann/.config/deskside-agent"),
    state_dir=Path("/home/ann/.local/state/deskside-agent"),
)

EXPECTED_SYSTEM_UNIT = """\
[Unit]
Description=Deskside agent (remote IT support)
Documentation=man:systemd.exec(5)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=/opt/deskside-agent/venv/bin/deskside-agent --config-dir /etc/deskside-agent \
--state-dir /var/lib/deskside-agent run --log-file /var/lib/deskside-agent/agent.log \
--inbox /var/spool/deskside-agent
User=deskside-agent
Group=deskside-agent
Restart=on-failure
RestartSec=5s
TimeoutStopSec=30s
SyslogIdentifier=deskside-agent
UMask=0077
# The state directory and the inbox are the only places it writes.
ProtectSystem=strict
ReadWritePaths=-/var/lib/deskside-agent -/var/spool/deskside-agent
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictSUIDSGID=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK

[Install]
WantedBy=multi-user.target
"""

EXPECTED_USER_UNIT = """\
[Unit]
Description=Deskside agent (remote IT support, in your session)
After=graphical-session.target

[Service]
Type=simple
ExecStart=/home/ann/.local/share/deskside-agent/venv/bin/deskside-agent \
--config-dir /home/ann/.config/deskside-agent --state-dir /home/ann/.local/state/deskside-agent \
run --log-file /home/ann/.local/state/deskside-agent/agent.log
Restart=on-failure
RestartSec=5s
TimeoutStopSec=30s
SyslogIdentifier=deskside-agent
UMask=0077
NoNewPrivileges=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=default.target
"""


def test_system_unit_text() -> None:
    assert render_system_unit(SYSTEM_SPEC) == EXPECTED_SYSTEM_UNIT


def test_user_unit_text() -> None:
    assert render_user_unit(USER_SPEC) == EXPECTED_USER_UNIT


def test_exec_quoting_keeps_words_and_specifiers_literal() -> None:
    assert quote_exec(["/a b/agent", "50%", "$HOME", 'say "hi"']) == (
        '"/a b/agent" 50%% $$HOME "say \\"hi\\""'
    )
    with pytest.raises(InstallerError):
        quote_exec(["a\nb"])


def test_paths_with_spaces_are_refused_in_settings() -> None:
    spec = ServiceSpec(
        scope=Scope.SYSTEM,
        command=("/x",),
        config_dir=Path("/etc/d"),
        state_dir=Path("/var/lib/my state"),
    )
    with pytest.raises(InstallerError, match="no spaces"):
        render_system_unit(spec)


def _verify(unit: Path, *options: str, env: dict[str, str] | None = None) -> str:
    """``systemd-analyze verify`` of ``unit``: its output, which must be empty to pass."""
    result = subprocess.run(
        ["systemd-analyze", *options, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )
    return f"exit {result.returncode}: {result.stdout}{result.stderr}".strip()


def _spec_with_real_program(spec: ServiceSpec) -> ServiceSpec:
    """``spec`` running this environment's deskside-agent (verify checks it exists)."""
    from dataclasses import replace

    return replace(spec, command=(script("deskside-agent"), *spec.command[1:]))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs Debian's systemd")
def test_system_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "deskside-agent.service"
    unit.write_text(render_system_unit(_spec_with_real_program(SYSTEM_SPEC)))
    assert _verify(unit) == "exit 0:"
    # The check can fail: a wrong value is reported.
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=stricter"))
    assert "protect system value" in _verify(unit)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs Debian's systemd")
def test_user_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "deskside-agent.service"
    unit.write_text(render_user_unit(_spec_with_real_program(USER_SPEC)))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    assert _verify(unit, "--user", env={"XDG_RUNTIME_DIR": str(runtime)}) == "exit 0:"


def test_system_install_sequence(tmp_path: Path) -> None:
    answers: dict[tuple[str, ...], int] = {("getent", "passwd", "deskside-agent"): 2}
    runner = RecordingRunner(answer=lambda argv: CommandResult(answers.get(argv, 0)))
    manager = SystemdManager(runner, root=tmp_path)
    manager.prepare(SYSTEM_SPEC)
    manager.install(SYSTEM_SPEC, upgrade=False)
    unit = tmp_path / "etc/systemd/system/deskside-agent.service"
    assert unit.read_text() == EXPECTED_SYSTEM_UNIT
    assert runner.commands == [
        ("getent", "passwd", "deskside-agent"),
        (
            "useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
            "/var/lib/deskside-agent", "--shell", "/usr/sbin/nologin", "--comment",
            "Deskside agent", "deskside-agent",
        ),
        ("chown", "-R", "deskside-agent:deskside-agent", "/etc/deskside-agent"),
        ("chown", "-R", "deskside-agent:deskside-agent", "/var/lib/deskside-agent"),
        ("install", "-d", "-m", "3733", "-o", "deskside-agent", "-g", "deskside-agent",
         "/var/spool/deskside-agent"),
        ("systemctl", "daemon-reload"),
        ("systemctl", "enable", "deskside-agent.service"),
        ("systemctl", "start", "deskside-agent.service"),
    ]  # fmt: skip


def test_upgrade_restarts_and_uninstall_removes(tmp_path: Path) -> None:
    runner = RecordingRunner()
    manager = SystemdManager(runner, root=tmp_path, home=tmp_path / "home")
    manager.prepare(USER_SPEC)  # nothing for a user unit
    manager.install(USER_SPEC, upgrade=True)
    unit = tmp_path / "home/.config/systemd/user/deskside-agent.service"
    assert unit.read_text() == EXPECTED_USER_UNIT
    manager.uninstall(USER_SPEC)
    assert not unit.exists()
    assert runner.commands == [
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", "deskside-agent.service"),
        ("systemctl", "--user", "restart", "deskside-agent.service"),
        ("systemctl", "--user", "disable", "--now", "deskside-agent.service"),
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "reset-failed", "deskside-agent.service"),
    ]
