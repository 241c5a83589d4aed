"""The console's store, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from deskside.console.auth.schemas import Role
from deskside.console.db import database_url as to_async_url
from deskside.console.db import migrate
from deskside.console.errors import (
    Conflict,
    EnrollmentRefused,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from deskside.console.schema import Base
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource, TicketStatus
from deskside.console.tickets.schemas import NewTicket, TicketChanges
from deskside.console.timeline.kinds import Change, Note, NumberChange
from deskside.protocol import crypto
from deskside.protocol import messages as m
from deskside.protocol.enrollment import device_id

HOUR = datetime.timedelta(hours=1)


def snapshot(host: str = "pc-1") -> m.Snapshot:
    return m.Snapshot(
        taken_at=time.time(), os=m.OsInfo(family=m.OsFamily.LINUX, name="Debian", hostname=host)
    )


async def enrolled(store: Store) -> str:
    key = crypto.public_key(crypto.generate_private_key())
    token = await store.devices.create_enrollment_token(
        ttl=HOUR, uses=1, group=None, created_by="test"
    )
    device = await store.devices.enroll(key, token.token)
    return device.id


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)  # a second run changes nothing
    engine = create_async_engine(to_async_url(database_url))
    async with engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
        )
    await engine.dispose()
    assert diff == []


# -- Enrollment ------------------------------------------------------------------------------


async def test_enrollment_token_is_single_use(store: Store) -> None:
    token = await store.devices.create_enrollment_token(
        ttl=HOUR, uses=1, group="sales", created_by="admin"
    )
    key = crypto.public_key(crypto.generate_private_key())
    device = await store.devices.enroll(key, token.token)
    assert device.id == device_id(key)
    assert device.group == "sales"
    assert (await store.devices.device_for_key(key)) == device
    other = crypto.public_key(crypto.generate_private_key())
    with pytest.raises(EnrollmentRefused, match="already used"):
        await store.devices.enroll(other, token.token)
    assert await store.devices.device_for_key(other) is None


async def test_enrolling_again_with_the_same_token_spends_nothing(store: Store) -> None:
    """An agent whose answer was lost tries again with its key and token: the same
    device, and the token's last use is not spent a second time."""
    token = await store.devices.create_enrollment_token(
        ttl=HOUR, uses=1, group=None, created_by="admin"
    )
    key = crypto.public_key(crypto.generate_private_key())
    first = await store.devices.enroll(key, token.token)
    again = await store.devices.enroll(key, token.token)
    assert again.id == first.id
    assert len(await store.devices.list_devices()) == 1
    other = crypto.public_key(crypto.generate_private_key())
    with pytest.raises(EnrollmentRefused, match="already used"):
        await store.devices.enroll(other, token.token)


async def test_unknown_and_expired_tokens_are_refused(store: Store) -> None:
    key = crypto.public_key(crypto.generate_private_key())
    with pytest.raises(EnrollmentRefused, match="unknown"):
        await store.devices.enroll(key, "A" * 43)
    token = await store.devices.create_enrollment_token(
        ttl=datetime.timedelta(minutes=1), uses=5, group=None, created_by="admin"
    )
    async with store.db.transaction() as session:  # age the token by hand
        from sqlalchemy import update

        from deskside.console.devices.models import EnrollmentToken

        await session.execute(
            update(EnrollmentToken).values(
                expires_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
            )
        )
    with pytest.raises(EnrollmentRefused, match="expired"):
        await store.devices.enroll(key, token.token)
    assert await store.devices.list_devices() == []


async def test_concurrent_enrollments_spend_a_token_once(store: Store) -> None:
    token = await store.devices.create_enrollment_token(
        ttl=HOUR, uses=3, group=None, created_by="admin"
    )
    keys = [crypto.public_key(crypto.generate_private_key()) for _ in range(6)]
    results = await asyncio.gather(
        *(store.devices.enroll(key, token.token) for key in keys), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 3
    assert all(isinstance(r, EnrollmentRefused) for r in results if isinstance(r, BaseException))
    assert len(await store.devices.list_devices()) == 3


async def test_revoked_device_is_refused(store: Store) -> None:
    key = crypto.public_key(crypto.generate_private_key())
    token = await store.devices.create_enrollment_token(
        ttl=HOUR, uses=2, group=None, created_by="admin"
    )
    device = await store.devices.enroll(key, token.token)
    revoked = await store.devices.revoke_device(device.id)
    assert revoked.revoked
    assert await store.devices.device_for_key(key) is None
    with pytest.raises(EnrollmentRefused, match="revoked"):
        await store.devices.enroll(key, token.token)
    with pytest.raises(NotFound):
        await store.devices.revoke_device("d-nonexistent")


async def test_token_arguments_are_checked(store: Store) -> None:
    with pytest.raises(InvalidRequest):
        await store.devices.create_enrollment_token(ttl=HOUR, uses=0, group=None, created_by="a")
    with pytest.raises(InvalidRequest):
        await store.devices.create_enrollment_token(
            ttl=datetime.timedelta(days=400), uses=1, group=None, created_by="a"
        )


# -- Devices and snapshots ---------------------------------------------------------------


async def test_hello_heartbeats_and_presence(store: Store) -> None:
    device = await enrolled(store)
    hello = m.Hello(
        agent_version="0.1.0",
        os=m.OsInfo(
            family=m.OsFamily.LINUX, name="Debian 12", release="6.1", arch="x86_64", hostname="pc-7"
        ),
    )
    await store.devices.record_hello(device, hello)
    view = await store.devices.get_device(device)
    assert (view.hostname, view.os_name, view.agent_version, view.online) == (
        "pc-7",
        "Debian 12",
        "0.1.0",
        True,
    )
    seen = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    await store.devices.mark_offline([device])
    await store.devices.record_heartbeats({device: (seen, {"cpu_percent": 12.5})})
    view = await store.devices.get_device(device)
    assert view.last_seen == seen
    assert view.metrics == {"cpu_percent": 12.5}
    assert not view.online  # a late heartbeat does not bring a device back online
    await store.devices.record_hello(device, hello)
    assert (await store.devices.get_device(device)).online
    await store.devices.mark_all_offline()
    assert not (await store.devices.get_device(device)).online


async def test_snapshot_history_is_bounded_but_attached_ones_stay(store: Store) -> None:
    device = await enrolled(store)
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title="t", description="d", device_id=device),
        actor="user:a",
        source=TicketSource.CLI,
    )
    first = await store.snapshots.add_snapshot(device, snapshot())
    await store.tickets.attach_snapshot(ticket.id, first.id, actor="user:a")
    for _ in range(25):
        await store.snapshots.add_snapshot(device, snapshot())
    infos = await store.snapshots.list_snapshots(device)
    assert len(infos) == 21  # 20 of history and the one attached to the ticket
    assert first.id in {info.id for info in infos}
    view = await store.snapshots.get_snapshot(first.id)
    assert view.snapshot["os"]["hostname"] == "pc-1"


# -- Tickets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("impact", "urgency", "priority", "response"),
    [(1, 1, 1, datetime.timedelta(minutes=15)), (2, 2, 3, 4 * HOUR), (3, 3, 5, 24 * HOUR)],
)
async def test_priority_and_sla_follow_the_matrix(
    store: Store, impact: int, urgency: int, priority: int, response: datetime.timedelta
) -> None:
    ticket, created = await store.tickets.create_ticket(
        NewTicket(title="VPN down", description="no VPN", impact=impact, urgency=urgency),
        actor="user:alice",
        source=TicketSource.CLI,
    )
    assert created
    assert ticket.priority == priority
    assert ticket.status is TicketStatus.NEW
    assert ticket.response_due - ticket.created_at == response


async def test_help_request_files_one_ticket_however_often_it_arrives(store: Store) -> None:
    device = await enrolled(store)
    new = NewTicket(title="Printer", description="Printer jams", device_id=device)
    first, created = await store.tickets.create_ticket(
        new,
        actor=f"agent:{device}",
        source=TicketSource.AGENT,
        help_request_id="req-1",
        snapshot=snapshot(),
    )
    assert created
    again, created_again = await store.tickets.create_ticket(
        new,
        actor=f"agent:{device}",
        source=TicketSource.AGENT,
        help_request_id="req-1",
        snapshot=snapshot(),
    )
    assert (again.id, created_again) == (first.id, False)
    racing = await asyncio.gather(
        *(
            store.tickets.create_ticket(
                new, actor="agent", source=TicketSource.AGENT, help_request_id="req-2"
            )
            for _ in range(5)
        )
    )
    assert len({ticket.id for ticket, _ in racing}) == 1
    assert sum(created for _, created in racing) == 1
    detail = await store.tickets.get_ticket(first.id)
    assert [event.kind for event in detail.timeline] == ["created", "diagnostics"]
    assert detail.timeline[1].snapshot_id is not None
    assert len(await store.tickets.list_tickets()) == 2


async def test_status_changes_follow_the_lifecycle(store: Store) -> None:
    await store.accounts.add_user("alice", "correct horse battery", role=Role.TECHNICIAN)
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title="t", description="d"), actor="user:alice", source=TicketSource.CLI
    )
    assigned = await store.tickets.update_ticket(
        ticket.id, TicketChanges(assignee="alice"), actor="user:bob"
    )
    assert (assigned.status, assigned.assignee) == (TicketStatus.ASSIGNED, "alice")
    assert assigned.first_response_at is not None
    with pytest.raises(Conflict, match="cannot become reopened"):
        await store.tickets.update_ticket(
            ticket.id, TicketChanges(status=TicketStatus.REOPENED), actor="x"
        )
    resolved = await store.tickets.update_ticket(
        ticket.id, TicketChanges(status=TicketStatus.RESOLVED), actor="user:alice"
    )
    assert resolved.resolved_at is not None
    assert not await store.tickets.ticket_is_open(ticket.id)
    reopened = await store.tickets.update_ticket(
        ticket.id, TicketChanges(status=TicketStatus.REOPENED), actor="agent:x"
    )
    assert (reopened.reopen_count, reopened.resolved_at) == (1, None)
    assert await store.tickets.ticket_is_open(ticket.id)
    with pytest.raises(NotFound, match="no technician"):
        await store.tickets.update_ticket(ticket.id, TicketChanges(assignee="mallory"), actor="x")
    kinds = [event.kind for event in (await store.tickets.get_ticket(ticket.id)).timeline]
    assert kinds == ["created", "assignment", "status", "status", "status"]


async def test_changing_impact_recomputes_priority_and_due_times(store: Store) -> None:
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title="t", description="d", impact=3, urgency=3),
        actor="u",
        source=TicketSource.CLI,
    )
    changed = await store.tickets.update_ticket(
        ticket.id, TicketChanges(impact=1, urgency=1), actor="user:a"
    )
    assert changed.priority == 1
    assert changed.resolution_due - changed.created_at == 4 * HOUR
    event = (await store.tickets.get_ticket(ticket.id)).timeline[-1]
    assert event.kind == "change"
    assert isinstance(event.data, Change)
    assert event.data.priority == NumberChange(from_=5, to=1)


async def test_notes_and_filters(store: Store) -> None:
    a, _ = await store.tickets.create_ticket(
        NewTicket(title="a", description="d"), actor="u", source=TicketSource.CLI
    )
    b, _ = await store.tickets.create_ticket(
        NewTicket(title="b", description="d", impact=1, urgency=1),
        actor="u",
        source=TicketSource.CLI,
    )
    note = await store.tickets.add_note(a.id, "called the user", actor="user:alice")
    assert note.data == Note(text="called the user")
    await store.tickets.update_ticket(
        b.id, TicketChanges(status=TicketStatus.RESOLVED), actor="user:a"
    )
    assert [t.id for t in await store.tickets.list_tickets(statuses=[TicketStatus.NEW])] == [a.id]
    assert [t.id for t in await store.tickets.list_tickets(priority=1)] == [b.id]
    assert [t.id for t in await store.tickets.list_tickets(limit=1)] == [b.id]
    with pytest.raises(NotFound):
        await store.tickets.get_ticket(9999)
    with pytest.raises(NotFound):
        await store.tickets.add_note(9999, "x", actor="u")
    with pytest.raises(NotFound, match="device"):
        await store.tickets.create_ticket(
            NewTicket(title="x", description="d", device_id="dnothere"),
            actor="u",
            source=TicketSource.CLI,
        )


# -- Accounts and API tokens -------------------------------------------------------------------


async def test_users_and_passwords(store: Store) -> None:
    await store.accounts.add_user("alice", "correct horse battery", role=Role.ADMIN)
    assert await store.accounts.check_password("alice", "correct horse battery") == "admin"
    assert await store.accounts.check_password("alice", "wrong password!!") is None
    assert await store.accounts.check_password("nobody", "correct horse battery") is None
    with pytest.raises(Conflict):
        await store.accounts.add_user("alice", "another long password", role=Role.TECHNICIAN)
    with pytest.raises(InvalidRequest, match="12 characters"):
        await store.accounts.add_user("bob", "short", role=Role.TECHNICIAN)
    with pytest.raises(InvalidRequest, match="user name"):
        await store.accounts.add_user("bad name!", "long enough password", role=Role.TECHNICIAN)


async def test_api_tokens_carry_scopes(store: Store) -> None:
    created = await store.accounts.create_api_token(
        "rt", ["tickets:read", "tickets:write"], ttl=None
    )
    assert created.token.startswith("dsk_")
    identity = await store.accounts.authenticate_api_token(created.token)
    assert identity.actor == "api:rt"
    assert identity.scopes == {"tickets:read", "tickets:write"}
    for bad in ("dsk_" + "x" * 43, "nope", ""):
        with pytest.raises(Unauthorized):
            await store.accounts.authenticate_api_token(bad)
    with pytest.raises(InvalidRequest, match="unknown: root"):
        await store.accounts.create_api_token("x", ["root"], ttl=None)
    short = await store.accounts.create_api_token(
        "short", ["devices:read"], ttl=datetime.timedelta(seconds=-1)
    )
    with pytest.raises(Unauthorized, match="expired"):
        await store.accounts.authenticate_api_token(short.token)


async def test_audit_chain_detects_tampering(store: Store) -> None:
    from sqlalchemy import delete, update

    from deskside.console.audit.models import AuditEntry

    await store.accounts.add_user("dave", "correct horse battery", role=Role.ADMIN)
    await store.accounts.create_api_token("a", ["tickets:read"], ttl=None)
    await store.accounts.create_api_token("b", ["tickets:read"], ttl=None)
    result = await store.audit.verify()
    assert (result.ok, result.entries, result.head_id) == (True, 3, 3)
    async with store.db.transaction() as session:
        await session.execute(
            update(AuditEntry).where(AuditEntry.id == 2).values(data={"id": 1, "name": "z"})
        )
    result = await store.audit.verify()
    assert (result.ok, result.first_bad_id, result.problem) == (False, 2, "entry 2 was changed")
    async with store.db.transaction() as session:
        await session.execute(delete(AuditEntry).where(AuditEntry.id == 2))
    result = await store.audit.verify()
    assert (result.ok, result.problem) == (False, "entry 2 is missing")


async def test_concurrent_audit_entries_chain_in_a_line(store: Store) -> None:
    await asyncio.gather(
        *(store.accounts.create_api_token(f"t{i}", ["tickets:read"], ttl=None) for i in range(8))
    )
    result = await store.audit.verify()
    assert (result.ok, result.entries) == (True, 8)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_reads_do_not_wait_for_a_writer_on_sqlite(store: Store, database_url: str) -> None:
    """Reading transactions take no write lock: a long write elsewhere does not stall them."""
    import sqlite3

    device = await enrolled(store)
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title="locked", description="d", device_id=device),
        actor="t",
        source=TicketSource.API,
    )
    created = await store.accounts.create_api_token("reader", ["tickets:read"], ttl=None)
    assert await store.accounts.authenticate_api_token(
        created.token
    )  # its last use is now recorded
    writer = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock, as a busy console would
        writer.execute("UPDATE tickets SET title = 'being changed'")
        read = asyncio.gather(
            store.tickets.ticket(ticket.id),
            store.tickets.get_ticket(ticket.id),
            store.devices.list_devices(),
            store.accounts.authenticate_api_token(created.token),
        )
        # Waiting for the lock would take busy_timeout (10 s), then fail.
        seen, detail, devices, identity = await asyncio.wait_for(read, 5.0)
        assert seen.title == detail.ticket.title == "locked"  # the committed state
        assert [d.id for d in devices] == [device]
        assert identity.actor == "api:reader"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
