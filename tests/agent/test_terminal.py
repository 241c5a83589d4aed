"""Interactive terminals: a real PTY behind the real ``deskside-agent run``."""

from __future__ import annotations

import json
import re
import sys

import psutil  # type: ignore[import-untyped]
import pytest

from deskside.agent.policy import ConsentMode
from deskside.protocol import messages as m
from tests.agent.conftest import Agent, eventually
from tests.agent.fake_console import FakeConsole

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="PTYs are POSIX")


def sleeping(seconds: str) -> bool:
    """True once a ``sleep SECONDS`` process runs (exec'd, so in the foreground group)."""
    for process in psutil.process_iter(["cmdline"]):
        if process.info["cmdline"] == ["sleep", seconds]:
            return True
    return False


class Terminal:
    """The console's end of one terminal session."""

    def __init__(self, console: FakeConsole, device: m.DeviceId, session_id: str) -> None:
        self.console = console
        self.device = device
        self.session_id = session_id
        # ShellData messages sent so far.
        self.seq = 0

    async def open(self, cols: int = 80, rows: int = 24) -> None:
        await self.console.send(
            self.device,
            m.ShellOpen(
                session_id=self.session_id,
                ticket_id=9,
                requested_by="tech",
                cols=cols,
                rows=rows,
                reason="printer",
            ),
        )

    async def type(self, data: bytes) -> None:
        await self.console.send(
            self.device, m.ShellData(session_id=self.session_id, seq=self.seq, data=data)
        )
        self.seq += 1

    def output(self) -> bytes:
        return self.console.shell_output(self.device, self.session_id)

    def lines(self) -> list[str]:
        """The printed lines, without the shell's prompt ("$ " or "# ") in front."""
        text = self.output().decode(errors="replace")
        return [re.sub(r"^(?:[#$] )+", "", line).strip() for line in text.splitlines()]

    async def wait_line(self, text: str, timeout: float = 10.0) -> None:
        """Wait until the terminal printed ``text`` as a whole line."""
        try:
            await self.console.wait_for(lambda: text in self.lines(), timeout)
        except TimeoutError:
            raise AssertionError(f"never printed {text!r}; printed {self.output()!r}") from None

    async def closed(self, timeout: float = 10.0) -> m.ShellClosed:
        await self.console.wait_for(
            lambda: self.console.shell_closed(self.device, self.session_id) is not None, timeout
        )
        closed = self.console.shell_closed(self.device, self.session_id)
        assert closed is not None
        return closed


async def test_terminal_echoes_resizes_interrupts_and_is_recorded(
    console: FakeConsole, agent: Agent
) -> None:
    device = await agent.enroll(console)
    agent.set_policy(consent=ConsentMode.NONE)
    await agent.start_daemon(SHELL="/bin/sh")
    await console.wait_for(lambda: len(console.received(device, m.Hello)) >= 2)

    terminal = Terminal(console, device, "t1")
    await terminal.open(cols=80, rows=24)
    await terminal.type(b"echo hello\n")  # typed before the shell is up: kept for it
    await terminal.wait_line("hello")
    await terminal.type(b"stty size\n")
    await terminal.wait_line("24 80")
    await console.send(device, m.ShellResize(session_id="t1", cols=100, rows=40))
    await terminal.type(b"stty size\n")
    await terminal.wait_line("40 100")
    # Ctrl-C is the byte 0x03: the line discipline interrupts the foreground job.
    await terminal.type(b"sleep 31.5; echo not-interrupted\n")
    await eventually(lambda: sleeping("31.5"))  # ^C before the job started would hit sh
    await terminal.type(b"\x03")
    await terminal.type(b"echo after-$((6*7))\n")
    await terminal.wait_line("after-42")
    assert "not-interrupted" not in terminal.lines()
    await terminal.type(b"exit 3\n")
    closed = await terminal.closed()
    assert (closed.exit_code, closed.refused) == (3, False)
    seqs = [
        message.seq
        for message in console.received(device, m.ShellData)
        if isinstance(message, m.ShellData)
    ]
    assert seqs == list(range(len(seqs)))

    # The transcript: asciinema v2, both directions and the resize, private.
    cast = agent.paths.shells_dir / "t1.cast"
    assert (cast.stat().st_mode & 0o777) == 0o600
    header, *events = [json.loads(line) for line in cast.read_text().splitlines()]
    assert (header["version"], header["width"], header["height"]) == (2, 80, 24)
    assert header["env"]["TERM"] == "xterm-256color"
    kinds = {kind for _, kind, _ in events}
    assert kinds == {"o", "i", "r"}
    typed = "".join(text for _, kind, text in events if kind == "i")
    assert "echo hello\n" in typed
    assert "\x03" in typed
    assert [t >= 0.0 for t, _, _ in events] == [True] * len(events)
    assert [text for _, kind, text in events if kind == "r"] == ["100x40"]
    printed = "".join(text for _, kind, text in events if kind == "o")
    assert "40 100" in printed

    # The audit log: opened and closed; the log of the daemon holds no keystrokes.
    entries = await agent.wait_audit(lambda entries: len(entries) == 2)
    assert [e["event"] for e in entries] == ["shell_opened", "shell_closed"]
    assert (entries[0]["ticket_id"], entries[0]["consent"]) == (9, "policy")
    assert entries[1]["exit_code"] == 3
    assert entries[1]["bytes_in"] > 0
    assert "after-" not in agent.log()


async def test_terminal_closed_by_the_console_or_refused(
    console: FakeConsole, agent: Agent
) -> None:
    device = await agent.enroll(console)
    agent.set_policy(consent=ConsentMode.NONE)
    await agent.start_daemon(SHELL="/bin/sh")
    await console.wait_for(lambda: len(console.received(device, m.Hello)) >= 2)

    terminal = Terminal(console, device, "t2")
    await terminal.open()
    await terminal.type(b"echo ready\n")
    await terminal.wait_line("ready")
    await console.send(device, m.ShellClosed(session_id="t2"))
    closed = await terminal.closed()
    assert closed.exit_code is not None
    assert closed.exit_code < 0  # hung up
    entries = await agent.wait_audit(lambda entries: len(entries) == 2)
    assert entries[1]["reason"] == "closed by the console"

    # The same id again: refused; so is a terminal where the policy forbids it.
    await console.send(device, m.ShellOpen(session_id="t2", ticket_id=9, requested_by="tech"))
    await console.wait_for(
        lambda: (
            sum(
                isinstance(message, m.ShellClosed) and message.refused
                for message in console.messages[device]
            )
            == 1
        )
    )
    await console.stop()
    agent.set_policy(consent=ConsentMode.NONE, terminal=False)
    await console.start()
    await console.wait_for(lambda: len(console.received(device, m.Hello)) >= 3)
    refused = Terminal(console, device, "t3")
    await refused.open()
    closed = await refused.closed()
    assert closed.refused
    assert closed.error == "not allowed by this device's policy: terminals are off"
    entries = await agent.wait_audit(lambda entries: len(entries) == 3)
    assert entries[-1]["event"] == "refused"
    assert entries[-1]["what"] == "terminal"
