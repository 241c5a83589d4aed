"""``deskside-console demo``: a console and a local agent, ready to use.

The demo runs the real programs as processes, as a user would: ``deskside-console
serve`` on SQLite in the data directory, an agent enrolled with a fresh token and
running as ``deskside-agent run``, and one help request filed with ``deskside-agent
help``. It then prints where to look and keeps both running until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from deskside.protocol.errors import ConfigError

from .config import ConsoleConfig, DataDir

__all__ = ["run_demo"]


def _script(name: str) -> str:
    """A console script of this installation (next to the running interpreter)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise ConfigError(f"{name} is not installed next to {sys.executable}")
    return str(path)


def _shown(path: str) -> str:
    """A script's path as the user can type it: relative to here when it is below."""
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(Path.cwd()))
    return path


def _wait_ready(config: ConsoleConfig, process: subprocess.Popen[bytes], timeout: float) -> None:
    context = ssl.create_default_context(cafile=str(config.tls_cert)) if config.tls_cert else None
    scheme = "https" if config.tls_cert else "http"
    url = f"{scheme}://127.0.0.1:{config.port}/readyz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError("the console stopped during start-up; see its log")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, context=context, timeout=2) as response,  # noqa: S310
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise ConfigError(f"the console did not become ready in {timeout:g} s")


@contextlib.contextmanager
def _running(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_demo(
    data_dir: Path,
    port: int,
    echo: Callable[[str], None],
    *,
    wait: bool = True,
) -> None:
    """Run the demo in ``data_dir`` until SIGINT or SIGTERM (or at once if not ``wait``)."""
    console = [_script("deskside-console"), "--data-dir", str(data_dir)]
    data = DataDir(data_dir)
    if not data.initialized():
        result = subprocess.run(  # noqa: S603
            [*console, "init", "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ConfigError(f"init failed: {result.stderr.strip()}")
        echo(result.stdout.rstrip())
    else:
        echo(f"Using the console in {data_dir} (its admin password was shown at init).")
    config = ConsoleConfig.load(data_dir)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    agent_home = data_dir / "demo-agent"
    agent = [
        _script("deskside-agent"),
        "--config-dir",
        str(agent_home / "config"),
        "--state-dir",
        str(agent_home / "state"),
    ]
    stop = {"now": not wait}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _running([*console, "serve"], logs / "console.log") as server:
            _wait_ready(config, server, 60)
            echo(f"Console running on port {config.port} (log: {logs / 'console.log'})")
            if not (agent_home / "config").exists():
                enrollment = subprocess.run(  # noqa: S603
                    [*console, "token", "create", "--ttl", "15m"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                enrolled = subprocess.run(  # noqa: S603
                    [*agent, "enroll", enrollment], capture_output=True, text=True, check=False
                )
                if enrolled.returncode != 0:
                    raise ConfigError(f"the demo agent could not enroll: {enrolled.stderr.strip()}")
                echo(f"Local agent enrolled: {enrolled.stdout.strip()}")
            with _running([*agent, "run"], logs / "agent.log"):
                filed = subprocess.run(  # noqa: S603
                    [
                        *agent,
                        "help",
                        "Demo: the printer on floor 2 prints blank pages",
                        "--impact",
                        "medium",
                        "--urgency",
                        "high",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                echo(f"Help request from the agent: {filed.stdout.strip() or filed.stderr.strip()}")
                prefix = f"{_shown(console[0])} --data-dir {data_dir}"
                echo("")
                echo("Look at it:")
                echo(f"  {prefix} tickets")
                echo(f"  {prefix} ticket show 1")
                echo(f"  {prefix} devices")
                echo(f"  {prefix} apitoken create NAME --scope tickets:read   (for the REST API)")
                base = f"https://127.0.0.1:{config.port}"
                echo(f"  REST API: {base}/api/v1/tickets (OpenAPI: {base}/api/schema/openapi.json)")
                echo(
                    f"  Agent:    {_shown(agent[0])} --config-dir {agent_home / 'config'} "
                    f"--state-dir {agent_home / 'state'} status"
                )
                echo("Ready. Ctrl-C stops the console and the agent.")
                while not stop["now"]:
                    if server.poll() is not None:
                        raise ConfigError("the console stopped; see its log")
                    time.sleep(0.2)
                echo("Stopping.")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
