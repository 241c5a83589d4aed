"""Windows: the recorded sc.exe / icacls / reg.exe sequences (not run for real here)."""

from __future__ import annotations

from pathlib import Path

from deskside.installer.base import RecordingRunner, Scope, ServiceSpec
from deskside.installer.windows import WindowsManager, service_command, windows_dirs

ENV = {"ProgramFiles": "C:\\Program Files", "ProgramData": "C:\\ProgramData"}
ROOT, CONFIG, STATE = windows_dirs(Scope.SYSTEM, Path("C:\\Users\\ann"), ENV)
PYTHON = "C:\\Program Files\\Deskside Agent\\venv\\Scripts\\python.exe"
SPEC = ServiceSpec(
    scope=Scope.SYSTEM,
    command=("C:\\Program Files\\Deskside Agent\\venv\\Scripts\\deskside-agent.exe", "run"),
    config_dir=CONFIG,
    state_dir=STATE,
    python=PYTHON,
)
COMMAND = (
    '"C:\\Program Files\\Deskside Agent\\venv\\Scripts\\python.exe" -m '
    'deskside.installer.winservice --config-dir "C:\\ProgramData\\Deskside Agent\\config" '
    '--state-dir "C:\\ProgramData\\Deskside Agent\\state"'
)


def test_dirs() -> None:
    assert str(ROOT) == "C:\\Program Files\\Deskside Agent"
    assert str(CONFIG) == "C:\\ProgramData\\Deskside Agent\\config"
    user = windows_dirs(Scope.USER, Path("C:\\Users\\ann"), {"LOCALAPPDATA": "D:\\Local"})
    assert str(user[1]) == "D:\\Local\\deskside-agent"


def test_service_command_line() -> None:
    assert service_command(SPEC) == COMMAND


def _icacls(path: Path) -> tuple[str, ...]:
    return (
        "icacls",
        str(path),
        "/inheritance:r",
        "/grant:r",
        "SYSTEM:(OI)(CI)F",
        "Administrators:(OI)(CI)F",
        "NT SERVICE\\deskside-agent:(OI)(CI)M",
    )


def test_install_upgrade_uninstall_sequences() -> None:
    runner = RecordingRunner()
    manager = WindowsManager(runner)
    manager.prepare(SPEC)
    manager.install(SPEC, upgrade=False)
    assert runner.commands == [
        (
            "sc.exe", "create", "deskside-agent", "binPath=", COMMAND, "start=", "delayed-auto",
            "obj=", "NT SERVICE\\deskside-agent", "DisplayName=", "Deskside Agent",
        ),
        (
            "sc.exe", "description", "deskside-agent",
            "Deskside remote IT support: diagnostics, help requests, remote help.",
        ),
        (
            "sc.exe", "failure", "deskside-agent", "reset=", "86400", "actions=",
            "restart/5000/restart/10000/restart/60000",
        ),
        ("sc.exe", "failureflag", "deskside-agent", "1"),
        _icacls(CONFIG),
        _icacls(STATE),
        ("sc.exe", "start", "deskside-agent"),
    ]  # fmt: skip
    runner.commands.clear()
    manager.install(SPEC, upgrade=True)
    assert runner.commands == [
        ("sc.exe", "stop", "deskside-agent"),
        ("sc.exe", "config", "deskside-agent", "binPath=", COMMAND),
        _icacls(CONFIG),
        _icacls(STATE),
        ("sc.exe", "start", "deskside-agent"),
    ]
    runner.commands.clear()
    manager.uninstall(SPEC)
    assert runner.commands == [
        ("sc.exe", "stop", "deskside-agent"),
        ("sc.exe", "delete", "deskside-agent"),
    ]


EXE = "C:\\Users\\ann\\AppData\\Local\\deskside-agent\\venv\\Scripts\\deskside-agent.exe"


def test_user_scope_uses_the_run_key() -> None:
    runner = RecordingRunner()
    spec = ServiceSpec(
        scope=Scope.USER,
        command=(EXE, "run"),
        config_dir=Path("C:\\x"),
        state_dir=Path("C:\\x"),
    )  # fmt: skip
    manager = WindowsManager(runner)
    manager.install(spec, upgrade=False)
    manager.uninstall(spec)
    key = "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
    assert runner.commands == [
        ("reg.exe", "add", key, "/v", "DesksideAgent", "/t", "REG_SZ", "/d",
         "C:\\Users\\ann\\AppData\\Local\\deskside-agent\\venv\\Scripts\\deskside-agent.exe run",
         "/f"),
        ("cmd.exe", "/c", "start", "Deskside Agent", "/min", *spec.command),
        ("reg.exe", "delete", key, "/v", "DesksideAgent", "/f"),
    ]  # fmt: skip
