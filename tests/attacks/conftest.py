"""A console process with two technicians and an agent channel, for the probes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

# An agent channel the test answers for (enrolled with this module's console).
from tests.console.commands.test_routes import agent  # noqa: F401 (a fixture)
from tests.consoleproc import ConsoleProcess

ALL = ("tickets:read", "tickets:write", "devices:read", "devices:write", "commands:run")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    process = ConsoleProcess(tmp_path_factory.mktemp("console") / "data")
    for name in ("tech-b", "tech-c"):
        process.cli("user", "add", name, "--role", "technician")
    with process:
        yield process


def user_token(console: ConsoleProcess, user: str, *scopes: str) -> str:
    """An API token acting for the technician ``user``."""
    args = ["apitoken", "create", f"probe-{user}", "--user", user]
    for scope in scopes or ALL:
        args += ["--scope", scope]
    return console.cli(*args).stdout.strip()


@pytest.fixture(scope="module")
def admin(console: ConsoleProcess) -> Iterator[httpx.Client]:
    """The API as a service token with every scope (sets the scene)."""
    with console.api(console.api_token(*ALL, "audit:read")) as client:
        yield client
