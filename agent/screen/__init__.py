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

    GuidePointer / GuideDraw / GuideClear, ScreenControlRequest, InputPointer /
    InputKey ──> remote.py: the guidance overlay (overlay.py, own process) started
        with the session; control after a second consent, injected by control.py
        (pynput, XTest), paused 3 s when the user moves their own mouse
    ScreenSetMode ──> videomode.py: the session's encoder, JPEG tiles or H.264
        (video.py, PyAV) by the viewers' choice (tiles, video, auto)

This package's ``__init__`` and ``service``/``policy``/``indicator`` modules import
nothing heavy: numpy, simplejpeg, mss, PyAV, pynput and Xlib are imported by ``session``,
``capture``, ``tiles`` and ``cursor``, which the service imports only when a session
starts, so an idle daemon stays small.

What a session cannot do here (capture, encode, inject, draw) is a ``ScreenError``
(errors.py, which draws that branch of the project's exception tree).
"""
