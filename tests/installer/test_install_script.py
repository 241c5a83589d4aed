"""The one-line install, end to end: a real console serves the script and the wheel.

The line that ``token create --install-line`` prints is run in a fresh directory
(with ``sh -s`` instead of ``sudo sh -s``, for the user, and the service
registration pointed at ``none``: systemd is not this machine's init, so no unit
is started here). It creates a virtual environment, installs the wheel fetched
with the pinned certificate and the dependencies of its agent extra (none of the
console's), and leaves an agent the console knows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.consoleproc import ConsoleProcess
from tests.test_dependencies import CONSOLE_ONLY, agent_side_imports


def _sh_line(console: ConsoleProcess) -> str:
    out = console.cli("token", "create", "--install-line").stdout
    machine, user = [line for line in out.splitlines() if line.startswith("curl ")]
    assert "| sudo sh -s -- 'deskside:1:" in machine
    assert user.endswith("' --user")
    return user + " --service-manager none"


def _run(line: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", line], capture_output=True, text=True, env=env, timeout=540, check=False
    )


@pytest.mark.timeout(600)
def test_install_line_leaves_an_enrolled_agent_and_upgrades_in_place(
    console: ConsoleProcess, tmp_path: Path
) -> None:
    fresh = tmp_path / "machine"
    fresh.mkdir()
    config_dir, state_dir, agent_home = fresh / "config", fresh / "state", fresh / "agent"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(fresh),
        "DESKSIDE_PYTHON": getattr(sys, "_base_executable", sys.executable),
        "DESKSIDE_AGENT_HOME": str(agent_home),
        "DESKSIDE_AGENT_CONFIG_DIR": str(config_dir),
        "DESKSIDE_AGENT_STATE_DIR": str(state_dir),
        # The dependencies come from the package index; the real cache keeps it quick.
        "PIP_CACHE_DIR": str(Path.home() / ".cache" / "pip"),
    }
    result = _run(_sh_line(console), env)
    assert result.returncode == 0, result.stderr
    assert "certificate pinned" in result.stderr
    assert "Enrolled and installed: device d" in result.stdout
    device = result.stdout.split("device ", 1)[1].split()[0]
    assert (config_dir / "identity.key").is_file()
    agent = agent_home / "venv" / "bin" / "deskside-agent"
    # The agent runs from its own environment, not from this one.
    version = subprocess.run([agent, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("deskside-agent, version ")
    assert device in console.cli("devices").stdout
    # Its environment has the agent's dependencies, enough for every agent-side
    # module, and none of the console's.
    found = agent_side_imports(str(agent_home / "venv" / "bin" / "python"))
    assert not found["failed"]
    assert {"psutil", "msgspec", "numpy"} <= set(found["distributions"])
    leaked = CONSOLE_ONLY & set(found["distributions"])
    assert not leaked

    # Again, with a new token: an upgrade that keeps the identity.
    again = _run(_sh_line(console), env)
    assert again.returncode == 0, again.stderr
    assert f"Upgraded in place (identity kept): device {device}" in again.stdout
    assert console.cli("devices").stdout.count(device) == 1

    # Removed: the service (none here) and the data.
    removed = subprocess.run(
        [agent, "uninstall", "--user", "--service-manager", "none"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert removed.returncode == 0, removed.stderr
    assert not (config_dir / "identity.key").exists()
    assert not (agent_home / "venv").exists()


def test_wrong_pins_install_nothing(console: ConsoleProcess, tmp_path: Path) -> None:
    line = _sh_line(console)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DESKSIDE_AGENT_HOME": str(tmp_path)}
    # curl refuses a console whose key is not the pinned one (exit 90).
    pin = line.split("sha256//", 1)[1].split("'", 1)[0]
    bad_pin = line.replace(pin, "A" * 43 + "=")
    result = _run("set -o pipefail 2>/dev/null; " + bad_pin, env)
    assert result.returncode != 0
    assert not (tmp_path / "venv").exists()
    # The script refuses a console whose certificate is not the enrollment string's.
    script = subprocess.run(
        ["curl", "-fsSk", f"{console.base_url}/install/agent.sh"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    from deskside.protocol.enrollment import parse_enrollment

    enrollment = parse_enrollment(console.enrollment())
    forged = type(enrollment)(
        url=enrollment.url,
        token=enrollment.token,
        console_key=enrollment.console_key,
        tls_fingerprint="0" * 64,
    ).encode()
    (tmp_path / "agent.sh").write_text(script)
    result = subprocess.run(
        ["sh", str(tmp_path / "agent.sh"), forged, "--user"],
        capture_output=True,
        text=True,
        env={**env, "DESKSIDE_PYTHON": sys.executable},
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "does not show the console's pinned certificate" in result.stderr
    assert not (tmp_path / "venv").exists()
    # Only this version's wheel is served.
    missing = subprocess.run(
        ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
         f"{console.base_url}/install/deskside-0.0.1-py3-none-any.whl"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert missing.stdout == "404"
