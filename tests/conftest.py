"""Test-session hooks shared by the whole suite."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.consoleproc import ConsoleProcess
from tests.postgres import postgres_server
from tests.redisserver import RedisServer


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleProcess]:
    """A running console (``deskside-console serve``) with its data in ``tmp_path``."""
    with ConsoleProcess(tmp_path / "console") as process:  # a test may stop it itself
        yield process


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the whole test session (its ``postgres`` database)."""
    # Not under pytest's temporary directory: the postgres user could not enter it.
    base = Path(tempfile.mkdtemp(prefix="deskside-pg-"))
    try:
        with postgres_server(base) as url:
            yield url
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server for the whole test session; use ``redis`` in a test."""
    base = Path(tempfile.mkdtemp(prefix="deskside-redis-"))
    server = RedisServer(base)
    server.start()
    try:
        yield server
    finally:
        if server.running():
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session's Redis server, running and empty; started again after the test if
    the test stopped it."""
    if not redis_server.running():
        redis_server.start()
    redis_server.flush()
    yield redis_server
    if not redis_server.running():
        redis_server.start()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many published Noise test vectors passed in this run."""
    noise_tests = sys.modules.get("tests.protocol.test_noise")
    if noise_tests is None:
        return
    passed = len(noise_tests.VECTORS_PASSED)
    total = len(noise_tests.VECTORS)
    terminalreporter.write_line(
        f"Noise test vectors: {passed} of {total} passed ({noise_tests.VECTORS_PATH})"
    )
