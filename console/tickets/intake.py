"""Help requests from agents: each becomes a ticket, once, with its diagnostics."""

from __future__ import annotations

import logging

from deskside.console.agents import AgentHandlers, AgentSession
from deskside.protocol import messages as m

from .lifecycle import TicketSource
from .repository import TicketRepository
from .schemas import NewTicket

__all__ = ["HelpRequests"]

logger = logging.getLogger(__name__)


class HelpRequests:
    """The tickets capability at the gateway: ``HelpRequest`` -> a ticket, then ``Ack``."""

    def __init__(self, tickets: TicketRepository) -> None:
        self._tickets = tickets

    def register(self, handlers: AgentHandlers) -> None:
        """``HelpRequest`` comes here."""
        handlers.register(m.HelpRequest, self._help_request)

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def agent_gone(self, session: AgentSession) -> None:
        """Nothing depends on a channel: a request not acknowledged is sent again."""

    async def _help_request(self, session: AgentSession, request: m.HelpRequest) -> None:
        description = request.description.strip() or "(no description)"
        first_line = description.splitlines()[0]
        title = first_line if len(first_line) <= 80 else first_line[:79] + "…"
        ticket, created = await self._tickets.create_ticket(
            NewTicket(
                title=title,
                description=description,
                requester=request.requester[:256],
                device_id=session.device_id,
                impact=int(request.impact),
                urgency=int(request.urgency),
            ),
            actor=f"agent:{session.device_id}",
            source=TicketSource.AGENT,
            help_request_id=request.request_id,
            snapshot=request.snapshot,
        )
        if created:
            logger.info("device %s filed ticket #%d", session.device_id, ticket.id)
        await session.channel.send(m.Ack(request_id=request.request_id, ticket_id=ticket.id))
