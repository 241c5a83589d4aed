"""The user's chat window: ``python -m deskside.agent.chat.window``, run by the daemon.

The daemon starts it when a technician's first line arrives (where a desktop
exists) and talks to it in JSON lines, one object a line; the window holds nothing
but the conversation (never the device key, never the channel)::

    daemon -> window (stdin)   {"line": {"from": "user:alice", "text": "...",
                                 "ticket": 12, "at": 1700000000.0, "mine": false}}
                               {"notice": "..."}
    window -> daemon (stdout)  {"ready": true}  (once the window could be opened)
                               {"ticket": 12, "text": "..."}

The window, "Chat with your help desk", is small, always on top, and shows every
text literally (a Tk ``Text`` widget interprets nothing). Closing it hides it; a new
line from the technician brings it back and, when it was hidden or not focused,
raises a desktop notification: ``notify-send`` if installed, else the
freedesktop Notifications service over D-Bus (``gdbus``) if the session has a bus;
without either, the window's reappearance and the bell are the notice. End of
input (the daemon stopped or closed it) ends the window.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any, Final, TextIO

from deskside.agent.i18n import gettext_for as _
from deskside.protocol.messages import CHAT_TEXT_MAX

__all__ = ["TITLE", "clean", "main", "notify"]

TITLE: Final = "Chat with your help desk"
# Lines of conversation the window keeps on show.
_KEEP_LINES: Final = 2000
# Control characters a typed or pasted line may not carry (line feed and tab may).
_CONTROL: Final = dict.fromkeys((*range(9), *range(11, 32), 127))


def clean(text: str) -> str:
    """A line the user typed, as it may be sent: plain text, control characters
    dropped, at most ``CHAT_TEXT_MAX`` characters, outer blanks trimmed."""
    return text.translate(_CONTROL).strip()[:CHAT_TEXT_MAX]


def _escape_markup(text: str) -> str:
    """Notification servers may read a body as markup: show it as text instead."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def notify(summary: str, body: str, environ: dict[str, str] | None = None) -> str | None:
    """Raise a desktop notification; how ("notify-send", "gdbus"), or None if neither
    is there (or the session has no bus)."""
    env = dict(os.environ if environ is None else environ)
    body = _escape_markup(body[:300])
    notify_send, gdbus = shutil.which("notify-send"), shutil.which("gdbus")
    if notify_send:
        argv = [notify_send, "--app-name=Deskside", summary, body]
        how = "notify-send"
    elif gdbus and env.get("DBUS_SESSION_BUS_ADDRESS"):
        argv = [
            gdbus,
            "call",
            "--session",
            "--dest=org.freedesktop.Notifications",
            "--object-path=/org/freedesktop/Notifications",
            "--method=org.freedesktop.Notifications.Notify",
            "Deskside",
            "0",
            "",
            summary,
            body,
            "[]",
            "{}",
            "8000",
        ]
        how = "gdbus"
    else:
        return None
    try:
        subprocess.Popen(  # noqa: S603 (fixed programs, the texts as arguments)
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    except OSError:
        return None
    return how


def _reader(stream: TextIO, inbox: queue.Queue[dict[str, Any] | None]) -> None:
    """Read the daemon's lines into ``inbox``; None at the end of input."""
    for raw in stream:
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if isinstance(item, dict):
            inbox.put(item)
    inbox.put(None)


def _who(sender: str) -> str:
    """A technician's name as the console sends it ("user:alice") for the window."""
    name = sender.split(":", 1)[1] if ":" in sender else sender
    return name or _("Your help desk")


def run_window(stdin: TextIO, stdout: TextIO) -> int:
    """Show the window until the end of input; 3 if no window could be opened."""
    import tkinter as tk
    from tkinter import font as tkfont

    try:
        root = tk.Tk(className="deskside-chat")
    except tk.TclError:
        return 3
    stdout.write(json.dumps({"ready": True}) + "\n")
    stdout.flush()
    root.title(_(TITLE))
    root.attributes("-topmost", True)
    root.minsize(320, 260)
    root.protocol("WM_DELETE_WINDOW", root.withdraw)  # hidden; the chat goes on
    bold = tkfont.nametofont("TkDefaultFont").copy()
    bold.configure(weight="bold")

    ticket = [0]
    header = tk.Label(root, text=_("Your help desk"), anchor="w", padx=8, pady=4)
    header.pack(fill="x")
    shown = tk.Text(root, width=44, height=14, wrap="word", state="disabled", padx=6, pady=4)
    shown.tag_configure("who", font=bold)
    shown.tag_configure("notice", foreground="#885500")
    bottom = tk.Frame(root, padx=6, pady=6)
    bottom.pack(fill="x", side="bottom")
    shown.pack(fill="both", expand=True, padx=6)
    entry = tk.Entry(bottom)
    entry.pack(side="left", fill="x", expand=True)

    def show(who: str, text: str, tag: str = "who") -> None:
        shown.configure(state="normal")
        when = datetime.datetime.now().strftime("%H:%M")
        shown.insert("end", f"{who}  {when}\n", tag)
        shown.insert("end", text + "\n\n")  # literally: Tk interprets nothing
        excess = int(shown.index("end-1c").split(".")[0]) - _KEEP_LINES
        if excess > 0:
            shown.delete("1.0", f"{excess + 1}.0")
        shown.configure(state="disabled")
        shown.see("end")

    def send(_event: object = None) -> None:
        text = clean(entry.get())
        if not text or not ticket[0]:
            return
        entry.delete(0, "end")
        stdout.write(json.dumps({"ticket": ticket[0], "text": text}) + "\n")
        stdout.flush()
        show(_("You"), text)

    button = tk.Button(bottom, text=_("Send"), command=send)
    button.pack(side="right", padx=(6, 0))
    entry.bind("<Return>", send)
    entry.focus_set()

    inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_reader, args=(stdin, inbox), daemon=True).start()

    def hidden() -> bool:
        return root.state() in ("withdrawn", "iconic") or root.focus_get() is None

    def poll() -> None:
        while True:
            try:
                item = inbox.get_nowait()
            except queue.Empty:
                break
            if item is None:
                root.destroy()
                return
            line = item.get("line")
            if isinstance(line, dict):
                text = str(line.get("text", ""))
                if line.get("mine"):
                    show(_("You"), text)
                    continue
                who = _who(str(line.get("from", "")))
                number = line.get("ticket")
                if isinstance(number, int) and number > 0:
                    ticket[0] = number
                    header.configure(
                        text=_("Ticket #{number}: {who} from your help desk").format(
                            number=number, who=who
                        )
                    )
                was_hidden = hidden()
                show(who, text)
                if was_hidden and not item.get("history"):
                    notify(_("Message from your help desk"), f"{who}: {text}")
                    root.deiconify()
                    root.lift()
                    root.bell()
            elif "notice" in item:
                show(_("Note"), str(item["notice"]), "notice")
        root.after(100, poll)

    root.update_idletasks()
    width, height = 380, 360
    x = max(0, root.winfo_screenwidth() - width - 24)
    y = max(0, root.winfo_screenheight() - height - 64)
    root.geometry(f"{width}x{height}+{x}+{y}")
    root.after(50, poll)
    with contextlib.suppress(tk.TclError):
        root.focus_force()
    root.mainloop()
    return 0


def main(args: Sequence[str] | None = None) -> int:
    """``python -m deskside.agent.chat.window``: the conversation on stdin and stdout."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv:
        print("usage: python -m deskside.agent.chat.window  (the daemon starts it)")
        return 64
    stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    stdout = open(sys.stdout.fileno(), "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    return run_window(stdin, stdout)


if __name__ == "__main__":
    sys.exit(main())
