"""The screen's exceptions: the agent's branch of the project's one tree.

::

    DesksideError                 (deskside.protocol.errors)
     └── ScreenError              a screen session cannot do something on this machine
          ├── CaptureError        the screen cannot be captured: no display, monitor
          │                       gone, X error (capture.py, mss)
          ├── VideoError          the H.264 encoder cannot be set up or refused a frame
          │                       (video.py, PyAV)
          ├── ControlError        input cannot be injected: no display, no XTEST, the
          │                       X server went away (control.py, pynput and Xlib)
          └── OverlayError        the guidance overlay cannot be shown, or has ended
                                  (overlay.py, its own process)

Each is raised by the module named beside it, which converts the library's own
exceptions at that boundary (``raise ... from exc``) and re-exports the class, so
``from .overlay import OverlayError`` and ``except OverlayError`` go on working.
They are defined here, in a module that imports nothing heavy, so that one base can
hold them all: ``capture`` imports mss and ``video`` PyAV at import time, and the
light modules (``overlay``, ``control``, ``service``) must not load those.

The screen session reports any of them to the console as the reason it ended or
what it could not do (``ScreenRefused``, ``ScreenGuideStatus``,
``ScreenControlRefused``); none of them is fatal to the daemon.
"""

from __future__ import annotations

from deskside.protocol.errors import DesksideError

__all__ = ["CaptureError", "ControlError", "OverlayError", "ScreenError", "VideoError"]


class ScreenError(DesksideError):
    """A screen session cannot do something here: capture, encode, inject, or draw."""


class CaptureError(ScreenError):
    """The screen cannot be captured (no display, monitor gone, X error)."""


class VideoError(ScreenError):
    """The encoder could not be set up or refused a frame (a wrong size, a closed encoder)."""


class ControlError(ScreenError):
    """Input cannot be injected here: no X display, or pynput has no backend for it."""


class OverlayError(ScreenError):
    """The overlay could not be shown (no display, no SHAPE extension) or has ended."""
