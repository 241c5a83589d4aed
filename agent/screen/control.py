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
    * a printable ``key`` is typed as that character: its keysym is looked up in
      the user's keymap and its key pressed with XTest at the right shift level
      (shift pressed or let go around it as needed, Caps Lock accounted for), and a
      character the keymap lacks, or has only behind AltGr, gets a spare keycode
      mapped to it for the while ("é" on a US keymap), as xdotool does. So the text
      the technician sees on their keyboard is the text that arrives, whatever the
      two layouts are ("/" typed with shift held on a German keyboard stays "/"),
      and held ctrl, alt and meta apply to it. XTest rather than pynput's own way
      for characters (XSendEvent), which programs that refuse synthetic events
      (xterm, ...) ignore; on other systems pynput's own way is used;
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
import importlib
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final, Literal

from deskside.agent.screen.errors import ControlError
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
# Seconds a keycode just lent to a character settles before it is pressed.
LEND_SETTLE: Final = 0.03

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


class _XTestTyper:
    """Types characters on X11 with XTest, as a real keyboard would.

    pynput sends characters with XSendEvent, which some programs ignore (xterm,
    and others that refuse synthetic events); XTest events are indistinguishable
    from the keyboard's. A character on the user's keymap at level 1 or 2 is typed
    with its keycode, shift pressed or released around it as its level needs (and
    Caps Lock accounted for); one that is not (or only behind AltGr) gets a spare
    keycode mapped to it, as xdotool does.
    """

    def __init__(self) -> None:
        from Xlib import XK, X
        from Xlib import display as xdisplay
        from Xlib import error as xerror
        from Xlib.ext import xtest

        self._X = X
        self._xtest = xtest
        # What Xlib raises when the server refuses a request, and when it is gone
        # (the two have no common base).
        self._x_refused: type[Exception] = xerror.XError
        self._x_gone: tuple[type[Exception], ...] = (xerror.ConnectionClosedError, OSError)
        # Our own connection; every request is synced so it keeps its order with
        # pynput's connection.
        self.display = xdisplay.Display()
        if not self.display.has_extension("XTEST"):
            raise ControlError("the X server has no XTEST extension")
        self._shift = self.display.keysym_to_keycode(XK.XK_Shift_L)
        self._shift_codes = {
            self.display.keysym_to_keycode(XK.XK_Shift_L),
            self.display.keysym_to_keycode(XK.XK_Shift_R),
        } - {0}
        first = self.display.display.info.min_keycode
        count = self.display.display.info.max_keycode - first + 1
        mapping = self.display.get_keyboard_mapping(first, count)
        # Keycodes with no symbol at all: lent to characters the keymap lacks.
        self._spare = [first + i for i, syms in enumerate(mapping) if not any(syms)]
        # Characters currently lent a spare keycode: keysym -> keycode, oldest first.
        self._lent: dict[int, int] = {}
        # Keycodes pressed and not yet released (never re-lent while down).
        self._down: set[int] = set()

    @staticmethod
    def keysyms(char: str) -> list[int]:
        """The keysyms that may stand for ``char`` on a keymap: legacy, then Unicode."""
        ordinal = ord(char)
        unicode_keysym = ordinal if ordinal < 0x100 else 0x01000000 | ordinal
        found = [unicode_keysym]
        try:  # pynput's table of legacy keysyms ("EuroSign" is 0x20ac, not 0x10020ac)
            tables: Any = importlib.import_module("pynput._util.xorg_keysyms")
            legacy = int(tables.SYMBOLS[tables.CHARS[char]][0])
        except (ImportError, AttributeError, KeyError):  # the Unicode keysym always works
            return found
        if legacy != unicode_keysym:
            found.insert(0, legacy)
        return found

    def press(self, char: str, shift_keys_held: bool) -> int:
        """Press the key that makes ``char``; its keycode, for :meth:`release`."""
        X = self._X
        keycode, level = self._find(char)
        want_shift: bool | None = None
        if level is not None:
            want_shift = level == 1
            if char.isalpha() and char.lower() != char.upper() and self._caps_lock():
                want_shift = not want_shift
        held_shift = [code for code in self._shift_codes if self._is_down(code)]
        if want_shift is True and not shift_keys_held and not held_shift:
            self._fake(X.KeyPress, self._shift)
            self._fake(X.KeyPress, keycode)
            self._fake(X.KeyRelease, self._shift)
        elif want_shift is False and (shift_keys_held or held_shift):
            for code in held_shift:
                self._fake(X.KeyRelease, code)
            self._fake(X.KeyPress, keycode)
            for code in held_shift:
                self._fake(X.KeyPress, code)
        else:
            self._fake(X.KeyPress, keycode)
        self.display.sync()
        self._down.add(keycode)
        return keycode

    def release(self, keycode: int) -> None:
        """Release a key pressed by :meth:`press`."""
        self._fake(self._X.KeyRelease, keycode)
        self.display.sync()
        self._down.discard(keycode)

    def close(self) -> None:
        """Give back the lent keycodes and close the connection."""
        # A server that went away took its keymap along: nothing is left to give back.
        with contextlib.suppress(*self._x_gone):
            try:
                for keycode in self._lent.values():
                    self.display.change_keyboard_mapping(keycode, [(0,)])
                self.display.sync()
            except self._x_refused as exc:
                # The keymap keeps the lent characters until the X session ends: worth
                # a word, but only the type, as an X error's text can carry keycodes.
                logger.warning("could not give back lent keycodes: %s", type(exc).__name__)
        # Closing a connection the server has already dropped fails; it is closed anyway.
        with contextlib.suppress(self._x_refused, *self._x_gone):
            self.display.close()

    def _find(self, char: str) -> tuple[int, int | None]:
        """A keycode for ``char`` and the shift level (0 or 1), None for a lent keycode."""
        for keysym in self.keysyms(char):
            if keysym in self._lent:
                return self._lent[keysym], None
            for keycode, index in self.display.keysym_to_keycodes(keysym):
                if index in (0, 1):
                    return keycode, index
        return self._lend(self.keysyms(char)[-1]), None

    def _lend(self, keysym: int) -> int:
        free: list[int] = [code for code in self._spare if code not in self._lent.values()]
        if not free:  # all lent: take back the oldest one that is not held down
            for old_keysym, code in list(self._lent.items()):
                if code not in self._down:
                    del self._lent[old_keysym]
                    free = [code]
                    break
        if not free:
            raise ControlError("no spare keycode to type this character")
        keycode = free[0]
        # Both levels the same symbol: shift held or not, this keycode makes it.
        self.display.change_keyboard_mapping(keycode, [(keysym, keysym)])
        self.display.sync()
        # Clients learn of the new mapping from an event and read it back when they
        # get to it; a key pressed at once could reach a busy client first and be
        # read with the old, empty mapping: the character was lost (as xdotool
        # does, give them a moment). Only characters the keymap lacks pay this.
        time.sleep(LEND_SETTLE)
        self._lent[keysym] = keycode
        return keycode

    def _caps_lock(self) -> bool:
        pointer = self.display.screen().root.query_pointer()
        return bool(pointer.mask & self._X.LockMask)

    def _is_down(self, keycode: int) -> bool:
        keys = self.display.query_keymap()
        return bool(keys[keycode // 8] & (1 << (keycode % 8)))

    def _fake(self, event_type: int, keycode: int) -> None:
        self._xtest.fake_input(self.display, event_type, keycode)


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
            self._keyboard: Any = keyboard.Controller()
        except Exception as exc:  # Xlib's connection errors have no common base
            raise ControlError(f"cannot inject input here: {exc}") from exc
        # On X11, characters are typed with XTest (see _XTestTyper); elsewhere pynput's
        # own way (SendInput with Unicode on Windows, CGEvent on macOS) is the right one.
        self._typer: _XTestTyper | None = None
        if type(self._keyboard).__module__.endswith("_xorg"):
            try:
                self._typer = _XTestTyper()
            except Exception as exc:
                self._mouse = self._keyboard = None
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
        # Keys held by the technician, by the code (or key) that pressed them:
        # ("pynput", key) or ("xtest", keycode).
        self._held_keys: dict[str, tuple[str, Any]] = {}
        # Which of those are modifiers, and which.
        self._held_modifiers: dict[str, KeyModifier] = {}
        # Mouse buttons held by the technician.
        self._held_buttons: set[PointerButton] = set()
        # The take-back listener, while running.
        self._listener: Any = None
        if watch_user:
            if self._typer is not None and not self._typer.display.has_extension("RECORD"):
                # pynput's listener needs it; Stop in the indicator still works.
                logger.warning("the X server has no RECORD extension: no take-back by mouse")
            else:
                self._listener = mouse.Listener(on_move=self._on_move)
                self._listener.daemon = True
                self._listener.start()

    # -- State -----------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether control is granted."""
        return self._enabled

    @property
    def paused(self) -> bool:
        """Whether injection is paused because the user moved their mouse."""
        return self._clock() < self._paused_until

    @property
    def paused_until(self) -> float:
        """The clock time until which injection is paused (in the past when it is not)."""
        return self._paused_until

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
            try:
                listener._display_stop.record_disable_context(listener._context)
                listener._display_stop.flush()
            except Exception:
                # Broad: pynput's private attributes (an AttributeError on another
                # backend or version) and Xlib's errors (no common base). The thread
                # then ends with the next event, or not: join() below says so.
                logger.debug("could not stop the mouse listener's recording", exc_info=True)
            listener.join(5.0)
            if listener.is_alive():
                logger.warning("the mouse listener did not stop")
        # pynput's controllers close their X connections when collected: now, while
        # the display is still there, rather than at some later collection.
        with self._lock:
            self._mouse = self._keyboard = None
            if self._typer is not None:
                self._typer.close()
                self._typer = None

    # -- Events ----------------------------------------------------------------------

    def handle(self, message: InputPointer | InputKey) -> Outcome:
        """Inject one wire message (if allowed); :class:`ControlError` if that failed."""
        try:
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
        except ControlError:
            raise
        except Exception as exc:
            # pynput and Xlib raise many unrelated types (XError, ConnectionClosedError,
            # OSError, ...) when the display goes away. Only the type goes in the
            # message: an X error's text can carry the keycode that was being typed.
            raise ControlError(f"input failed: {type(exc).__name__}") from exc

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
                self._release(held)
                return Outcome.INJECTED
            action = map_key(code, key, modifiers)
            if action is None:
                return Outcome.IGNORED
            modifier = _MODIFIER_OF.get(action.value) if action.kind == "named" else None
            if modifier is None:
                self._release_stale_modifiers(modifiers)
            previous = self._held_keys.pop(slot, None)
            if previous is not None:  # a repeat: let go of the first press
                self._release(previous)
            self._held_keys[slot] = self._press(action)
            if modifier is not None:
                self._held_modifiers[slot] = modifier
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

    def _press(self, action: KeyAction) -> tuple[str, Any]:
        """Press the key of ``action``; what to give :meth:`_release` later."""
        if action.kind == "named":
            named = getattr(self._keyboard_module.Key, action.value)
            self._keyboard.press(named)
            return ("pynput", named)
        if self._typer is not None:
            shift = KeyModifier.SHIFT in self._held_modifiers.values()
            return ("xtest", self._typer.press(action.value, shift))
        char = self._keyboard_module.KeyCode.from_char(action.value)
        self._keyboard.press(char)
        return ("pynput", char)

    def _release(self, held: tuple[str, Any]) -> None:
        kind, value = held
        if kind == "xtest" and self._typer is not None:
            self._typer.release(value)
        else:
            self._keyboard.release(value)

    def _release_stale_modifiers(self, modifiers: Collection[KeyModifier]) -> None:
        for slot, modifier in list(self._held_modifiers.items()):
            if modifier not in modifiers:
                del self._held_modifiers[slot]
                self._release(self._held_keys.pop(slot))

    def _release_all(self) -> None:
        for held in self._held_keys.values():
            try:
                self._release(held)
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
            if self.paused:  # still moving: the pause lasts until the mouse rests
                self._paused_until = now + self._takeback_seconds
                return
        logger.info("the user moved the mouse: control paused")
        self.pause()
