"""The H.264 video mode against a full JPEG of every frame, at 1920x1080, in one run.

    .venv/bin/python benchmarks/video.py [--seconds 3] [--fps 30] [--bitrate 3500000]

Synthetic BGRA frames (as mss gives them), made before timing starts:

* ``scrolling``: a page of text-like strokes scrolled 12 pixels a frame;
* ``motion``: a picture panned diagonally with a moving bright square on it, every
  pixel changing every frame (a video, a window dragged about);
* ``typing``: a static page where a few characters' worth of pixels change a frame;
* ``static``: nothing changes.

Before each H.264 run the encoder is fed the scenario's first frame for a few
seconds, untimed, as in a session already under way: under its bit-rate cap the
encoder spends those seconds refining a dense first picture to full quality.

For each: milliseconds of CPU per frame (the process's own time, so other load on
the machine does not count) and bytes per second at the frame rate, for the H.264
encoder (libx264, ultrafast, zerolatency, Baseline, VBV at the bit rate) and for
simplejpeg at quality 75 (the naive way: a full JPEG of every frame), with their
ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numpy.typing import NDArray
from simplejpeg import encode_jpeg

from deskside.agent.screen.video import VideoEncoder

WIDTH, HEIGHT = 1920, 1080
WARM_UP_SECONDS = 8


def page(rng: np.random.Generator, height: int) -> NDArray[np.uint8]:
    """A white page with dark, text-like strokes in lines."""
    image = np.full((height, WIDTH, 4), 255, np.uint8)
    for top in range(40, height - 30, 28):
        x = 60
        while x < WIDTH - 120:
            word = int(rng.integers(12, 90))
            glyphs = rng.random((16, word)) < 0.35
            image[top : top + 16, x : x + word, :3][glyphs] = 30
            x += word + 10
    return image


def scenarios(frames: int) -> dict[str, list[NDArray[np.uint8]]]:
    """The frames of each scenario."""
    rng = np.random.default_rng(7)
    tall = page(rng, HEIGHT + frames * 12)
    scrolling = [np.ascontiguousarray(tall[i * 12 : i * 12 + HEIGHT]) for i in range(frames)]

    y, x = np.mgrid[0 : HEIGHT * 2, 0 : WIDTH * 2]
    picture = np.zeros((HEIGHT * 2, WIDTH * 2, 4), np.uint8)
    picture[..., 0] = (np.sin(x / 37.0) * 100 + 120).astype(np.uint8)
    picture[..., 1] = (np.cos(y / 23.0) * 100 + 120).astype(np.uint8)
    picture[..., 2] = ((x + y) % 256).astype(np.uint8)
    picture[..., :3] += rng.integers(0, 24, (HEIGHT * 2, WIDTH * 2, 3), dtype=np.uint8)
    motion = []
    for i in range(frames):
        frame = np.ascontiguousarray(picture[i * 5 : i * 5 + HEIGHT, i * 9 : i * 9 + WIDTH])
        left = (i * 40) % (WIDTH - 200)
        frame[400:600, left : left + 200, :3] = 250
        motion.append(frame)

    base = page(rng, HEIGHT)
    typing = []
    for i in range(frames):
        frame = base.copy()
        cursor = 60 + (i % 60) * 10
        frame[40 : 40 + 16, 60:cursor, :3] = 30
        typing.append(frame)
    static = [base] * frames
    return {"scrolling": scrolling, "motion": motion, "typing": typing, "static": static}


def run_h264(frames: list[NDArray[np.uint8]], fps: int, bitrate: int) -> tuple[float, float]:
    """CPU ms per frame and bytes per second of the H.264 encoder."""
    encoder = VideoEncoder(WIDTH, HEIGHT, fps=fps, bitrate=bitrate)
    # Untimed: the session has been showing the first frame for a while, so the
    # encoder has refined it to its full quality (under the cap that takes seconds
    # for a dense page) and what is measured is the change alone.
    for index in range(WARM_UP_SECONDS * fps):
        encoder.encode(frames[0], index * 1_000_000 // fps)
    offset = WARM_UP_SECONDS * fps
    total = 0
    started = time.process_time()
    for index, frame in enumerate(frames, offset):
        for chunk in encoder.encode(frame, index * 1_000_000 // fps):
            total += len(chunk.data)
    cpu = time.process_time() - started
    encoder.close()
    return cpu * 1000 / len(frames), total * fps / len(frames)


def run_jpeg(frames: list[NDArray[np.uint8]], fps: int) -> tuple[float, float]:
    """CPU ms per frame and bytes per second of a full JPEG per frame."""
    total = 0
    started = time.process_time()
    for frame in frames:
        total += len(encode_jpeg(frame, quality=75, colorspace="BGRA"))
    cpu = time.process_time() - started
    return cpu * 1000 / len(frames), total * fps / len(frames)


def main() -> None:
    """Run every scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--bitrate", type=int, default=3_500_000)
    options = parser.parse_args()
    frames = max(2, round(options.seconds * options.fps))
    print(
        f"{WIDTH}x{HEIGHT}, {frames} frames at {options.fps} fps, H.264 target "
        f"{options.bitrate / 1e6:.1f} Mbit/s; CPU ms/frame is process time"
    )
    header = (
        f"{'scenario':<10} {'codec':<6} {'CPU ms/frame':>12} {'Mbit/s':>8} "
        f"{'KB/frame':>9} {'CPU vs JPEG':>11} {'bytes vs JPEG':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, scenario in scenarios(frames).items():
        jpeg_ms, jpeg_rate = run_jpeg(scenario, options.fps)
        h264_ms, h264_rate = run_h264(scenario, options.fps, options.bitrate)
        for codec, ms, rate in (("jpeg", jpeg_ms, jpeg_rate), ("h264", h264_ms, h264_rate)):
            print(
                f"{name:<10} {codec:<6} {ms:>12.1f} {rate * 8 / 1e6:>8.2f} "
                f"{rate / options.fps / 1000:>9.1f} {ms / jpeg_ms:>11.2f} "
                f"{rate / jpeg_rate:>13.3f}"
            )


if __name__ == "__main__":
    main()
