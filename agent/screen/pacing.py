"""Pacing a screen session by the viewer's acknowledgements (no I/O, time passed in).

* At most ``max_in_flight`` frames are sent and not yet acknowledged: a slow
  viewer or a slow link makes the agent wait instead of queueing frames, so what
  the viewer sees is never more than a few frames old.
* Frames are at least ``1 / fps`` apart, counted from the start of a capture;
  after ``idle_after`` seconds with nothing to send, the screen is looked at only
  every ``idle_interval`` seconds (a static screen costs next to nothing), until
  something changes again.
* Each acknowledgement measures a round trip (send to ack of that frame); a
  smoothed delay above ``target_delay`` lowers the frame rate and then the JPEG
  quality, a delay well under it raises them back towards what the technician
  chose. Adjustments are at most every ``adjust_interval`` seconds.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

__all__ = ["Pacer", "PacerSettings"]


@dataclass(frozen=True, kw_only=True)
class PacerSettings:
    """Limits of the pacer."""

    max_in_flight: int = 3
    """Frames sent and not yet acknowledged, at most."""

    target_delay: float = 0.15
    """Round trip (send to acknowledgement) above which the stream backs off."""

    min_quality: int = 25
    """Lowest JPEG quality the pacer goes down to."""

    min_fps: float = 2.0
    """Lowest frame rate the pacer goes down to."""

    adjust_interval: float = 0.5
    """Seconds between two adjustments."""

    idle_after: float = 1.0
    """Seconds without a frame to send after which the screen counts as idle."""

    idle_interval: float = 0.2
    """While idle, the screen is looked at this often (at most the frame rate)."""


class Pacer:
    """Decides when the next frame may go, and at which quality."""

    def __init__(
        self, *, quality: int, max_fps: float, now: float, settings: PacerSettings | None = None
    ) -> None:
        self.settings = settings or PacerSettings()
        # What the technician asked for: the ceilings.
        self.max_quality = quality
        self.max_fps = max_fps
        # What is used now (at most the ceilings).
        self.quality = quality
        self.fps = max_fps
        # Frames in flight: seq -> (time sent, bytes).
        self._in_flight: OrderedDict[int, tuple[float, int]] = OrderedDict()
        # Smoothed round trip, None before the first acknowledgement.
        self.srtt: float | None = None
        # When the last frame's capture began (the frame interval counts from there),
        # when a frame was last sent, and when the rates were last adjusted.
        self._last_sent = -1e9
        self._last_frame = now
        self._last_adjust = now
        # Recent (time, bytes) of sent frames, for the bandwidth estimate.
        self._history: deque[tuple[float, int]] = deque(maxlen=256)

    def configure(self, *, quality: int | None = None, max_fps: float | None = None) -> None:
        """The technician changed the ceilings: start again from them."""
        if quality is not None:
            self.max_quality = self.quality = quality
        if max_fps is not None:
            self.max_fps = self.fps = max_fps

    @property
    def in_flight(self) -> int:
        """Frames sent and not yet acknowledged."""
        return len(self._in_flight)

    def wait_time(self, now: float) -> float | None:
        """Seconds until the next frame may go; None while the window is full."""
        if len(self._in_flight) >= self.settings.max_in_flight:
            return None
        interval = 1.0 / self.fps
        if now - self._last_frame > self.settings.idle_after:
            interval = max(interval, self.settings.idle_interval)
        return max(0.0, self._last_sent + interval - now)

    def sent(self, seq: int, size: int, now: float, started: float | None = None) -> None:
        """Frame ``seq`` of ``size`` bytes went out; its capture began at ``started``."""
        self._in_flight[seq] = (now, size)
        self._last_sent = self._slot(now if started is None else started)
        self._last_frame = now
        self._history.append((now, size))

    def _slot(self, started: float) -> float:
        """The frame slot a capture that began at ``started`` used.

        Frames keep to a grid of ``1 / fps``: a capture that began a little late
        (timers wake late) does not push every later frame back, which held 30 fps
        to 28. One that began more than a frame late starts the grid again.
        """
        due = self._last_sent + 1.0 / self.fps
        return due if due <= started < due + 1.0 / self.fps else started

    def skipped(self, now: float, started: float | None = None) -> None:
        """Nothing changed this time: wait a frame interval before looking again.

        While the screen is idle nothing measures the delay, and nothing loads the
        link: the quality climbs back towards the ceiling, so that the encoder's
        refinement sends the still picture sharp.
        """
        self._last_sent = now if started is None else started
        idle = now - self._last_frame > self.settings.idle_after
        if (
            idle
            and self.quality < self.max_quality
            and now - self._last_adjust >= self.settings.adjust_interval
        ):
            self._last_adjust = now
            self.quality = min(self.max_quality, self.quality + 10)

    def acknowledged(self, seq: int, now: float) -> None:
        """The viewer drew frame ``seq`` and every one before it."""
        sample: float | None = None
        while self._in_flight:
            first = next(iter(self._in_flight))
            if first > seq:
                break
            sent_at, _ = self._in_flight.pop(first)
            if first == seq:
                sample = now - sent_at
        if sample is not None:
            self.srtt = sample if self.srtt is None else 0.8 * self.srtt + 0.2 * sample
        self._adjust(now)

    def forget(self) -> None:
        """Drop what is in flight (the viewer reset, a keyframe follows)."""
        self._in_flight.clear()

    def bytes_per_second(self, now: float, window: float = 2.0) -> float:
        """Bytes sent per second over the last ``window`` seconds."""
        recent = sum(size for at, size in self._history if at >= now - window)
        return recent / window

    def _adjust(self, now: float) -> None:
        if self.srtt is None or now - self._last_adjust < self.settings.adjust_interval:
            return
        self._last_adjust = now
        target = self.settings.target_delay
        if self.srtt > target:
            if self.fps > self.settings.min_fps:
                self.fps = max(self.settings.min_fps, self.fps * 0.7)
            else:
                self.quality = max(self.settings.min_quality, self.quality - 10)
        elif self.srtt < target / 2:
            if self.quality < self.max_quality:
                self.quality = min(self.max_quality, self.quality + 5)
            else:
                self.fps = min(self.max_fps, self.fps * 1.25 + 0.5)
