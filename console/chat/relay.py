"""The chat at the gateway: technicians' lines to their devices, users' answers back.

Theory of operation::

    API: add_line (recorded, pending) ──> deliver(device) ──> ChatMessage(seq) ...
    device comes back (DeviceOnline) ───> deliver(device): every pending line, in order
    agent: ChatDelivered(seq) ──> delivered (or refused: "chat is off on this device")
           ChatReply(reply_id) ──> add_reply (kept once) ──> ChatAck(reply_id)

A line is sent at most once per channel (``_sent``: the highest number sent on the
device's daemon channel) and again on the next channel until the agent acknowledges
it; the agent remembers the highest number it showed and acknowledges a line sent
again without showing it twice. Lines of one device go out in the order of their
numbers, one delivery at a time (a lock per device).

The users' answers are limited per device (``REPLIES_PER_MINUTE``): an agent past it
gets an ``Error`` (busy) naming the answer, which it sends again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Final

from deskside.console.agents import AgentHandlers, Agents, AgentSession
from deskside.console.devices.events import DeviceOnline
from deskside.console.errors import Conflict, ConsoleError
from deskside.console.events import EventBus, Subscription
from deskside.protocol import messages as m
from deskside.protocol.errors import ConnectionClosed

from .events import CHAT_EVENTS
from .repository import ChatRepository

__all__ = ["REPLIES_PER_MINUTE", "ChatRelay"]

logger = logging.getLogger(__name__)

# The user's lines a device may send in a minute (the agent holds its user to less).
REPLIES_PER_MINUTE: Final = 30


class ChatRelay:
    """The chat capability at the gateway."""

    def __init__(self, chat: ChatRepository, bus: EventBus, agents: Agents) -> None:
        self._chat = chat
        self._bus = bus
        self._agents = agents
        # The highest line number sent on each device's current daemon channel.
        self._sent: dict[str, tuple[AgentSession, int]] = {}
        # One delivery at a time per device, so lines go out in order.
        self._locks: dict[str, asyncio.Lock] = {}
        # When each device's recent answers arrived (monotonic seconds).
        self._replies: dict[str, deque[float]] = {}
        # Devices coming back, from the bus; and the task delivering to them.
        self._arrivals: Subscription | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    def register(self, handlers: AgentHandlers) -> None:
        """The agent's acknowledgements and the user's answers come here."""
        handlers.register(m.ChatDelivered, self._delivered)
        handlers.register(m.ChatReply, self._reply)

    async def start(self) -> None:
        """Deliver pending lines to every device that comes online from now on."""
        self._arrivals = self._bus.subscribe(DeviceOnline)
        self._watcher = asyncio.create_task(self._watch(self._arrivals), name="deskside-chat")

    async def stop(self) -> None:
        """Stop delivering (lines not acknowledged stay pending)."""
        if self._arrivals is not None:
            self._arrivals.close()
        for task in (self._watcher, *self._deliveries):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def agent_gone(self, session: AgentSession) -> None:
        """Lines sent on this channel and not acknowledged go again on the next one."""
        sent = self._sent.get(session.device_id)
        if sent is not None and sent[0] is session:
            del self._sent[session.device_id]
        if not self._agents.online(session.device_id):
            self._replies.pop(session.device_id, None)

    def follow(self, ticket_id: int) -> Subscription:
        """The ticket's chat events from now on; close the subscription when done."""
        return self._bus.subscribe(*CHAT_EVENTS, topic=str(ticket_id))

    async def deliver(self, device_id: str) -> None:
        """Send the device every pending line not yet sent on its channel, in order;
        nothing if it is offline (the lines wait for it)."""
        lock = self._locks.setdefault(device_id, asyncio.Lock())
        async with lock:
            try:
                session = self._agents.daemon_session(device_id)
            except Conflict:
                return
            sent = self._sent.get(device_id)
            last = sent[1] if sent is not None and sent[0] is session else 0
            try:
                for line in await self._chat.pending(device_id):
                    assert line.seq is not None
                    if line.seq <= last:
                        continue
                    await session.channel.send(
                        m.ChatMessage(
                            seq=line.seq,
                            ticket_id=line.ticket_id,
                            sender=line.author[:256],
                            text=line.text,
                            sent_at=line.sent_at.timestamp(),
                        )
                    )
                    last = line.seq
                    self._sent[device_id] = (session, last)
            except ConnectionClosed:
                logger.info("device %s left while chat lines were sent to it", device_id)

    async def _watch(self, arrivals: Subscription) -> None:
        async for event in arrivals:
            if isinstance(event, DeviceOnline):
                task = asyncio.create_task(self._deliver_logged(event.device_id))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)

    async def _deliver_logged(self, device_id: str) -> None:
        try:
            await self.deliver(device_id)
        except Exception:
            logger.exception("delivering chat lines to device %s failed", device_id)

    # -- Handlers --------------------------------------------------------------------------

    async def _delivered(self, session: AgentSession, message: m.ChatDelivered) -> None:
        line = await self._chat.delivered(
            session.device_id, message.seq, refused=message.refused, error=message.error
        )
        if line is not None and message.refused:
            logger.info(
                "device %s refused chat line %d: %s", session.device_id, message.seq, message.error
            )

    async def _reply(self, session: AgentSession, message: m.ChatReply) -> None:
        now = time.monotonic()
        recent = self._replies.setdefault(session.device_id, deque())
        while recent and now - recent[0] > 60.0:
            recent.popleft()
        if len(recent) >= REPLIES_PER_MINUTE:
            await session.channel.send(
                m.Error(
                    code=m.ErrorCode.BUSY,
                    message=f"more than {REPLIES_PER_MINUTE} chat lines a minute",
                    request_id=message.reply_id,
                )
            )
            return
        recent.append(now)
        try:
            await self._chat.add_reply(session.device_id, message)
        except ConsoleError as exc:
            logger.warning("device %s: chat answer refused: %s", session.device_id, exc)
            await session.channel.send(
                m.Error(
                    code=m.ErrorCode.NOT_FOUND, message=str(exc)[:4096], request_id=message.reply_id
                )
            )
            return
        await session.channel.send(m.ChatAck(reply_id=message.reply_id))
