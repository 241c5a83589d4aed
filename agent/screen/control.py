"""Remote control: the technician's pointer and keyboard events, injected with pynput.

A screen session makes one :class:`InputInjector` and gives it the ``InputPointer``
and ``InputKey`` messages of the technician. Nothing is injected unless the session
has switched control on with :meth:`InputInjector.set_enabled` (after the user's
second, separate consent); while it is off, or paused, every event is refused and
the outcome says why.

Pointer
    Coordinates are in pixels of the frame the viewer shows; a :class:`FrameMap`
    scales them to the monitor. Every pointer event first moves the pointer there,
    then presses, releases or turns the wheel (one event per wheel step).

Keyboard
    The browser's ``KeyboardEvent`` has ``code``, the physical key ("KeyQ",
    "ShiftLeft", "Enter"), and ``key``, what that key makes under the technician's
    layout ("q", "Q", "é", "@", "Enter"). The technician's layout and the user's can
    differ (a French technician, a German user), so :func:`map_key` decides:

    * named keys (Enter, Tab, arrows, F1-F24, Home, Delete, the modifiers, ...) go
      by ``code`` (or by ``key`` when a virtual keyboard sends no code) as the same
      named key on the user's side, pressed with XTest: shift+arrows, ctrl+Home work;
    * a printable ``key`` is typed as that character: pynput looks up its keysym in
      the user's keymap and sends it at the right shift level, borrowing a spare
      keycode for a character the keymap lacks ("é" on a US keymap). So the text the
      technician sees on their keyboard is the text that arrives, whatever the two
      layouts are. The characters are sent (XSendEvent, as pynput does) with the
      state of the held ctrl, alt and meta keys but without shift, which the
      character's own level already accounts for ("/" typed with shift held on a
      German keyboard stays "/");
    * with ctrl, alt or meta held (a shortcut), a non-ASCII character falls back to
      the key's US meaning by ``code`` (ctrl and the Cyrillic "es" on a Russian layout is ctrl+c);
    * AltGr is not forwarded (its characters arrive already composed in ``key``),
      nor are CapsLock and NumLock (``key`` is already in the right case); dead keys
      and IME composition ("Dead", "Process", "Unidentified") are ignored: the
      composed character comes in a later event.

    Keys are released by ``code``: a key released after shift was let go still
    releases what its press pressed. A key press whose ``modifiers`` no longer list
    a modifier still held (its release got lost when the viewer lost focus) releases
    that modifier first.

Taking control back
    The user's own mouse wins: a pynput listener watches the pointer and, when it
    moves to somewhere this injector did not just put it, injection pauses for
    ``takeback_seconds`` (3 s by default), every key and button the technician held
    is released, and ``on_pause`` tells the session (which tells the viewer). Each
    further movement of the user's mouse extends the pause. Injected movements are
    told apart by their position: each injected move is remembered for a second,
    and a reported movement to a remembered position is ours. (XTest events carry
    no mark of their origin, and neither do a real mouse's.) The indicator's Stop
    button, which ends the whole session, is the other way back.

This module imports pynput (and so Xlib on X11) when an injector is made; only a
screen session does that.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final, Literal

from deskside.agent.screen.framemap import FrameMap
from deskside.protocol.messages import (
    InputKey,
    InputPointer,
    KeyModifier,
    PointerAction,
    PointerButton,
)

__all__ = [
    "NAMED_KEYS",
    "ControlError",
    "InputInjector",
    "KeyAction",
    "Outcome",
    "map_key",
]

logger = logging.getLogger(__name__)

# How long an injected pointer position is remembered to recognise its motion event.
_ECHO_SECONDS: Final = 1.0
# How far (pixels) a reported motion may be from an injected position and still be ours.
_ECHO_SLACK: Final = 1

# KeyboardEvent.code (and, for keyboards that send no code, KeyboardEvent.key) of the
# named keys, and pynput's name for each (an attribute of pynput.keyboard.Key).
NAMED_KEYS: Final[dict[str, str]] = {
    "ShiftLeft": "shift_l",
    "ShiftRight": "shift_r",
    "ControlLeft": "ctrl_l",
    "ControlRight": "ctrl_r",
    "AltLeft": "alt_l",
    "AltRight": "alt_r",
    "MetaLeft": "cmd_l",
    "MetaRight": "cmd_r",
    "OSLeft": "cmd_l",
    "OSRight": "cmd_r",
    "Enter": "enter",
    "NumpadEnter": "enter",
    "Tab": "tab",
    "Backspace": "backspace",
    "Escape": "esc",
    "Space": "space",
    "Delete": "delete",
    "Insert": "insert",
    "Home": "home",
    "End": "end",
    "PageUp": "page_up",
    "PageDown": "page_down",
    "ArrowUp": "up",
    "ArrowDown": "down",
    "ArrowLeft": "left",
    "ArrowRight": "right",
    "ContextMenu": "menu",
    "PrintScreen": "print_screen",
    "ScrollLock": "scroll_lock",
    "Pause": "pause",
    **{f"F{n}": f"f{n}" for n in range(1, 21)},
}
# KeyboardEvent.key values of named keys, for events without a code.
_NAMED_BY_KEY: Final[dict[str, str]] = {
    "Shift": "shift_l",
    "Control": "ctrl_l",
    "Alt": "alt_l",
    "Meta": "cmd_l",
    "Enter": "enter",
    "Tab": "tab",
    "Backspace": "backspace",
    "Escape": "esc",
    "Delete": "delete",
    "Insert": "insert",
    "Home": "home",
    "End": "end",
    "PageUp": "page_up",
    "PageDown": "page_down",
    "ArrowUp": "up",
    "ArrowDown": "down",
    "ArrowLeft": "left",
    "ArrowRight": "right",
    "ContextMenu": "menu",
    **{f"F{n}": f"f{n}" for n in range(1, 21)},
}
# Keys never forwarded: their effect is already in ``key`` of the following events.
_NOT_FORWARDED: Final = frozenset(
    {"CapsLock", "NumLock", "AltGraph", "Dead", "Process", "Unidentified", "Compose"}
)
# Which modifier each named modifier key is.
_MODIFIER_OF: Final[dict[str, KeyModifier]] = {
    "shift_l": KeyModifier.SHIFT,
    "shift_r": KeyModifier.SHIFT,
    "ctrl_l": KeyModifier.CTRL,
    "ctrl_r": KeyModifier.CTRL,
    "alt_l": KeyModifier.ALT,
    "alt_r": KeyModifier.ALT,
    "cmd_l": KeyModifier.META,
    "cmd_r": KeyModifier.META,
}
_SHORTCUT_MODIFIERS: Final = frozenset({KeyModifier.CTRL, KeyModifier.ALT, KeyModifier.META})


class ControlError(Exception):
    """Input cannot be injected here: no X display, or pynput has no backend for it."""


class Outcome(enum.Enum):
    """What became of one input event."""

    INJECTED = "injected"
    DISABLED = "disabled"  # control is not granted
    PAUSED = "paused"  # the user took control back a moment ago
    IGNORED = "ignored"  # nothing to inject (a dead key, a release of a key not held)


@dataclass(frozen=True, slots=True)
class KeyAction:
    """What a browser key event becomes on the user's side."""

    kind: Literal["named", "char"]
    """A named key (pynput's ``Key.<value>``) or a character typed by its keysym."""

    value: str
    """pynput's name of the key ("enter", "ctrl_l") or the character ("é")."""


def _us_char(code: str) -> str | None:
    """The character a key makes on a US layout without shift, for shortcuts."""
    if len(code) == 4 and code.startswith("Key") and code[3].isalpha():
        return code[3].lower()
    if len(code) == 6 and code.startswith("Digit") and code[5].isdigit():
        return code[5]
    return None


def map_key(code: str, key: str, modifiers: Collection[KeyModifier] = ()) -> KeyAction | None:
    """What to inject for a browser key event; None for keys that are not forwarded.

    See the module's docstring for the rules.
    """
    if key in _NOT_FORWARDED or (code == "AltRight" and key == "AltGraph"):
        return None
    if code in _NOT_FORWARDED:
        return None
    if code in NAMED_KEYS and not (code == "Space" and not _shortcut(modifiers)):
        return KeyAction("named", NAMED_KEYS[code])
    if len(key) == 1 and key.isprintable():
        if _shortcut(modifiers) and not key.isascii():
            fallback = _us_char(code)
            if fallback is not None:
                return KeyAction("char", fallback)
        return KeyAction("char", key)
    if key in _NAMED_BY_KEY:
        return KeyAction("named", _NAMED_BY_KEY[key])
    return None


def _shortcut(modifiers: Collection[KeyModifier]) -> bool:
    return any(modifier in _SHORTCUT_MODIFIERS for modifier in modifiers)


def _keyboard_controller_class() -> type[Any]:
    """pynput's keyboard controller, sending characters without the shift of held keys."""
    from pynput import keyboard

    class Controller(keyboard.Controller):
        """Characters carry their own shift level; held ctrl/alt/meta still apply."""

        def _shift_mask(self, modifiers: set[Any]) -> int:
            # _shift_mask exists in the X11 backend only, the one this applies to.
            base: int = super()._shift_mask(modifiers - {keyboard.Key.shift})  # type: ignore[misc]
            return base

    return Controller


class InputInjector:
    """Injects the technician's input into the user's session, when allowed.

    Thread-safe: messages may come from the event loop (through
    ``asyncio.to_thread``) while the take-back listener runs in its own thread.
    """

    def __init__(
        self,
        frame_map: FrameMap,
        *,
        takeback_seconds: float = 3.0,
        watch_user: bool = True,
        on_pause: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """An injector for frames mapped by ``frame_map``; control starts disabled.

        ``watch_user`` starts the listener that pauses injection when the user moves
        their own mouse; ``on_pause`` is called (from the listener's thread) when
        that happens. Raises :class:`ControlError` when there is no display.
        """
        try:
            from pynput import keyboard, mouse
        except ImportError as exc:  # pynput's backends raise it for a missing display
            raise ControlError(f"cannot inject input here: {exc}") from exc
        self._mouse_module = mouse
        self._keyboard_module = keyboard
        try:
            # pynput's controllers; None once closed.
            self._mouse: Any = mouse.Controller()
            self._keyboard: Any = _keyboard_controller_class()()
        except Exception as exc:  # Xlib's connection errors have no common base
            raise ControlError(f"cannot inject input here: {exc}") from exc
        # Serialises injection and the listener's decisions.
        self._lock = threading.RLock()
        # How frame coordinates map to the screen; the session changes it with the monitor.
        self._frame_map = frame_map
        # Control granted by the user (through the session).
        self._enabled = False
        # Until when (clock time) injection is paused because the user moved the mouse.
        self._paused_until = 0.0
        self._takeback_seconds = takeback_seconds
        self._on_pause = on_pause
        self._clock = clock
        # Pointer positions injected lately, (time, x, y), to recognise their echo.
        self._echoes: collections.deque[tuple[float, int, int]] = collections.deque(maxlen=512)
        # Keys held by the technician, by the code (or key) that pressed them.
        self._held_keys: dict[str, Any] = {}
        # Which of those are modifiers, and which.
        self._held_modifiers: dict[str, KeyModifier] = {}
        # Mouse buttons held by the technician.
        self._held_buttons: set[PointerButton] = set()
        # The take-back listener, while running.
        self._listener: Any = None
        if watch_user:
            self._listener = mouse.Listener(on_move=self._on_move)
            self._listener.daemon = True
            self._listener.start()
            self._listener.wait()

    # -- State -----------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether control is granted."""
        return self._enabled

    @property
    def paused(self) -> bool:
        """Whether injection is paused because the user moved their mouse."""
        return self._clock() < self._paused_until

    def set_enabled(self, enabled: bool) -> None:
        """Grant or withdraw control; withdrawing releases every held key and button."""
        with self._lock:
            if self._mouse is None:
                raise ControlError("the injector is closed")
            self._enabled = enabled
            if not enabled:
                self._release_all()

    def set_frame_map(self, frame_map: FrameMap) -> None:
        """Use a new frame mapping (another monitor, another frame size)."""
        with self._lock:
            self._frame_map = frame_map

    def pause(self) -> None:
        """Pause injection for ``takeback_seconds``, as a movement of the user's mouse does."""
        with self._lock:
            self._paused_until = self._clock() + self._takeback_seconds
            self._release_all()
        if self._on_pause is not None:
            self._on_pause()

    def close(self) -> None:
        """Release everything held, disable control and stop the listener (idempotent)."""
        if self._mouse is None:
            return
        self.set_enabled(False)
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
            # pynput queues its "stop recording" request on the connection that the
            # listener's thread is blocked reading, where nothing sends it until
            # another event comes: send it on pynput's other connection (as its own
            # clean-up does), so the thread ends now, while the display is there.
            with contextlib.suppress(Exception):
                listener._display_stop.record_disable_context(listener._context)
                listener._display_stop.flush()
            listener.join(5.0)
            if listener.is_alive():
                logger.warning("the mouse listener did not stop")
        # pynput's controllers close their X connections when collected: now, while
        # the display is still there, rather than at some later collection.
        with self._lock:
            self._mouse = self._keyboard = None

    # -- Events ----------------------------------------------------------------------

    def handle(self, message: InputPointer | InputKey) -> Outcome:
        """Inject one wire message (if allowed)."""
        if isinstance(message, InputPointer):
            return self.pointer(
                message.x,
                message.y,
                message.action,
                message.button,
                wheel_x=message.wheel_x,
                wheel_y=message.wheel_y,
            )
        return self.key(message.code, message.key, message.down, message.modifiers)

    def pointer(
        self,
        x: int,
        y: int,
        action: PointerAction = PointerAction.MOVE,
        button: PointerButton = PointerButton.LEFT,
        *,
        wheel_x: int = 0,
        wheel_y: int = 0,
    ) -> Outcome:
        """Move the pointer to frame point (``x``, ``y``), then press, release or scroll."""
        with self._lock:
            refused = self._refusal()
            if refused is not None:
                return refused
            sx, sy = self._frame_map.to_screen(x, y)
            self._echoes.append((self._clock(), sx, sy))
            self._mouse.position = (sx, sy)
            pynput_button = getattr(self._mouse_module.Button, button.value)
            if action is PointerAction.DOWN:
                self._mouse.press(pynput_button)
                self._held_buttons.add(button)
            elif action is PointerAction.UP:
                if button not in self._held_buttons:
                    return Outcome.IGNORED
                self._mouse.release(pynput_button)
                self._held_buttons.discard(button)
            elif action is PointerAction.WHEEL and (wheel_x or wheel_y):
                self._mouse.scroll(wheel_x, -wheel_y)  # pynput: positive dy scrolls up
            return Outcome.INJECTED

    def key(
        self, code: str, key: str, down: bool, modifiers: Collection[KeyModifier] = ()
    ) -> Outcome:
        """Press (``down``) or release a key, as the browser described it."""
        with self._lock:
            refused = self._refusal()
            if refused is not None:
                return refused
            slot = code or key
            if not down:
                held = self._held_keys.pop(slot, None)
                self._held_modifiers.pop(slot, None)
                if held is None:
                    return Outcome.IGNORED
                self._keyboard.release(held)
                return Outcome.INJECTED
            action = map_key(code, key, modifiers)
            if action is None:
                return Outcome.IGNORED
            if action.value not in _MODIFIER_OF:
                self._release_stale_modifiers(modifiers)
            pynput_key = self._pynput_key(action)
            self._keyboard.press(pynput_key)
            self._held_keys[slot] = pynput_key
            if action.kind == "named" and action.value in _MODIFIER_OF:
                self._held_modifiers[slot] = _MODIFIER_OF[action.value]
            return Outcome.INJECTED

    def release_all(self) -> None:
        """Release every key and button the technician holds."""
        with self._lock:
            self._release_all()

    # -- Internals -------------------------------------------------------------------

    def _refusal(self) -> Outcome | None:
        if not self._enabled:
            return Outcome.DISABLED
        if self.paused:
            return Outcome.PAUSED
        return None

    def _pynput_key(self, action: KeyAction) -> Any:
        if action.kind == "named":
            return getattr(self._keyboard_module.Key, action.value)
        return self._keyboard_module.KeyCode.from_char(action.value)

    def _release_stale_modifiers(self, modifiers: Collection[KeyModifier]) -> None:
        for slot, modifier in list(self._held_modifiers.items()):
            if modifier not in modifiers:
                del self._held_modifiers[slot]
                self._keyboard.release(self._held_keys.pop(slot))

    def _release_all(self) -> None:
        for held in self._held_keys.values():
            try:
                self._keyboard.release(held)
            except Exception:  # a borrowed keycode may be gone; go on with the rest
                logger.debug("could not release a held key", exc_info=True)
        self._held_keys.clear()
        self._held_modifiers.clear()
        for button in self._held_buttons:
            self._mouse.release(getattr(self._mouse_module.Button, button.value))
        self._held_buttons.clear()

    def _on_move(self, x: float, y: float, injected: bool = False) -> None:
        """The listener saw the pointer move: ours, or the user's?"""
        x, y = int(x), int(y)
        with self._lock:
            now = self._clock()
            while self._echoes and self._echoes[0][0] < now - _ECHO_SECONDS:
                self._echoes.popleft()
            for index, (_, ex, ey) in enumerate(self._echoes):
                if abs(ex - x) <= _ECHO_SLACK and abs(ey - y) <= _ECHO_SLACK:
                    for _ in range(index + 1):
                        self._echoes.popleft()
                    return
            if not self._enabled:
                return
        logger.info("the user moved the mouse: control paused")
        self.pause()
