"""What each role may do: one table, read by the web pages (a button shows only when
its action is permitted) and enforced on the server (the web console's guards,
``deskside.console.web.sessions.permits``; the API's scope guards, ``guards.require``).

=============  ========  ==========  ========
permission     readonly  technician  admin
=============  ========  ==========  ========
tickets.view   yes       yes         yes
tickets.work   no        yes         yes
devices.view   yes       yes         yes
devices.act    no        yes         yes
audit.view     yes       yes         yes
admin          no        no          yes
=============  ========  ==========  ========

Which devices a technician may act on is decided apart, per device (``access.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from .identity import ADMIN_SCOPES, Scope
from .schemas import Role

__all__ = ["ROLE_PERMISSIONS", "ROLE_SCOPES", "Permission", "permitted", "scope_permitted"]


class Permission(enum.StrEnum):
    """Something a role may be allowed to do."""

    TICKETS_VIEW = "tickets.view"  # the queue, tickets, their timelines
    TICKETS_WORK = "tickets.work"  # file, assign, change status or classification, notes
    DEVICES_VIEW = "devices.view"  # devices, their snapshots and metrics
    DEVICES_ACT = "devices.act"  # commands, runbooks, terminal, screen, revoke
    AUDIT_VIEW = "audit.view"  # the audit log and its verification
    ADMIN = "admin"  # users, roles, groups, tokens, the second-factor policy


_READ: Final = frozenset({Permission.TICKETS_VIEW, Permission.DEVICES_VIEW, Permission.AUDIT_VIEW})
_WORK: Final = _READ | {Permission.TICKETS_WORK, Permission.DEVICES_ACT}

ROLE_PERMISSIONS: Final[Mapping[Role, frozenset[Permission]]] = {
    Role.READONLY: _READ,
    Role.TECHNICIAN: _WORK,
    Role.ADMIN: _WORK | {Permission.ADMIN},
}

# The API scopes a technician's token may use, by role: a read-only user's token
# reads, whatever scopes it was minted with.
ROLE_SCOPES: Final[Mapping[Role, frozenset[Scope]]] = {
    Role.READONLY: frozenset({Scope.TICKETS_READ, Scope.DEVICES_READ, Scope.AUDIT_READ}),
    # Admin scopes (webhooks:manage) are not a technician's, whatever a token says.
    Role.TECHNICIAN: frozenset(scope for scope in Scope if scope not in ADMIN_SCOPES),
    Role.ADMIN: frozenset(Scope),
}


def _role(role: str | None) -> Role | None:
    try:
        return Role(role) if role is not None else None
    except ValueError:
        return None


def permitted(role: str | None, permission: Permission) -> bool:
    """Whether ``role`` may do ``permission`` (an unknown role may do nothing)."""
    known = _role(role)
    return known is not None and permission in ROLE_PERMISSIONS[known]


def scope_permitted(role: str | None, scope: Scope) -> bool:
    """Whether a token acting for a user of ``role`` may use ``scope`` (None: a service
    token, whose scopes alone decide)."""
    if role is None:
        return True
    known = _role(role)
    return known is not None and scope in ROLE_SCOPES[known]
