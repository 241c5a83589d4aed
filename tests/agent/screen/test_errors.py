"""The screen's exceptions are one branch of the project's tree, and still caught."""

from __future__ import annotations

import importlib

import pytest

from deskside.agent.screen.capture import Capturer
from deskside.agent.screen.errors import (
    CaptureError,
    ControlError,
    OverlayError,
    ScreenError,
    VideoError,
)
from deskside.agent.screen.framemap import FrameMap
from deskside.agent.screen.overlay import GuidanceOverlay
from deskside.agent.screen.video import VideoEncoder, codec_string
from deskside.protocol.errors import DesksideError

FRAME = FrameMap.identity(640, 480)


@pytest.mark.parametrize(
    ("error", "module"),
    [
        (CaptureError, "capture"),
        (VideoError, "video"),
        (ControlError, "control"),
        (OverlayError, "overlay"),
    ],
)
def test_each_is_a_screen_error_and_a_deskside_error(error: type[ScreenError], module: str) -> None:
    assert issubclass(error, ScreenError)
    assert issubclass(error, DesksideError)
    # Callers import it from the module that raises it: the same class.
    raising = importlib.import_module(f"deskside.agent.screen.{module}")
    assert getattr(raising, error.__name__) is error
    assert error.__name__ in raising.__all__


def test_screen_error_is_under_the_root() -> None:
    assert ScreenError.__mro__[1] is DesksideError


def test_video_errors_are_caught_as_video_deskside_and_screen_errors() -> None:
    # videomode catches VideoError (falls back to tiles); the service, DesksideError.
    for caught in (VideoError, ScreenError, DesksideError):
        with pytest.raises(caught, match="1x1"):
            VideoEncoder(1, 1)
        with pytest.raises(caught, match="SPS"):
            codec_string(b"")


def test_capture_errors_are_caught_as_deskside_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # The service refuses the session on a DesksideError from its start.
    monkeypatch.setenv("DISPLAY", ":987")  # no X server there
    with pytest.raises(DesksideError, match="display") as caught:
        Capturer()
    assert isinstance(caught.value, CaptureError)
    assert caught.value.__cause__ is not None  # mss's own error, kept


async def test_overlay_errors_are_caught_as_overlay_and_deskside_errors() -> None:
    # remote.py catches OverlayError (the session goes on without guidance).
    for caught in (OverlayError, ScreenError, DesksideError):
        with pytest.raises(caught, match="no X display"):
            await GuidanceOverlay.start(FRAME, display="")
