"""Fixtures of the agent tests: a fake console, and the real agent in subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deskside.agent.audit import read_entries
from deskside.agent.config import AgentPaths, load_config, save_config
from deskside.agent.policy import CommandPolicy
from deskside.protocol.messages import DeviceId
from tests.agent.fake_console import FakeConsole
from tests.helpers import script

# Short delays so reconnection tests take seconds, not minutes.
FAST_ENV = {
    "DESKSIDE_AGENT_BACKOFF_MAX": "0.5",
    "DESKSIDE_AGENT_SPOOL_INTERVAL": "0.5",
}


@dataclass
class Result:
    """How a finished ``deskside-agent`` process ended."""

    returncode: int
    stdout: str
    stderr: str


class Agent:
    """The ``deskside-agent`` console script, run with its directories in tmp_path."""

    def __init__(self, root: Path) -> None:
        # The agent's directories (created by the agent itself).
        self.paths = AgentPaths(config_dir=root / "config", state_dir=root / "state")
        self.script = script("deskside-agent")
        # Where each daemon's stderr (its log) goes.
        self.log_path = root / "daemon.log"
        # Daemons started by the test, ended at teardown.
        self.processes: list[asyncio.subprocess.Process] = []

    def argv(self, *args: str) -> list[str]:
        """The command line of ``deskside-agent ARGS`` with this agent's directories."""
        return [
            self.script,
            "--config-dir",
            str(self.paths.config_dir),
            "--state-dir",
            str(self.paths.state_dir),
            *args,
        ]

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of an agent process (no desktop session unless given)."""
        env = {**os.environ, **FAST_ENV}
        for variable in (
            "DESKSIDE_AGENT_CONFIG_DIR",
            "DESKSIDE_AGENT_STATE_DIR",
            "DISPLAY",
            "WAYLAND_DISPLAY",
        ):
            env.pop(variable, None)
        env.update(extra)
        return env

    async def cli(self, *args: str, timeout: float = 30.0) -> Result:
        """Run ``deskside-agent ARGS`` to the end (without blocking the event loop)."""
        process = await asyncio.create_subprocess_exec(
            *self.argv(*args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(),
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode is not None
        return Result(process.returncode, stdout.decode(), stderr.decode())

    async def start_daemon(self, **env: str) -> asyncio.subprocess.Process:
        """Start ``deskside-agent run`` (``env``: extra variables); its log goes to ``log_path``."""
        with self.log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *self.argv("run", "--log-level", "DEBUG"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                env=self.env(**env),
            )
        self.processes.append(process)
        return process

    def log(self) -> str:
        """What the daemons logged so far."""
        return self.log_path.read_text() if self.log_path.exists() else ""

    async def wait_log(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:
        """Wait until the daemon log satisfies ``predicate``; the log."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(text := self.log()):
            if loop.time() > deadline:
                raise AssertionError(f"the daemon log never matched; it says:\n{text}")
            await asyncio.sleep(0.05)
        return text

    def set_heartbeat(self, seconds: float) -> None:
        """Write a heartbeat override into the agent's configuration."""
        import dataclasses

        config = load_config(self.paths)
        assert config is not None
        save_config(self.paths, dataclasses.replace(config, heartbeat_interval=seconds))

    def set_policy(self, **fields: Any) -> None:
        """Write a ``[commands]`` policy (fields of ``CommandPolicy``) into agent.toml."""
        import dataclasses

        config = load_config(self.paths)
        assert config is not None
        save_config(self.paths, dataclasses.replace(config, commands=CommandPolicy(**fields)))

    def audit(self) -> list[dict[str, Any]]:
        """The entries of the agent's audit log."""
        entries = list(read_entries(self.paths.audit_file))
        assert all(entry is not None for entry in entries)
        return [entry for entry in entries if entry is not None]

    async def wait_audit(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until the audit log satisfies ``predicate``; its entries."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(entries := self.audit()):
            if loop.time() > deadline:
                raise AssertionError(f"the audit log never matched; it holds:\n{entries}")
            await asyncio.sleep(0.05)
        return entries

    async def enroll(self, console: FakeConsole) -> DeviceId:
        """Enroll with ``console``; the device id."""
        result = await self.cli("enroll", console.enrollment_string(console.new_token()))
        assert result.returncode == 0, result.stderr
        config = load_config(self.paths)
        assert config is not None
        return config.device_id

    async def stop_all(self) -> None:
        """End the daemons still running (SIGTERM, then SIGKILL)."""
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 5)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` is true, polling."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("the condition never became true")
        await asyncio.sleep(0.02)


@pytest.fixture
async def console() -> AsyncIterator[FakeConsole]:
    """A fake console listening on 127.0.0.1 (ws://)."""
    fake = FakeConsole()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    """The agent, with its directories under tmp_path; daemons are ended afterwards."""
    the_agent = Agent(tmp_path)
    try:
        yield the_agent
    finally:
        await the_agent.stop_all()


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("the agent tests use POSIX signals and permissions", allow_module_level=True)
