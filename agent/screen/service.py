"""Screen sessions in the daemon: policy, consent, indicator, audit, one at a time.

Theory of operation::

    ScreenOpen ──> busy? policy view = false? no display? ──> ScreenRefused
       └──> audit screen_requested ──> consent (policy: prompt / notify / none)
              ├─ denied, timed out, nobody to ask ──> audit screen_refused, ScreenRefused
              └─ allowed ──> open the display (ScreenSession.start) ──> indicator
                   ──> ScreenStarted (monitors) ──> audit screen_started ──> frames
                   ──> guidance overlay and control (remote.py), tiles or video
                       (videomode.py)
    Stop on the indicator ──────────┐
    ScreenEnded from the console ───┼──> the session stops ──> indicator closed
    channel lost, agent stopping ───┘      ──> ScreenEnded(reason) ──> audit screen_ended

The session module (numpy, simplejpeg, mss, Xlib) is imported only once a session
has been allowed: an idle daemon never loads it.

The indicator is shown for every session on a desktop; if it cannot be shown (or
dies) the session ends, unless nobody is there to see it and the policy allowed
an unattended session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from deskside.agent import consent
from deskside.agent.audit import AuditLog
from deskside.channel import Channel
from deskside.channel.dispatch import HandlerTable
from deskside.protocol import messages as m
from deskside.protocol.errors import ConnectionClosed, DesksideError

from .framemap import FrameMap
from .indicator import NO_DESKTOP, Indicator
from .policy import ScreenPolicy

if TYPE_CHECKING:
    from .remote import RemoteInput
    from .session import ScreenSession
    from .videomode import ModeEncoder

__all__ = ["ScreenService"]

logger = logging.getLogger(__name__)

_LINE_LIMIT: Final = 4096
_Reason = m.ScreenEndReason
# Why a session did not start, by the consent dialog's answer.
_REASONS: Final = {
    consent.Answer.DENIED: _Reason.DENIED,
    consent.Answer.TIMED_OUT: _Reason.TIMED_OUT,
    consent.Answer.NO_DESKTOP: _Reason.NO_DESKTOP,
}


@dataclass(eq=False)
class _Running:
    """One screen session the service knows of, from request to end."""

    request: m.ScreenOpen
    channel: Channel
    task: asyncio.Task[None] | None = None
    session: ScreenSession | None = None
    # Why it ends, once decided (the first reason wins).
    ending: m.ScreenEndReason | None = None
    error: str = ""
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    # Guidance and control (remote.py), once the session runs.
    remote: RemoteInput | None = None
    # The session's encoder (videomode.py: tiles or H.264), once made.
    encoder: ModeEncoder | None = None


class ScreenService:
    """Runs the screen sessions the console asks for, under the owner's policy."""

    def __init__(
        self,
        audit: AuditLog,
        policy: Callable[[], ScreenPolicy],
        *,
        consent_lock: asyncio.Lock,
        policy_file: Path | None = None,
    ) -> None:
        self._audit = audit
        self._policy = policy
        # Where the policy is written, named in refusals that need the owner's change.
        self._policy_file = policy_file
        self._consent_lock = consent_lock
        # The session being asked for or running (at most one).
        self._current: _Running | None = None
        self._stopping = False

    def register(self, table: HandlerTable[Channel]) -> None:
        """Route the console's screen, guidance, control and input messages here."""
        table.register(m.ScreenOpen, self.open)
        table.register(m.ScreenAck, self.acknowledged)
        table.register(m.ScreenKeyframeRequest, self.keyframe)
        table.register(m.ScreenSettings, self.settings)
        table.register(m.ScreenSetMode, self.set_mode)
        # One type a line: mypy joins a tuple of types into their base class, which a
        # handler of the union does not accept.
        table.register(m.GuidePointer, self.guide)
        table.register(m.GuideDraw, self.guide)
        table.register(m.GuideClear, self.guide)
        table.register(m.ScreenControlRequest, self.control_request)
        table.register(m.ScreenControlEnded, self.control_ended)
        table.register(m.InputPointer, self.input)
        table.register(m.InputKey, self.input)
        table.register(m.ScreenEnded, self.ended)

    async def open(self, channel: Channel, request: m.ScreenOpen) -> None:
        """A ``ScreenOpen``: checked, asked and run in a task; refusals are answered."""
        current = self._current
        if current is not None or self._stopping:
            if current is not None and current.request.session_id == request.session_id:
                return  # asked again: it is on already
            await self._refuse(
                channel,
                request,
                _Reason.BUSY if not self._stopping else _Reason.ERROR,
                "another screen session is on" if not self._stopping else "the agent is stopping",
            )
            return
        running = _Running(request=request, channel=channel)
        self._current = running
        running.task = asyncio.create_task(
            self._run(running), name=f"deskside-screen-{request.session_id}"
        )

    def _find(self, session_id: str) -> _Running | None:
        current = self._current
        return current if current is not None and current.request.session_id == session_id else None

    async def acknowledged(self, channel: Channel, message: m.ScreenAck) -> None:
        """The viewer drew a frame."""
        running = self._find(message.session_id)
        if running is not None and running.session is not None:
            running.session.acknowledged(message.seq)

    async def keyframe(self, channel: Channel, message: m.ScreenKeyframeRequest) -> None:
        """The viewer needs a whole frame."""
        running = self._find(message.session_id)
        if running is not None and running.session is not None:
            running.session.request_keyframe()

    async def settings(self, channel: Channel, message: m.ScreenSettings) -> None:
        """New quality, frame rate or monitor."""
        running = self._find(message.session_id)
        if running is None or running.session is None:
            return
        monitor = message.monitor
        if monitor is not None and monitor >= len(running.session.monitors):
            logger.info("screen %s: no monitor %d; ignored", message.session_id, monitor)
            monitor = None
        running.session.configure(quality=message.quality, max_fps=message.max_fps, monitor=monitor)
        if monitor is not None and running.remote is not None:
            running.remote.set_frame_map(_frame_map(running.session, monitor))

    async def set_mode(self, channel: Channel, message: m.ScreenSetMode) -> None:
        """Tiles, video or auto, as the viewers asked: a keyframe of the new kind."""
        running = self._find(message.session_id)
        if running is None or running.session is None or running.encoder is None:
            return
        if running.encoder.mode is not message.mode:
            running.encoder.set_mode(message.mode)
            running.session.request_keyframe()

    async def guide(
        self, channel: Channel, message: m.GuidePointer | m.GuideDraw | m.GuideClear
    ) -> None:
        """The technician's pointer or drawing, for the user's screen."""
        running = self._find(message.session_id)
        if running is not None and running.remote is not None:
            await running.remote.guide(message)

    async def control_request(self, channel: Channel, message: m.ScreenControlRequest) -> None:
        """The technician asks for control: the user is asked a second time."""
        running = self._find(message.session_id)
        if running is not None and running.remote is not None:
            running.remote.request_control(message)

    async def control_ended(self, channel: Channel, message: m.ScreenControlEnded) -> None:
        """The technician gave control back."""
        running = self._find(message.session_id)
        if running is not None and running.remote is not None:
            await running.remote.release_control(message)

    async def input(self, channel: Channel, message: m.InputPointer | m.InputKey) -> None:
        """A pointer or key event of the technician (injected only under control)."""
        running = self._find(message.session_id)
        if running is not None and running.remote is not None:
            running.remote.input(message)

    async def ended(self, channel: Channel, message: m.ScreenEnded) -> None:
        """The console ended the session (the technician left)."""
        running = self._find(message.session_id)
        if running is not None:
            self._end(running, _Reason.VIEWER_LEFT, message.error or "the technician left")

    def detach(self, channel: Channel) -> None:
        """The channel closed: its session ends."""
        running = self._current
        if running is not None and running.channel is channel:
            self._end(running, _Reason.DISCONNECTED, "the connection to the console was lost")

    async def shutdown(self) -> None:
        """The agent stops: end the session and wait until it is recorded."""
        self._stopping = True
        running = self._current
        if running is not None:
            self._end(running, _Reason.ERROR, "the agent stopped")
            if running.task is not None:
                await asyncio.wait({running.task}, timeout=5.0)

    def _end(self, running: _Running, reason: m.ScreenEndReason, error: str) -> None:
        if running.ending is None:
            running.ending, running.error = reason, error[:_LINE_LIMIT]
        running.stopped.set()
        if running.session is not None:
            running.session.stop()
        elif running.task is not None and not running.task.done():
            running.task.cancel()  # still asking: the dialog closes

    async def _refuse(
        self, channel: Channel, request: m.ScreenOpen, reason: m.ScreenEndReason, error: str
    ) -> None:
        logger.info("screen session %s refused: %s", request.session_id, error)
        await self._audit.append(
            "screen_refused",
            session=request.session_id,
            ticket=request.ticket_id,
            requested_by=request.requested_by,
            reason=str(reason),
            error=error,
        )
        with contextlib.suppress(ConnectionClosed):
            await channel.send(
                m.ScreenRefused(
                    session_id=request.session_id, reason=reason, error=error[:_LINE_LIMIT]
                )
            )

    async def _decide(self, policy: ScreenPolicy, request: m.ScreenOpen) -> str | _Refusal:
        """Apply the consent policy: "user", "notify", "policy" or a refusal."""
        question = consent.ConsentRequest(
            requested_by=request.requested_by,
            ticket_id=request.ticket_id,
            reason=request.reason,
            timeout=policy.consent_timeout,
            screen="view",
            recorded=request.recorded,
        )
        decision = await consent.decide(
            policy.consent,
            question,
            self._consent_lock,
            unattended=policy.unattended,
            hint=consent.policy_hint("screen", self._policy_file),
        )
        if isinstance(decision, consent.Declined):
            return _Refusal(_REASONS[decision.answer], decision.reason)
        return decision

    async def _run(self, running: _Running) -> None:
        request, channel = running.request, running.channel
        started = time.monotonic()
        indicator: Indicator | None = None
        session: ScreenSession | None = None
        try:
            policy = self._policy()
            if not policy.view:
                await self._refuse(channel, request, _Reason.POLICY, "screen sessions are off")
                return
            if not consent.has_desktop():
                await self._refuse(channel, request, _Reason.NO_DESKTOP, "no display to capture")
                return
            await self._audit.append(
                "screen_requested",
                session=request.session_id,
                ticket=request.ticket_id,
                requested_by=request.requested_by,
                what="view",
                monitor=request.monitor,
                recorded=request.recorded,
            )
            decision = await self._decide(policy, request)
            if isinstance(decision, _Refusal):
                await self._refuse(channel, request, decision.reason, decision.error)
                return
            if running.ending is not None:
                await self._refuse(channel, request, running.ending, running.error)
                return
            from .session import ScreenSession  # the heavy imports, only now
            from .videomode import ModeEncoder

            def make_encoder(quality: int) -> ModeEncoder:
                running.encoder = ModeEncoder(quality)
                return running.encoder

            session = ScreenSession(
                request.session_id,
                channel.send,
                monitor=request.monitor,
                quality=request.quality,
                max_fps=request.max_fps,
                encoder_factory=make_encoder,
            )
            try:
                monitors = await session.start()
            except DesksideError as exc:
                session = None
                await self._refuse(channel, request, _Reason.ERROR, str(exc))
                return
            try:
                indicator = await Indicator.show(
                    request.requested_by, request.ticket_id, recorded=request.recorded
                )
            except OSError as exc:
                logger.warning("cannot show the screen indicator: %s", exc)
                if decision != "policy":
                    await session.close()
                    await self._refuse(channel, request, _Reason.ERROR, "cannot show indicator")
                    return
            running.session = session
            await channel.send(
                m.ScreenStarted(
                    session_id=request.session_id,
                    monitors=[
                        m.ScreenMonitor(
                            index=mon.index,
                            left=mon.left,
                            top=mon.top,
                            width=mon.width,
                            height=mon.height,
                            primary=mon.primary,
                        )
                        for mon in monitors
                    ],
                    monitor=session.monitor,
                    consent=decision,
                    encodings=[m.ScreenEncoding.JPEG, m.ScreenEncoding.H264],
                )
            )
            await self._audit.append(
                "screen_started",
                session=request.session_id,
                ticket=request.ticket_id,
                requested_by=request.requested_by,
                consent=decision,
            )
            running.remote = self._remote(running, session, policy, indicator)
            running.remote.begin()
            logger.info(
                "screen session %s started for %s (ticket #%d, consent: %s)",
                request.session_id,
                request.requested_by,
                request.ticket_id,
                decision,
            )
            await self._stream(running, session, indicator, decision)
        except asyncio.CancelledError:
            if running.ending is not None and running.session is None:
                await self._refuse(channel, request, running.ending, running.error)
            else:
                raise
        except ConnectionClosed:
            self._end(running, _Reason.DISCONNECTED, "the connection to the console was lost")
        except Exception as exc:
            logger.exception("screen session %s failed", request.session_id)
            self._end(running, _Reason.ERROR, f"{type(exc).__name__}: {exc}")
        finally:
            if running.remote is not None:
                try:
                    await running.remote.close()
                except Exception:
                    # Broad: the overlay, the injector and the audit log all end here,
                    # and the indicator must still close and the end be recorded.
                    logger.exception(
                        "screen session %s: ending guidance and control failed", request.session_id
                    )
            if indicator is not None:
                await indicator.close()
            if running.session is not None:
                await self._finish(running, time.monotonic() - started)
            elif session is not None:
                await session.close()
            self._current = None

    def _remote(
        self,
        running: _Running,
        session: ScreenSession,
        policy: ScreenPolicy,
        indicator: Indicator | None,
    ) -> RemoteInput:
        """Guidance and control for the session (started by the caller)."""
        from .remote import RemoteInput

        async def show_control(on: bool) -> None:
            if indicator is not None:
                await indicator.set_control(on)

        return RemoteInput(
            running.request,
            running.channel.send,
            audit=self._audit,
            policy=policy,
            consent_lock=self._consent_lock,
            frame_map=_frame_map(session, session.monitor),
            on_control=show_control,
        )

    async def _stream(
        self,
        running: _Running,
        session: ScreenSession,
        indicator: Indicator | None,
        decision: str,
    ) -> None:
        """Run the session until it ends one way or another."""
        frames = asyncio.create_task(session.run(), name="deskside-screen-frames")
        waiters: set[asyncio.Task[object]] = {frames, asyncio.create_task(running.stopped.wait())}
        stop_button: asyncio.Task[int] | None = None
        if indicator is not None:
            stop_button = asyncio.create_task(indicator.wait())
            waiters.add(stop_button)
        try:
            while True:
                done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if stop_button is not None and stop_button in done:
                    code = stop_button.result()
                    if code == NO_DESKTOP and decision == "policy":
                        waiters.discard(stop_button)
                        stop_button = None
                        continue
                    reason = "the user pressed Stop" if code == 0 else f"indicator ended ({code})"
                    self._end(running, _Reason.USER_STOPPED, reason)
                if frames in done:
                    exc = frames.exception()
                    if isinstance(exc, ConnectionClosed):
                        self._end(running, _Reason.DISCONNECTED, "the connection was lost")
                    elif exc is not None:
                        self._end(running, _Reason.ERROR, f"{type(exc).__name__}: {exc}")
                    else:
                        self._end(running, _Reason.ERROR, "the capture ended")
                if running.stopped.is_set():
                    break
        finally:
            session.stop()
            # Wait without raising: how the frames ended was reported above when it
            # ended the session; if it ends only now, its error is said here.
            await asyncio.wait({frames}, timeout=5.0)
            if not frames.done():
                logger.warning(
                    "screen session %s: the capture did not stop within 5 s",
                    running.request.session_id,
                )
            elif not frames.cancelled() and (error := frames.exception()) is not None:
                logger.debug(
                    "screen session %s: the capture ended with %s: %s",
                    running.request.session_id,
                    type(error).__name__,
                    error,
                )
            for task in waiters:
                task.cancel()

    async def _finish(self, running: _Running, duration: float) -> None:
        """Tell the console (unless it ended it) and record the end."""
        request = running.request
        reason = running.ending or _Reason.ERROR
        session = running.session
        if reason not in (_Reason.VIEWER_LEFT, _Reason.DISCONNECTED):
            with contextlib.suppress(ConnectionClosed):
                await running.channel.send(
                    m.ScreenEnded(session_id=request.session_id, reason=reason, error=running.error)
                )
        stats: dict[str, float | bool | str] = dict(session.stats()) if session is not None else {}
        if running.remote is not None:
            stats.update(running.remote.summary())
        if running.encoder is not None:
            stats.update(
                mode=str(running.encoder.mode),
                video_frames=running.encoder.video_frames,
                mode_switches=running.encoder.switches,
            )
        logger.info("screen session %s ended: %s", request.session_id, reason)
        await self._audit.append(
            "screen_ended",
            session=request.session_id,
            ticket=request.ticket_id,
            reason=str(reason),
            error=running.error,
            duration=round(duration, 3),
            **stats,
        )


def _frame_map(session: ScreenSession, monitor: int) -> FrameMap:
    """How frames of ``monitor`` map to the screen (frames are the monitor's size)."""
    for info in session.monitors:
        if info.index == monitor:
            return FrameMap.identity(info.width, info.height, info.left, info.top)
    return FrameMap.identity(1, 1)


@dataclass(frozen=True)
class _Refusal:
    reason: m.ScreenEndReason
    error: str
