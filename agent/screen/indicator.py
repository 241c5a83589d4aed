"""The "your screen is shared" indicator: an always-on-top window with a Stop button.

The daemon starts ``python -m deskside.agent.screen.indicator`` with what to show
as JSON on stdin (``requested_by``, ``ticket_id``) and keeps it running for the
whole session; it kills it when the session ends. The window's exit code:

====  ===========================================================
0     the user clicked Stop (or closed the window): end at once
3     no window could be opened (no desktop session)
64    bad input
====  ===========================================================

The window, titled "Screen shared", sits in the top right corner, above every
other window, and says who watches for which ticket. The first line of stdin is
the session; later lines (``{"control": true}``) say whether the technician has
control of the mouse and keyboard, which the window then says too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import sys
import threading
from collections.abc import Sequence
from typing import Final

__all__ = ["TITLE", "Indicator", "main"]

logger = logging.getLogger(__name__)

TITLE: Final = "Screen shared"
STOPPED: Final = 0
NO_DESKTOP: Final = 3


class Indicator:
    """The indicator process, from the daemon's side."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def show(cls, requested_by: str, ticket_id: int, *, recorded: bool = False) -> Indicator:
        """Start the window (``OSError`` if the process cannot start)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "deskside.agent.screen.indicator",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        assert process.stdin is not None
        with contextlib.suppress(ConnectionError):
            process.stdin.write(
                json.dumps(
                    {"requested_by": requested_by, "ticket_id": ticket_id, "recorded": recorded}
                ).encode()
                + b"\n"
            )
            await process.stdin.drain()
        return cls(process)

    async def set_control(self, on: bool) -> None:
        """Say on the window whether the technician controls the mouse and keyboard."""
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing() or self.process.returncode is not None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            stdin.write(json.dumps({"control": on}).encode() + b"\n")
            await stdin.drain()

    async def wait(self) -> int:
        """Wait until the window closes; its exit code."""
        return await self.process.wait()

    async def close(self) -> None:
        """Take the window away (the session ended)."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()


def _window(requested_by: str, ticket_id: int, recorded: bool) -> int:
    import tkinter as tk

    try:
        root = tk.Tk(className="deskside-indicator")
    except tk.TclError:
        return NO_DESKTOP
    root.title(TITLE)
    root.attributes("-topmost", True)
    root.resizable(False, False)
    root.protocol("WM_DELETE_WINDOW", root.destroy)
    frame = tk.Frame(root, padx=10, pady=6, bg="#b00020")
    frame.pack(fill="both", expand=True)
    who = requested_by or "Your help desk"
    viewing = f"{who} is viewing your screen\n(ticket #{ticket_id}" + (
        ", recorded)" if recorded else ")"
    )
    label = tk.Label(frame, text=viewing, fg="white", bg="#b00020", justify="left")
    label.pack(side="left")
    tk.Button(frame, text="Stop", command=root.destroy).pack(side="right", padx=(10, 0))
    updates: queue.SimpleQueue[bool] = queue.SimpleQueue()

    def read_updates() -> None:
        # os.read, not sys.stdin: a daemon thread blocked in a buffered read at exit
        # would make the interpreter abort.
        pending = b""
        while chunk := os.read(0, 4096):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError, AttributeError):
                    updates.put(bool(json.loads(line).get("control")))

    threading.Thread(target=read_updates, daemon=True).start()

    def show_updates() -> None:
        control = None
        while not updates.empty():
            control = updates.get()
        if control is not None:
            text = viewing.replace("is viewing your screen", "controls your mouse and keyboard")
            label.configure(text=text if control else viewing)
            root.update_idletasks()
            x = root.winfo_screenwidth() - root.winfo_reqwidth() - 8
            root.geometry(f"+{max(0, x)}+8")
        root.after(200, show_updates)

    show_updates()

    def keep_on_top() -> None:
        root.lift()
        root.attributes("-topmost", True)
        root.after(2000, keep_on_top)

    root.update_idletasks()
    x = root.winfo_screenwidth() - root.winfo_reqwidth() - 8
    root.geometry(f"+{max(0, x)}+8")
    keep_on_top()
    root.mainloop()
    return STOPPED


def _first_line() -> bytes:
    """The first line of stdin, read unbuffered (the rest is for the window's thread)."""
    line = b""
    while len(line) < 1 << 16 and (byte := os.read(0, 1)) and byte != b"\n":
        line += byte
    return line


def main(args: Sequence[str] | None = None) -> int:
    """``python -m deskside.agent.screen.indicator`` with the session on stdin."""
    del args
    try:
        document = json.loads(_first_line())
        requested_by = str(document.get("requested_by", ""))[:256]
        ticket_id = int(document["ticket_id"])
        recorded = bool(document.get("recorded", False))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"bad input: {exc}", file=sys.stderr)
        return 64
    return _window(requested_by, ticket_id, recorded)


if __name__ == "__main__":
    sys.exit(main())
