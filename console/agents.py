"""What a capability sees of the connected agents, and what the gateway asks of it.

The gateway (``gateway.py``) holds the agents' channels; capabilities that talk to
agents (devices, tickets, commands, terminal, screen) are given this narrow view
of it, and give the gateway their handlers, in a ``HandlerTable`` from message type
to handler. Neither imports the other: both import this module.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from deskside.channel.dispatch import HandlerTable
from deskside.protocol import messages as m

__all__ = ["AgentChannel", "AgentHandlers", "AgentSession", "Agents", "Capability"]


class AgentChannel(Protocol):
    """An agent's secure channel, as capabilities use it."""

    async def send(self, message: m.Message) -> None:
        """Send one message; ``ConnectionClosed`` if the channel is closed."""
        ...


class AgentSession(Protocol):
    """One connected agent channel (the gateway's ``Session``)."""

    @property
    def device_id(self) -> str:
        """The device the channel authenticated as."""
        ...

    @property
    def channel(self) -> AgentChannel:
        """Its channel."""
        ...

    @property
    def is_daemon(self) -> bool:
        """Whether the agent said ``Hello``: a daemon, not a one-off CLI connection."""
        ...

    def mark_daemon(self) -> None:
        """The agent said ``Hello``."""
        ...


# The gateway's table: message type -> the handler of the capability that owns it.
AgentHandlers = HandlerTable[AgentSession]


@runtime_checkable
class Agents(Protocol):
    """The agents connected to this console process."""

    def online(self, device_id: str) -> bool:
        """Whether the device has a channel open now."""
        ...

    def daemon_session(self, device_id: str) -> AgentSession:
        """The device's daemon connection (the newest); ``Conflict`` if it has none."""
        ...

    async def disconnect(self, device_id: str, reason: str) -> None:
        """Close every channel of the device (after revoking it, say)."""
        ...


class Capability(Protocol):
    """A part of the console that agents talk to."""

    def register(self, handlers: AgentHandlers) -> None:
        """Put the handlers of the messages it owns in the gateway's table."""
        ...

    async def start(self) -> None:
        """The console starts (before agents connect)."""
        ...

    async def stop(self) -> None:
        """The console stops (agents' channels are being closed)."""
        ...

    async def agent_gone(self, session: AgentSession) -> None:
        """An agent's channel closed: end what depended on it."""
        ...
