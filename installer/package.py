"""What the console serves to install agents: their wheel and the install scripts.

The wheel is the code the console itself runs, packed from the installed
``deskside`` package (``build_wheel``): every file of the ``deskside.*`` packages
and the distribution's metadata, in a reproducible zip (fixed times, sorted
names), so building it twice gives the same bytes. It works for every way the
console may be installed, because each part (``PARTS``) is looked up the way
Python imports it: in a regular install, ``site-packages/deskside/<part>``; in a
strict editable one (``editable_mode=strict``), its tree of links; in a plain
``pip install -e .``, the working tree's ``<part>/``, which setuptools' finder
maps ``deskside.<part>`` to (there the ``deskside`` namespace's own path is only
a placeholder for that finder's path hook, and no directory). An editable
install has no wheel of its own: its files come from the working tree, with the
version its metadata says.

The scripts (``agent.sh``, ``agent.ps1`` beside this module) are templates; the
version and the fetch helper (``fetch.py``) are filled in when served.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from .base import InstallerError

__all__ = [
    "PARTS",
    "SCRIPTS",
    "build_wheel",
    "https_base",
    "install_lines",
    "render_script",
    "wheel_name",
]

DISTRIBUTION: Final = "deskside"
# The distribution's packages, deskside.<part> (pyproject.toml's package-dir).
PARTS: Final = ("agent", "channel", "console", "installer", "protocol")
# The scripts served at /install/<name>.
SCRIPTS: Final = ("agent.sh", "agent.ps1")
_ZIP_TIME: Final = (1980, 1, 1, 0, 0, 0)


def wheel_name(version: str | None = None) -> str:
    """The wheel's file name for this version (the running one by default)."""
    version = version or importlib.metadata.version(DISTRIBUTION)
    return f"{DISTRIBUTION}-{version}-py3-none-any.whl"


def _package_files() -> Iterator[tuple[str, Path]]:
    """(name in the wheel, file) for every file of the ``deskside.*`` packages."""
    for part in PARTS:
        name = f"{DISTRIBUTION}.{part}"
        try:
            spec = importlib.util.find_spec(name)
        except ImportError as exc:
            raise InstallerError(f"{name} cannot be found: {exc}") from exc
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations or not (Path(locations[0]) / "__init__.py").is_file():
            raise InstallerError(f"{name} cannot be found as a package ({locations or spec})")
        root = Path(locations[0])
        for directory, dirs, files in os.walk(root, followlinks=True):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            for file in sorted(files):
                if file.endswith((".pyc", ".pyo")) or file.startswith("."):
                    continue
                path = Path(directory) / file
                yield f"{DISTRIBUTION}/{part}/{path.relative_to(root).as_posix()}", path


def _metadata_text(dist: importlib.metadata.Distribution, *names: str) -> str:
    for name in names:
        text = dist.read_text(name)
        if text is not None:
            return text
    raise InstallerError(f"the installed deskside has no {names[0]}")


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(directory: Path) -> Path:
    """Pack the running deskside into ``directory/<wheel name>`` (replaced); its path."""
    dist = importlib.metadata.distribution(DISTRIBUTION)
    version = dist.version
    info = f"{DISTRIBUTION}-{version}.dist-info"
    entries: list[tuple[str, bytes]] = [(n, p.read_bytes()) for n, p in _package_files()]
    entries.append((f"{info}/METADATA", _metadata_text(dist, "METADATA", "PKG-INFO").encode()))
    entries.append(
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: deskside.installer\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        )
    )
    entries.append((f"{info}/entry_points.txt", _metadata_text(dist, "entry_points.txt").encode()))
    record = [_record_line(name, data) for name, data in entries]
    record.append(f"{info}/RECORD,,")
    entries.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / wheel_name(version)
    fd, temp = tempfile.mkstemp(prefix=".wheel-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file, zipfile.ZipFile(file, "w") as archive:
            for name, data in entries:
                item = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                item.compress_type = zipfile.ZIP_DEFLATED
                item.external_attr = 0o644 << 16
                archive.writestr(item, data)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def render_script(name: str, version: str | None = None) -> str:
    """The install script ``name`` (one of ``SCRIPTS``) with the version filled in."""
    if name not in SCRIPTS:
        raise InstallerError(f"no install script {name!r}")
    files = importlib.resources.files(__package__ or "deskside.installer")
    template = files.joinpath(name).read_text(encoding="utf-8")
    fetch = files.joinpath("fetch.py").read_text(encoding="utf-8").rstrip("\n")
    version = version or importlib.metadata.version(DISTRIBUTION)
    return template.replace("@VERSION@", version).replace("@FETCH_PY@", fetch)


def https_base(agent_url: str) -> str:
    """The console's HTTPS origin, from the agents' ``wss://host:port/agent`` URL."""
    parts = urlsplit(agent_url)
    if parts.scheme != "wss" or not parts.hostname:
        raise InstallerError(
            f"agents reach this console at {agent_url!r}, not over wss://: "
            "the install line needs the console's TLS certificate to pin"
        )
    return f"https://{parts.netloc}"


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def install_lines(
    agent_url: str, enrollment: str, *, public_key_pin: str, fingerprint: str
) -> dict[str, str]:
    """The one-line install commands: ``sh`` (Linux, macOS, for the machine), ``sh_user``
    (for the user's desktop session) and ``powershell`` (Windows).

    The shell line fetches the script with curl pinned to the console's public key
    (``--pinnedpubkey``; ``-k`` only because the certificate is self-signed); the
    PowerShell line accepts only the certificate whose SHA-256 is ``fingerprint``.
    """
    base = https_base(agent_url)
    fetch = f"curl -fsSk --pinnedpubkey {_sh_quote('sha256//' + public_key_pin)} "
    sh = f"{fetch}{base}/install/agent.sh | sudo sh -s -- {_sh_quote(enrollment)}"
    sh_user = f"{fetch}{base}/install/agent.sh | sh -s -- {_sh_quote(enrollment)} --user"
    ps = (
        'powershell -NoProfile -ExecutionPolicy Bypass -Command "'
        "[Net.ServicePointManager]::SecurityProtocol='Tls12';"
        "[Net.ServicePointManager]::ServerCertificateValidationCallback={param($s,$c)"
        "$c.GetCertHashString([Security.Cryptography.HashAlgorithmName]::SHA256)"
        f" -eq '{fingerprint}'}};"
        f"$t=(New-Object Net.WebClient).DownloadString('{base}/install/agent.ps1');"
        f"& ([scriptblock]::Create($t)) '{enrollment}'\""
    )
    return {"sh": sh, "sh_user": sh_user, "powershell": ps}
