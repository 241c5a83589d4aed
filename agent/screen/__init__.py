"""Screen sessions: the user's screen shown to a technician, with the user's consent.

Theory of operation::

    ScreenOpen ──> ScreenService (service.py): policy, consent prompt, audit
        ──(allowed)──> indicator window (indicator.py, own process, Stop button)
                  └──> ScreenSession (session.py), on a worker thread:
                         Capturer.grab() (capture.py, mss)
                           └─> Encoder.encode(frame) (tiles.py: JPEG tiles; a video
                               encoder can take its place) -> ScreenFrame messages
                         CursorTracker.poll() (cursor.py, XFixes) -> ScreenCursor
                       paced by ScreenAck (pacing.py: frames in flight, delay ->
                       quality and frame rate)
    ScreenAck / ScreenKeyframeRequest / ScreenSettings ──> the session
    Stop on the indicator, ScreenEnded from the console, the channel lost
        ──> the session ends, ScreenEnded is sent, the audit log records it

The guidance overlay (overlay.py, own process), remote control input (control.py,
pynput) and the H.264 encoder (video.py, PyAV) are leaf modules a session uses.

This package's ``__init__`` and ``service``/``policy``/``indicator`` modules import
nothing heavy: numpy, simplejpeg, mss, PyAV, pynput and Xlib are imported by ``session``,
``capture``, ``tiles`` and ``cursor``, which the service imports only when a session
starts, so an idle daemon stays small.
"""
