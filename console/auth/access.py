"""Who may act on a device: decided here, for every action that reaches one.

Commands, runbooks, terminals and screen sessions all ask ``check_device_action``
in the transaction that records the action, and record a refusal with
``record_refusal`` (audit log, and the ticket's timeline when there is a ticket)
before raising it. The rule today:

* the API token has the ``commands:run`` scope;
* a technician is an admin, or the assignee of the ticket;
* the ticket is open, and names the device (or the request does);
* the device is enrolled, not revoked, and connected.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import Connection, bindparam, func, select, update

from deskside.console.audit import chain as audit
from deskside.console.devices.models import Device
from deskside.console.errors import Conflict, ConsoleError, Forbidden, NotFound
from deskside.console.events import DomainEvent
from deskside.console.tickets.lifecycle import is_open
from deskside.console.tickets.models import Ticket
from deskside.console.timeline import add_sync, typed

from .identity import ApiIdentity, Scope

__all__ = ["check_device_action", "record_refusal", "record_response"]

_TICKET_FOR_ACTION: Final = (
    select(Ticket.id, Ticket.title, Ticket.status, Ticket.assignee, Ticket.device_id)
    .where(Ticket.id == bindparam("ticket"))
    .with_for_update()
)
_DEVICE_REVOKED: Final = select(Device.revoked_at).where(Device.id == bindparam("device"))
_RESPONDED: Final = (
    update(Ticket)
    .where(Ticket.id == bindparam("ticket"))
    .values(
        updated_at=bindparam("now"),
        first_response_at=func.coalesce(Ticket.first_response_at, bindparam("now")),
    )
)


def check_device_action(
    conn: Connection,
    ticket_id: int,
    device_id: str | None,
    identity: ApiIdentity,
    online: Callable[[str], bool],
) -> tuple[Any, str | None, ConsoleError | None]:
    """Whether ``identity`` may act on the ticket's device: (ticket, device, refusal).

    Run on the transaction's connection (``run_sync`` in a session). The ticket is
    (``id``, ``title``, ``status``, ``assignee``, ``device_id``), locked for the
    transaction, or None if there is none.
    """
    ticket = conn.execute(_TICKET_FOR_ACTION, {"ticket": ticket_id}).one_or_none()
    device_id = device_id or (ticket.device_id if ticket is not None else None)
    if Scope.COMMANDS_RUN not in identity.scopes:
        return ticket, device_id, Forbidden("this API token lacks the 'commands:run' scope")
    if ticket is None:
        return None, device_id, NotFound(f"no ticket {ticket_id}")
    if (
        identity.username is not None
        and not identity.is_admin
        and ticket.assignee != identity.username
    ):
        return (
            ticket,
            device_id,
            Forbidden(
                f"{identity.username} may not act on ticket #{ticket_id}: "
                "it is not assigned to them"
            ),
        )
    if not is_open(ticket.status):
        return ticket, device_id, Conflict(f"ticket #{ticket_id} is {ticket.status}")
    if device_id is None:
        return ticket, None, Conflict(f"ticket #{ticket_id} has no device; name one")
    revoked = conn.execute(_DEVICE_REVOKED, {"device": device_id}).one_or_none()
    if revoked is None or revoked[0] is not None:
        return ticket, device_id, NotFound(f"no device {device_id}")
    if not online(device_id):
        return ticket, device_id, Conflict(f"device {device_id} is not connected")
    return ticket, device_id, None


def record_refusal(
    conn: Connection,
    ticket: Any,
    identity: ApiIdentity,
    refusal: ConsoleError,
    data: dict[str, Any],
    now: datetime.datetime,
    events: list[DomainEvent],
    *,
    what: str = "command",
    shown: tuple[str, ...] = ("argv", "shell", "terminal"),
) -> None:
    """A refused action goes on the audit log (``<what>.refused``, with ``data``)
    and, when there is one, the ticket (``<what>_refused``, with the ``shown``
    keys of ``data``)."""
    audit.append_sync(
        conn,
        actor=identity.actor,
        action=f"{what}.refused",
        data={**data, "reason": str(refusal)},
        at=now,
    )
    if ticket is not None:
        add_sync(
            conn,
            ticket.id,
            typed(
                f"{what}_refused",
                {**{k: v for k, v in data.items() if k in shown}, "reason": str(refusal)},
            ),
            actor=identity.actor,
            at=now,
            events=events,
        )


def record_response(conn: Connection, ticket_id: int, now: datetime.datetime) -> None:
    """A technician acted on the ticket: it changed, and it has had its first response."""
    conn.execute(_RESPONDED, {"ticket": ticket_id, "now": now})
