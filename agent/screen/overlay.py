"""The guidance overlay: the technician's pointer and drawings on the user's own screen.

The technician points and draws (arrows, circles, freehand lines, short text) in the
viewer; the user sees them on their real screen, above every window, until they are
cleared or the session ends, and can click through them to follow the guidance.

Like the consent dialog, the overlay is a process of its own, ``python -m
deskside.agent.screen.overlay``, started by :meth:`GuidanceOverlay.start`: the
daemon never opens a window itself, and a crash of the overlay (or of the X
connection) cannot take the daemon down. The daemon writes commands to its stdin,
one JSON object a line, in screen (root window) coordinates:

==========================================================  ============================
``{"op": "draw", "id", "kind", "points", "colour",          draw or replace a shape
"width", "text"}``
``{"op": "pointer", "x", "y", "visible"}``                  show, move or hide the pointer
``{"op": "clear", "id"}``                                   remove one shape, or all
                                                            (and the pointer) without id
``{"op": "sync", "token"}``                                 answer ``{"synced": token}``
                                                            once everything before it is
                                                            on the screen
==========================================================  ============================

The process prints ``{"ready": true}`` once its window is up, and exits when its
stdin closes (the session ended, or the daemon died): the drawings go with it.
Exit codes: 0 after stdin closed, 3 when there is no display or it lacks the SHAPE
extension, 64 for a bad command line.

How it is drawn (X11)
    The usual way to draw over everything would be a transparent window, but
    per-pixel transparency needs a compositing manager, which many desktops (and
    Xvfb, and remote X sessions) do not run. The overlay uses what every X server
    has instead: one override-redirect window (no window manager decoration or
    placement) the size of the screen, shaped with the X SHAPE extension. Its
    *bounding* shape is exactly the pixels of the strokes, drawn into a 1-bit mask
    with the same X drawing calls (and so the same pixels) as the strokes themselves,
    so everything else on the screen shows through untouched; its *input* shape is
    empty, so clicks and the wheel, even on a stroke, go to the windows below as if
    the overlay were not there. It watches the root window for other windows being
    mapped or raised and raises itself back above them, except Deskside's own
    windows (WM_CLASS "deskside-..."): the consent prompt and the session indicator
    stay above the drawings, so a technician cannot draw over what the user is
    asked or hide the Stop button.

    python-xlib (pure Python, no toolkit) draws it: Tk cannot set a window's input
    shape, nor draw into a 1-bit mask, so it would need Xlib anyway and bring a Tcl
    interpreter along; GTK is not installed on many machines and needs a compositor
    for its transparent windows. Commands are batched: all lines waiting on stdin
    are applied before one redraw, so a fast-moving pointer costs one redraw per
    batch. Text uses the server's core fonts (the label is drawn on a white box for
    contrast; characters beyond Latin-1 show as "?").

    Other platforms (Windows: a layered, click-through, topmost window; macOS: a
    borderless NSWindow ignoring mouse events) are not written yet: the process
    exits with code 3 there and the session goes on without guidance on the screen.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import select
import sys
from collections.abc import Sequence
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from deskside.agent.screen.errors import OverlayError
from deskside.agent.screen.framemap import FrameMap
from deskside.protocol.messages import GuideClear, GuideDraw, GuidePointer, GuideShape

__all__ = [
    "OVERLAY_TITLE",
    "GuidanceOverlay",
    "OverlayError",
    "main",
]

logger = logging.getLogger(__name__)

# The overlay window's name (WM_NAME), for tests and for people reading xwininfo.
OVERLAY_TITLE: Final = "Deskside guidance"
# The most shapes kept; drawing more drops the oldest.
MAX_SHAPES: Final = 256
# The technician's pointer: a ring and a dot in this colour.
POINTER_COLOUR: Final = "#ff6a00"
POINTER_RADIUS: Final = 14
# Exit codes of the overlay process.
EXIT_NO_DISPLAY: Final = 3
EXIT_USAGE: Final = 64
# How long the daemon waits for the overlay to come up or to answer a sync.
_START_TIMEOUT: Final = 10.0

ScreenCoordinate = Annotated[int, Meta(ge=0, le=65535)]
Colour = Annotated[str, Meta(pattern=r"^#[0-9a-fA-F]{6}$")]


# -- Commands between the daemon and the overlay process ---------------------------------


class _Draw(msgspec.Struct, frozen=True, tag="draw", tag_field="op"):
    id: Annotated[str, Meta(min_length=1, max_length=64)]
    kind: GuideShape
    points: Annotated[
        list[tuple[ScreenCoordinate, ScreenCoordinate]], Meta(min_length=1, max_length=1024)
    ]
    colour: Colour = "#ff0000"
    width: Annotated[int, Meta(ge=1, le=128)] = 4
    text: Annotated[str, Meta(max_length=200)] = ""


class _Pointer(msgspec.Struct, frozen=True, tag="pointer", tag_field="op"):
    x: ScreenCoordinate
    y: ScreenCoordinate
    visible: bool = True


class _Clear(msgspec.Struct, frozen=True, tag="clear", tag_field="op"):
    id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class _Sync(msgspec.Struct, frozen=True, tag="sync", tag_field="op"):
    token: Annotated[int, Meta(ge=0, le=2**63 - 1)]


_Command = _Draw | _Pointer | _Clear | _Sync
_decoder: Final = msgspec.json.Decoder(_Command)


# -- The daemon's side -------------------------------------------------------------------


class GuidanceOverlay:
    """The overlay process of one screen session, fed with the technician's guidance."""

    def __init__(self, process: asyncio.subprocess.Process, frame_map: FrameMap) -> None:
        """Use :meth:`start`."""
        # The overlay process; it ends when its stdin closes.
        self._process = process
        # How the viewer's frame maps to the screen.
        self._frame_map = frame_map
        # The last sync token sent.
        self._token = 0
        # Serialises writes and sync round trips.
        self._lock = asyncio.Lock()
        # The last lines the overlay wrote on stderr, read as they come so its pipe
        # never fills up and blocks it.
        self._errors: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_task = asyncio.create_task(self._read_errors(), name="deskside-overlay-stderr")

    @classmethod
    async def start(cls, frame_map: FrameMap, *, display: str | None = None) -> GuidanceOverlay:
        """Start the overlay process and wait until its window is up.

        ``display`` is the X display (default: the daemon's ``DISPLAY``). Raises
        :class:`OverlayError` when there is no display or it cannot be shaped.
        """
        env = dict(os.environ)
        if display is not None:
            env["DISPLAY"] = display
        if not env.get("DISPLAY"):
            raise OverlayError("no X display to draw on")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "deskside.agent.screen.overlay",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise OverlayError(f"cannot start the overlay: {exc}") from exc
        overlay = cls(process, frame_map)
        try:
            line = await overlay._answer(_START_TIMEOUT)
            if _reply(line).get("ready") is not True:
                raise OverlayError(f"the overlay said {line!r} instead of ready")
        except OverlayError:
            await overlay._kill()
            raise
        return overlay

    @property
    def running(self) -> bool:
        """Whether the overlay process is still there."""
        return self._process.returncode is None

    def set_frame_map(self, frame_map: FrameMap) -> None:
        """Map later guidance with a new frame mapping (another monitor or scale)."""
        self._frame_map = frame_map

    async def apply(self, message: GuidePointer | GuideDraw | GuideClear) -> None:
        """Show one guidance message from the technician on the screen."""
        command: _Command
        if isinstance(message, GuidePointer):
            x, y = self._frame_map.to_screen(message.x, message.y)
            command = _Pointer(x=x, y=y, visible=message.visible)
        elif isinstance(message, GuideDraw):
            scale = min(self._frame_map.scale())
            command = _Draw(
                id=message.shape_id,
                kind=message.kind,
                points=[self._frame_map.to_screen(p.x, p.y) for p in message.points],
                colour=message.colour,
                width=max(1, min(128, round(message.width * scale))),
                text=message.text,
            )
        else:
            command = _Clear(id=message.shape_id)
        await self._send(command)

    async def clear(self) -> None:
        """Remove every drawing and the pointer."""
        await self._send(_Clear())

    async def sync(self, timeout: float = 5.0) -> None:
        """Wait until everything sent so far is on the screen."""
        async with self._lock:
            self._token += 1
            token = self._token
            await self._write(_Sync(token=token))
            while True:
                answer = _reply(await self._answer(timeout))
                if answer.get("synced") == token:
                    return

    async def close(self) -> None:
        """End the overlay: its drawings disappear with its window."""
        if self._process.stdin is not None and not self._process.stdin.is_closing():
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 3.0)
        except TimeoutError:
            await self._kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 2.0)

    async def _send(self, command: _Command) -> None:
        async with self._lock:
            await self._write(command)

    async def _write(self, command: _Command) -> None:
        stdin = self._process.stdin
        if stdin is None or stdin.is_closing() or not self.running:
            raise OverlayError("the overlay has ended")
        try:
            stdin.write(msgspec.json.encode(command) + b"\n")
            await stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise OverlayError("the overlay has ended") from exc

    async def _answer(self, timeout: float) -> bytes:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            line = await asyncio.wait_for(stdout.readline(), timeout)
        except TimeoutError:
            raise OverlayError("the overlay did not answer in time") from None
        if not line:
            await self._process.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 2.0)
            raise OverlayError(
                f"the overlay ended (exit {self._process.returncode}): "
                + (self._errors[-1] if self._errors else "no message")
            )
        return line

    async def _read_errors(self) -> None:
        stderr = self._process.stderr
        assert stderr is not None
        while line := await stderr.readline():
            text = line.decode(errors="replace").rstrip()[:500]
            self._errors.append(text)
            logger.warning("guidance overlay: %s", text)

    async def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        await self._process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 2.0)


def _reply(line: bytes) -> dict[str, Any]:
    """One line the overlay wrote on stdout, as the JSON object it should be."""
    try:
        reply = msgspec.json.decode(line)
    except msgspec.DecodeError as exc:  # a crash dump or stray output, not an answer
        raise OverlayError(f"the overlay wrote {line[:100]!r} instead of an answer") from exc
    if not isinstance(reply, dict):
        raise OverlayError(f"the overlay wrote {line[:100]!r} instead of an answer")
    return reply


# -- The overlay process -----------------------------------------------------------------


class _Painter:
    """The shaped window and what is drawn on it."""

    def __init__(self, display: Any) -> None:
        from Xlib import X, Xatom
        from Xlib.ext import shape

        self.X = X
        self.shape = shape
        self.display = display
        screen = display.screen()
        self.root = screen.root
        self.colormap = screen.default_colormap
        geometry = self.root.get_geometry()
        self.width, self.height = geometry.width, geometry.height
        self.window = self.root.create_window(
            0,
            0,
            self.width,
            self.height,
            0,
            screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixmap=X.NONE,
            override_redirect=True,
            event_mask=X.ExposureMask,
        )
        self.window.set_wm_name(OVERLAY_TITLE)
        self.window.set_wm_class("deskside-guidance", "Deskside")
        self.window.change_property(
            display.intern_atom("_NET_WM_STATE"),
            Xatom.ATOM,
            32,
            [display.intern_atom("_NET_WM_STATE_ABOVE")],
        )
        # Nothing shown and nothing clickable until something is drawn.
        self._set_shape([])
        self.window.shape_rectangles(shape.SO.Set, shape.SK.Input, X.Unsorted, 0, 0, [])
        self.gc = self.window.create_gc(
            line_width=4, cap_style=X.CapRound, join_style=X.JoinRound, foreground=0
        )
        self.font = self._open_font()
        if self.font is not None:
            self.gc.change(font=self.font)
        # Shapes by id, in drawing order (dicts keep insertion order).
        self.shapes: dict[str, _Draw] = {}
        # The technician's pointer, when shown.
        self.pointer: tuple[int, int] | None = None
        # Pixel values of colours.
        self._pixels: dict[str, int] = {}
        # Whether each top-level window seen is one of Deskside's own windows (the
        # consent prompt, the session indicator), which stay above the drawings so a
        # technician cannot draw over what the user is asked.
        self._protected_ids: dict[int, bool] = {}
        self.root.change_attributes(event_mask=X.SubstructureNotifyMask)
        self.window.map()
        self.window.raise_window()
        display.sync()

    def _open_font(self) -> Any:
        for name in (
            "-*-helvetica-bold-r-normal--18-*-*-*-*-*-iso8859-1",
            "-misc-fixed-bold-r-normal--18-*-*-*-*-*-iso8859-1",
            "9x15bold",
            "fixed",
        ):
            if self.display.list_fonts(name, 1):
                return self.display.open_font(name)
        return None

    def _set_shape(self, rectangles: list[tuple[int, int, int, int]]) -> None:
        self.window.shape_rectangles(
            self.shape.SO.Set, self.shape.SK.Bounding, self.X.Unsorted, 0, 0, rectangles
        )

    def pixel(self, colour: str) -> int:
        """The pixel value of "#rrggbb" in the screen's colormap."""
        if colour not in self._pixels:
            red, green, blue = (int(colour[i : i + 2], 16) * 257 for i in (1, 3, 5))
            self._pixels[colour] = self.colormap.alloc_color(red, green, blue).pixel
        return int(self._pixels[colour])

    def apply(self, command: _Command) -> int | None:
        """Change what is drawn; a sync token to answer after the redraw, if any."""
        if isinstance(command, _Draw):
            self.shapes.pop(command.id, None)
            self.shapes[command.id] = command
            while len(self.shapes) > MAX_SHAPES:
                del self.shapes[next(iter(self.shapes))]
        elif isinstance(command, _Pointer):
            self.pointer = (command.x, command.y) if command.visible else None
        elif isinstance(command, _Clear):
            if command.id is None:
                self.shapes.clear()
                self.pointer = None
            else:
                self.shapes.pop(command.id, None)
        else:
            return command.token
        return None

    def redraw(self) -> None:
        """Shape the window to the strokes and paint them."""
        X = self.X
        if not self.shapes and self.pointer is None:
            self._set_shape([])
            return
        mask = self.window.create_pixmap(self.width, self.height, 1)
        mask_gc = mask.create_gc(foreground=0, cap_style=X.CapRound, join_style=X.JoinRound)
        if self.font is not None:
            mask_gc.change(font=self.font)
        mask.fill_rectangle(mask_gc, 0, 0, self.width, self.height)
        self._paint_all(mask, mask_gc, lambda colour: 1)
        self.window.shape_mask(self.shape.SO.Set, self.shape.SK.Bounding, 0, 0, mask)
        mask_gc.free()
        mask.free()
        self._paint_all(self.window, self.gc, self.pixel)

    def _paint_all(self, drawable: Any, gc: Any, pixel: Any) -> None:
        for item in self.shapes.values():
            self._paint(drawable, gc, pixel, item)
        if self.pointer is not None:
            x, y = self.pointer
            r = POINTER_RADIUS
            gc.change(foreground=pixel("#ffffff"), line_width=7)
            drawable.arc(gc, x - r, y - r, 2 * r, 2 * r, 0, 360 * 64)
            gc.change(foreground=pixel(POINTER_COLOUR), line_width=3)
            drawable.arc(gc, x - r, y - r, 2 * r, 2 * r, 0, 360 * 64)
            drawable.fill_arc(gc, x - 5, y - 5, 10, 10, 0, 360 * 64)

    def _paint(self, drawable: Any, gc: Any, pixel: Any, item: _Draw) -> None:
        X = self.X
        gc.change(foreground=pixel(item.colour), line_width=item.width)
        points = item.points
        if item.kind is GuideShape.LINE:
            if len(points) == 1:
                x, y = points[0]
                w = item.width
                drawable.fill_arc(gc, x - w // 2, y - w // 2, w, w, 0, 360 * 64)
            else:
                drawable.poly_line(gc, X.CoordModeOrigin, list(points))
        elif item.kind is GuideShape.ARROW:
            start, end = points[0], points[-1]
            drawable.line(gc, start[0], start[1], end[0], end[1])
            angle = math.atan2(end[1] - start[1], end[0] - start[0])
            size = max(18, item.width * 5)
            head = [end]
            for side in (-1, 1):
                a = angle + math.pi - side * math.pi / 7
                head.append(
                    (round(end[0] + size * math.cos(a)), round(end[1] + size * math.sin(a)))
                )
            drawable.fill_poly(gc, X.Convex, X.CoordModeOrigin, head)
        elif item.kind is GuideShape.CIRCLE:
            (cx, cy), rim = points[0], points[-1]
            r = max(4, round(math.dist((cx, cy), rim))) if len(points) > 1 else 30
            drawable.arc(gc, cx - r, cy - r, 2 * r, 2 * r, 0, 360 * 64)
        elif item.kind is GuideShape.TEXT and item.text and self.font is not None:
            x, y = points[0]
            text = item.text.encode("latin-1", "replace").decode("latin-1")
            extents = self.font.query_text_extents([ord(c) for c in text])
            width = extents.overall_width
            ascent, descent = extents.font_ascent, extents.font_descent
            gc.change(foreground=pixel("#ffffff"))
            drawable.fill_rectangle(gc, x - 6, y - ascent - 4, width + 12, ascent + descent + 8)
            gc.change(foreground=pixel(item.colour))
            drawable.poly_text(gc, x, y, [text])

    def stacking_may_change(self, event: Any) -> bool:
        """Whether ``event`` (from the root) means a window may now be above us."""
        X = self.X
        return bool(event.type in (X.MapNotify, X.ConfigureNotify, X.CreateNotify))

    def restack(self) -> None:
        """Put the overlay above every window but Deskside's own (consent, indicator).

        Only acts when the order is wrong, so the stacking events it causes do not
        make it act again.
        """
        from Xlib import error as xerror

        try:
            children = list(self.root.query_tree().children)
            ours = [child.id for child in children].index(self.window.id)
            above = [c for c in children[ours + 1 :] if self._viewable(c)]
            below = [c for c in children[:ours] if self._viewable(c)]
            if any(not self._protected(child) for child in above):
                self.window.raise_window()
                for child in [*below, *above]:
                    if self._protected(child):
                        child.raise_window()
            else:
                for child in below:
                    if self._protected(child):
                        child.raise_window()
        except (xerror.XError, ValueError):  # a window went away meanwhile: next time
            return

    def _viewable(self, window: Any) -> bool:
        return bool(window.get_attributes().map_state == self.X.IsViewable)

    def _protected(self, window: Any) -> bool:
        """Whether ``window`` (or, under a window manager, its client) is Deskside's."""
        if window.id not in self._protected_ids:
            if len(self._protected_ids) > 4096:
                self._protected_ids.clear()
            found = False
            for candidate in [window, *window.query_tree().children]:
                wm_class = candidate.get_wm_class() or ()
                if any(name.lower().startswith("deskside-") for name in wm_class):
                    found = True
                    break
            self._protected_ids[window.id] = found
        return self._protected_ids[window.id]


def _serve(display_name: str | None) -> int:
    """Run the overlay until stdin closes."""
    from Xlib import display as xdisplay
    from Xlib import error as xerror

    try:
        display = xdisplay.Display(display_name)
    except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
        print(f"no X display: {exc}", file=sys.stderr)
        return EXIT_NO_DISPLAY
    if not display.has_extension("SHAPE"):
        print("the X server has no SHAPE extension", file=sys.stderr)
        return EXIT_NO_DISPLAY
    # Requests on windows that vanished meanwhile fail harmlessly; say nothing.
    display.set_error_handler(lambda error, request: None)
    painter = _Painter(display)
    out = sys.stdout
    out.write('{"ready":true}\n')
    out.flush()
    stdin = sys.stdin.buffer.fileno()
    x_fd = display.fileno()
    pending = b""
    while True:
        # Events python-xlib already read sit in its queue, not in the socket.
        timeout = 0.0 if display.pending_events() else None
        readable, _, _ = select.select([stdin, x_fd], [], [], timeout)
        changed = restack = False
        tokens: list[int] = []
        if stdin in readable:
            data = os.read(stdin, 1 << 16)
            if not data:
                return 0
            pending += data
            *lines, pending = pending.split(b"\n")
            if len(pending) > 1 << 20:
                print("a command line too long; dropped", file=sys.stderr)
                pending = b""
            for line in lines:
                if not line.strip():
                    continue
                try:
                    command = _decoder.decode(line)
                except msgspec.DecodeError as exc:  # ValidationError is one too
                    print(f"bad command: {exc}", file=sys.stderr)
                    continue
                token = painter.apply(command)
                if token is None:
                    changed = True
                else:
                    tokens.append(token)
        while display.pending_events():
            event = display.next_event()
            if event.type == painter.X.Expose and event.window == painter.window:
                changed = True
            elif painter.stacking_may_change(event):
                restack = True
        if restack:
            painter.restack()
        if changed:
            painter.redraw()
        if changed or tokens:
            display.sync()
        for token in tokens:
            out.write(f'{{"synced":{token}}}\n')
        if tokens:
            out.flush()


def main(args: Sequence[str] | None = None) -> int:
    """``python -m deskside.agent.screen.overlay [DISPLAY]``, commands on stdin."""
    argv = list(sys.argv[1:] if args is None else args)
    if len(argv) > 1:
        print("usage: python -m deskside.agent.screen.overlay [DISPLAY] < commands")
        return EXIT_USAGE
    if not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        print("the guidance overlay needs X11 on this platform", file=sys.stderr)
        return EXIT_NO_DISPLAY
    return _serve(argv[0] if argv else None)


if __name__ == "__main__":
    sys.exit(main())
