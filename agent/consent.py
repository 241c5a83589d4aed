"""Asking the logged-in user before the help desk acts on this machine.

The daemon never opens a window itself: it starts ``python -m
deskside.agent.consent`` and reads the answer. The dialog process gets what to
show as JSON on stdin (an argv can be far longer than a command line may be) and
answers with its exit code:

====  ==========================================================
0     the user clicked Allow
1     the user clicked Deny, pressed Escape or closed the window
2     nobody answered in time (counts as Deny)
3     no window could be opened: no desktop session after all
====  ==========================================================

The window, "Help desk request", is always on top and says who asks
(``requested_by``), for which ticket (number and reason), and exactly what: the
argv, quoted as a shell would need it, "an interactive terminal", or to see the
screen (``screen = "view"``). Deny has the
keyboard focus and Escape denies; Allow needs a deliberate click (or Tab and
Return), and is enabled only after a short moment, so a click or a keystroke meant
for another window cannot approve a request that popped up under it. A countdown
shows the time left.

In ``notify`` mode the same window only informs ("... is running now") with an OK
button and closes itself after a few seconds; the command does not wait for it.

A desktop session exists when ``DISPLAY`` or ``WAYLAND_DISPLAY`` is set for the
daemon *and* the dialog can open its window. The daemon kills the dialog shortly
after its time-out, so a stuck dialog cannot hang it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final, cast

from .policy import ConsentMode, Unattended

__all__ = [
    "NOTIFY_SECONDS",
    "Answer",
    "ConsentRequest",
    "Declined",
    "ask",
    "decide",
    "has_desktop",
    "main",
    "notify",
    "policy_hint",
]

logger = logging.getLogger(__name__)

TITLE: Final = "Help desk request"
# How long the notify window stays up.
NOTIFY_SECONDS: Final = 6.0
# How long after opening the Allow button becomes clickable.
_ARM_DELAY_MS: Final = 700
# Extra time the daemon gives the dialog beyond its own time-out before killing it.
_GRACE: Final = 3.0
# The most of a command line shown; the rest is summarised.
_MAX_SHOWN: Final = 20000


class Answer(enum.IntEnum):
    """The dialog's answer, which is also its exit code."""

    ALLOWED = 0
    DENIED = 1
    TIMED_OUT = 2
    NO_DESKTOP = 3


@dataclass(frozen=True, kw_only=True)
class ConsentRequest:
    """What the dialog shows."""

    requested_by: str
    """The technician's name, as the console sent it."""

    ticket_id: int
    """The ticket the request is for."""

    reason: str = ""
    """The ticket's title or the technician's reason."""

    argv: tuple[str, ...] | None = None
    """The command, exactly as it will run; None for an interactive terminal."""

    run_as: str | None = None
    """The user it runs as, when not the agent's own."""

    timeout: float = 60.0
    """Seconds before the dialog gives up (a Deny) or, for notify, closes."""

    screen: str | None = None
    """For a screen session, what is asked: "view" (see the screen) or "control" (take
    control of the mouse and keyboard); None otherwise."""

    recorded: bool = False
    """For a screen session: the help desk records it."""

    def what(self) -> str:
        """The request in words: the quoted command, "an interactive terminal", the screen."""
        if self.screen == "view":
            text = "to see your screen (view only: they cannot click or type)"
            return text + "; the session is recorded" if self.recorded else text
        if self.screen == "control":
            return (
                "to take control of your mouse and keyboard: they can click and type as if"
                " they were you. Moving your own mouse pauses them for 3 seconds; Stop on"
                ' the red "Screen shared" window ends everything at once.'
            )
        if self.screen is not None:
            return f"your screen: {self.screen}"
        if self.argv is None:
            return "an interactive terminal"
        text = shlex.join(self.argv)
        if len(text) > _MAX_SHOWN:
            text = f"{text[:_MAX_SHOWN]} ... ({len(text) - _MAX_SHOWN} more characters)"
        return text


def has_desktop(environ: Mapping[str, str] | None = None) -> bool:
    """True if a desktop session may exist (``DISPLAY`` or ``WAYLAND_DISPLAY`` is set)."""
    env = os.environ if environ is None else environ
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


async def _start(mode: str, request: ConsentRequest) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deskside.agent.consent",
        mode,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdin is not None
    document = json.dumps({**asdict(request), "argv": request.argv}).encode()
    with contextlib.suppress(ConnectionError):
        process.stdin.write(document)
        await process.stdin.drain()
    process.stdin.close()
    return process


async def _finish(process: asyncio.subprocess.Process, limit: float) -> int | None:
    """Wait for the dialog at most ``limit`` seconds; kill it then. Its exit code."""
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), limit)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        try:
            await asyncio.shield(process.wait())
        except Exception:
            # Broad: the time-out or cancellation re-raised below is what the caller
            # must see; the dialog is killed whatever this says.
            logger.debug("waiting for the killed consent dialog failed", exc_info=True)
        raise
    if process.returncode not in tuple(Answer):
        text = stderr.decode(errors="replace").strip().splitlines()
        logger.warning(
            "the consent dialog failed (exit %s): %s",
            process.returncode,
            text[-1] if text else "no message",
        )
    return process.returncode


async def ask(request: ConsentRequest) -> Answer:
    """Show the dialog and wait for the user's answer (at most its time-out, and a bit).

    No desktop (no display variable, or no window could be opened, or the dialog
    failed): ``NO_DESKTOP``. Cancelling the caller closes the dialog.
    """
    if not has_desktop():
        return Answer.NO_DESKTOP
    try:
        process = await _start("prompt", request)
    except OSError as exc:
        logger.warning("cannot start the consent dialog: %s", exc)
        return Answer.NO_DESKTOP
    try:
        code = await _finish(process, request.timeout + _GRACE)
    except TimeoutError:
        logger.warning("the consent dialog did not end by itself; killed it")
        return Answer.TIMED_OUT
    if code in tuple(Answer):
        return Answer(code)
    return Answer.NO_DESKTOP


async def notify(request: ConsentRequest) -> bool:
    """Show the informing window and return at once; False if there is no desktop.

    The window closes itself after ``request.timeout`` seconds; it is killed if it
    does not.
    """
    if not has_desktop():
        return False
    try:
        process = await _start("notify", request)
    except OSError as exc:
        logger.warning("cannot start the notification window: %s", exc)
        return False

    async def reap() -> None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await _finish(process, request.timeout + _GRACE)

    task = asyncio.create_task(reap(), name="deskside-consent-notify")
    _background.add(task)
    task.add_done_callback(_background.discard)
    return True


# Notification windows being reaped.
_background: set[asyncio.Task[None]] = set()


# -- The dialog process ------------------------------------------------------------------


def _dialog(mode: str, request: ConsentRequest) -> Answer:
    """Show the window and run Tk until the user answers or time runs out."""
    import tkinter as tk
    from tkinter import font as tkfont

    try:
        root = tk.Tk(className="deskside-consent")
    except tk.TclError:
        return Answer.NO_DESKTOP
    answer = [Answer.TIMED_OUT]

    def close(result: Answer) -> None:
        answer[0] = result
        root.destroy()

    prompt = mode == "prompt"
    root.title(TITLE)
    root.attributes("-topmost", True)
    root.resizable(False, False)
    root.protocol("WM_DELETE_WINDOW", lambda: close(Answer.DENIED))
    base = tkfont.nametofont("TkDefaultFont")
    bold = base.copy()
    bold.configure(weight="bold", size=base.cget("size") + 2)
    width = 520

    frame = tk.Frame(root, padx=16, pady=12)
    frame.pack(fill="both", expand=True)
    who = request.requested_by or "Your help desk"
    if request.screen == "control":
        headline = f"{who} from your help desk wants to take control of your mouse and keyboard"
    elif request.screen is not None:
        headline = f"{who} from your help desk wants to see your screen"
    elif request.argv is None:
        headline = f"{who} from your help desk wants to open an interactive terminal"
    else:
        headline = f"{who} from your help desk wants to run a command"
    if not prompt:
        headline = headline.replace("wants to", "is about to")
    tk.Label(frame, text=headline, font=bold, wraplength=width, justify="left").pack(anchor="w")
    ticket = f"Ticket #{request.ticket_id}"
    if request.reason:
        ticket += f": {request.reason}"
    tk.Label(frame, text=ticket, wraplength=width, justify="left").pack(anchor="w", pady=(6, 0))
    tk.Label(frame, text="What:", wraplength=width, justify="left").pack(anchor="w", pady=(8, 0))
    text = request.what()
    box = tk.Text(
        frame,
        height=min(8, 1 + len(text) // 60),
        width=64,
        wrap="word" if request.screen is not None else "char",
        relief="sunken",
    )
    box.insert("1.0", text)
    box.configure(state="disabled")
    box.pack(fill="x")
    if request.run_as:
        tk.Label(frame, text=f"As user: {request.run_as}").pack(anchor="w", pady=(4, 0))
    status = tk.Label(frame, text="", fg="#555555")
    status.pack(anchor="w", pady=(8, 0))

    # Bottom row: Allow fills the left half, Deny the right half (or OK all of it).
    buttons = tk.Frame(root, padx=16, pady=12)
    buttons.pack(fill="x", side="bottom")
    if prompt:
        buttons.columnconfigure(0, weight=1, uniform="b")
        buttons.columnconfigure(1, weight=1, uniform="b")
        allow = tk.Button(
            buttons, text="Allow", state="disabled", command=lambda: close(Answer.ALLOWED)
        )
        deny = tk.Button(buttons, text="Deny", command=lambda: close(Answer.DENIED))
        allow.grid(row=0, column=0, sticky="ew", padx=(0, 6), ipady=4)
        deny.grid(row=0, column=1, sticky="ew", padx=(6, 0), ipady=4)
        root.after(_ARM_DELAY_MS, lambda: allow.configure(state="normal"))
        root.bind("<Escape>", lambda _: close(Answer.DENIED))
        root.bind_class("Button", "<Return>", lambda event: cast(tk.Button, event.widget).invoke())
        deny.focus_set()
    else:
        ok = tk.Button(buttons, text="OK", command=lambda: close(Answer.ALLOWED))
        ok.pack(fill="x", ipady=4)
        root.bind("<Escape>", lambda _: close(Answer.ALLOWED))
        root.bind("<Return>", lambda _: close(Answer.ALLOWED))

    deadline = [request.timeout]

    def tick() -> None:
        left = max(0, round(deadline[0]))
        if prompt:
            status.configure(text=f"Denied automatically in {left} s unless you allow it.")
        else:
            status.configure(text=f"This window closes in {left} s.")
        if deadline[0] <= 0:
            close(Answer.TIMED_OUT if prompt else Answer.ALLOWED)
            return
        deadline[0] -= 1
        root.after(1000, tick)

    tick()
    root.update_idletasks()
    x = (root.winfo_screenwidth() - root.winfo_reqwidth()) // 2
    y = (root.winfo_screenheight() - root.winfo_reqheight()) // 3
    root.geometry(f"+{max(0, x)}+{max(0, y)}")
    root.lift()
    with contextlib.suppress(tk.TclError):
        root.focus_force()
    root.mainloop()
    return answer[0]


def _parse(data: bytes) -> ConsentRequest:
    document: dict[str, Any] = json.loads(data)
    argv = document.get("argv")
    return ConsentRequest(
        requested_by=str(document.get("requested_by", "")),
        ticket_id=int(document["ticket_id"]),
        reason=str(document.get("reason", "")),
        argv=tuple(str(a) for a in argv) if isinstance(argv, list) else None,
        run_as=document.get("run_as"),
        timeout=float(document.get("timeout", 60.0)),
        screen=str(document["screen"])[:64] if document.get("screen") else None,
        recorded=bool(document.get("recorded", False)),
    )


@dataclass(frozen=True)
class Declined:
    """Consent not given: the dialog's ``answer`` (not ALLOWED) and why, in words."""

    answer: Answer
    reason: str


def policy_hint(table: str, policy_file: Path | None) -> str:
    """What a refusal for want of anyone to ask adds: the setting that would allow it,
    its file, and that no restart is needed (the daemon reads the file again)."""
    if policy_file is None:
        return ""
    return (
        f' (to allow it: consent = "notify" or unattended = "allow" under [{table}] in '
        f"{policy_file}; read again at the next request, no restart needed)"
    )


async def decide(
    mode: ConsentMode,
    question: ConsentRequest,
    lock: asyncio.Lock,
    *,
    unattended: Unattended,
    hint: str = "",
) -> str | Declined:
    """Apply a consent policy to ``question``: "user", "notify", "policy" or ``Declined``.

    ``mode`` is the policy's consent mode; ``unattended`` says what happens where
    nobody can be asked. ``lock`` keeps prompts one at a time. ``hint`` ends the
    refusal where nobody could be asked: which setting of which file would allow it.
    """
    if mode is ConsentMode.NONE:
        return "policy"
    if mode is ConsentMode.NOTIFY:
        shown = await notify(replace(question, timeout=NOTIFY_SECONDS))
        return "notify" if shown else "policy"
    async with lock:
        answer = await ask(question)
    if answer is Answer.ALLOWED:
        return "user"
    if answer is Answer.DENIED:
        return Declined(answer, "denied by the user")
    if answer is Answer.TIMED_OUT:
        return Declined(answer, f"the user did not answer within {question.timeout:g} s")
    if unattended is Unattended.ALLOW:
        return "policy"
    return Declined(answer, f"no desktop session to ask; policy refuses{hint}")


def main(args: Sequence[str] | None = None) -> int:
    """``python -m deskside.agent.consent prompt|notify`` with the request on stdin."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv not in (["prompt"], ["notify"]):
        print("usage: python -m deskside.agent.consent prompt|notify < request.json")
        return 64
    try:
        request = _parse(sys.stdin.buffer.read(64 << 20))
    except (ValueError, KeyError, TypeError) as exc:
        print(f"bad request: {exc}", file=sys.stderr)
        return 64
    return int(_dialog(argv[0], request))


if __name__ == "__main__":
    sys.exit(main())
