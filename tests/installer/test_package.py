"""The wheel packed from the running code, the scripts, the install lines, the fetch helper."""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

from deskside.installer import InstallerError, service_manager
from deskside.installer.fetch import parse, unpack
from deskside.installer.package import (
    PARTS,
    build_wheel,
    install_lines,
    render_script,
    wheel_name,
)
from deskside.protocol.enrollment import Enrollment
from tests.consoleproc import ConsoleProcess

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_is_reproducible_and_installable_metadata(tmp_path: Path) -> None:
    first = build_wheel(tmp_path / "a")
    second = build_wheel(tmp_path / "b")
    assert first.name == wheel_name()
    assert first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    assert "deskside/installer/agent.sh" in names
    assert "deskside/agent/cli.py" in names
    assert "deskside/installer/cli.py" in names  # the deskside-agent script
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    info = wheel_name().split("-py3")[0] + ".dist-info"
    entry_points = zipfile.ZipFile(first).read(f"{info}/entry_points.txt")
    assert b"deskside-agent = deskside.installer.cli:main" in entry_points
    # pip accepts it (RECORD, WHEEL, METADATA are consistent).
    check = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "-q", str(first)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def _install(tmp_path: Path, *options: str) -> Path:
    """A copy of this working tree installed by ``pip install --no-deps OPTIONS <copy>`` into
    a new virtual environment; its scripts directory.

    The copy's dependencies come from this test environment's site-packages, named in a
    ``.pth`` written after the install (so that pip sees only the new environment).
    """
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for part in PARTS:
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    install = subprocess.run(
        [*pip, *options, str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "zz-test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


def assert_same_code(wheel: bytes, expected: bytes) -> None:
    """The same files with the same bytes, of the same name and version. METADATA's
    description is the README as it was at each install, so it (and RECORD) may differ."""
    ours, theirs = zipfile.ZipFile(io.BytesIO(wheel)), zipfile.ZipFile(io.BytesIO(expected))
    assert ours.namelist() == theirs.namelist()
    for name in ours.namelist():
        if name.endswith("/METADATA"):
            fields = (b"Name: ", b"Version: ")
            assert [x for x in ours.read(name).splitlines() if x.startswith(fields)] == [
                x for x in theirs.read(name).splitlines() if x.startswith(fields)
            ]
        elif not name.endswith("/RECORD"):
            assert ours.read(name) == theirs.read(name), name


def test_parts_are_the_distributions_packages() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir = pyproject["tool"]["setuptools"]["package-dir"]
    assert sorted(PARTS) == sorted(name.removeprefix("deskside.") for name in package_dir)


@pytest.mark.parametrize(
    "options",
    [pytest.param([], id="regular"), pytest.param(["-e"], id="plain-editable")],
)
def test_every_install_mode_packs_the_same_wheel(tmp_path: Path, options: list[str]) -> None:
    """``pip install .`` and a plain ``pip install -e .`` (setuptools' finder and path
    hook, not the strict mode's link tree this test environment has) pack the same wheel."""
    scripts = _install(tmp_path, *options)
    packed = subprocess.run(
        [
            str(scripts / "python"),
            "-c",
            "import sys, pathlib; from deskside.installer.package import build_wheel; "
            "print(build_wheel(pathlib.Path(sys.argv[1])))",
            str(tmp_path / "wheel"),
        ],
        cwd=tmp_path,  # not the working tree, whose deskside.egg-info would be found first
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert packed.returncode == 0, packed.stderr
    there = Path(packed.stdout.strip())
    assert there.name == wheel_name()
    assert_same_code(there.read_bytes(), build_wheel(tmp_path / "here").read_bytes())


def test_a_console_installed_plain_editable_serves_its_wheel(tmp_path: Path) -> None:
    """The issue's case: ``pip install -e .``, then an agent fetches the wheel."""
    scripts = _install(tmp_path, "-e")
    with (
        ConsoleProcess(tmp_path / "console", scripts=scripts) as console,
        httpx.Client(verify=console.ssl_context(), timeout=60) as client,
    ):
        response = client.get(f"{console.base_url}/install/{wheel_name()}")
    assert response.status_code == 200, console.log.read_text()[-3000:]
    assert_same_code(response.content, build_wheel(tmp_path / "here").read_bytes())


def test_scripts_are_filled_in() -> None:
    for name in ("agent.sh", "agent.ps1"):
        text = render_script(name, "9.9.9")
        assert "@VERSION@" not in text
        assert "@FETCH_PY@" not in text
        assert "9.9.9" in text
        assert "def fetch(" in text
    with pytest.raises(InstallerError):
        render_script("../etc/passwd")


def test_shell_script_parses(tmp_path: Path) -> None:
    script = tmp_path / "agent.sh"
    script.write_text(render_script("agent.sh"))
    subprocess.run(["sh", "-n", str(script)], check=True)
    usage = subprocess.run(["sh", str(script)], capture_output=True, text=True, check=False)
    assert usage.returncode == 1
    assert "usage:" in usage.stderr


def test_a_script_cut_short_runs_nothing(tmp_path: Path) -> None:
    """``curl | sh`` over a broken connection: whatever arrived must not run."""
    text = render_script("agent.sh")
    ran = tmp_path / "ran"
    python = tmp_path / "python"  # the first thing the script runs, then stops it
    python.write_text(f"#!/bin/sh\necho ran >> {ran}\nexit 1\n")
    python.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DESKSIDE_PYTHON": str(python)}
    whole = subprocess.run(
        ["sh", "-s", "--", "deskside:1:x", "--user"],
        input=text,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert whole.returncode != 0
    assert ran.exists()  # the whole script does run
    ran.unlink()
    for cut in (len(text) // 3, len(text) // 2, len(text) - 20):
        result = subprocess.run(
            ["sh", "-s", "--", "deskside:1:x", "--user"],
            input=text[:cut],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode != 0
        assert not ran.exists(), f"a script cut at {cut} of {len(text)} ran"


def test_install_lines() -> None:
    lines = install_lines(
        "wss://desk.example.org:8443/agent",
        "deskside:1:abc",
        public_key_pin="PIN=",
        fingerprint="ab" * 32,
    )
    assert lines["sh"] == (
        "curl -fsSk --pinnedpubkey 'sha256//PIN=' https://desk.example.org:8443/install/agent.sh"
        " | sudo sh -s -- 'deskside:1:abc'"
    )
    assert lines["sh_user"].endswith("| sh -s -- 'deskside:1:abc' --user")
    assert "https://desk.example.org:8443/install/agent.ps1" in lines["powershell"]
    assert f"-eq '{'ab' * 32}'" in lines["powershell"]
    with pytest.raises(InstallerError, match="not over wss"):
        install_lines("ws://x/agent", "s", public_key_pin="p", fingerprint="f")


def test_fetch_helper_decodes_real_enrollment_strings() -> None:
    text = Enrollment(
        url="wss://127.0.0.1:9443/agent",
        token="t" * 40,
        console_key=bytes(range(32)),
        tls_fingerprint="cd" * 32,
    ).encode()
    assert parse(text) == ("127.0.0.1", 9443, "cd" * 32)
    for expires in (0, 127, 200, 60_000, 1_800_000_000, 1 << 40):
        dated = Enrollment(
            url="wss://h/agent", token="t" * 40, console_key=bytes(32), expires=expires
        ).encode()
        body = dated.removeprefix("deskside:1:")
        assert unpack(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["expires"] == expires
    no_pin = Enrollment(url="wss://h/agent", token="t" * 40, console_key=bytes(32)).encode()
    with pytest.raises(ValueError, match="pins no TLS certificate"):
        parse(no_pin)
    with pytest.raises(ValueError, match="cut short"):
        unpack(b"\x81\xa1")


def test_auto_picks_by_platform() -> None:
    assert service_manager("auto", platform="darwin").name == "launchd"
    assert service_manager("auto", platform="win32").name == "windows"
    if not Path("/run/systemd/system").is_dir():
        with pytest.raises(InstallerError, match="--service-manager none"):
            service_manager("auto", platform="linux")
