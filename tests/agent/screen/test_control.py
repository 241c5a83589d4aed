"""Remote control: events injected with pynput into a real X server and a real Tk window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from Xlib.error import ConnectionClosedError

from deskside.agent.screen.control import ControlError, InputInjector, KeyAction, Outcome, map_key
from deskside.agent.screen.framemap import FrameMap
from deskside.protocol.errors import DesksideError
from deskside.protocol.messages import (
    InputKey,
    InputPointer,
    KeyModifier,
    PointerAction,
    PointerButton,
)
from tests.agent.screen.xserver import (
    HEIGHT,
    WIDTH,
    TkTarget,
    display,
    pointer_location,
    xdotool,
)

__all__ = ["display"]  # the fixture, imported for pytest

SHIFT, CTRL, ALT = KeyModifier.SHIFT, KeyModifier.CTRL, KeyModifier.ALT
# The viewer shows the 1024x768 screen as a 512x384 frame.
HALF = FrameMap(left=0, top=0, width=WIDTH, height=HEIGHT, frame_width=512, frame_height=384)


@pytest.mark.parametrize(
    ("code", "key", "modifiers", "expected"),
    [
        ("KeyA", "a", (), KeyAction("char", "a")),
        ("KeyA", "A", (SHIFT,), KeyAction("char", "A")),
        ("Digit2", "é", (), KeyAction("char", "é")),  # French layout
        ("KeyQ", "@", (), KeyAction("char", "@")),  # German AltGr+Q, AltGr not held
        ("Digit7", "/", (SHIFT,), KeyAction("char", "/")),  # German shift+7
        ("KeyC", "\u0441", (CTRL,), KeyAction("char", "c")),  # Russian layout, ctrl+c
        ("KeyC", "\u0441", (), KeyAction("char", "\u0441")),  # typed Cyrillic stays Cyrillic
        ("Enter", "Enter", (), KeyAction("named", "enter")),
        ("NumpadEnter", "Enter", (), KeyAction("named", "enter")),
        ("ShiftLeft", "Shift", (SHIFT,), KeyAction("named", "shift_l")),
        ("ControlRight", "Control", (CTRL,), KeyAction("named", "ctrl_r")),
        ("ArrowLeft", "ArrowLeft", (SHIFT,), KeyAction("named", "left")),
        ("F5", "F5", (), KeyAction("named", "f5")),
        ("Space", " ", (), KeyAction("char", " ")),
        ("Space", " ", (CTRL,), KeyAction("named", "space")),
        ("", "Enter", (), KeyAction("named", "enter")),  # a virtual keyboard, no code
        ("", "ü", (), KeyAction("char", "ü")),
        ("AltRight", "AltGraph", (ALT,), None),  # AltGr: its characters come composed
        ("CapsLock", "CapsLock", (), None),
        ("BracketLeft", "Dead", (), None),  # a dead key: the next event has the result
        ("KeyA", "Process", (), None),  # IME composition
        ("KeyA", "Unidentified", (), None),
    ],
)
def test_key_mapping(
    code: str, key: str, modifiers: tuple[KeyModifier, ...], expected: KeyAction | None
) -> None:
    assert map_key(code, key, modifiers) == expected


def test_frame_map() -> None:
    assert HALF.to_screen(256, 192) == (512, 384)
    assert HALF.to_screen(511, 383) == (1022, 766)
    assert HALF.to_screen(10_000, -5) == (1023, 0)  # kept on the monitor
    second = FrameMap(left=1920, top=0, width=1280, height=1024, frame_width=640, frame_height=512)
    assert second.to_screen(0, 0) == (1920, 0)
    assert second.to_frame(1920 + 640, 512) == (320, 256)
    with pytest.raises(ValueError, match="pixel"):
        FrameMap.identity(0, 10)


@pytest.fixture
def injector(display: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[InputInjector]:
    """An injector on the test's X server, control not yet granted."""
    monkeypatch.setenv("DISPLAY", display)
    injector = InputInjector(HALF, watch_user=False)
    yield injector
    injector.close()


@pytest.fixture
async def target(display: str) -> AsyncIterator[TkTarget]:
    """The Tk window at (100, 100)."""
    target = await TkTarget.start(display)
    yield target
    await target.stop()


def frame_point(point: tuple[int, int]) -> tuple[int, int]:
    """The frame point showing a screen point, under HALF."""
    return HALF.to_frame(*point)


async def test_a_click_moves_the_pointer_and_reaches_the_window(
    display: str, injector: InputInjector, target: TkTarget
) -> None:
    injector.set_enabled(True)
    x, y = frame_point(target.centre("button"))
    assert injector.pointer(x, y) is Outcome.INJECTED
    assert await pointer_location(display) == HALF.to_screen(x, y)
    down = InputPointer(session_id="s", x=x, y=y, action=PointerAction.DOWN)
    assert injector.handle(down) is Outcome.INJECTED
    assert injector.handle(InputPointer(session_id="s", x=x, y=y, action=PointerAction.UP)) is (
        Outcome.INJECTED
    )
    click = await target.next(lambda event: "click" in event)
    assert click["click"] == [*HALF.to_screen(x, y), 1]

    # The right button, a bit further on; and a release of a button never pressed.
    right = PointerButton.RIGHT
    assert injector.pointer(x + 5, y + 2, PointerAction.DOWN, right) is Outcome.INJECTED
    assert injector.pointer(x + 5, y + 2, PointerAction.UP, right) is Outcome.INJECTED
    click = await target.next(lambda event: "click" in event)
    assert click["click"] == [*HALF.to_screen(x + 5, y + 2), 3]
    assert injector.pointer(x, y, PointerAction.UP, PointerButton.MIDDLE) is Outcome.IGNORED

    # The wheel: two steps down (X button 5), one up (X button 4).
    wheel = InputPointer(session_id="s", x=x, y=y, action=PointerAction.WHEEL, wheel_y=2)
    assert injector.handle(wheel) is Outcome.INJECTED
    assert injector.pointer(x, y, PointerAction.WHEEL, wheel_y=-1) is Outcome.INJECTED
    buttons = [(await target.next(lambda event: "click" in event))["click"][2] for _ in range(3)]
    assert buttons == [5, 5, 4]


def press(injector: InputInjector, code: str, key: str, *modifiers: KeyModifier) -> None:
    """A key pressed and released, as the browser sends it."""
    message = InputKey(session_id="s", code=code, key=key, down=True, modifiers=list(modifiers))
    assert injector.handle(message) is Outcome.INJECTED
    assert injector.key(code, key, False, modifiers) is Outcome.INJECTED


def hold(injector: InputInjector, code: str, key: str, down: bool, *mods: KeyModifier) -> None:
    """A modifier pressed or released."""
    assert injector.key(code, key, down, mods) is Outcome.INJECTED


async def test_typing_reaches_a_real_entry(injector: InputInjector, target: TkTarget) -> None:
    injector.set_enabled(True)
    # Shifted letters and characters, from a US technician.
    hold(injector, "ShiftLeft", "Shift", True, SHIFT)
    press(injector, "KeyH", "H", SHIFT)
    hold(injector, "ShiftLeft", "Shift", False)
    for code, key in (("KeyE", "e"), ("KeyL", "l"), ("KeyL", "l"), ("KeyO", "o")):
        press(injector, code, key)
    hold(injector, "ShiftRight", "Shift", True, SHIFT)
    press(injector, "Digit1", "!", SHIFT)
    hold(injector, "ShiftRight", "Shift", False)
    press(injector, "Space", " ")
    await target.text("Hello! ")

    # From a French technician: "é" is not on the user's US keymap at all.
    press(injector, "Digit2", "é")
    # From a German technician: shift+7 is "/", unshifted on the user's keymap.
    hold(injector, "ShiftLeft", "Shift", True, SHIFT)
    press(injector, "Digit7", "/", SHIFT)
    hold(injector, "ShiftLeft", "Shift", False)
    await target.text("Hello! é/")

    press(injector, "Backspace", "Backspace")
    await target.text("Hello! é")

    # ctrl+a (Tk's entry: to the start of the line), then a character there.
    hold(injector, "ControlLeft", "Control", True, CTRL)
    press(injector, "KeyA", "a", CTRL)
    hold(injector, "ControlLeft", "Control", False)
    press(injector, "KeyX", "x")
    await target.text("xHello! é")

    # A modifier whose release got lost is let go before the next key.
    hold(injector, "ControlLeft", "Control", True, CTRL)
    press(injector, "KeyY", "y")  # the viewer says: no ctrl any more
    await target.text("xyHello! é")  # ctrl still held would have typed nothing

    # More characters the user's keymap lacks: a legacy keysym, a Unicode one, and
    # more of them than there are spare keycodes to lend at once.
    press(injector, "End", "End")
    press(injector, "KeyE", "\u20ac")  # the euro sign
    press(injector, "Semicolon", "\u0436")  # Cyrillic zhe
    await target.text("xyHello! é\u20ac\u0436")
    greek = "".join(chr(0x3B1 + i) for i in range(24))
    for char in greek:
        press(injector, "KeyA", char)
    await target.text("xyHello! é\u20ac\u0436" + greek)


async def test_typed_letters_keep_their_case_under_caps_lock(
    display: str, injector: InputInjector, target: TkTarget
) -> None:
    await xdotool(display, "key", "Caps_Lock")  # the user's Caps Lock is on
    injector.set_enabled(True)
    press(injector, "KeyA", "a")
    hold(injector, "ShiftLeft", "Shift", True, SHIFT)
    press(injector, "KeyB", "B", SHIFT)
    hold(injector, "ShiftLeft", "Shift", False)
    press(injector, "Digit1", "1")
    await target.text("aB1")


async def test_nothing_is_injected_while_disabled(
    display: str, injector: InputInjector, target: TkTarget
) -> None:
    before = await pointer_location(display)
    x, y = frame_point(target.centre("button"))
    assert injector.pointer(x, y, PointerAction.DOWN) is Outcome.DISABLED
    assert injector.key("KeyQ", "q", True) is Outcome.DISABLED
    assert injector.key("KeyQ", "q", False) is Outcome.DISABLED
    await asyncio.sleep(0.5)
    assert await pointer_location(display) == before
    assert not [event for event in target.events if "click" in event or "text" in event]

    injector.set_enabled(True)
    press(injector, "KeyZ", "z")
    await target.text("z")  # only what was typed once enabled
    injector.set_enabled(False)
    assert injector.key("KeyW", "w", True) is Outcome.DISABLED
    injector.set_enabled(True)
    press(injector, "KeyV", "v")
    await target.text("zv")


class GoneController:
    """A pynput mouse controller whose X server went away."""

    @property
    def position(self) -> tuple[int, int]:
        raise ConnectionClosedError("display")

    @position.setter
    def position(self, value: tuple[int, int]) -> None:
        raise ConnectionClosedError("display")

    def release(self, button: object) -> None:
        raise ConnectionClosedError("display")


def test_a_failed_injection_is_a_control_error(injector: InputInjector) -> None:
    injector.set_enabled(True)
    real, injector._mouse = injector._mouse, GoneController()
    try:
        # remote.py catches ControlError, ends control and tells the viewer why.
        with pytest.raises(ControlError, match="ConnectionClosedError") as caught:
            injector.handle(InputPointer(session_id="s", x=10, y=10))
        assert isinstance(caught.value, DesksideError)
        assert isinstance(caught.value.__cause__, ConnectionClosedError)
    finally:
        injector._mouse = real
        # The traceback holds this frame, and so ``real``: without this the cycle keeps
        # the controller until a later collection, after its X server is gone.
        del real, caught


def paused(injector: InputInjector) -> bool:
    """Whether the injector is paused (a call, which type checkers do not narrow)."""
    return injector.paused


async def test_the_users_own_mouse_pauses_control(
    display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", display)
    now = [1000.0]
    pauses: list[float] = []
    injector = InputInjector(
        HALF, takeback_seconds=3.0, on_pause=lambda: pauses.append(now[0]), clock=lambda: now[0]
    )
    try:
        injector.set_enabled(True)
        # The injector's own movements do not count as the user's.
        for step in range(20):
            assert injector.pointer(100 + step * 7, 100 + step * 3) is Outcome.INJECTED
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        assert not injector.paused
        assert pauses == []

        # The user moves the mouse (xdotool is the user's hand here).
        await xdotool(display, "mousemove", "700", "500")
        for _ in range(100):
            if paused(injector):
                break
            await asyncio.sleep(0.05)
        assert paused(injector)
        assert pauses == [1000.0]
        assert injector.pointer(10, 10) is Outcome.PAUSED
        assert injector.key("KeyA", "a", True) is Outcome.PAUSED
        assert await pointer_location(display) == (700, 500)  # the user's, untouched

        # The user goes on moving: the pause lasts, and the session was told once.
        now[0] += 2.0
        await xdotool(display, "mousemove", "720", "520")
        for _ in range(100):
            if injector.paused_until == 1005.0:
                break
            await asyncio.sleep(0.05)
        assert injector.paused_until == 1005.0
        now[0] += 2.0  # 4 s after the first movement, 2 s after the last
        assert paused(injector)
        assert pauses == [1000.0]

        # Time passes without the user moving: the technician has control again.
        now[0] += 1.5
        assert not injector.paused
        assert injector.pointer(10, 10) is Outcome.INJECTED
        assert await pointer_location(display) == HALF.to_screen(10, 10)
    finally:
        injector.close()
