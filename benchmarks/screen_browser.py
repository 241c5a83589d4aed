"""The capture-to-canvas delay of ``benchmarks/screen.py --browser``.

The real console and the real agent daemon (``[screen] consent = "none"``, so no
prompt) as processes, the viewer page in Debian's chromium (Playwright, headless).
The page records, for every frame it draws, its clock minus the agent's capture
time (``window.deskside.screen.delays``): both clocks are this machine's.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from playwright.sync_api import sync_playwright

from deskside.agent.config import AgentPaths, load_config, save_config
from deskside.agent.policy import ConsentMode
from deskside.agent.screen.policy import ScreenPolicy
from tests.consoleproc import ConsoleProcess
from tests.helpers import script

__all__ = ["Viewer"]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Viewer:
    """Console, agent and browser, watching ``display``; used as a context manager."""

    def __init__(self, display: str, *, fps: float, quality: int) -> None:
        self.display, self.fps, self.quality = display, fps, quality
        self._tmp = tempfile.TemporaryDirectory()
        root = Path(self._tmp.name)
        self.console = ConsoleProcess(root / "console")
        self.paths = AgentPaths(config_dir=root / "agent-config", state_dir=root / "agent-state")
        self._agent: subprocess.Popen[bytes] | None = None
        self._playwright: Any = None
        self.page: Any = None

    def _agent_cli(self, *args: str) -> str:
        argv = [script("deskside-agent"), "--config-dir", str(self.paths.config_dir),
                "--state-dir", str(self.paths.state_dir), *args]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    def __enter__(self) -> Viewer:
        self.console.start()
        token = self.console.api_token("tickets:read", "tickets:write", "commands:run")
        out = self._agent_cli("enroll", self.console.enrollment())
        found = re.search(r"\bd[0-9a-f]{19}\b", out)
        assert found, out
        device = found.group(0)
        config = load_config(self.paths)
        assert config is not None
        save_config(
            self.paths,
            dataclasses.replace(config, screen=ScreenPolicy(consent=ConsentMode.NONE)),
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("DESKSIDE_")}
        self._agent = subprocess.Popen(
            [script("deskside-agent"), "--config-dir", str(self.paths.config_dir),
             "--state-dir", str(self.paths.state_dir), "run"],
            env={**env, "DISPLAY": self.display},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while device not in self.console.cli("devices").stdout or not re.search(
            rf"{device}.*  online  ", self.console.cli("devices").stdout
        ):
            assert time.monotonic() < deadline, "the agent did not come online"
            time.sleep(0.2)
        with self.console.api(token) as api:
            created = api.post(
                "/api/v1/tickets",
                json={"title": "benchmark", "description": "screen", "device_id": device},
            )
            created.raise_for_status()
            ticket = created.json()["id"]
        self._playwright = sync_playwright().start()
        browser = self._playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        context = browser.new_context(
            ignore_https_errors=True, viewport={"width": 1920, "height": 1200}
        )
        self.page = context.new_page()
        self.page.goto(
            f"{self.console.base_url}/viewer/screen.html#ticket={ticket}&token={token}"
            f"&fps={self.fps:g}&quality={self.quality}"
        )
        self.page.wait_for_function("window.deskside.screen.frames > 0", timeout=30000)
        return self

    def delays(self, seconds: float) -> tuple[float, float, int]:
        """Delays (ms) of the frames drawn in the next ``seconds``: p50, p95, count."""
        self.page.evaluate("window.deskside.screen.delays.length = 0")
        time.sleep(seconds)
        samples = [1000 * d for d in self.page.evaluate("window.deskside.screen.delays")]
        if not samples:
            return float("nan"), float("nan"), 0
        return percentile(samples, 0.5), percentile(samples, 0.95), len(samples)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._playwright is not None:
            self._playwright.stop()
        if self._agent is not None:
            self._agent.terminate()
            self._agent.wait(10)
        if self.console.process is not None:
            self.console.stop()
        self._tmp.cleanup()
