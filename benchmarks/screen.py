"""Screen sharing on the agent's side: the tile pipeline against two baselines.

    .venv/bin/python benchmarks/screen.py [--seconds 5] [--fps 30] [--browser]

A fresh Xvfb at 1920x1080 and, in it, four scenes drawn by a separate Tk process
(so its CPU is not counted): a static desktop, typing in an editor (8 characters
a second), scrolling text (one line per frame) and full-screen motion (a textured
picture panning). For each scene, in the same run:

* bare capture: mss grabbing as fast as it can (the limit);
* full JPEG: every frame grabbed and JPEG-encoded whole, at the same frame-rate
  cap as the pipeline (the naive approach);
* deskside: the real ``ScreenSession`` (X DAMAGE, byte compare, 64x64 tiles,
  JPEG rects, pointer), acknowledged at once by a loopback sender;
* video H.264 (motion only): the same session in the video mode (libx264,
  zero-latency, Baseline, capped at 3 Mbit/s), the way the viewer asks for it.

Columns: frames per second, agent CPU milliseconds per frame (this process, all
threads), CPU share of one core, bytes per second, and for typing bytes per
typed character. The X server's own CPU is not counted (it is not the agent's).

``--browser`` also runs the real console, the real agent daemon and the viewer
in chromium, and reports the capture-to-canvas delay (p50, p95) per scene, as
the page measures it (agent clock vs browser clock: same machine here).

Goals (issue 5) at 1080p: a static screen under 1% of a core; a typed character
within 30 ms p50 on the canvas and under 20 KB; full-screen motion 30 fps under
4 Mbit/s (that one is for the video mode, not these tiles).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mss
import simplejpeg

from deskside.agent.screen.session import ScreenSession
from deskside.agent.screen.videomode import ModeEncoder
from deskside.protocol import messages as m

WIDTH, HEIGHT = 1920, 1080
TYPING_RATE = 8.0  # characters a second

SCENE = r"""
import sys, tkinter as tk
scene = sys.argv[1]
root = tk.Tk()
root.attributes("-fullscreen", True)
root.geometry("1920x1080+0+0")
if scene in ("static", "typing", "scroll"):
    wrap = "word" if scene == "typing" else "none"  # typed text stays in view
    text = tk.Text(root, font=("DejaVu Sans Mono", 12), wrap=wrap, bg="white", fg="black")
    text.pack(fill="both", expand=True)
    lines = [f"{i:5d}  The quick brown fox jumps over the lazy dog; def f(x): return x * {i}"
             for i in range(4000)]
    text.insert("1.0", "\n".join(lines if scene == "scroll" else lines[:30]))
    if scene == "typing":
        text.mark_set("insert", "32.0")
        sentence = "Dear help desk, my printer says PC LOAD LETTER. What does it mean? "
        state = {"i": 0}
        def type_one():
            text.insert("insert", sentence[state["i"] % len(sentence)])
            state["i"] += 1
            root.after(int(1000 / RATE), type_one)
        root.after(500, type_one)
    elif scene == "scroll":
        def scroll():
            text.yview_scroll(1, "units")
            root.after(33, scroll)
        root.after(500, scroll)
else:
    canvas = tk.Canvas(root, width=1920, height=1080, highlightthickness=0, bg="black")
    canvas.pack()
    import numpy as np, tempfile
    w, h = 2400, 1400
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(x * 3 + y) % 256, (x ^ y) % 256, (x * y // 97) % 256], axis=-1)
    rgb = rgb.astype(np.uint8)
    path = tempfile.mktemp(suffix=".ppm")
    with open(path, "wb") as file:
        file.write(b"P6 %d %d 255\n" % (w, h) + rgb.tobytes())
    image = tk.PhotoImage(file=path)
    item = canvas.create_image(0, 0, image=image, anchor="nw")
    state = {"t": 0}
    def pan():
        state["t"] += 1
        t = state["t"] % 120
        canvas.coords(item, -4 * t, -2 * t)
        root.after(33, pan)
    root.after(500, pan)
root.mainloop()
""".replace("RATE", str(TYPING_RATE))


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{WIDTH}x{HEIGHT}x24",
         "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_end)
    number = b""
    while not number.endswith(b"\n"):  # Xvfb writes the number, then a newline
        chunk = os.read(read_end, 32)
        if not chunk:
            raise RuntimeError("Xvfb did not start")
        number += chunk
    os.close(read_end)
    return server, f":{number.decode().strip()}"


def start_scene(name: str, display: str) -> subprocess.Popen[bytes]:
    scene = subprocess.Popen(
        [sys.executable, "-c", SCENE, name], env={**os.environ, "DISPLAY": display}
    )
    time.sleep(2.5 if name == "motion" else 1.5)  # drawn and running
    return scene


class Result:
    def __init__(self, frames: int, cpu: float, wall: float, size: int) -> None:
        self.frames, self.cpu, self.wall, self.size = frames, cpu, wall, size

    def row(self, scene: str, method: str, chars: float | None) -> str:
        fps = self.frames / self.wall
        ms = 1000 * self.cpu / self.frames if self.frames else float("nan")
        share = 100 * self.cpu / self.wall
        rate = self.size / self.wall
        per_char = f"{rate / chars / 1024:9.1f}" if chars else f"{'':>9}"
        return (
            f"{scene:<8} {method:<12} {fps:7.1f} {ms:9.2f} {share:8.1f}% "
            f"{rate / 1024:10.1f} {rate * 8 / 1e6:8.2f} {per_char}"
        )


def measure(seconds: float, step: Callable[[], int], fps: float | None) -> Result:
    """Run ``step`` (returns bytes) repeatedly for ``seconds``, at most ``fps`` a second."""
    frames = size = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    next_at = wall0
    while (now := time.perf_counter()) - wall0 < seconds:
        if fps is not None and now < next_at:
            time.sleep(next_at - now)
            continue
        next_at = max(next_at + (1 / fps if fps else 0), now)
        size += step()
        frames += 1
    return Result(frames, time.process_time() - cpu0, time.perf_counter() - wall0, size)


def bare_capture(display: str, seconds: float) -> Result:
    with mss.MSS(display=display) as grabber:
        region = grabber.monitors[1]
        return measure(seconds, lambda: (grabber.grab(region), 0)[1], None)


def full_jpeg(display: str, seconds: float, fps: float, quality: int) -> Result:
    with mss.MSS(display=display) as grabber:
        region = grabber.monitors[1]

        def step() -> int:
            shot = grabber.grab(region)
            image = pixels_of(shot)
            data = simplejpeg.encode_jpeg(
                image, quality=quality, colorspace="BGRA", colorsubsampling="420", fastdct=True
            )
            return len(data)

        return measure(seconds, step, fps)


def pixels_of(shot: Any) -> Any:
    import numpy as np

    return np.frombuffer(shot.raw, dtype=np.uint8).reshape(shot.height, shot.width, 4)


async def deskside(
    display: str, seconds: float, fps: float, quality: int, video: bool = False
) -> Result:
    os.environ["DISPLAY"] = display
    sizes: list[int] = []
    frames = [0]
    holder: list[ScreenSession] = []

    async def send(message: m.Message) -> None:
        assert isinstance(message, m.ScreenFrame)
        sizes.append(sum(len(r.data) for r in message.rects))
        if message.final:
            frames[0] += 1
            seq = message.seq
            asyncio.get_running_loop().call_soon(holder[0].acknowledged, seq)

    def make_encoder(quality: int) -> ModeEncoder:
        encoder = ModeEncoder(quality)
        encoder.set_mode(m.ScreenMode.VIDEO if video else m.ScreenMode.TILES)
        return encoder

    session = ScreenSession(
        "bench", send, monitor=1, quality=quality, max_fps=fps, encoder_factory=make_encoder
    )
    holder.append(session)
    await session.start()
    task = asyncio.create_task(session.run())
    await asyncio.sleep(1.0)  # the keyframe and warm-up are not counted
    start_frames, start_size = frames[0], sum(sizes)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    result = Result(frames[0] - start_frames, cpu, wall, sum(sizes) - start_size)
    session.stop()
    await task
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--quality", type=int, default=70)
    parser.add_argument("--scenes", default="static,typing,scroll,motion")
    parser.add_argument("--browser", action="store_true", help="also the delay in chromium")
    args = parser.parse_args()
    server, display = start_xvfb()
    print(
        f"Xvfb {WIDTH}x{HEIGHT}, {args.seconds:g} s per measurement, frame-rate cap "
        f"{args.fps:g}, JPEG quality {args.quality}, CPU: this process, all threads"
    )
    header = (
        f"{'scene':<8} {'method':<12} {'fps':>7} {'CPU ms/f':>9} {'CPU':>9} "
        f"{'KiB/s':>10} {'Mbit/s':>8} {'KiB/char':>9}"
    )
    print(header)
    print("-" * len(header))
    delays: dict[str, tuple[float, float, int]] = {}
    viewer: Any = None
    try:
        for name in args.scenes.split(","):
            scene = start_scene(name, display)
            chars = TYPING_RATE if name == "typing" else None
            try:
                bare = bare_capture(display, args.seconds)
                naive = full_jpeg(display, args.seconds, args.fps, args.quality)
                ours = asyncio.run(deskside(display, args.seconds, args.fps, args.quality))
                print(bare.row(name, "bare capture", None))
                print(naive.row(name, "full JPEG", chars))
                print(ours.row(name, "deskside", chars))
                naive_rate, ours_rate = naive.size / naive.wall, ours.size / ours.wall
                naive_share, ours_share = naive.cpu / naive.wall, ours.cpu / ours.wall
                fps_ratio = (ours.frames / ours.wall) / (bare.frames / bare.wall)
                print(
                    f"{'':<8} {'ratio':<12} deskside/full JPEG: bytes {ours_rate / naive_rate:.3f}"
                    f", CPU {ours_share / naive_share:.3f}; deskside fps / bare {fps_ratio:.3f}"
                )
                if name == "motion":  # the video mode is for this one
                    video = asyncio.run(
                        deskside(display, args.seconds, args.fps, args.quality, video=True)
                    )
                    print(video.row(name, "video H.264", chars))
                    video_rate = video.size / video.wall
                    print(
                        f"{'':<8} {'ratio':<12} video/full JPEG: bytes "
                        f"{video_rate / naive_rate:.3f}, CPU "
                        f"{(video.cpu / video.wall) / naive_share:.3f}; video/deskside tiles: "
                        f"bytes {video_rate / ours_rate:.3f}, fps "
                        f"{(video.frames / video.wall) / (ours.frames / ours.wall):.3f}"
                    )
            finally:
                scene.terminate()
                scene.wait()
        if args.browser:  # afterwards, so the daemon does not disturb the table above
            from benchmarks.screen_browser import Viewer

            viewer = Viewer(display, fps=args.fps, quality=args.quality).__enter__()
            for name in args.scenes.split(","):
                scene = start_scene(name, display)
                try:
                    delays[name] = viewer.delays(args.seconds)
                finally:
                    scene.terminate()
                    scene.wait()
    finally:
        if viewer is not None:
            viewer.__exit__(None, None, None)
        server.terminate()
        server.wait()
    if delays:
        print()
        print(f"{'scene':<8} {'delay p50 ms':>13} {'delay p95 ms':>13} {'frames':>7}")
        for name, (p50, p95, count) in delays.items():
            print(f"{name:<8} {p50:13.1f} {p95:13.1f} {count:7d}")


if __name__ == "__main__":
    main()
