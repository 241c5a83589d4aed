"""The chat at the daemon: the technician's lines to the user's window, the user's
answers back to the ticket.

Theory of operation::

    console: ChatMessage(seq) ──> policy off?  ──> ChatDelivered(refused, "chat is off
                                                    on this device")
                                  seq <= last?  ──> ChatDelivered (shown already: once)
                                  no desktop?   ──> ChatDelivered(refused, ...)
                                  else ──> the window shows it, ``last`` = seq (kept on
                                           disk) ──> ChatDelivered(seq)
    window: {"ticket", "text"} ──> checked (plain text, length, the policy's rate)
                               ──> kept as pending (on disk) ──> ChatReply(reply_id)
    console: ChatAck(reply_id) ──> forgotten; pending answers go again on each connect

The state file (``chat.json`` in the state directory, 0600) holds the highest line
number shown, the answers not yet acknowledged and the recent conversation, which a
new window is given so the user sees what came before. The window is a process of
its own (``deskside.agent.chat.window``): it gets lines and gives answers, nothing
else; it is started where a desktop exists, and again if the user's session ended it.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec

from deskside.agent.consent import has_desktop
from deskside.agent.files import write_atomic
from deskside.agent.i18n import gettext_for as _
from deskside.channel import Channel
from deskside.channel.dispatch import HandlerTable
from deskside.protocol import messages as m
from deskside.protocol.errors import ConfigError, ConnectionClosed

from .policy import ChatPolicy
from .window import clean

__all__ = [
    "CHAT_OFF",
    "LINES_SHOWN_PER_MINUTE",
    "NO_DESKTOP",
    "TOO_MANY",
    "ChatService",
    "ChatState",
]

logger = logging.getLogger(__name__)

# What the technician is told when the policy or the machine refuses a line.
CHAT_OFF: Final = "chat is off on this device"
NO_DESKTOP: Final = "nobody is at a desktop on this device to read it"
# The technician's lines shown in a minute, at most: a console gone wrong cannot bury
# the user's screen (the console itself allows 20 a minute per ticket).
LINES_SHOWN_PER_MINUTE: Final = 60
# What the technician is told past it.
TOO_MANY: Final = "too many chat lines a minute for this device"
# Lines of the conversation kept for a new window.
_HISTORY: Final = 50
# Answers kept while the console is away; older ones are dropped (and logged).
_MAX_PENDING: Final = 200
# Seconds the window may take to open.
_WINDOW_START: Final = 15.0
# The window's lines longer than this are not read (a line is at most 2,000 characters).
_MAX_WINDOW_LINE: Final = 64 << 10


class ChatState(msgspec.Struct, kw_only=True):
    """What the chat keeps on disk."""

    # The highest line number shown to the user.
    last_seq: int = 0
    # The user's answers not yet acknowledged by the console, in order.
    pending: list[m.ChatReply] = msgspec.field(default_factory=list)
    # The recent conversation, for a new window: the daemon's lines to it.
    history: list[dict[str, Any]] = msgspec.field(default_factory=list)


class ChatService:
    """The technician's lines and the user's answers, under the ``[chat]`` policy."""

    def __init__(
        self,
        state_file: Path,
        policy: Callable[[], ChatPolicy],
        *,
        window_argv: list[str] | None = None,
    ) -> None:
        self._path = state_file
        self._policy = policy
        # How to start the window (tests may run another program).
        self._window_argv = window_argv or [sys.executable, "-m", "deskside.agent.chat.window"]
        self.state = self._load()
        # The channel answers go out on, while connected.
        self._channel: Channel | None = None
        # The window process and the task reading its answers.
        self._window: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        # Set by the window's first line: True once it shows, False if it could not.
        self._ready: asyncio.Future[bool] | None = None
        # When the technician's recent lines were shown (monotonic seconds).
        self._shown: deque[float] = deque()
        # When the user's recent answers were sent (monotonic seconds).
        self._sent: deque[float] = deque()
        # Answers sent on the current channel, not yet acknowledged.
        self._in_flight: set[str] = set()
        # One line at a time, in the order they came (asyncio.Lock wakes waiters in order).
        self._lock = asyncio.Lock()
        # Lines being shown.
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, table: HandlerTable[Channel]) -> None:
        """The technician's lines and the console's acknowledgements come here."""
        table.register(m.ChatMessage, self._line_later)
        table.register(m.ChatAck, self._acknowledged)

    async def attach(self, channel: Channel) -> None:
        """A channel is open: send the answers that wait, in order."""
        self._channel = channel
        self._in_flight = set()
        for reply in list(self.state.pending):
            await self._send_reply(reply)

    def detach(self, channel: Channel) -> None:
        """The channel closed: answers wait for the next one."""
        if self._channel is channel:
            self._channel = None
            self._in_flight = set()

    async def refused(self, error: m.Error) -> bool:
        """Whether ``error`` is the console's about one of our answers (then handled:
        a busy console gets it again on the next connect; one it cannot file is dropped)."""
        reply_id = error.request_id
        if reply_id is None or reply_id not in self._in_flight:
            return False
        self._in_flight.discard(reply_id)
        if error.code is not m.ErrorCode.BUSY:
            logger.warning("the console refused chat answer %s: %s", reply_id, error.message)
            self.state.pending = [r for r in self.state.pending if r.reply_id != reply_id]
            await self._save()
            notice = _("This answer could not be delivered to your help desk: {why}")
            self._tell({"notice": notice.format(why=error.message[:200])})
        return True

    async def shutdown(self) -> None:
        """End the window (the state is on disk already)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        window, self._window = self._window, None
        if window is not None and window.returncode is None:
            if window.stdin is not None:
                window.stdin.close()
            try:
                await asyncio.wait_for(window.wait(), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    window.kill()
                await window.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    # -- The technician's lines --------------------------------------------------------------

    async def _line_later(self, channel: Channel, message: m.ChatMessage) -> None:
        """Show the line in a task of its own: opening the window takes a moment, and the
        receive loop must not wait for it. The lock keeps lines in their order."""
        task = asyncio.create_task(self._line_logged(channel, message), name="deskside-chat-line")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _line_logged(self, channel: Channel, message: m.ChatMessage) -> None:
        try:
            await self._line(channel, message)
        except ConnectionClosed:
            pass  # not acknowledged: the console sends it again, and it is shown once
        except Exception:
            logger.exception("showing chat line %d failed", message.seq)

    async def _line(self, channel: Channel, message: m.ChatMessage) -> None:
        async with self._lock:  # lines are shown in the order they came
            if not self._policy().enabled:
                logger.info("chat line %d refused: chat is off by policy", message.seq)
                await channel.send(m.ChatDelivered(seq=message.seq, refused=True, error=CHAT_OFF))
                return
            if message.seq <= self.state.last_seq:
                logger.info("chat line %d shown already; acknowledged again", message.seq)
                await channel.send(m.ChatDelivered(seq=message.seq))
                return
            now = time.monotonic()
            while self._shown and now - self._shown[0] > 60.0:
                self._shown.popleft()
            if len(self._shown) >= LINES_SHOWN_PER_MINUTE:
                logger.warning("chat line %d refused: too many a minute", message.seq)
                await channel.send(m.ChatDelivered(seq=message.seq, refused=True, error=TOO_MANY))
                return
            item = {
                "from": message.sender,
                "text": message.text,
                "ticket": message.ticket_id,
                "at": message.sent_at,
            }
            if not await self._show(item):
                await channel.send(m.ChatDelivered(seq=message.seq, refused=True, error=NO_DESKTOP))
                return
            self._shown.append(now)
            self.state.last_seq = message.seq
            self._remember(item)
            await self._save()
            logger.info(
                "chat line %d for ticket #%d shown (%d characters)",
                message.seq,
                message.ticket_id,
                len(message.text),
            )
            await channel.send(m.ChatDelivered(seq=message.seq))

    async def _show(self, item: dict[str, Any]) -> bool:
        """Give the window a line, starting the window first if need be."""
        if not await self._ensure_window():
            return False
        return self._tell({"line": item})

    async def _ensure_window(self) -> bool:
        if self._window is not None and self._window.returncode is None:
            return True
        if not has_desktop():
            return False
        try:
            self._window = await asyncio.create_subprocess_exec(
                *self._window_argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                limit=_MAX_WINDOW_LINE,
            )
        except OSError as exc:
            logger.warning("cannot start the chat window: %s", exc)
            return False
        self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_window(self._window, self._ready))
        try:
            shown = await asyncio.wait_for(asyncio.shield(self._ready), _WINDOW_START)
        except TimeoutError:
            shown = False
        if not shown:
            logger.warning("the chat window did not open")
            with contextlib.suppress(ProcessLookupError):
                self._window.kill()
            return False
        for item in self.state.history:  # what came before, without a notification
            self._tell({"line": item, "history": True})
        return True

    def _tell(self, item: dict[str, Any]) -> bool:
        """Write one line to the window; False if it is gone."""
        window = self._window
        if window is None or window.stdin is None or window.returncode is not None:
            return False
        try:
            window.stdin.write(json.dumps(item).encode() + b"\n")
        except (ConnectionError, RuntimeError):
            return False
        return True

    # -- The user's answers -----------------------------------------------------------------

    async def _read_window(
        self, window: asyncio.subprocess.Process, ready: asyncio.Future[bool]
    ) -> None:
        try:
            await self._read_answers(window, ready)
        finally:
            if not ready.done():
                ready.set_result(False)
        code = await window.wait()
        logger.info("the chat window ended (exit %s)", code)

    async def _read_answers(
        self, window: asyncio.subprocess.Process, ready: asyncio.Future[bool]
    ) -> None:
        assert window.stdout is not None
        while True:
            try:
                raw = await window.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                logger.warning("the chat window wrote an overlong line; ignored")
                continue
            if not raw:
                return
            try:
                item = json.loads(raw)
                if item.get("ready") is True:
                    if not ready.done():
                        ready.set_result(True)
                    continue
                await self._answer(item)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                logger.warning("ignored a bad line from the chat window: %s", exc)

    async def _answer(self, item: dict[str, Any]) -> None:
        """The user wrote a line in the window: check it, keep it, send it."""
        text = clean(str(item["text"]))
        ticket = int(item["ticket"])
        if not text or ticket < 1:
            return
        now = time.monotonic()
        while self._sent and now - self._sent[0] > 60.0:
            self._sent.popleft()
        limit = self._policy().lines_per_minute
        if len(self._sent) >= limit:
            notice = _("Not sent: at most {limit} lines a minute. Wait a moment.")
            self._tell({"notice": notice.format(limit=limit)})
            return
        self._sent.append(now)
        reply = m.ChatReply(
            reply_id=uuid.uuid4().hex,
            ticket_id=ticket,
            text=text,
            sent_at=time.time(),
            user=_login_name(),
        )
        self.state.pending.append(reply)
        if len(self.state.pending) > _MAX_PENDING:
            dropped = self.state.pending.pop(0)
            logger.warning("chat answer %s dropped: too many waiting", dropped.reply_id)
        self._remember({"from": "", "text": text, "ticket": ticket, "mine": True})
        await self._save()
        if self._channel is None:
            self._tell({"notice": _("Not connected to your help desk: it will be sent later.")})
            return
        await self._send_reply(reply)

    async def _send_reply(self, reply: m.ChatReply) -> None:
        channel = self._channel
        if channel is None or reply.reply_id in self._in_flight:
            return
        try:
            await channel.send(reply)
        except ConnectionClosed:
            return  # sent again on the next channel
        self._in_flight.add(reply.reply_id)
        logger.info("chat answer %s sent for ticket #%d", reply.reply_id, reply.ticket_id)

    async def _acknowledged(self, channel: Channel, ack: m.ChatAck) -> None:
        self._in_flight.discard(ack.reply_id)
        before = len(self.state.pending)
        self.state.pending = [r for r in self.state.pending if r.reply_id != ack.reply_id]
        if len(self.state.pending) != before:
            await self._save()

    # -- State --------------------------------------------------------------------------------

    def _remember(self, item: dict[str, Any]) -> None:
        self.state.history.append(item)
        del self.state.history[:-_HISTORY]

    def _load(self) -> ChatState:
        try:
            return msgspec.json.decode(self._path.read_bytes(), type=ChatState)
        except FileNotFoundError:
            return ChatState()
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            logger.warning("starting the chat afresh: %s is unreadable: %s", self._path, exc)
            return ChatState()

    async def _save(self) -> None:
        data = msgspec.json.encode(self.state)
        try:
            await asyncio.to_thread(write_atomic, self._path, data, durable=False)
        except ConfigError as exc:
            logger.warning("cannot keep the chat's state: %s", exc)


def _login_name() -> str:
    """The user's login name, for the technician (empty if it cannot be told)."""
    try:
        return getpass.getuser()[:256]
    except (OSError, KeyError) as exc:  # no name in the environment nor the user database
        logger.debug("the user's login name is unknown: %s", exc)
        return ""
