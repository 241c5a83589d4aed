"""Technicians' groups and the device groups their members may act on.

A device's group is the ``group`` of the enrollment token it enrolled with. A
technician in a group with rights on that device group may act on the device
through any of its open tickets (``deskside.console.auth.access``).
"""

from __future__ import annotations

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from deskside.console.audit import chain as audit
from deskside.console.db import Database, utcnow
from deskside.console.errors import Conflict, InvalidRequest, NotFound

from .models import GroupDeviceRight, GroupMember, TechnicianGroup, User

__all__ = ["GroupRepository", "GroupView"]


class GroupView(msgspec.Struct, frozen=True, kw_only=True):
    """A technicians' group: its members and the device groups it has rights on."""

    name: str
    members: list[str]
    device_groups: list[str]


def _check_name(name: str, what: str) -> None:
    if not 1 <= len(name) <= 128 or not name.isprintable() or name != name.strip():
        raise InvalidRequest(f"a {what} is 1-128 printable characters")


class GroupRepository:
    """Technicians' groups, their members and their rights on device groups."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_group(self, name: str, *, actor: str) -> None:
        """A new, empty group; ``Conflict`` if the name is taken."""
        _check_name(name, "group name")
        try:
            async with self._db.transaction() as session:
                now = utcnow()
                session.add(TechnicianGroup(name=name, created_at=now))
                await session.flush()
                await audit.append(
                    session, actor=actor, action="group.added", data={"group": name}, at=now
                )
        except IntegrityError as exc:
            raise Conflict(f"group {name!r} exists already") from exc

    async def delete_group(self, name: str, *, actor: str) -> None:
        """Delete a group (its members keep their accounts)."""
        async with self._db.transaction() as session:
            group = await session.get(TechnicianGroup, name, with_for_update=True)
            if group is None:
                raise NotFound(f"no group {name!r}")
            await session.delete(group)
            await audit.append(
                session, actor=actor, action="group.deleted", data={"group": name}, at=utcnow()
            )

    async def change_group(
        self,
        name: str,
        *,
        actor: str,
        add_members: tuple[str, ...] = (),
        remove_members: tuple[str, ...] = (),
        add_device_groups: tuple[str, ...] = (),
        remove_device_groups: tuple[str, ...] = (),
    ) -> GroupView:
        """Add and remove members and device groups, in one transaction; the group."""
        for device_group in add_device_groups:
            _check_name(device_group, "device group")
        async with self._db.transaction() as session:
            if await session.get(TechnicianGroup, name, with_for_update=True) is None:
                raise NotFound(f"no group {name!r}")
            for username in add_members:
                if await session.scalar(select(User.id).where(User.username == username)) is None:
                    raise NotFound(f"no user {username!r}")
                if await session.get(GroupMember, (name, username)) is None:
                    session.add(GroupMember(group_name=name, username=username))
            for device_group in add_device_groups:
                if await session.get(GroupDeviceRight, (name, device_group)) is None:
                    session.add(GroupDeviceRight(group_name=name, device_group=device_group))
            if remove_members:
                await session.execute(
                    delete(GroupMember).where(
                        GroupMember.group_name == name, GroupMember.username.in_(remove_members)
                    )
                )
            if remove_device_groups:
                await session.execute(
                    delete(GroupDeviceRight).where(
                        GroupDeviceRight.group_name == name,
                        GroupDeviceRight.device_group.in_(remove_device_groups),
                    )
                )
            await session.flush()
            await audit.append(
                session,
                actor=actor,
                action="group.changed",
                data={
                    "group": name,
                    "members_added": list(add_members),
                    "members_removed": list(remove_members),
                    "device_groups_added": list(add_device_groups),
                    "device_groups_removed": list(remove_device_groups),
                },
                at=utcnow(),
            )
        return (await self.groups(name))[0]

    async def groups(self, name: str | None = None) -> list[GroupView]:
        """Every group (or the one named), by name."""
        async with self._db.reading() as session:
            query = select(TechnicianGroup.name).order_by(TechnicianGroup.name)
            if name is not None:
                query = query.where(TechnicianGroup.name == name)
            names = list((await session.execute(query)).scalars())
            if name is not None and not names:
                raise NotFound(f"no group {name!r}")
            members = (
                await session.execute(
                    select(GroupMember.group_name, GroupMember.username)
                    .where(GroupMember.group_name.in_(names))
                    .order_by(GroupMember.username)
                )
            ).all()
            rights = (
                await session.execute(
                    select(GroupDeviceRight.group_name, GroupDeviceRight.device_group)
                    .where(GroupDeviceRight.group_name.in_(names))
                    .order_by(GroupDeviceRight.device_group)
                )
            ).all()
        return [
            GroupView(
                name=n,
                members=[u for g, u in members if g == n],
                device_groups=[d for g, d in rights if g == n],
            )
            for n in names
        ]
