"""Guidance and control relayed for a screen session (``relay.py``).

Theory of operation::

    viewer: guide_pointer / guide_draw / guide_clear ──> (session started, its own
        session id, rate-limited) ──> GuidePointer / GuideDraw / GuideClear to the agent
    viewer: control_request ──> ScreenControlRequest ──> the agent asks its user again
    agent: ScreenControlGranted / Refused / Ended / Paused, ScreenGuideStatus
        ──> {"type": "control" | "control_paused" | "guidance", ...} to every viewer,
            and the control steps on the ticket's timeline (screen_control_requested,
            screen_control_granted, screen_control_refused, screen_control_ended)
    viewer: input_pointer / input_key ──> only while the agent has granted control
        (rate-limited) ──> InputPointer / InputKey; else {"type": "input_refused"}
    viewer: control_release ──> ScreenControlEnded(released) to the agent
    viewer: mode (tiles / video / auto, and whether it decodes H.264) ──> ScreenSetMode:
        the mode asked for if every viewer can decode H.264, else tiles

Viewers send the wire messages' own fields as JSON, ``type`` being the message's
tag (``{"type": "guide_draw", "session_id": ..., "shape_id": ..., "kind": "arrow",
"points": [[x, y], ...]}``): they are decoded with the wire types, so every bound
of the protocol holds here too, and a session id other than the viewer's own
session is refused. Keys typed under control are relayed, never logged or
recorded; the timeline gets counts only (drawings, input events).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final, TypeVar

import msgspec

from deskside.protocol import messages as m
from deskside.protocol.errors import ConnectionClosed

from .session import ControlState, ScreenRelay, ScreenViewer, SessionState, Timeline

__all__ = [
    "AGENT_MESSAGES",
    "CONTROL_TYPES",
    "VIEWER_TYPES",
    "apply_mode",
    "from_agent",
    "from_viewer",
    "record_step",
    "session_ended",
]

logger = logging.getLogger(__name__)

_GUIDE_TYPES: Final = frozenset({"guide_pointer", "guide_draw", "guide_clear"})
_INPUT_TYPES: Final = frozenset({"input_pointer", "input_key"})
VIEWER_TYPES: Final = _GUIDE_TYPES | _INPUT_TYPES | {"control_request", "control_release", "mode"}
"""The ``type`` of the viewer messages this module handles."""
CONTROL_TYPES: Final = _INPUT_TYPES | {"control_request"}
"""The viewer messages that ask for, or use, control of the device."""

AGENT_MESSAGES: Final = (
    m.ScreenGuideStatus,
    m.ScreenControlGranted,
    m.ScreenControlRefused,
    m.ScreenControlEnded,
    m.ScreenControlPaused,
)
"""The agent messages this module handles."""


class _ModeChoice(msgspec.Struct, frozen=True):
    """A viewer's ``{"type": "mode", "mode": "auto", "video": true}``: the encoding it
    wants, and whether it can decode H.264 (WebCodecs)."""

    type: str
    mode: m.ScreenMode = m.ScreenMode.TILES
    video: bool = False


_mode_decoder: Final = msgspec.json.Decoder(_ModeChoice)
_guide_decoder: Final = msgspec.json.Decoder(m.GuidePointer | m.GuideDraw | m.GuideClear)
_input_decoder: Final = msgspec.json.Decoder(m.InputPointer | m.InputKey)


async def from_viewer(
    relay: ScreenRelay, viewer: ScreenViewer, kind: str, text: str, timeline: Timeline
) -> None:
    """A guidance, control or input message from a viewer of ``relay``."""
    remote = relay.remote
    if relay.state != SessionState.STARTED or viewer.actor != relay.actor:
        viewer.put({"type": "error", "status": 409, "detail": "the session is not on"})
        return
    now = time.monotonic()
    if kind in _GUIDE_TYPES:
        guide = _checked(_guide_decoder, text, kind, relay, viewer)
        if guide is None:
            return
        if not remote.guides.consume(now):
            return  # too fast: dropped (the next pointer move or stroke replaces it)
        if isinstance(guide, m.GuideDraw):
            remote.drawings += 1
        await _send(relay, guide)
    elif kind in _INPUT_TYPES:
        event = _checked(_input_decoder, text, kind, relay, viewer)
        if event is None:
            return
        if remote.control != ControlState.ON or not remote.inputs.consume(now):
            remote.inputs_refused += 1
            if now - remote.refused_told > 1.0:
                remote.refused_told = now
                reason = (
                    "control is not granted" if remote.control != ControlState.ON else "too fast"
                )
                viewer.put({"type": "input_refused", "reason": reason})
            return
        remote.inputs_relayed += 1
        await _send(relay, event)
    elif kind == "mode":
        try:
            choice = _mode_decoder.decode(text)
        except msgspec.MsgspecError as exc:
            viewer.put({"type": "error", "status": 400, "detail": f"bad mode: {exc}"[:300]})
            return
        remote.video_ok[viewer] = choice.video
        remote.mode = choice.mode
        await apply_mode(relay)
    elif kind == "control_request":
        if remote.control != ControlState.OFF:
            viewer.put({"type": "control", "state": remote.control})
            return
        if not remote.requests.consume(now):
            viewer.put({"type": "error", "status": 429, "detail": "asked too often"})
            return
        remote.control = ControlState.ASKING
        _broadcast(relay, {"type": "control", "state": ControlState.ASKING})
        await record_step(timeline, relay, "screen_control_requested", relay.actor, {})
        await _send(relay, m.ScreenControlRequest(session_id=relay.session_id))
    elif kind == "control_release":
        if remote.control == ControlState.OFF:
            return
        was = remote.control
        remote.control = ControlState.OFF
        await _send(
            relay,
            m.ScreenControlEnded(
                session_id=relay.session_id,
                reason=m.ScreenControlReason.RELEASED,
                error="the technician gave control back",
            ),
        )
        _broadcast(relay, {"type": "control", "state": ControlState.OFF, "reason": "released"})
        kind_ = "screen_control_ended" if was == ControlState.ON else "screen_control_refused"
        await record_step(timeline, relay, kind_, relay.actor, {"reason": "released"})


async def apply_mode(relay: ScreenRelay) -> None:
    """Tell the agent the mode: the one asked for if every viewer decodes H.264, else tiles."""
    remote = relay.remote
    capable = all(remote.video_ok.get(v, False) for v in relay.viewers)
    mode = remote.mode if capable else m.ScreenMode.TILES
    if mode is not remote.agent_mode:
        remote.agent_mode = mode
        await _send(relay, m.ScreenSetMode(session_id=relay.session_id, mode=mode))
    _broadcast(relay, {"type": "mode", "mode": str(mode)})


async def from_agent(relay: ScreenRelay, message: m.Message, timeline: Timeline) -> None:
    """A guidance or control message from the session's agent."""
    remote = relay.remote
    agent = f"agent:{relay.device_id}"
    if isinstance(message, m.ScreenGuideStatus):
        remote.guidance = {
            "type": "guidance",
            "available": message.available,
            "error": message.error,
        }
        _broadcast(relay, remote.guidance)
    elif isinstance(message, m.ScreenControlGranted):
        if remote.control != ControlState.ASKING:
            # Withdrawn meanwhile: control goes off again at once.
            await _send(
                relay,
                m.ScreenControlEnded(
                    session_id=relay.session_id,
                    reason=m.ScreenControlReason.RELEASED,
                    error="the request was withdrawn",
                ),
            )
            return
        remote.control = ControlState.ON
        _broadcast(
            relay,
            {
                "type": "control",
                "state": ControlState.ON,
                "consent": message.consent,
                "takeback_seconds": message.takeback_seconds,
            },
        )
        await record_step(
            timeline, relay, "screen_control_granted", agent, {"consent": message.consent}
        )
    elif isinstance(message, m.ScreenControlRefused):
        if remote.control == ControlState.ASKING:
            remote.control = ControlState.OFF
        _broadcast(
            relay,
            {
                "type": "control",
                "state": "refused",
                "reason": str(message.reason),
                "error": message.error,
            },
        )
        await record_step(
            timeline,
            relay,
            "screen_control_refused",
            agent,
            {"reason": str(message.reason), "error": message.error},
        )
    elif isinstance(message, m.ScreenControlEnded):
        if remote.control != ControlState.ON:
            return
        remote.control = ControlState.OFF
        _broadcast(
            relay,
            {
                "type": "control",
                "state": ControlState.OFF,
                "reason": str(message.reason),
                "error": message.error,
            },
        )
        await record_step(
            timeline,
            relay,
            "screen_control_ended",
            agent,
            {"reason": str(message.reason), "error": message.error},
        )
    elif isinstance(message, m.ScreenControlPaused):
        _broadcast(relay, {"type": "control_paused", "seconds": message.seconds})


async def session_ended(relay: ScreenRelay, timeline: Timeline) -> dict[str, Any]:
    """The session ended: control with it (recorded); the counts for its end."""
    remote = relay.remote
    if remote.control == ControlState.ON:
        remote.control = ControlState.OFF
        await record_step(
            timeline,
            relay,
            "screen_control_ended",
            f"agent:{relay.device_id}",
            {"reason": "session_ended"},
        )
    remote.control = ControlState.OFF
    return remote.summary()


def _broadcast(relay: ScreenRelay, item: dict[str, Any]) -> None:
    for viewer in relay.viewers:
        viewer.put(item)


async def _send(relay: ScreenRelay, message: m.Message) -> None:
    if relay.state == SessionState.ENDED:
        return
    try:
        await relay.agent.channel.send(message)
    except ConnectionClosed:
        logger.debug("screen %s: the agent is gone", relay.session_id)


_D = TypeVar("_D", m.GuidePointer | m.GuideDraw | m.GuideClear, m.InputPointer | m.InputKey)


def _checked(
    decoder: msgspec.json.Decoder[_D],
    text: str,
    kind: str,
    relay: ScreenRelay,
    viewer: ScreenViewer,
) -> _D | None:
    """A viewer's message for this session, or None after telling the viewer why not."""
    try:
        message = decoder.decode(text)
    except msgspec.MsgspecError as exc:
        viewer.put({"type": "error", "status": 400, "detail": f"bad {kind}: {exc}"[:300]})
        return None
    if message.session_id != relay.session_id:
        viewer.put({"type": "error", "status": 403, "detail": "not your session"})
        return None
    return message


async def record_step(
    timeline: Timeline, relay: ScreenRelay, kind: str, actor: str, data: dict[str, Any]
) -> None:
    """A step of the session on its ticket's timeline and in the audit log; a failure
    to record is logged, and the session goes on."""
    try:
        await timeline.record_screen_event(
            relay.ticket_id,
            kind,
            actor=actor,
            data={"screen_session": relay.session_id, "device": relay.device_id, **data},
        )
    except Exception:
        logger.exception("cannot record %s of screen session %s", kind, relay.session_id)
