"""Who may act on a device: decided here, for every action that reaches one.

Commands, runbooks, cancels, terminals, screen sessions and fresh diagnostics all
ask ``check_device_action`` in the transaction that records the action, record a
refusal with ``record_refusal`` (audit log, and the ticket's timeline when there is
a ticket) before raising it, and record what they did with ``record_action``.
Acting on a device without a ticket (a fresh snapshot from the devices' API) asks
``check_device``; an action that records nothing of its own (a fresh snapshot) asks
``DeviceAccess.authorize``. The rule:

* the caller has the action's API scope (``commands:run``; ``devices:write`` for a
  fresh snapshot), or is a viewer link
  for this ticket's screen (``ViewerGrant``), which grants nothing else;
* the ticket is open; the action is on the ticket's device (a ticket without one
  takes the device named, which is then recorded on it: the action lands on the
  ticket *of that device*);
* a technician who is not an admin may act on a device when they are the assignee
  of an open ticket of that device, or a member of a group with rights on the
  device's group; and works through a ticket assigned to them, or of a device their
  group has rights on;
* the device is enrolled, not revoked, and connected (a chat line, ``chat``, needs
  ``tickets:write`` and waits for a device that is not connected).

An admin, and a service token (a ticket system's, acting for no technician), may act
on any device with the scope.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import Connection, bindparam, exists, func, select, update

from deskside.console.audit import chain as audit
from deskside.console.db import Database, utcnow
from deskside.console.devices.models import Device
from deskside.console.errors import Conflict, ConsoleError, Forbidden, NotFound
from deskside.console.events import DomainEvent
from deskside.console.tickets.lifecycle import OPEN_STATES, is_open
from deskside.console.tickets.models import Ticket
from deskside.console.timeline import add_sync, kinds, typed

from .identity import ApiIdentity, LinkCapability, Scope
from .models import GroupDeviceRight, GroupMember

__all__ = [
    "DeviceAccess",
    "DeviceAction",
    "check_device",
    "check_device_action",
    "may_control",
    "record_action",
    "record_refusal",
    "replay_refusal",
]


class DeviceAction(enum.StrEnum):
    """What a caller asks to do on a device."""

    COMMAND = "command"
    RUNBOOK = "runbook"
    CANCEL = "cancel"
    TERMINAL = "terminal"
    SCREEN = "screen"
    DIAGNOSTICS = "diagnostics"
    CHAT = "chat"


# The API scope each action needs (on a ticket).
_SCOPES: Final = {
    DeviceAction.COMMAND: Scope.COMMANDS_RUN,
    DeviceAction.RUNBOOK: Scope.COMMANDS_RUN,
    DeviceAction.CANCEL: Scope.COMMANDS_RUN,
    DeviceAction.TERMINAL: Scope.COMMANDS_RUN,
    DeviceAction.SCREEN: Scope.COMMANDS_RUN,
    DeviceAction.DIAGNOSTICS: Scope.DEVICES_WRITE,
    DeviceAction.CHAT: Scope.TICKETS_WRITE,
}
# Actions that wait for a device that is offline: a chat line is delivered when the
# device comes back.
_OFFLINE_OK: Final = frozenset({DeviceAction.CHAT})

_TICKET_FOR_ACTION: Final = (
    select(Ticket.id, Ticket.title, Ticket.status, Ticket.assignee, Ticket.device_id)
    .where(Ticket.id == bindparam("ticket"))
    .with_for_update()
)
_DEVICE: Final = select(Device.revoked_at, Device.group_name).where(
    Device.id == bindparam("device")
)
_GROUP_RIGHTS: Final = select(
    exists()
    .where(GroupMember.username == bindparam("user"))
    .where(GroupDeviceRight.group_name == GroupMember.group_name)
    .where(GroupDeviceRight.device_group == bindparam("device_group"))
)
_ASSIGNED_ON_DEVICE: Final = select(
    exists()
    .where(Ticket.device_id == bindparam("device"))
    .where(Ticket.assignee == bindparam("user"))
    .where(Ticket.status.in_(sorted(OPEN_STATES)))
)
_RESPONDED: Final = (
    update(Ticket)
    .where(Ticket.id == bindparam("ticket"))
    .values(
        updated_at=bindparam("now"),
        first_response_at=func.coalesce(Ticket.first_response_at, bindparam("now")),
        version=Ticket.version + 1,
    )
)
_ATTACH_DEVICE: Final = (
    update(Ticket)
    .where(Ticket.id == bindparam("ticket"))
    .where(Ticket.device_id.is_(None))
    .values(device_id=bindparam("device"), version=Ticket.version + 1)
)


class DeviceAccess:
    """The rule, for actions that record nothing of their own in a transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def authorize(
        self,
        identity: ApiIdentity,
        online: Callable[[str], bool],
        *,
        action: DeviceAction,
        device_id: str | None = None,
        ticket_id: int | None = None,
    ) -> str:
        """The device ``identity`` may do ``action`` on, through ``ticket_id`` (or
        without a ticket: ``device_id``). A refusal goes on the audit log
        (``<action>.refused``), then is raised."""
        now = utcnow()

        def transaction(conn: Connection) -> str | ConsoleError:
            device: str | None = device_id
            if ticket_id is None:
                assert device_id is not None
                refusal = check_device(conn, device_id, identity, online, scope=_SCOPES[action])
            else:
                _, device, refusal = check_device_action(
                    conn, ticket_id, device_id, identity, online, action=action
                )
            if refusal is None:
                assert device is not None
                return device
            data = {"ticket": ticket_id, "device": device}
            record_refusal(conn, None, identity, refusal, data, now, [], what=str(action))
            return refusal

        outcome = await self._db.run(transaction)
        if isinstance(outcome, ConsoleError):
            raise outcome
        return outcome


def check_device_action(
    conn: Connection,
    ticket_id: int,
    device_id: str | None,
    identity: ApiIdentity,
    online: Callable[[str], bool],
    *,
    action: DeviceAction = DeviceAction.COMMAND,
) -> tuple[Any, str | None, ConsoleError | None]:
    """Whether ``identity`` may do ``action`` on a device through a ticket:
    (ticket, device, refusal).

    Run on the transaction's connection (``run_sync`` in a session). The ticket is
    (``id``, ``title``, ``status``, ``assignee``, ``device_id``), locked for the
    transaction, or None if there is none. ``device_id``: the device the request
    names (default: the ticket's).
    """
    ticket = conn.execute(_TICKET_FOR_ACTION, {"ticket": ticket_id}).one_or_none()
    device_id = device_id or (ticket.device_id if ticket is not None else None)
    refusal = _scope_refusal(identity, action, ticket_id)
    if refusal is not None:
        return ticket, device_id, refusal
    if ticket is None:
        return None, device_id, NotFound(f"no ticket {ticket_id}")
    if ticket.device_id is not None and device_id != ticket.device_id:
        return (
            ticket,
            device_id,
            Conflict(
                f"ticket #{ticket_id} is about device {ticket.device_id}: act on "
                f"{device_id} through a ticket of its own"
            ),
        )
    device = None if device_id is None else conn.execute(_DEVICE, {"device": device_id}).first()
    refusal = _who_refusal(conn, identity, ticket, device_id, device)
    if refusal is not None:
        return ticket, device_id, refusal
    if not is_open(ticket.status):
        return ticket, device_id, Conflict(f"ticket #{ticket_id} is {ticket.status}")
    if device_id is None:
        return ticket, None, Conflict(f"ticket #{ticket_id} has no device; name one")
    if action in _OFFLINE_OK:
        return ticket, device_id, _device_refusal(device_id, device, lambda _: True)
    return ticket, device_id, _device_refusal(device_id, device, online)


def check_device(
    conn: Connection,
    device_id: str,
    identity: ApiIdentity,
    online: Callable[[str], bool],
    *,
    scope: Scope = Scope.DEVICES_WRITE,
) -> ConsoleError | None:
    """Whether ``identity`` may act on a device without a ticket; the refusal, or None."""
    if identity.grant is not None or scope not in identity.scopes:
        return Forbidden(f"this API token lacks the {str(scope)!r} scope")
    device = conn.execute(_DEVICE, {"device": device_id}).first()
    if not _on_device(conn, identity, device_id, device, None):
        return Forbidden(_no_device_rights(identity, device_id))
    return _device_refusal(device_id, device, online)


def may_control(identity: ApiIdentity) -> bool:
    """Whether the caller may ask for control of a screen it views (a viewer link
    may not, unless it grants control)."""
    return identity.grant is None or identity.grant.capability == LinkCapability.CONTROL


def replay_refusal(identity: ApiIdentity, screen_session: str) -> ConsoleError | None:
    """Why ``identity`` may not play a recording back, or None: it needs
    ``tickets:read``, or a replay link of that recording."""
    grant = identity.grant
    if grant is not None:
        if grant.capability == LinkCapability.REPLAY and grant.screen_session == screen_session:
            return None
        return Forbidden("this viewer link does not replay that recording")
    if Scope.TICKETS_READ not in identity.scopes:
        return Forbidden(f"this API token lacks the {str(Scope.TICKETS_READ)!r} scope")
    return None


def _scope_refusal(
    identity: ApiIdentity, action: DeviceAction, ticket_id: int
) -> ConsoleError | None:
    grant = identity.grant
    if grant is not None:
        if action != DeviceAction.SCREEN or grant.capability == LinkCapability.REPLAY:
            return Forbidden(f"a viewer link may not open a {action}")
        if grant.ticket_id != ticket_id:
            return Forbidden(f"this viewer link is for ticket #{grant.ticket_id}")
        return None
    scope = _SCOPES[action]
    if scope not in identity.scopes:
        return Forbidden(f"this API token lacks the {str(scope)!r} scope")
    return None


def _who_refusal(
    conn: Connection, identity: ApiIdentity, ticket: Any, device_id: str | None, device: Any
) -> ConsoleError | None:
    """A technician's refusal, if they may not work this ticket or act on this device."""
    user = identity.username
    if user is None or identity.is_admin:
        return None
    group_rights = _group_rights(conn, user, device)
    if ticket.assignee != user and not group_rights:
        return Forbidden(f"{user} may not act on ticket #{ticket.id}: it is not assigned to them")
    if device_id is None or group_rights or ticket.device_id == device_id:
        return None  # nothing named yet, their ticket of this device, or their group's
    if not _on_device(conn, identity, device_id, device, False):
        return Forbidden(_no_device_rights(identity, device_id))
    return None


def _on_device(
    conn: Connection,
    identity: ApiIdentity,
    device_id: str,
    device: Any,
    group_rights: bool | None,
) -> bool:
    """Whether ``identity`` may act on the device at all (``group_rights``: known)."""
    user = identity.username
    if user is None or identity.is_admin:
        return True
    if group_rights is None:
        group_rights = _group_rights(conn, user, device)
    return group_rights or bool(
        conn.execute(_ASSIGNED_ON_DEVICE, {"device": device_id, "user": user}).scalar()
    )


def _group_rights(conn: Connection, user: str, device: Any) -> bool:
    if device is None or device.group_name is None:
        return False
    rows = conn.execute(_GROUP_RIGHTS, {"user": user, "device_group": device.group_name})
    return bool(rows.scalar())


def _no_device_rights(identity: ApiIdentity, device_id: str) -> str:
    return (
        f"{identity.username} may not act on device {device_id}: no open ticket of that "
        "device is assigned to them, and none of their groups has rights on its group"
    )


def _device_refusal(
    device_id: str, device: Any, online: Callable[[str], bool]
) -> ConsoleError | None:
    if device is None or device.revoked_at is not None:
        return NotFound(f"no device {device_id}")
    if not online(device_id):
        return Conflict(f"device {device_id} is not connected")
    return None


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


def record_action(
    conn: Connection,
    ticket: Any,
    device_id: str,
    identity: ApiIdentity,
    now: datetime.datetime,
    events: list[DomainEvent],
) -> None:
    """A technician acted on the ticket's device: the ticket changed, and has had its
    first response; a ticket that had no device now has this one (on its timeline)."""
    conn.execute(_RESPONDED, {"ticket": ticket.id, "now": now})
    if ticket.device_id is None:
        conn.execute(_ATTACH_DEVICE, {"ticket": ticket.id, "device": device_id})
        add_sync(
            conn,
            ticket.id,
            kinds.Change(device=kinds.TextChange(from_=None, to=device_id)),
            actor=identity.actor,
            at=now,
            events=events,
        )
