"""macOS launchd: rendered plists and the recorded launchctl / dscl sequences.

Not run for real: this is a Linux machine. The plists are also parsed back with
plistlib, as launchd would read them.
"""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from deskside.installer.base import (
    CommandFailed,
    CommandResult,
    InstallerError,
    RecordingRunner,
    Scope,
    ServiceSpec,
)
from deskside.installer.launchd import LaunchdManager, macos_dirs, render_plist

SUPPORT = "/Library/Application Support/deskside-agent"
SYSTEM_SPEC = ServiceSpec(
    scope=Scope.SYSTEM,
    command=(f"{SUPPORT}/venv/bin/deskside-agent", "run", "--syslog"),
    config_dir=Path(f"{SUPPORT}/config"),
    state_dir=Path(f"{SUPPORT}/state"),
    inbox_dir=Path("/var/spool/deskside-agent"),
    user="_deskside",
)
USER_SPEC = ServiceSpec(
    scope=Scope.USER,
    command=("/Users/ann/Library/Application Support/deskside-agent/venv/bin/deskside-agent",),
    config_dir=Path("/Users/ann/Library/Application Support/deskside-agent"),
    state_dir=Path("/Users/ann/Library/Application Support/deskside-agent"),
)

EXPECTED_DAEMON = """\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>GroupName</key>
	<string>_deskside</string>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>Label</key>
	<string>org.deskside.agent</string>
	<key>ProcessType</key>
	<string>Background</string>
	<key>ProgramArguments</key>
	<array>
		<string>/Library/Application Support/deskside-agent/venv/bin/deskside-agent</string>
		<string>run</string>
		<string>--syslog</string>
	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>StandardErrorPath</key>
	<string>/Library/Application Support/deskside-agent/state/agent.stderr.log</string>
	<key>ThrottleInterval</key>
	<integer>10</integer>
	<key>Umask</key>
	<integer>63</integer>
	<key>UserName</key>
	<string>_deskside</string>
	<key>WorkingDirectory</key>
	<string>/Library/Application Support/deskside-agent/state</string>
</dict>
</plist>
"""


def test_daemon_plist_text() -> None:
    assert render_plist(SYSTEM_SPEC) == EXPECTED_DAEMON


def test_agent_plist_runs_in_the_graphical_session() -> None:
    job = plistlib.loads(render_plist(USER_SPEC).encode())
    assert job["LimitLoadToSessionType"] == "Aqua"
    assert job["ProcessType"] == "Interactive"
    assert job["KeepAlive"] == {"SuccessfulExit": False}
    assert "UserName" not in job
    assert job["ProgramArguments"] == list(USER_SPEC.command)


def test_dirs() -> None:
    home = Path("/Users/ann")
    assert macos_dirs(Scope.SYSTEM, home)[1] == Path(f"{SUPPORT}/config")
    assert macos_dirs(Scope.USER, home)[2] == home / "Library/Application Support/deskside-agent"


def test_system_install_makes_the_account_then_loads_the_daemon(tmp_path: Path) -> None:
    def answer(argv: tuple[str, ...]) -> CommandResult:
        if argv[:3] == ("dscl", ".", "-read"):
            return CommandResult(56, "eDSRecordNotFound")
        if argv == ("dscl", ".", "-list", "/Users", "UniqueID"):
            return CommandResult(0, "root 0\n_www 70\n_spam 400\n")
        if argv == ("dscl", ".", "-list", "/Groups", "PrimaryGroupID"):
            return CommandResult(0, "wheel 0\n_other 401\n")
        return CommandResult(0)

    runner = RecordingRunner(answer=answer)
    manager = LaunchdManager(runner, root=tmp_path, uid=501)
    manager.prepare(SYSTEM_SPEC)
    manager.install(SYSTEM_SPEC, upgrade=False)
    plist = tmp_path / "Library/LaunchDaemons/org.deskside.agent.plist"
    assert plist.read_text() == EXPECTED_DAEMON
    user, group = "/Users/_deskside", "/Groups/_deskside"
    assert runner.commands == [
        ("dscl", ".", "-read", user),
        ("dscl", ".", "-list", "/Users", "UniqueID"),
        ("dscl", ".", "-list", "/Groups", "PrimaryGroupID"),
        ("dscl", ".", "-create", group),
        ("dscl", ".", "-create", group, "PrimaryGroupID", "402"),
        ("dscl", ".", "-create", group, "RealName", "Deskside agent"),
        ("dscl", ".", "-create", user),
        ("dscl", ".", "-create", user, "UniqueID", "402"),
        ("dscl", ".", "-create", user, "PrimaryGroupID", "402"),
        ("dscl", ".", "-create", user, "UserShell", "/usr/bin/false"),
        ("dscl", ".", "-create", user, "NFSHomeDirectory", "/var/empty"),
        ("dscl", ".", "-create", user, "RealName", "Deskside agent"),
        ("dscl", ".", "-create", user, "IsHidden", "1"),
        ("dscl", ".", "-create", user, "Password", "*"),
        ("chown", "-R", "_deskside:_deskside", f"{SUPPORT}/config"),
        ("chown", "-R", "_deskside:_deskside", f"{SUPPORT}/state"),
        ("mkdir", "-p", "/var/spool/deskside-agent"),
        ("chown", "_deskside:_deskside", "/var/spool/deskside-agent"),
        ("chmod", "3733", "/var/spool/deskside-agent"),
        ("chown", "root:wheel", str(plist)),
        ("launchctl", "enable", "system/org.deskside.agent"),
        ("launchctl", "bootstrap", "system", str(plist)),
    ]


def test_existing_account_is_kept_and_upgrade_reloads(tmp_path: Path) -> None:
    runner = RecordingRunner()
    manager = LaunchdManager(runner, root=tmp_path, home=tmp_path / "ann", uid=501)
    manager.prepare(SYSTEM_SPEC)
    assert runner.commands == [("dscl", ".", "-read", "/Users/_deskside")]
    runner.commands.clear()
    manager.install(USER_SPEC, upgrade=True)
    plist = tmp_path / "ann/Library/LaunchAgents/org.deskside.agent.plist"
    manager.uninstall(USER_SPEC)
    assert not plist.exists()
    assert runner.commands == [
        ("launchctl", "bootout", "gui/501/org.deskside.agent"),
        ("launchctl", "enable", "gui/501/org.deskside.agent"),
        ("launchctl", "bootstrap", "gui/501", str(plist)),
        ("launchctl", "bootout", "gui/501/org.deskside.agent"),
    ]


def test_no_free_id_and_failing_tools_are_errors(tmp_path: Path) -> None:
    taken = "\n".join(f"u{n} {n}" for n in range(400, 500))
    runner = RecordingRunner(
        answer=lambda argv: CommandResult(1) if "-read" in argv else CommandResult(0, taken)
    )
    with pytest.raises(InstallerError, match="no free account id"):
        LaunchdManager(runner, root=tmp_path, uid=501).prepare(SYSTEM_SPEC)
    failing = RecordingRunner(answer=lambda argv: CommandResult(5, "Bootstrap failed: 5"))
    with pytest.raises(CommandFailed, match="Bootstrap failed"):
        LaunchdManager(failing, root=tmp_path, home=tmp_path, uid=501).install(
            USER_SPEC, upgrade=False
        )
