"""``deskside-console demo``: a console and a local agent, ready to use.

The demo runs the real programs as processes, as a user would: ``deskside-console
serve`` on SQLite in the data directory, an agent enrolled with a fresh token and
running as ``deskside-agent run``, and one help request filed with ``deskside-agent
help`` (at the first start only: later starts name the same ticket). The agent's
``agent.toml`` gets a policy that lets this console act on it, said in a comment
there; where the machine has no display, the agent gets a virtual desktop (Xvfb with
a window). It then prints where to look, the web console's address and the admin's
sign-in (the password kept in ``DATA_DIR/admin-password``, 0600), and keeps
everything running until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
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
def _running(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` running (with ``env`` added to this environment) until the block ends."""
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env else None,
        )
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


# What the demo adds to its agent's agent.toml, said where the owner reads it.
DEMO_POLICY = """
# --- Added by 'deskside-console demo' --------------------------------------------------
# This agent is the demo's: it allows commands, terminals and screen sessions from
# the console at {console} without asking anyone (consent = "notify" only shows a
# notice; unattended = "allow" lets it run where nobody is logged in to click), so
# that you can try them. A real machine's owner decides this: delete these lines to
# get the defaults back (ask the logged-in user; refuse when nobody can be asked).
# The agent reads this file again at the next request: no restart needed.
[commands]
mode = "any"
consent = "notify"
unattended = "allow"

[screen]
consent = "notify"
unattended = "allow"
"""

# A window for the virtual desktop, so that there is something to see and point at.
_WINDOW = """
import tkinter as tk
root = tk.Tk()
root.title("Deskside demo desktop")
root.geometry("640x360+80+60")
tk.Label(root, text="Deskside demo: a virtual desktop (Xvfb)", font=("Sans", 18)).pack(pady=30)
tk.Label(root, text="The technician sees this screen, and can point and draw on it.").pack()
tk.Entry(root, width=40).pack(pady=20)
root.mainloop()
"""

_TICKET_FILE = "demo-ticket"
_PASSWORD_FILE = "admin-password"  # noqa: S105 - a file name, not a password


def _with_demo_policy(config_file: Path, console_url: str) -> None:
    """Give the demo's agent the policy that lets this console act (said in the file)."""
    text = config_file.read_text(encoding="utf-8")
    if "Added by 'deskside-console demo'" in text:
        return
    # The tables enrollment wrote are replaced by the demo's (a table may appear once).
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped in ("[commands]", "[screen]") or (
                stripped.startswith(("[commands.", "[screen."))
            )
        if not skipping:
            kept.append(line)
    policy = DEMO_POLICY.format(console=console_url)
    config_file.write_text("\n".join(kept).rstrip() + "\n" + policy, encoding="utf-8")


@contextlib.contextmanager
def _virtual_desktop(log: Path, echo: Callable[[str], None]) -> Iterator[str | None]:
    """Where the machine has no display, an Xvfb server with a window on it, stopped with
    the demo: its DISPLAY. None where there is a display, or no Xvfb (said why)."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        yield None
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        echo("No display and no Xvfb: screen viewing cannot be tried (apt install xvfb).")
        yield None
        return
    read_fd, write_fd = os.pipe()
    with log.open("ab") as out:
        server = subprocess.Popen(  # noqa: S603
            [xvfb, "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
        )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as numbers:
            ready, _, _ = select.select([numbers], [], [], 30)  # it says its number when up
            number = numbers.readline().strip().decode("ascii") if ready else ""
        if not number.isdigit():
            raise ConfigError(f"Xvfb did not start; see {log}")
        display = f":{number}"
        with _running([sys.executable, "-c", _WINDOW], log, env={"DISPLAY": display}):
            yield display
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _init(console: list[str], data_dir: Path, port: int, echo: Callable[[str], None]) -> None:
    password_file = data_dir / _PASSWORD_FILE
    result = subprocess.run(  # noqa: S603
        [
            *console,
            "init",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--password-file",
            str(password_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(f"init failed: {result.stderr.strip()}")
    for line in result.stdout.splitlines():
        if line.startswith("Next:"):
            continue  # the demo serves and enrolls its agent itself
        echo(line.replace("(shown this once)", f"(kept in {password_file})"))


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
        _init(console, data_dir, port, echo)
    else:
        echo(f"Using the console in {data_dir}.")
        # The demo's agent lives inside and writes its status.json for anyone to read
        # (as an agent does, for 'deskside-agent status'): serve would refuse the
        # directory at the second start.
        data.make_private()
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
    base = f"https://127.0.0.1:{config.port}"
    stop = {"now": not wait}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with (
            _running([*console, "serve"], logs / "console.log") as server,
            _virtual_desktop(logs / "xvfb.log", echo) as display,
        ):
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
            agent_toml = agent_home / "config" / "agent.toml"
            _with_demo_policy(agent_toml, base)
            env = {"DISPLAY": display} if display else None
            with _running([*agent, "run"], logs / "agent.log", env=env):
                number = _demo_ticket(agent, data_dir / _TICKET_FILE, echo)
                _tell(echo, console, agent, agent_home, data_dir, base, number, display)
                while not stop["now"]:
                    if server.poll() is not None:
                        raise ConfigError("the console stopped; see its log")
                    time.sleep(0.2)
                echo("Stopping.")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _demo_ticket(agent: list[str], record: Path, echo: Callable[[str], None]) -> int | None:
    """The demo's ticket: filed by the agent's help request at the first start, then
    the same one (its number kept in ``record``)."""
    with contextlib.suppress(OSError, ValueError):
        number = int(record.read_text(encoding="ascii").strip())
        echo(f"The demo's ticket is #{number} (filed at the first start).")
        return number
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
    found = re.search(r"Ticket #(\d+) filed", filed.stdout)
    if found is None:
        return None
    number = int(found.group(1))
    record.write_text(f"{number}\n", encoding="ascii")
    return number


def _tell(
    echo: Callable[[str], None],
    console: list[str],
    agent: list[str],
    agent_home: Path,
    data_dir: Path,
    base: str,
    number: int | None,
    display: str | None,
) -> None:
    prefix = f"{_shown(console[0])} --data-dir {data_dir}"
    n = str(number) if number is not None else "N"
    password_file = data_dir / _PASSWORD_FILE
    echo("")
    echo(
        f"The demo agent allows commands, terminals and screen sessions from this console "
        f"without asking: see the comment in {agent_home / 'config' / 'agent.toml'}."
    )
    if display:
        echo(f"It has a virtual desktop (Xvfb {display}, with a window) to view and guide.")
    echo("")
    echo("Try it:")
    echo(f"  {prefix} ticket show {n}")
    echo(f"  {prefix} run --ticket {n} --as admin -- uname -a")
    echo(f"  {prefix} screen --ticket {n} --as admin     (a link to open in the browser)")
    echo(f"  {prefix} ticket assign {n} --me --as admin")
    echo(f"  {prefix} tickets")
    token = f"$({prefix} apitoken create demo --user admin --scope tickets:read)"
    echo(
        f'  curl --cacert {data_dir / "tls" / "cert.pem"} -H "Authorization: Bearer {token}" '
        f"{base}/api/v1/tickets"
    )
    echo(
        f"  Agent: {_shown(agent[0])} --config-dir {agent_home / 'config'} "
        f"--state-dir {agent_home / 'state'} status"
    )
    echo("")
    echo(f"Web console: {base}/  (the certificate is self-signed: {data_dir / 'tls' / 'cert.pem'})")
    if password_file.exists():
        password = password_file.read_text(encoding="utf-8").strip()
        echo(f"  sign in as admin, password {password}  (kept in {password_file})")
    else:
        echo("  sign in as admin with the password shown when this console was created")
    echo("Ready. Ctrl-C stops the console and the agent.")
