"""``deskside-agent run``: the daemon that keeps this device present at the console.

Theory of operation::

    run()
     └── connect loop ──(connected)──> session ──(channel closed)──┐
            ^    │ (failed)                                        │
            │    v                                                 │
            └── sleep: full-jitter exponential backoff <───────────┘
                 (plus the Retry-After of a console too busy to let it in)

* Before each attempt the configuration is read again, so a re-enrollment (or a
  new heartbeat setting) is picked up without restarting the daemon.
* A session sends ``Hello``, then runs three things until the channel closes:
  the receive loop, the heartbeat loop, and the spool loop, which sends every
  spooled help request after connecting and whenever new ones appear.
* The receive loop looks each message's type up in one table
  (``deskside.channel.dispatch.HandlerTable``) and awaits its handler; a type
  without one is logged at debug level and ignored. Each owner registers its own
  messages (``register(table)``)::

      SnapshotRequest, Ack, Error            ──> the daemon (this module)
      CommandRequest, CommandCancel          ──> CommandService
      ShellOpen, ShellData, ShellResize,
        ShellClosed                          ──> TerminalService
      ScreenOpen, ScreenAck, ScreenSettings,
        ScreenKeyframeRequest, ScreenSetMode,
        ScreenEnded, Guide*, ScreenControl*,
        Input*                               ──> ScreenService
      ChatMessage, ChatAck                   ──> ChatService (deskside.agent.chat)

  A new message is one handler in the module that owns it and one registration.
* A request is sent once per session (``_in_flight``); it is deleted from the
  spool only when its ``Ack`` arrives, and sent again in a later session if the
  Ack never came. The console files one ticket per request id.
* A console that refuses the device (close code 4003: unknown or revoked) is an
  ERROR in the log, and the daemon keeps trying at the capped backoff: an
  administrator may re-admit the device.
* Remote commands go to the ``CommandService`` (``deskside.agent.commands``;
  an ``Ack`` reaches it through the daemon, which asks it first), terminals to the
  ``TerminalService`` (``deskside.agent.terminal``). Both run in their own tasks,
  under the policy of the configuration in force, and write the audit log
  (``deskside.agent.audit``). Command results outlive a session: they are spooled
  and delivered after the next connect (``recover()`` at start picks up those of
  an earlier run); terminals end with their session.
* Screen sessions (view, guidance, control and input) go to the ``ScreenService``
  (``deskside.agent.screen.service``), under the ``[screen]`` policy; the capture
  and codec libraries are imported only when a session is allowed.
* SIGTERM / SIGINT set the stop event: running commands' process trees and open
  terminals are ended and recorded (audit log, result spool, sent if the channel
  is still open), the channel is closed with 1001 "agent stopping",
  ``status.json`` says not running and not connected, ``run()`` returns.

Everything blocking (files, psutil, diagnostics collectors) runs off the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from deskside.channel import Channel
from deskside.channel.dispatch import HandlerTable
from deskside.channel.retry import retry_after
from deskside.protocol.connection import CloseCode
from deskside.protocol.errors import ConfigError, ConnectionClosed, DesksideError
from deskside.protocol.messages import (
    Ack,
    DiagnosticsSnapshot,
    Error,
    ErrorCode,
    Heartbeat,
    Message,
    Metrics,
    SnapshotRequest,
)

from .audit import AuditLog
from .backoff import Backoff
from .chat.service import ChatService
from .commands import CommandService
from .config import AgentConfig, AgentPaths, Identity, load_config, load_enrolled
from .help_request import PERMANENT_ERRORS
from .inbox import Inbox
from .policy import CommandPolicy
from .screen.service import ScreenService
from .spool import Spool, valid_request_id
from .state import DaemonStatus, StatusRecorder, record_ticket
from .system import make_hello
from .terminal import TerminalService
from .uplink import describe_failure, is_refusal, open_configured_uplink, refusal_reason

__all__ = [
    "BACKOFF_MAX_ENV",
    "SPOOL_INTERVAL_ENV",
    "Daemon",
    "DaemonSettings",
]

logger = logging.getLogger(__name__)

BACKOFF_MAX_ENV = "DESKSIDE_AGENT_BACKOFF_MAX"
SPOOL_INTERVAL_ENV = "DESKSIDE_AGENT_SPOOL_INTERVAL"

# Longest text of an ``Error`` message (``Line`` in the wire messages).
_LINE_LIMIT = 4096


@dataclass(frozen=True, kw_only=True)
class DaemonSettings:
    """The daemon's timings; the defaults are for production."""

    backoff_base: float = 1.0
    """Upper bound of the first reconnection delay, in seconds."""

    backoff_max: float = 60.0
    """Upper bound of every reconnection delay (``DESKSIDE_AGENT_BACKOFF_MAX``)."""

    backoff_reset: float = 60.0
    """A connection up this many seconds resets the backoff."""

    spool_interval: float = 3.0
    """Seconds between looks at the spool (``DESKSIDE_AGENT_SPOOL_INTERVAL``)."""

    open_timeout: float = 10.0
    """Seconds a connection attempt (WebSocket and handshake) may take."""

    stop_timeout: float = 1.5
    """Seconds the closing handshake may take when the daemon stops."""

    max_snapshots: int = 2
    """Snapshots collected at once; further requests get an ``Error(busy)``."""

    inbox_dir: Path | None = None
    """Where users hand help requests to a system-wide daemon (``deskside.agent.inbox``)."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DaemonSettings:
        """Defaults, with the ``DESKSIDE_AGENT_*`` overrides found in ``environ``."""
        env = os.environ if environ is None else environ
        return cls(
            backoff_max=_positive(env, BACKOFF_MAX_ENV, cls.backoff_max),
            spool_interval=_positive(env, SPOOL_INTERVAL_ENV, cls.spool_interval),
        )


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {text!r}")
    return value


class Daemon:
    """The agent daemon: connect, stay present, deliver the spool, answer requests."""

    def __init__(
        self,
        paths: AgentPaths,
        config: AgentConfig,
        identity: Identity,
        settings: DaemonSettings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._paths = paths
        # The configuration in use; read again before each connection attempt.
        self._config = config
        # The key in use; changes only when the agent is enrolled again.
        self._identity = identity
        self._settings = settings or DaemonSettings()
        # Failures in a row, turned into reconnection delays.
        self._backoff = Backoff(
            base=min(self._settings.backoff_base, self._settings.backoff_max),
            cap=self._settings.backoff_max,
            reset_after=self._settings.backoff_reset,
            rng=rng or random.Random(),  # noqa: S311 (jitter, not cryptography)
        )
        self._spool = Spool(paths.spool_dir)
        # What status.json says; every change is written through.
        self._status = StatusRecorder(
            paths.status_file,
            DaemonStatus(
                pid=os.getpid(),
                started_at=psutil.Process().create_time(),
                console_url=config.console_url,
                device_id=config.device_id,
            ),
        )
        # Set by stop() (SIGTERM, SIGINT): run() winds down; failures are not reported.
        self._stop = asyncio.Event()
        # The open channel, if any.
        self._channel: Channel | None = None
        # Spooled requests sent on the current channel and not yet acknowledged.
        self._in_flight: set[str] = set()
        # Snapshot answers being prepared on the current channel.
        self._tasks: set[asyncio.Task[None]] = set()
        self._audit = AuditLog(paths.audit_file, paths.audit_head_file)
        consent_lock = asyncio.Lock()  # one consent dialog at a time
        # agent.toml's modification time when last read: an owner's edit of the policy
        # applies to the next request, without a restart (``_fresh_config``).
        self._config_mtime = self._config_file_mtime()
        policy_file = paths.config_file
        self._commands = CommandService(
            paths.commands_dir,
            self._audit,
            self._policy,
            consent_lock=consent_lock,
            policy_file=policy_file,
        )
        self._terminals = TerminalService(
            paths.shells_dir,
            self._audit,
            self._policy,
            consent_lock=consent_lock,
            policy_file=policy_file,
        )
        self._screens = ScreenService(
            self._audit,
            lambda: self._fresh_config().screen,
            consent_lock=consent_lock,
            policy_file=policy_file,
        )
        self._chat = ChatService(paths.chat_file, lambda: self._config.chat)
        # What to do with each type of message from the console: every service
        # registers the messages it owns.
        self._handlers: HandlerTable[Channel] = HandlerTable()
        self._register(self._handlers)
        self._commands.register(self._handlers)
        self._terminals.register(self._handlers)
        self._screens.register(self._handlers)
        self._chat.register(self._handlers)

    @property
    def handlers(self) -> HandlerTable[Channel]:
        """The receive loop's table: message type from the console -> its handler."""
        return self._handlers

    @property
    def status(self) -> DaemonStatus:
        """The daemon's current status (as last written to ``status.json``)."""
        return self._status.status

    def _policy(self) -> CommandPolicy:
        """The command policy of the configuration in force."""
        return self._fresh_config().commands

    def _config_file_mtime(self) -> int | None:
        try:
            return self._paths.config_file.stat().st_mtime_ns
        except OSError:
            return None

    def _fresh_config(self) -> AgentConfig:
        """The configuration in force, its policies ([commands], [screen]) read again if
        agent.toml changed since: the owner's edit applies to the next request.

        The file is a few hundred bytes, read once per change: not worth a thread. The
        console and the identity change only at the next connection (``_reload``).
        """
        mtime = self._config_file_mtime()
        if mtime is None or mtime == self._config_mtime:
            return self._config
        self._config_mtime = mtime
        try:
            loaded = load_config(self._paths)
        except ConfigError as exc:
            logger.warning("keeping the policy in use: %s", exc)
            return self._config
        if loaded is not None and loaded.device_id == self._config.device_id:
            if (loaded.commands, loaded.screen) != (self._config.commands, self._config.screen):
                logger.info("policy changed in %s", self._paths.config_file)
            self._config = replace(self._config, commands=loaded.commands, screen=loaded.screen)
        return self._config

    def stop(self) -> None:
        """Ask the daemon to stop; ``run()`` returns shortly after."""
        if not self._stop.is_set():
            logger.info("stopping")
        self._stop.set()

    async def run(self) -> None:
        """Run until ``stop()`` (or SIGTERM / SIGINT); then close and record it."""
        loop = asyncio.get_running_loop()
        installed = self._install_signal_handlers(loop)
        await self._status.update(running=True, connected=False)
        logger.info(
            "agent started (pid %d), device %s, console %s",
            os.getpid(),
            self._config.device_id,
            self._config.console_url,
        )
        await self._commands.recover()
        main = asyncio.create_task(self._connect_loop(), name="deskside-agent-connect")
        stopper = asyncio.create_task(self._stop.wait(), name="deskside-agent-stop")
        inbox = asyncio.create_task(self._collect_inbox(), name="deskside-agent-inbox")
        try:
            await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if main.done():
                main.result()  # the loop ends only by a bug: let it show
        finally:
            self._stop.set()
            stopper.cancel()
            # Each step runs whatever the one before did: a stop must finish and be
            # recorded; what went wrong is logged, not allowed to end it early.
            for step, work in (
                ("ending terminals", self._terminals.shutdown),
                ("ending screen sessions", self._screens.shutdown),
                ("closing the chat window", self._chat.shutdown),
                ("ending commands", self._commands.shutdown),
                ("closing the audit log", self._audit.close),
            ):
                try:
                    await work()
                except Exception:
                    logger.exception("stopping: %s failed", step)
            try:
                await self._close_channel(CloseCode.GOING_AWAY, "agent stopping")
            except Exception:
                logger.exception("stopping: closing the channel failed")
            main.cancel()
            inbox.cancel()
            await asyncio.gather(main, stopper, inbox, return_exceptions=True)
            await self._status.update(running=False, connected=False, connected_since=None)
            for signum in installed:
                loop.remove_signal_handler(signum)
            logger.info("agent stopped")

    # -- Connecting ---------------------------------------------------------------------

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        """Make SIGTERM and SIGINT stop the daemon; the signals handled by the loop."""
        installed: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, self.stop)
                installed.append(signum)
            except NotImplementedError:  # Windows: no loop signal handlers
                with contextlib.suppress(ValueError):
                    signal.signal(signum, lambda *_: loop.call_soon_threadsafe(self.stop))
            except (RuntimeError, ValueError):
                pass  # not the main thread (tests): stop() is called directly
        return installed

    async def _connect_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            await self._reload()
            # A busy console's Retry-After, waited on top of the backoff.
            asked = 0.0
            try:
                channel = await open_configured_uplink(
                    self._config, self._identity, open_timeout=self._settings.open_timeout
                )
            except Exception as exc:
                asked = retry_after(exc)
                await self._failed(exc, connected=False)
            else:
                opened = loop.time()
                try:
                    await self._session(channel)
                except Exception as exc:
                    await self._failed(exc, connected=True)
                self._backoff.connection_lasted(loop.time() - opened)
            if self._stop.is_set():
                return
            delay = asked + self._backoff.next_delay()
            logger.info("next connection attempt in %.1f s", delay)
            await asyncio.sleep(delay)

    async def _reload(self) -> None:
        """Read the configuration again; keep the current one if it is gone or bad."""
        try:
            loaded = await asyncio.to_thread(load_enrolled, self._paths)
        except ConfigError as exc:
            logger.warning("keeping the configuration in use: %s", exc)
            return
        if loaded is None:
            logger.warning("keeping the configuration in use: %s is gone", self._paths.config_file)
            return
        config, identity = loaded
        if (config, identity) == (self._config, self._identity):
            return
        logger.info(
            "configuration changed: device %s, console %s", config.device_id, config.console_url
        )
        self._config, self._identity = config, identity
        logging.getLogger().setLevel(config.log_level)
        await self._status.update(console_url=config.console_url, device_id=config.device_id)

    async def _failed(self, exc: BaseException, *, connected: bool) -> None:
        """Log why an attempt or a connection ended, once, and record it."""
        if self._stop.is_set():
            return
        reason = describe_failure(exc)
        if is_refusal(exc) and isinstance(exc, DesksideError):
            logger.error(
                "the console refused device %s: %s; retrying with backoff, "
                "in case an administrator admits it again",
                self._config.device_id,
                refusal_reason(exc),
            )
        elif isinstance(exc, DesksideError):
            what = "connection to the console lost" if connected else "cannot connect"
            logger.warning("%s: %s", what, reason)
        else:
            logger.error("unexpected error in the agent", exc_info=exc)
        await self._status.update(connected=False, connected_since=None, last_error=reason)

    async def _close_channel(self, code: int, reason: str) -> None:
        """Close the open channel, if any, within ``stop_timeout``."""
        channel = self._channel
        if channel is None or channel.closed:
            return
        with contextlib.suppress(TimeoutError, DesksideError):
            await asyncio.wait_for(channel.close(code, reason), self._settings.stop_timeout)

    # -- A session ----------------------------------------------------------------------

    async def _session(self, channel: Channel) -> None:
        """Use an open channel until it closes (``ConnectionClosed`` is raised then)."""
        self._channel = channel
        self._in_flight = set()
        helpers: list[asyncio.Task[None]] = []
        try:
            await channel.send(await make_hello(daemon=True))
            now = time.time()
            await self._status.update(
                connected=True, connected_since=now, last_contact=now, last_error=None
            )
            logger.info(
                "connected to %s as device %s", self._config.console_url, self._config.device_id
            )
            self._commands.attach(channel)
            await self._chat.attach(channel)
            helpers = [
                asyncio.create_task(self._guarded(channel, self._heartbeats, channel)),
                asyncio.create_task(self._guarded(channel, self._deliver_spool, channel)),
            ]
            while True:
                message = await channel.recv()
                await self._status.touch(last_contact=time.time())
                await self._handle(channel, message)
        finally:
            pending = [*helpers, *self._tasks]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._tasks.clear()
            self._channel = None
            self._commands.detach(channel)
            self._terminals.detach(channel)
            self._screens.detach(channel)
            self._chat.detach(channel)
            if not channel.closed and not self._stop.is_set():
                await self._close_now(channel, CloseCode.INTERNAL_ERROR, "agent error")

    async def _close_now(self, channel: Channel, code: int, reason: str) -> None:
        with contextlib.suppress(TimeoutError, DesksideError):
            await asyncio.wait_for(channel.close(code, reason), self._settings.stop_timeout)

    async def _guarded(
        self, channel: Channel, work: Callable[..., Awaitable[None]], *args: Any
    ) -> None:
        """Run a session's side task; a bug in it closes the channel instead of hanging.

        ``work(*args)`` is called here, so a task cancelled before it starts leaves no
        coroutine that was never awaited."""
        try:
            await work(*args)
        except ConnectionClosed:
            pass  # the receive loop sees it too and ends the session
        except Exception:
            logger.exception("unexpected error in the agent; reconnecting")
            await self._close_now(channel, CloseCode.INTERNAL_ERROR, "agent error")

    async def _heartbeats(self, channel: Channel) -> None:
        """Send a ``Heartbeat`` at once, then every heartbeat interval."""
        loop = asyncio.get_running_loop()
        interval = self._config.heartbeat_interval or channel.heartbeat_interval
        logger.debug("heartbeat every %g s", interval)
        warned = False
        deadline = loop.time()
        while True:
            metrics: Metrics | None = None
            try:
                metrics = await _metrics()
            except Exception as exc:
                if not warned:
                    logger.warning("cannot collect heartbeat metrics: %s", exc)
                    warned = True
            await channel.send(Heartbeat(sent_at=time.time(), metrics=metrics))
            await self._status.touch(last_contact=time.time())
            deadline = max(deadline + interval, loop.time())
            await asyncio.sleep(deadline - loop.time())

    async def _collect_inbox(self) -> None:
        """Move the help requests users left in the inbox into the spool, regularly."""
        if self._settings.inbox_dir is None:
            return
        inbox = Inbox(self._settings.inbox_dir, self._spool)
        while True:
            try:
                await asyncio.to_thread(inbox.collect)
            except Exception:
                logger.exception("collecting the inbox failed")
            await asyncio.sleep(self._settings.spool_interval)

    async def _deliver_spool(self, channel: Channel) -> None:
        """Send each spooled request not yet sent on this channel; look again regularly."""
        while True:
            requests = await asyncio.to_thread(self._spool.pending, frozenset(self._in_flight))
            for request in requests:
                if request.request_id in self._in_flight:
                    continue
                await channel.send(request)
                self._in_flight.add(request.request_id)
                logger.info("sent help request %s from the spool", request.request_id)
            await asyncio.sleep(self._settings.spool_interval)

    # -- Messages from the console ------------------------------------------------------

    def _register(self, table: HandlerTable[Channel]) -> None:
        """Route the messages the daemon answers itself: snapshots, ``Ack``, ``Error``."""
        table.register(SnapshotRequest, self._snapshot_requested)
        table.register(Ack, self._acknowledged)
        table.register(Error, self._console_error)

    async def _handle(self, channel: Channel, message: Message) -> None:
        """Act on one message from the console: its handler, if it has one."""
        if not await self._handlers.dispatch(channel, message):
            logger.debug("ignored a %s from the console", type(message).__name__)

    async def _snapshot_requested(self, channel: Channel, request: SnapshotRequest) -> None:
        if len(self._tasks) >= self._settings.max_snapshots:
            await channel.send(
                Error(
                    code=ErrorCode.BUSY,
                    message="snapshots already being collected",
                    request_id=request.request_id,
                )
            )
            return
        task = asyncio.create_task(self._guarded(channel, self._send_snapshot, channel, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_snapshot(self, channel: Channel, request: SnapshotRequest) -> None:
        from deskside.agent.diagnostics import collect_snapshot

        logger.info("console asked for a diagnostics snapshot (%s)", request.request_id)
        try:
            snapshot = await collect_snapshot(console_url=self._config.console_url)
            await channel.send(
                DiagnosticsSnapshot(snapshot=snapshot, request_id=request.request_id)
            )
        except ConnectionClosed:
            raise
        except Exception as exc:
            logger.exception("cannot send the diagnostics snapshot %s", request.request_id)
            text = f"diagnostics failed: {type(exc).__name__}: {exc}"[:_LINE_LIMIT]
            await channel.send(
                Error(code=ErrorCode.INTERNAL, message=text, request_id=request.request_id)
            )
            return
        logger.info("sent diagnostics snapshot %s", request.request_id)

    async def _acknowledged(self, channel: Channel, ack: Ack) -> None:
        request_id = ack.request_id
        if await self._commands.acknowledged(request_id):
            return
        was_sent = request_id in self._in_flight
        self._in_flight.discard(request_id)
        removed = valid_request_id(request_id) and await asyncio.to_thread(
            self._spool.remove, request_id
        )
        if not (removed or was_sent):
            logger.debug("Ack for request %s, which is not ours to delete", request_id)
            return
        ticket = f"ticket #{ack.ticket_id}" if ack.ticket_id is not None else "the console"
        logger.info("help request %s filed as %s", request_id, ticket)
        try:
            await asyncio.to_thread(
                record_ticket, self._paths.tickets_file, request_id, ack.ticket_id
            )
        except DesksideError as exc:
            logger.warning("cannot record the ticket: %s", exc)

    async def _console_error(self, channel: Channel, error: Error) -> None:
        if await self._chat.refused(error):
            return
        request_id = error.request_id
        if request_id is not None and request_id in self._in_flight:
            self._in_flight.discard(request_id)
            if error.code in PERMANENT_ERRORS:
                logger.error(
                    "the console refused help request %s: %s (%s); setting it aside",
                    request_id,
                    error.message,
                    error.code,
                )
                name = self._spool.path_of(request_id).name
                await asyncio.to_thread(self._spool.set_aside, name, error.message)
            else:
                logger.warning(
                    "the console could not file help request %s: %s (%s); will send it again",
                    request_id,
                    error.message,
                    error.code,
                )
            return
        suffix = f" (request {request_id})" if request_id else ""
        logger.warning("the console reported an error: %s: %s%s", error.code, error.message, suffix)


async def _metrics() -> Metrics:
    """Light metrics for a heartbeat, collected off the loop."""
    from deskside.agent.diagnostics import collect_metrics

    return await asyncio.to_thread(collect_metrics)
