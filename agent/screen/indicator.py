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
other window, and says who watches for which ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
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
            )
            await process.stdin.drain()
        process.stdin.close()
        return cls(process)

    async def wait(self) -> int:
        """Wait until the window closes; its exit code."""
        return await self.process.wait()

    async def close(self) -> None:
        """Take the window away (the session ended)."""
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
    tk.Label(
        frame,
        text=f"{who} is viewing your screen\n(ticket #{ticket_id}"
        + (", recorded)" if recorded else ")"),
        fg="white",
        bg="#b00020",
        justify="left",
    ).pack(side="left")
    tk.Button(frame, text="Stop", command=root.destroy).pack(side="right", padx=(10, 0))

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


def main(args: Sequence[str] | None = None) -> int:
    """``python -m deskside.agent.screen.indicator`` with the session on stdin."""
    del args
    try:
        document = json.loads(sys.stdin.buffer.read(1 << 16))
        requested_by = str(document.get("requested_by", ""))[:256]
        ticket_id = int(document["ticket_id"])
        recorded = bool(document.get("recorded", False))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"bad input: {exc}", file=sys.stderr)
        return 64
    return _window(requested_by, ticket_id, recorded)


if __name__ == "__main__":
    sys.exit(main())
