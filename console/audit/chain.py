"""The console's audit log: security-relevant events, each chained to the one before.

An entry's hash is ``SHA-256(previous hash || canonical JSON of the entry)``, the
first entry's previous hash being 64 zeros. An entry is appended in the same
transaction as the action it records, so there is no action without its entry.
``verify`` walks the chain: an edited entry no longer matches its hash, a deleted
one leaves a gap in the ids and a ``prev_hash`` that matches nothing.

What a chain cannot show by itself is the loss of the newest entries; ``verify``
reports the head (last id and hash) so an operator can compare it with a copy
kept elsewhere (a log shipper, a printout).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from deskside.console.api import Count, Id

from .models import AuditEntry

__all__ = ["GENESIS", "AuditVerification", "append", "append_sync", "entry_hash", "verify"]

GENESIS: Final = "0" * 64


def entry_hash(
    prev_hash: str, at: datetime.datetime, actor: str, action: str, data: Mapping[str, Any]
) -> str:
    """The hash of an entry: SHA-256 over the previous hash and the entry's canonical JSON."""
    canonical = json.dumps(
        {
            "at": at.astimezone(datetime.UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "data": data,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical.encode()).hexdigest()


# Built once: every command appends two entries while a technician waits.
_HEAD: Final = select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
_INSERT: Final = insert(AuditEntry)


async def append(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    data: Mapping[str, Any],
    at: datetime.datetime,
) -> str:
    """Append an entry in ``session``'s transaction (serialized with other writers);
    its hash."""
    connection = await session.connection()
    return await connection.run_sync(
        lambda sync: append_sync(sync, actor=actor, action=action, data=data, at=at)
    )


def append_sync(
    connection: Connection,
    *,
    actor: str,
    action: str,
    data: Mapping[str, Any],
    at: datetime.datetime,
) -> str:
    """``append`` on the connection of a transaction run in one go (``Store._sync``).

    Two plain statements (the head's hash, then an INSERT), not the ORM's unit of
    work, which cost several times as much: every command appends two entries while
    a technician waits for it.
    """
    if connection.dialect.name == "postgresql":
        # One writer at a time: two entries must not chain to the same predecessor.
        connection.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
    prev = connection.execute(_HEAD).scalar_one_or_none() or GENESIS
    clean = json.loads(json.dumps(dict(data), default=str))  # what the JSON column gives back
    digest = entry_hash(prev, at, actor, action, clean)
    connection.execute(
        _INSERT,
        {
            "at": at,
            "actor": actor,
            "action": action,
            "data": clean,
            "prev_hash": prev,
            "hash": digest,
        },
    )
    return digest


class AuditVerification(msgspec.Struct, frozen=True, kw_only=True):
    """The result of checking the chain."""

    ok: bool
    entries: Count
    head_id: Id | None
    head_hash: str
    problem: str = ""
    first_bad_id: Id | None = None


def verify(entries: Iterable[AuditEntry]) -> AuditVerification:
    """Check a chain given oldest first."""
    count = 0
    prev = GENESIS
    expected_id: int | None = None
    last: AuditEntry | None = None
    for entry in entries:
        if expected_id is not None and entry.id != expected_id:
            return _bad(count, last, expected_id, f"entry {expected_id} is missing")
        if entry.prev_hash != prev:
            return _bad(count, last, entry.id, f"entry {entry.id} does not follow the one before")
        if entry_hash(prev, entry.at, entry.actor, entry.action, entry.data) != entry.hash:
            return _bad(count, last, entry.id, f"entry {entry.id} was changed")
        prev = entry.hash
        expected_id = entry.id + 1
        count += 1
        last = entry
    return AuditVerification(
        ok=True,
        entries=count,
        head_id=last.id if last is not None else None,
        head_hash=prev,
    )


def _bad(count: int, last: AuditEntry | None, bad_id: int, problem: str) -> AuditVerification:
    return AuditVerification(
        ok=False,
        entries=count,
        head_id=last.id if last is not None else None,
        head_hash=last.hash if last is not None else GENESIS,
        problem=problem,
        first_bad_id=bad_id,
    )
