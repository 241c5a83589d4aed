"""The tickets' web pages: the queue, live.

``queue`` is the one query of the queue page and of its live updates: the queue's
filters, sort and saved views replace it, and both follow.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Controller, Request, Response, get, post
from litestar.response import ServerSentEvent

from deskside.console.auth.roles import Permission
from deskside.console.timeline.events import TimelineEntryAdded
from deskside.console.web import live
from deskside.console.web.layout import redirect, render, render_fragment
from deskside.console.web.sessions import WebUser, permits, web_state

from .events import TicketChanged, TicketCreated
from .repository import TicketRepository
from .routes import TicketId
from .schemas import TicketChanges, TicketQuery, TicketView

__all__ = ["QUEUE_SIZE", "QueuePages", "queue"]

# Tickets the queue shows (pagination comes with the queue's filters).
QUEUE_SIZE: Final = 100
# What changes the queue: its live stream's events.
QUEUE_EVENTS: Final = (TicketCreated, TicketChanged, TimelineEntryAdded)


async def queue(tickets: TicketRepository, user: WebUser) -> list[TicketView]:
    """The tickets of ``user``'s queue, as the page lists them (the queue's one query,
    ``TicketRepository.queue``; its filters and saved views come to the page next)."""
    page = await tickets.queue(TicketQuery(limit=QUEUE_SIZE), username=user.username)
    return page.tickets


class QueuePages(Controller):
    """``/tickets``: the queue; ``/tickets/live``: its rows, again on every change."""

    path = "/tickets"
    include_in_schema = False

    @get("/", guards=[permits(Permission.TICKETS_VIEW)])
    async def queue_page(
        self, request: Request[Any, Any, Any], user: WebUser, tickets: TicketRepository
    ) -> Response[Any]:
        rows = await queue(tickets, user)
        return await render(request, user, "tickets/queue.html", tickets=rows)

    @get("/live", guards=[permits(Permission.TICKETS_VIEW)])
    async def queue_live(
        self, request: Request[Any, Any, Any], user: WebUser, tickets: TicketRepository
    ) -> ServerSentEvent:
        async def rows() -> str:
            found = await queue(tickets, user)
            return render_fragment(request, user, "tickets/_rows.html", tickets=found)

        return live.stream(request, user, "queue", QUEUE_EVENTS, rows)

    @post("/{ticket_id:int}/take", guards=[permits(Permission.TICKETS_WORK)], status_code=303)
    async def take(
        self,
        request: Request[Any, Any, Any],
        user: WebUser,
        tickets: TicketRepository,
        ticket_id: TicketId,
    ) -> Response[Any]:
        """Assign the ticket to oneself (the queue's one-click action)."""
        await tickets.update_ticket(
            ticket_id, TicketChanges(assignee=user.username), actor=f"user:{user.username}"
        )
        await live_flash(request, user, f"Ticket #{ticket_id} is yours.")
        return redirect("/tickets")


async def live_flash(request: Request[Any, Any, Any], user: WebUser, message: str) -> None:
    """A message for the user's next page."""
    await web_state(request).sessions.flash(user.session.id, message)
