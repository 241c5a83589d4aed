"""The browser libraries come from npm (package-lock.json), are installed by the
set-up scripts and packed into the wheel; none of their code is in git."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from deskside.console.web.assets import VENDOR_DIR, VENDOR_FILES, missing_vendor_files
from tests.test_package import ROOT


def test_the_lockfile_pins_every_library_exactly() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    for name, version in package["dependencies"].items():
        assert version[0].isdigit(), f"{name} is not pinned exactly: {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
        assert lock["packages"][f"node_modules/{name}"]["integrity"].startswith("sha512-")


def test_no_third_party_browser_code_is_in_git() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "console/web"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked
    assert not [path for path in tracked if "/vendor/" in path or "node_modules" in path]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(VENDOR_DIR / "htmx.min.js")], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0


def test_the_set_up_installed_the_libraries() -> None:
    assert missing_vendor_files() == []
    assert b"htmx" in (VENDOR_DIR / "htmx.min.js").read_bytes()[:2000]


def test_the_wheel_packs_the_pages_and_their_libraries(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("deskside-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in VENDOR_FILES:
        assert f"deskside/console/web/vendor/{name}" in names
    for ours in ("static/app.css", "static/app.js", "static/shortcuts.js", "templates/base.html"):
        assert f"deskside/console/web/{ours}" in names
    assert "deskside/console/web/templates/tickets/queue.html" in names
