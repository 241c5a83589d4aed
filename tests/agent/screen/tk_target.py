"""A Tk window for the screen tests: a button and an entry that report what they get.

``python tk_target.py X Y [CLASS]``: the window at (X, Y), of Tk class CLASS (the
X WM_CLASS); one JSON line per event on stdout:
``{"ready": {"button": [x, y, w, h], "entry": [...]}}`` once mapped and focused,
``{"click": [x_root, y_root, button]}`` for each press on the button,
``{"text": "..."}`` whenever the entry's text changes.
"""

from __future__ import annotations

import json
import sys
import tkinter as tk


def report(event: dict[str, object]) -> None:
    """Write one event."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main() -> None:
    """Show the window and report until killed."""
    x, y = int(sys.argv[1]), int(sys.argv[2])
    class_name = sys.argv[3] if len(sys.argv) > 3 else "test-target"
    root = tk.Tk(className=class_name)
    root.title("Deskside test target")
    root.geometry(f"400x200+{x}+{y}")
    button = tk.Button(root, text="Press me", bg="#3366cc", activebackground="#3366cc")
    button.place(x=20, y=20, width=160, height=60)
    button.bind("<ButtonPress>", lambda e: report({"click": [e.x_root, e.y_root, e.num]}), add=True)
    text = tk.StringVar(root)
    text.trace_add("write", lambda *_: report({"text": text.get()}))
    entry = tk.Entry(root, textvariable=text)
    entry.place(x=20, y=110, width=360, height=40)

    def ready() -> None:
        entry.focus_force()
        root.update_idletasks()
        layout = {
            name: [w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()]
            for name, w in (("button", button), ("entry", entry))
        }
        report({"ready": layout})

    root.after(300, ready)
    root.mainloop()


if __name__ == "__main__":
    main()
