"""The pacer: frames in flight, the frame interval, adapting to the delay."""

from __future__ import annotations

from deskside.agent.screen.pacing import Pacer, PacerSettings
from deskside.agent.screen.session import split_frame
from deskside.agent.screen.tiles import EncodedFrame, EncodedRect, Rect


def test_no_more_than_the_window_in_flight() -> None:
    pacer = Pacer(quality=70, max_fps=10, now=0.0, settings=PacerSettings(max_in_flight=2))
    assert pacer.wait_time(0.0) == 0.0
    pacer.sent(0, 100, 0.0)
    assert pacer.wait_time(0.05) == 0.05  # a tenth of a second apart
    pacer.sent(1, 100, 0.1)
    assert pacer.wait_time(0.3) is None  # window full
    pacer.acknowledged(0, 0.31)
    assert pacer.wait_time(0.31) == 0.0
    pacer.acknowledged(1, 0.32)  # an ack covers every frame before it too
    assert pacer.in_flight == 0


def test_a_cumulative_ack_frees_the_earlier_frames() -> None:
    pacer = Pacer(quality=70, max_fps=30, now=0.0)
    for seq in range(3):
        pacer.sent(seq, 10, seq * 0.04)
    pacer.acknowledged(2, 0.2)
    assert pacer.in_flight == 0


def test_a_long_delay_lowers_fps_then_quality_and_a_short_one_restores_them() -> None:
    settings = PacerSettings(target_delay=0.1, adjust_interval=0.0, min_fps=2.0)
    pacer = Pacer(quality=80, max_fps=20, now=0.0, settings=settings)
    now, seq = 0.0, 0
    for _ in range(30):  # every frame takes 0.5 s to be acknowledged
        pacer.sent(seq, 1000, now)
        now += 0.5
        pacer.acknowledged(seq, now)
        seq += 1
    assert pacer.fps == 2.0
    assert pacer.quality < 80
    for _ in range(200):  # then 10 ms
        pacer.sent(seq, 1000, now)
        now += 0.01
        pacer.acknowledged(seq, now)
        seq += 1
    assert pacer.quality == 80
    assert pacer.fps == 20


def test_settings_reset_the_ceilings() -> None:
    pacer = Pacer(quality=80, max_fps=20, now=0.0)
    pacer.configure(quality=40, max_fps=5)
    assert (pacer.quality, pacer.fps) == (40, 5)


def test_bandwidth_counts_recent_bytes() -> None:
    pacer = Pacer(quality=80, max_fps=20, now=0.0)
    pacer.sent(0, 1000, 0.0)
    pacer.sent(1, 3000, 9.5)
    assert pacer.bytes_per_second(10.0, window=2.0) == 1500


def test_a_big_frame_is_split_into_parts_with_one_final() -> None:
    rects = [EncodedRect(Rect(0, i * 64, 64, 64), bytes(600)) for i in range(5)]
    encoded = EncodedFrame(width=64, height=320, captured_at=1.0, keyframe=True, rects=rects)
    parts = split_frame("s1", 7, encoded, 64, 320, 1.0, None, budget=1000)
    assert [len(p.rects) for p in parts] == [1, 1, 1, 1, 1]
    assert [p.part for p in parts] == [0, 1, 2, 3, 4]
    assert [p.final for p in parts] == [False, False, False, False, True]
    assert {p.seq for p in parts} == {7}
    together = split_frame("s1", 7, encoded, 64, 320, 1.0, None, budget=2000)
    assert [len(p.rects) for p in together] == [3, 2]


def test_a_pointer_only_frame_has_no_rects() -> None:
    (part,) = split_frame("s1", 0, None, 10, 10, 1.0, None)
    assert part.rects == []
    assert part.final


def test_an_idle_screen_is_looked_at_less_often() -> None:
    settings = PacerSettings(idle_after=1.0, idle_interval=0.25)
    pacer = Pacer(quality=70, max_fps=20, now=0.0, settings=settings)
    pacer.sent(0, 10, 0.0)
    pacer.acknowledged(0, 0.01)
    pacer.skipped(0.5)
    assert abs((pacer.wait_time(0.5) or 0) - 0.05) < 1e-9  # busy: every 1/20 s
    pacer.skipped(2.0)
    assert pacer.wait_time(2.0) == 0.25  # nothing sent for a second: idle
    pacer.sent(1, 10, 2.25)
    assert abs((pacer.wait_time(2.25) or 0) - 0.05) < 1e-9  # changed again: busy again


def test_the_interval_counts_from_the_start_of_the_capture() -> None:
    pacer = Pacer(quality=70, max_fps=10, now=0.0)
    pacer.sent(0, 10, 0.08, started=0.0)  # capturing and encoding took 80 ms
    assert abs((pacer.wait_time(0.08) or 0) - 0.02) < 1e-9


def test_an_idle_screen_gets_its_quality_back() -> None:
    settings = PacerSettings(target_delay=0.1, adjust_interval=0.5, idle_after=1.0)
    pacer = Pacer(quality=80, max_fps=10, now=0.0, settings=settings)
    pacer.sent(0, 10, 0.0)
    pacer.acknowledged(0, 0.9)  # a slow link: the quality drops
    pacer.fps = settings.min_fps
    pacer.sent(1, 10, 1.0)
    pacer.acknowledged(1, 1.9)
    low = pacer.quality
    assert low < 80
    now = 2.0
    while now < 10.0:  # nothing to send for a while
        pacer.skipped(now)
        now += 0.2
    assert pacer.quality == 80


def test_frames_keep_to_their_grid_when_captures_begin_a_little_late() -> None:
    pacer = Pacer(quality=70, max_fps=30, now=0.0, settings=PacerSettings(max_in_flight=1000))
    now = 0.0
    for seq in range(300):  # ten seconds; every capture begins 3 ms after it may
        now += pacer.wait_time(now) or 0.0
        now += 0.003
        pacer.sent(seq, 10, now + 0.001, started=now)
    assert now < 10.0 + 0.01  # 30 a second, not 1 / (1/30 + 0.003) = 27.5
    now += 0.5  # a stall of more than a frame starts the grid again
    pacer.sent(300, 10, now, started=now)
    assert abs((pacer.wait_time(now) or 0.0) - 1 / 30) < 1e-9
