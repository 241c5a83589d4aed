"""Each side installs what it imports, and the agent's side nothing of the console's.

The distribution has three sets of requirements (``pyproject.toml``): the base, for
``deskside.protocol`` and ``deskside.channel``, which both sides run; the ``agent``
extra, for ``deskside.agent`` and ``deskside.installer`` (the installer runs on the
agent's machine); the ``console`` extra. The requirements are read from the wheel
the console serves to agents (``build_wheel``), which is what pip reads on an
agent's machine; the imports from the source (every ``import`` statement, lazy
ones too) and from the interpreter (what importing every agent-side module loads).
``tests/installer/test_install_script.py`` checks the agent's own environment, made
by the install line: ``agent_side_imports`` run with its Python.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import zipfile
from email.parser import HeaderParser

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deskside.installer.package import build_wheel
from tests.test_package import ROOT, imports_of

# The parts that run on an agent's machine, and the extra that installs them.
AGENT_SIDE = ("agent", "channel", "installer", "protocol")
SIDES = {"agent": AGENT_SIDE, "console": ("channel", "console", "protocol")}
# What only the help desk's server needs: never on an agent's machine.
CONSOLE_ONLY = frozenset(
    {
        "aiosqlite",
        "alembic",
        "argon2-cffi",
        "asyncpg",
        "httpx",
        "jinja2",
        "litestar",
        "markdown-it-py",
        "markupsafe",
        "prometheus-client",
        "pyotp",
        "redis",
        "segno",
        "sqlalchemy",
        "uvicorn",
        "webauthn",
    }
)
PLATFORMS = {
    "linux": {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"},
    "darwin": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix"},
    "win32": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"},
}
# Modules of distributions that are not installed on this platform, and theirs.
_ELSEWHERE = dict.fromkeys(
    ("servicemanager", "win32event", "win32service", "win32serviceutil"), "pywin32"
)
# Agent-side modules that import only on another platform.
_PLATFORM_MODULES = {"deskside.installer.winservice": "win32"}

# Run by a Python with ``-I``: imports every module of the agent's side and prints
# what failed, the modules then loaded and the distributions installed.
_IMPORT_AGENT_SIDE = f"""
import importlib, importlib.metadata, json, pkgutil, sys
failed = {{}}
for package in {tuple(f"deskside.{part}" for part in AGENT_SIDE)!r}:
    path = importlib.import_module(package).__path__
    for info in pkgutil.walk_packages(path, package + "."):
        try:
            importlib.import_module(info.name)
        except BaseException as exc:
            failed[info.name] = repr(exc)
print(json.dumps({{
    "failed": failed,
    "modules": sorted(sys.modules),
    "distributions": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
}}))
"""


def agent_side_imports(python: str) -> dict[str, list[str]]:
    """Import every agent-side module with ``python``: ``failed`` (those that could not
    be imported, but for the platform's), ``modules`` (``sys.modules`` then) and
    ``distributions`` (canonical names of what is installed).
    """
    result = subprocess.run(
        [python, "-I", "-c", _IMPORT_AGENT_SIDE], capture_output=True, text=True, check=True
    )
    found = json.loads(result.stdout)
    failed = [
        f"{name}: {error}"
        for name, error in found["failed"].items()
        if _PLATFORM_MODULES.get(name, sys.platform) == sys.platform
    ]
    distributions = [canonicalize_name(name) for name in found["distributions"]]
    return {"failed": failed, "modules": found["modules"], "distributions": distributions}


@pytest.fixture(scope="module")
def served_requirements(tmp_path_factory: pytest.TempPathFactory) -> list[Requirement]:
    """The Requires-Dist lines of the wheel this installation serves to agents."""
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = HeaderParser().parsestr(archive.read(name).decode())
    return [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]


def required(requirements: list[Requirement], extra: str, platform: str) -> set[str]:
    """The distributions that ``deskside[extra]`` requires on ``platform`` (directly)."""
    names: set[str] = set()
    for requirement in requirements:
        marker = requirement.marker  # evaluated over this Python's environment
        if marker is None or marker.evaluate({**PLATFORMS[platform], "extra": extra}):
            names.add(canonicalize_name(requirement.name))
    return names


def installed_closure(requirements: list[Requirement], extra: str) -> set[str]:
    """What ``deskside[extra]`` pulls in on this platform: its requirements and theirs,
    as the installed distributions declare them."""
    todo = [(r, extra) for r in requirements]
    seen: set[str] = set()
    while todo:
        requirement, wanted = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": wanted}):
            continue
        name = canonicalize_name(requirement.name)
        extras = requirement.extras or {""}
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            dependencies = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here, so not loaded here either
        todo += [(Requirement(line), e) for line in dependencies for e in extras]
    return {key.split("[")[0] for key in seen}


def third_party_imports(part: str) -> dict[str, set[str]]:
    """The distributions whose modules ``part``'s source imports: name -> files."""
    modules = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / part).rglob("*.py")):
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("deskside", "__future__", ""):
                continue
            distributions = modules.get(top) or [_ELSEWHERE.get(top, f"? (module {top})")]
            for distribution in distributions:
                found.setdefault(canonicalize_name(distribution), set()).add(
                    str(path.relative_to(ROOT))
                )
    return found


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_agent_requires_nothing_of_the_console(
    served_requirements: list[Requirement], platform: str
) -> None:
    agent = required(served_requirements, "agent", platform)
    assert agent >= {"cryptography", "msgspec", "websockets", "psutil", "click"}
    assert not agent & CONSOLE_ONLY
    console = required(served_requirements, "console", platform)
    assert console >= CONSOLE_ONLY
    assert not console & {"psutil", "pynput", "mss", "av"}
    # Nor does anything the agent's requirements pull in, as installed here.
    if platform == sys.platform:
        assert not installed_closure(served_requirements, "agent") & CONSOLE_ONLY


@pytest.mark.parametrize("side", sorted(SIDES))
def test_each_side_requires_what_it_imports(
    served_requirements: list[Requirement], side: str
) -> None:
    declared = set.union(*(required(served_requirements, side, p) for p in PLATFORMS))
    for part in SIDES[side]:
        missing = {
            name: sorted(files)
            for name, files in third_party_imports(part).items()
            if name not in declared
        }
        assert not missing, f"deskside[{side}] does not require what {part}/ imports: {missing}"


def test_importing_the_agent_side_loads_nothing_of_the_console() -> None:
    """In this environment, where the console's dependencies are installed too."""
    found = agent_side_imports(sys.executable)
    assert not found["failed"]
    console_modules = {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if {canonicalize_name(d) for d in distributions} & CONSOLE_ONLY
    }
    assert {"litestar", "sqlalchemy", "argon2"} <= console_modules
    loaded = set(found["modules"])
    assert {"deskside.agent.daemon", "deskside.installer.systemd"} <= loaded
    leaked = {name for name in loaded if name.split(".")[0] in console_modules}
    leaked |= {name for name in loaded if name.startswith("deskside.console")}
    assert not leaked
