"""Runbooks administrators added, beside the built-in ones."""

from __future__ import annotations

import msgspec
from sqlalchemy import select

from deskside.console.audit import chain as audit
from deskside.console.commands.models import CustomRunbook
from deskside.console.db import Database, utcnow
from deskside.console.errors import InvalidRequest, NotFound
from deskside.protocol.errors import DesksideError

from . import Runbook, builtin_runbooks, parse_runbooks

__all__ = ["RunbookRepository"]


class RunbookRepository:
    """The runbooks in force: built-in ones, and added ones (which win on a name)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def runbooks(self) -> dict[str, Runbook]:
        """Every runbook: the built-in ones, and the added ones (which win on a name)."""
        found = builtin_runbooks()
        async with self._db.reading() as session:
            for row in (await session.execute(select(CustomRunbook))).scalars():
                found[row.name] = msgspec.json.decode(row.source, type=Runbook)
        return found

    async def get_runbook(self, name: str) -> Runbook:
        """One runbook; ``NotFound`` if there is none of that name."""
        runbook = (await self.runbooks()).get(name)
        if runbook is None:
            raise NotFound(f"no runbook {name!r}")
        return runbook

    async def add_runbooks(self, source: str, *, actor: str) -> list[str]:
        """Add (or replace) the runbooks of a TOML text; their names."""
        try:
            parsed = parse_runbooks(source)
        except DesksideError as exc:
            raise InvalidRequest(str(exc)) from exc
        if not parsed:
            raise InvalidRequest("the file defines no runbook")
        now = utcnow()
        async with self._db.transaction() as session:
            for name, runbook in parsed.items():
                one = msgspec.json.encode(runbook).decode()
                row = await session.get(CustomRunbook, name)
                if row is None:
                    session.add(
                        CustomRunbook(name=name, source=one, created_at=now, created_by=actor)
                    )
                else:
                    row.source, row.created_at, row.created_by = one, now, actor
                await audit.append(
                    session,
                    actor=actor,
                    action="runbook.added",
                    data={"runbook": name, "steps": [s.name for s in runbook.steps]},
                    at=now,
                )
        return sorted(parsed)

    async def remove_runbook(self, name: str, *, actor: str) -> None:
        """Remove an added runbook (built-in ones cannot be removed)."""
        async with self._db.transaction() as session:
            row = await session.get(CustomRunbook, name)
            if row is None:
                raise NotFound(f"no added runbook {name!r}")
            await session.delete(row)
            await audit.append(
                session, actor=actor, action="runbook.removed", data={"runbook": name}, at=utcnow()
            )
