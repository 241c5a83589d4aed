"""Guidance and control of one running screen session: the overlay and the injector.

Theory of operation::

    session started ──> GuidanceOverlay.start (overlay.py, own process)
        ├─ up ───────> ScreenGuideStatus(available)     GuidePointer / GuideDraw /
        └─ failed ───> ScreenGuideStatus(unavailable)   GuideClear ──> overlay.apply
                       (the session goes on without guidance)
    ScreenControlRequest ──> policy control = false? ──> ScreenControlRefused(policy)
        └──> audit screen_control_requested ──> a second, separate consent prompt
               ├─ denied, timed out, nobody to ask ──> audit, ScreenControlRefused
               └─ allowed ──> InputInjector (control.py) enabled ──> indicator says so
                    ──> ScreenControlGranted ──> audit screen_control_granted
    InputPointer / InputKey ──> (control on) a queue ──> the injector, on its own thread
    the user moves their mouse ──> injection paused 3 s ──> ScreenControlPaused
    ScreenControlEnded from the console, the session's end ──> injector off and closed
        ──> audit screen_control_ended (and ScreenControlEnded, unless the console ended it)

Input events are injected in order on one worker thread (pynput and XTest are
blocking); the queue is bounded, and what does not fit is dropped. Key events are
never logged nor recorded: the audit log has counts only. Guidance goes to the
audit log as a summary at the end of the session (how many drawings), not each
stroke.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Final, TypeVar

from deskside.agent import consent
from deskside.agent.audit import AuditLog
from deskside.agent.policy import Unattended
from deskside.protocol import messages as m
from deskside.protocol.errors import ConnectionClosed

from .framemap import FrameMap
from .policy import ScreenPolicy

if TYPE_CHECKING:
    from .control import InputInjector
    from .overlay import GuidanceOverlay

__all__ = ["RemoteInput"]

logger = logging.getLogger(__name__)

# Input events waiting for the injector, at most; more are dropped.
INPUT_QUEUE: Final = 1024
# Seconds the user's own mouse pauses injection.
TAKEBACK_SECONDS: Final = 3.0
_LINE_LIMIT: Final = 4096
_Reason = m.ScreenControlReason
# Why control was not granted, by the consent dialog's answer.
_REASONS: Final = {
    consent.Answer.DENIED: _Reason.DENIED,
    consent.Answer.TIMED_OUT: _Reason.TIMED_OUT,
    consent.Answer.NO_DESKTOP: _Reason.NO_DESKTOP,
}
_T = TypeVar("_T")

Sender = Callable[[m.Message], Awaitable[None]]


class ControlState(enum.StrEnum):
    """Where control stands."""

    OFF = "off"
    ASKING = "asking"
    ON = "on"


class RemoteInput:
    """The technician's guidance and (once allowed) control of one screen session."""

    def __init__(
        self,
        request: m.ScreenOpen,
        send: Sender,
        *,
        audit: AuditLog,
        policy: ScreenPolicy,
        consent_lock: asyncio.Lock,
        frame_map: FrameMap,
        on_control: Callable[[bool], Awaitable[None]] | None = None,
        display: str | None = None,
    ) -> None:
        """Nothing starts until :meth:`start`; ``on_control`` is told when control is
        switched on or off (the indicator shows it)."""
        self._request = request
        self._send_message = send
        self._audit = audit
        self._policy = policy
        self._consent_lock = consent_lock
        self._frame_map = frame_map
        self._on_control = on_control
        self._display = display
        self._overlay: GuidanceOverlay | None = None
        self._guidance_lost = False
        self._guidance_shown = False
        self._injector: InputInjector | None = None
        # The injector's own thread (pynput's controllers and XTest are blocking).
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.control = ControlState.OFF
        self._asking: asyncio.Task[None] | None = None
        self._inputs: asyncio.Queue[m.InputPointer | m.InputKey] = asyncio.Queue(INPUT_QUEUE)
        self._pump: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._starting: asyncio.Task[None] | None = None
        # Small tasks (answers, pause reports), kept until done.
        self._tasks: set[asyncio.Task[None]] = set()
        # Counters for the audit log (no content).
        self.drawings = 0
        self.clears = 0
        self.control_grants = 0
        self.inputs_injected = 0
        self.inputs_refused = 0
        self.pauses = 0

    @property
    def guidance(self) -> bool:
        """Whether guidance is shown on the user's screen."""
        return self._overlay is not None and self._overlay.running

    def begin(self) -> None:
        """Start the overlay in a task (the session does not wait for it)."""
        self._starting = asyncio.create_task(self.start(), name="deskside-screen-guidance")

    async def start(self) -> None:
        """Start the overlay; tell the console whether guidance is available."""
        from .overlay import GuidanceOverlay, OverlayError

        self._loop = asyncio.get_running_loop()
        error = ""
        try:
            self._overlay = await GuidanceOverlay.start(self._frame_map, display=self._display)
        except OverlayError as exc:
            error = f"guidance cannot be shown on this screen: {exc}"
            logger.info("screen %s: %s", self._request.session_id, error)
        else:
            self._guidance_shown = True
        await self._send(
            m.ScreenGuideStatus(
                session_id=self._request.session_id,
                available=self._overlay is not None,
                error=error[:_LINE_LIMIT],
            )
        )

    def set_frame_map(self, frame_map: FrameMap) -> None:
        """Another monitor: guidance and input map to it from now on."""
        self._frame_map = frame_map
        if self._overlay is not None:
            self._overlay.set_frame_map(frame_map)
        injector = self._injector
        if injector is not None:
            injector.set_frame_map(frame_map)

    async def guide(self, message: m.GuidePointer | m.GuideDraw | m.GuideClear) -> None:
        """Show the technician's pointer or drawing, or clear, on the user's screen."""
        from .overlay import OverlayError

        overlay = self._overlay
        if overlay is None or self._closed:
            return
        try:
            await overlay.apply(message)
        except OverlayError as exc:
            self._overlay = None
            if not self._guidance_lost:
                self._guidance_lost = True
                await self._send(
                    m.ScreenGuideStatus(
                        session_id=self._request.session_id,
                        available=False,
                        error=f"the guidance overlay ended: {exc}"[:_LINE_LIMIT],
                    )
                )
            with contextlib.suppress(OverlayError):
                await overlay.close()
            return
        if isinstance(message, m.GuideDraw):
            self.drawings += 1
        elif isinstance(message, m.GuideClear):
            self.clears += 1

    # -- Control -----------------------------------------------------------------------

    def request_control(self, message: m.ScreenControlRequest) -> None:
        """The technician asks for control: asked in a task; the answer is sent."""
        del message
        if self._closed:
            return
        if self.control is not ControlState.OFF:
            self._spawn(self._refuse(_Reason.BUSY, f"control is {self.control.value} already"))
            return
        self.control = ControlState.ASKING
        self._asking = asyncio.create_task(self._ask(), name="deskside-control-ask")

    async def release_control(self, message: m.ScreenControlEnded) -> None:
        """The technician gave control back (or left)."""
        if self.control is ControlState.ASKING and self._asking is not None:
            self._asking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._asking
            return
        if self.control is ControlState.ON:
            await self._end_control(
                _Reason.RELEASED, message.error or "the technician gave control back", tell=False
            )

    def input(self, message: m.InputPointer | m.InputKey) -> None:
        """An input event: queued for the injector while control is on, else refused."""
        if self.control is not ControlState.ON or self._closed:
            self.inputs_refused += 1
            return
        try:
            self._inputs.put_nowait(message)
        except asyncio.QueueFull:
            self.inputs_refused += 1

    def summary(self) -> dict[str, int | bool]:
        """Counts for the session's audit entry (no content)."""
        return {
            "guidance": self._guidance_shown,
            "drawings": self.drawings,
            "guide_clears": self.clears,
            "control_grants": self.control_grants,
            "inputs": self.inputs_injected,
            "inputs_refused": self.inputs_refused,
            "control_pauses": self.pauses,
        }

    async def close(self) -> None:
        """The session ended: control off (recorded), the overlay gone."""
        if self._closed:
            return
        self._closed = True
        if self._starting is not None:
            try:
                await asyncio.shield(self._starting)
            except Exception:
                # start() handles OverlayError itself, so this is a bug; the session's
                # end must still be recorded, so it is only logged.
                logger.exception("screen %s: starting guidance failed", self._request.session_id)
        if self._asking is not None and not self._asking.done():
            self._asking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._asking
        if self.control is ControlState.ON:
            await self._end_control(_Reason.SESSION_ENDED, "the screen session ended", tell=False)
        overlay, self._overlay = self._overlay, None
        if overlay is not None:
            await overlay.close()

    async def _ask(self) -> None:
        request = self._request
        policy = self._policy
        try:
            if not policy.control:
                await self._refuse(_Reason.POLICY, "remote control is off on this machine")
                return
            await self._audit.append(
                "screen_control_requested",
                session=request.session_id,
                ticket=request.ticket_id,
                requested_by=request.requested_by,
            )
            decision = await self._decide(policy)
            if isinstance(decision, tuple):
                await self._refuse(*decision)
                return
            from .control import ControlError

            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="deskside-control"
            )
            try:
                injector = await self._on_thread(self._make_injector)
                await self._on_thread(lambda: injector.set_enabled(True))
            except ControlError as exc:
                self._executor.shutdown(wait=False)
                self._executor = None
                await self._refuse(_Reason.UNAVAILABLE, str(exc))
                return
            self._injector = injector
            self.control = ControlState.ON
            self.control_grants += 1
            self._pump = asyncio.create_task(self._inject(), name="deskside-control-inject")
            if self._on_control is not None:
                await self._on_control(True)
            await self._send(
                m.ScreenControlGranted(
                    session_id=request.session_id,
                    consent=decision,
                    takeback_seconds=TAKEBACK_SECONDS,
                )
            )
            await self._audit.append(
                "screen_control_granted",
                session=request.session_id,
                ticket=request.ticket_id,
                requested_by=request.requested_by,
                consent=decision,
            )
            logger.info("screen %s: control granted (%s)", request.session_id, decision)
        except asyncio.CancelledError:
            if self.control is ControlState.ASKING:
                self.control = ControlState.OFF
                await self._audit.append(
                    "screen_control_refused",
                    session=request.session_id,
                    ticket=request.ticket_id,
                    reason="withdrawn",
                    error="the request was withdrawn before the user answered",
                )
            raise
        finally:
            if self.control is ControlState.ASKING:
                self.control = ControlState.OFF

    async def _decide(self, policy: ScreenPolicy) -> str | tuple[m.ScreenControlReason, str]:
        """The second consent: "user", "notify", "policy", or a refusal."""
        request = self._request
        question = consent.ConsentRequest(
            requested_by=request.requested_by,
            ticket_id=request.ticket_id,
            reason=request.reason,
            timeout=policy.consent_timeout,
            screen="control",
        )
        decision = await consent.decide(
            policy.control_consent,
            question,
            self._consent_lock,
            unattended=Unattended.REFUSE,  # control is never taken where nobody is asked
        )
        if isinstance(decision, consent.Declined):
            return _REASONS[decision.answer], decision.reason
        return decision

    def _make_injector(self) -> InputInjector:
        from .control import InputInjector

        return InputInjector(
            self._frame_map, takeback_seconds=TAKEBACK_SECONDS, on_pause=self._paused
        )

    def _paused(self) -> None:
        """From the take-back listener's thread: the user moved their mouse."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._report_pause)

    def _report_pause(self) -> None:
        self.pauses += 1
        if self.control is ControlState.ON:
            self._spawn(
                self._send(
                    m.ScreenControlPaused(
                        session_id=self._request.session_id, seconds=TAKEBACK_SECONDS
                    )
                )
            )

    async def _inject(self) -> None:
        """Inject the queued events in order, on the injector's thread."""
        from .control import ControlError, Outcome

        while True:
            message = await self._inputs.get()
            injector = self._injector
            if injector is None:
                continue
            try:
                outcome = await self._on_thread(functools.partial(injector.handle, message))
            except ControlError as exc:  # the display went away, ...
                logger.warning("screen %s: %s", self._request.session_id, exc)
                await self._end_control(_Reason.ERROR, str(exc))
                return
            if outcome is Outcome.INJECTED:
                self.inputs_injected += 1
            elif outcome is not Outcome.IGNORED:
                self.inputs_refused += 1

    async def _end_control(
        self, reason: m.ScreenControlReason, error: str, *, tell: bool = True
    ) -> None:
        """Control off: the injector released and closed, the end recorded."""
        if self.control is not ControlState.ON:
            return
        self.control = ControlState.OFF
        pump, self._pump = self._pump, None
        if pump is not None and pump is not asyncio.current_task():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        while not self._inputs.empty():
            self._inputs.get_nowait()
        injector, self._injector = self._injector, None
        if injector is not None:
            try:
                await self._on_thread(injector.close)
            except Exception as exc:
                # Broad: releasing held keys talks to an X server that may be gone, and
                # Xlib's errors have no common base; the end of control must still be
                # recorded. Only the type: an X error's text can carry a keycode.
                logger.warning(
                    "screen %s: closing the injector failed: %s",
                    self._request.session_id,
                    type(exc).__name__,
                )
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        if self._on_control is not None:
            try:
                await self._on_control(False)
            except Exception:
                # The caller's callback (the indicator's label): whatever it raises must
                # not stop the end of control being told and recorded.
                logger.warning(
                    "screen %s: could not show that control ended",
                    self._request.session_id,
                    exc_info=True,
                )
        if tell:
            await self._send(
                m.ScreenControlEnded(
                    session_id=self._request.session_id, reason=reason, error=error[:_LINE_LIMIT]
                )
            )
        await self._audit.append(
            "screen_control_ended",
            session=self._request.session_id,
            ticket=self._request.ticket_id,
            reason=str(reason),
            error=error,
            inputs=self.inputs_injected,
        )
        logger.info("screen %s: control ended (%s)", self._request.session_id, reason)

    async def _refuse(self, reason: m.ScreenControlReason, error: str) -> None:
        request = self._request
        logger.info("screen %s: control refused: %s", request.session_id, error)
        await self._audit.append(
            "screen_control_refused",
            session=request.session_id,
            ticket=request.ticket_id,
            requested_by=request.requested_by,
            reason=str(reason),
            error=error,
        )
        await self._send(
            m.ScreenControlRefused(
                session_id=request.session_id, reason=reason, error=error[:_LINE_LIMIT]
            )
        )

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_thread(self, work: Callable[[], _T]) -> _T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def _send(self, message: m.Message) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._send_message(message)
