"""The console's storage: every read and write of the database goes through ``Store``.

SQLite (embedded, the default) and PostgreSQL are both supported through
SQLAlchemy's asyncio layer: asyncpg, and for SQLite a driver that runs statements
on the event loop (``.sqlite``). The schema is created and upgraded by Alembic
(``deskside.console.store.migrate``), never by ``create_all``.

Most methods use the ORM in a session. The paths a technician waits on (every
API call's token, a command's request and result) are plain statements run in
one go (``Store._sync``): a session's bookkeeping cost more than SQLite's work.

Each public method is one transaction. Methods return the frozen views of
``deskside.console.schemas``, never ORM objects, so nothing outside this module
holds a session.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, Final, TypeVar

import argon2
import msgspec
from sqlalchemy import Connection, bindparam, delete, event, func, insert, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import greenlet_spawn

from deskside.console.errors import (
    Conflict,
    ConsoleError,
    EnrollmentRefused,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from deskside.console.policy import Policy
from deskside.console.runbooks import Runbook, builtin_runbooks, parse_runbooks
from deskside.console.schemas import (
    ApiTokenCreated,
    AuditView,
    CommandView,
    DeviceView,
    EnrollmentTokenCreated,
    EventView,
    NewCommand,
    NewTicket,
    OutputChunk,
    ShellView,
    SnapshotInfo,
    SnapshotView,
    TicketChanges,
    TicketDetail,
    TicketView,
)
from deskside.protocol import messages as m
from deskside.protocol.enrollment import device_id as device_id_for
from deskside.protocol.errors import DesksideError

from . import audit
from .models import (
    ApiToken,
    AuditEntry,
    Command,
    CommandOutput,
    CustomRunbook,
    Device,
    EnrollmentToken,
    Role,
    ScreenRecording,
    ShellSession,
    Snapshot,
    Ticket,
    TicketEvent,
    TicketStatus,
    User,
)
from .sqlite import Checkpointer, InlineConnection, InlineSQLite

__all__ = ["SCOPES", "TRANSITIONS", "ApiIdentity", "Store", "database_url", "utcnow"]

# What an API token may be allowed to do.
SCOPES: Final = frozenset(
    {"tickets:read", "tickets:write", "devices:read", "devices:write", "commands:run", "audit:read"}
)

# Output a command may leave on the console; more is streamed but not kept.
COMMAND_OUTPUT_CAP: Final = 16 << 20

# Snapshots kept per device, beyond those attached to tickets.
SNAPSHOT_HISTORY: Final = 20

_OPEN_STATES: Final = frozenset(
    {
        TicketStatus.NEW,
        TicketStatus.ASSIGNED,
        TicketStatus.IN_PROGRESS,
        TicketStatus.WAITING_ON_USER,
        TicketStatus.REOPENED,
    }
)

# Allowed status changes: from -> to.
TRANSITIONS: Final[Mapping[TicketStatus, frozenset[TicketStatus]]] = {
    TicketStatus.NEW: frozenset(
        {
            TicketStatus.ASSIGNED,
            TicketStatus.IN_PROGRESS,
            TicketStatus.WAITING_ON_USER,
            TicketStatus.RESOLVED,
            TicketStatus.CLOSED,
        }
    ),
    TicketStatus.ASSIGNED: frozenset(
        {TicketStatus.IN_PROGRESS, TicketStatus.WAITING_ON_USER, TicketStatus.RESOLVED}
    ),
    TicketStatus.IN_PROGRESS: frozenset(
        {TicketStatus.ASSIGNED, TicketStatus.WAITING_ON_USER, TicketStatus.RESOLVED}
    ),
    TicketStatus.WAITING_ON_USER: frozenset(
        {TicketStatus.IN_PROGRESS, TicketStatus.ASSIGNED, TicketStatus.RESOLVED}
    ),
    TicketStatus.RESOLVED: frozenset({TicketStatus.CLOSED, TicketStatus.REOPENED}),
    TicketStatus.CLOSED: frozenset({TicketStatus.REOPENED}),
    TicketStatus.REOPENED: frozenset(
        {
            TicketStatus.ASSIGNED,
            TicketStatus.IN_PROGRESS,
            TicketStatus.WAITING_ON_USER,
            TicketStatus.RESOLVED,
        }
    ),
}

_password_hasher = argon2.PasswordHasher()
_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(m.Snapshot)


def utcnow() -> datetime.datetime:
    """The current time, in UTC, timezone-aware."""
    return datetime.datetime.now(datetime.UTC)


def _hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _is_open(status: str) -> bool:
    return status in _OPEN_STATES


def database_url(url: str) -> URL:
    """The SQLAlchemy URL with the async driver: sqlite -> aiosqlite, postgresql -> asyncpg."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InvalidRequest(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    raise InvalidRequest(f"unsupported database {backend!r}: use sqlite or postgresql")


class ApiIdentity(msgspec.Struct, frozen=True):
    """Who is calling the API, and what they may do."""

    actor: str
    scopes: frozenset[str]
    # The technician the token acts for, and their role; None for a service token.
    username: str | None = None
    role: str | None = None


def _set_sqlite_pragmas(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # The driver's own BEGIN is off: _begin_immediate emits the one SQLite needs.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    # SQLite ignores SELECT ... FOR UPDATE; taking the write lock when the
    # transaction begins makes read-then-write (spending a token, changing a
    # ticket's status) as safe as row locks are on PostgreSQL. Transactions that
    # only read (Store._reading) take no lock: in WAL mode they see a snapshot and
    # neither wait for writers nor make them wait.
    options = connection.get_execution_options()
    driver = connection.connection.driver_connection
    if isinstance(driver, InlineConnection):
        driver.threaded = bool(options.get(_BULK))  # see deskside.console.store.sqlite
    if options.get(_READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


_T = TypeVar("_T")

# The execution option that marks a read-only transaction (see _begin_immediate).
_READ_ONLY: Final = "deskside_read_only"
# The execution option of a transaction that may read a lot (run off the event loop).
_BULK: Final = "deskside_bulk"


class Store:
    """Async access to the console's database."""

    def __init__(self, engine: AsyncEngine, policy: Policy | None = None) -> None:
        self.engine = engine
        # Priority matrix and SLA targets for new and changed tickets.
        self.policy = policy or Policy()
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._checkpointer: Checkpointer | None = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._checkpointer = Checkpointer(engine.url.database)

    @classmethod
    def connect(cls, url: str, policy: Policy | None = None) -> Store:
        """A store on the database at ``url`` (already migrated; see ``migrate``)."""
        target = database_url(url)
        if target.get_backend_name() == "sqlite":
            # An embedded file, run on the event loop (see .sqlite): nothing to ping,
            # and every transaction ends in a commit or a rollback already.
            engine = create_async_engine(target, pool_reset_on_return=None, module=InlineSQLite())
        else:
            engine = create_async_engine(target, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
            event.listen(engine.sync_engine, "begin", _begin_immediate)
        return cls(engine, policy)

    async def close(self) -> None:
        """Close every database connection."""
        await self.engine.dispose()
        if self._checkpointer is not None:
            await self._checkpointer.close()

    @asynccontextmanager
    async def _transaction(self, *, bulk: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction that may write. ``bulk``: it writes many rows or large values,
        so on SQLite it runs in a worker thread."""
        async with self._session() as session, session.begin():
            if bulk:
                await session.connection(execution_options={_BULK: True})
            yield session
        if self._checkpointer is not None:
            self._checkpointer.written()

    @asynccontextmanager
    async def _reading(self, *, bulk: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction that only reads: on SQLite it does not take the write lock.
        ``bulk``: it may read a lot, so on SQLite it runs in a worker thread."""
        async with self._session() as session, session.begin():
            await session.connection(execution_options={_READ_ONLY: True, _BULK: bulk})
            yield session

    async def _sync(
        self, transaction: Callable[[Connection], _T], *, read_only: bool = False
    ) -> _T:
        """Run ``transaction`` (plain statements on a connection) as one transaction,
        in one go: for the paths a technician waits on (a command's request and
        result, every API call's token). An ORM session costs a greenlet and a
        round of bookkeeping per statement; this costs them once."""

        def run() -> _T:
            with self.engine.sync_engine.connect() as connection:
                if read_only:
                    connection.execution_options(**{_READ_ONLY: True})
                with connection.begin():
                    return transaction(connection)

        result: _T = await greenlet_spawn(run)
        if not read_only and self._checkpointer is not None:
            self._checkpointer.written()
        return result

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        if self._checkpointer is None:
            async with self._sessions() as session:  # closed in a task of its own
                yield session
            return
        # On SQLite, closing only gives the connection back to the pool, without a
        # statement (pool_reset_on_return=None), so it cannot be interrupted: it
        # needs no task of its own to finish in (which costs two turns of the loop).
        session = self._sessions()
        try:
            yield session
        finally:
            await session.close()

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        async with self._transaction() as session:
            await session.execute(select(1))

    # -- Enrollment and devices -----------------------------------------------------------

    async def create_enrollment_token(
        self,
        *,
        ttl: datetime.timedelta,
        uses: int,
        group: str | None,
        created_by: str,
    ) -> EnrollmentTokenCreated:
        """A new enrollment token, valid ``uses`` times until ``ttl`` from now."""
        if not 1 <= uses <= 100_000:
            raise InvalidRequest("uses must be between 1 and 100000")
        if not datetime.timedelta(minutes=1) <= ttl <= datetime.timedelta(days=365):
            raise InvalidRequest("ttl must be between 1 minute and 365 days")
        token = secrets.token_urlsafe(32)
        now = utcnow()
        row = EnrollmentToken(
            token_hash=_hash_secret(token),
            created_at=now,
            expires_at=now + ttl,
            uses_left=uses,
            uses=0,
            group_name=group,
            created_by=created_by,
        )
        async with self._transaction() as session:
            session.add(row)
            await session.flush()
            return EnrollmentTokenCreated(
                id=row.id, token=token, expires_at=row.expires_at, uses=uses, group=group
            )

    async def enroll(self, public_key: bytes, token: str) -> DeviceView:
        """Register ``public_key`` as a device, spending one use of ``token``.

        A key enrolled before is enrolled again (same device), unless revoked.
        Raises ``EnrollmentRefused`` with a reason the agent is shown.
        """
        now = utcnow()
        async with self._transaction() as session:
            row = (
                await session.execute(
                    select(EnrollmentToken)
                    .where(EnrollmentToken.token_hash == _hash_secret(token))
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if row is None or not hmac.compare_digest(row.token_hash, _hash_secret(token)):
                raise EnrollmentRefused("unknown enrollment token")
            if row.expires_at <= now:
                raise EnrollmentRefused("enrollment token expired")
            if row.uses_left <= 0:
                raise EnrollmentRefused("enrollment token already used")
            device = (
                await session.execute(select(Device).where(Device.public_key == public_key))
            ).scalar_one_or_none()
            if device is not None and device.revoked_at is not None:
                raise EnrollmentRefused("this device was revoked")
            row.uses_left -= 1
            row.uses += 1
            if device is None:
                device = Device(
                    id=device_id_for(public_key),
                    public_key=public_key,
                    group_name=row.group_name,
                    enrolled_at=now,
                    enrollment_token_id=row.id,
                    online=False,
                )
                session.add(device)
                await session.flush()
            await audit.append(
                session,
                actor=f"agent:{device.id}",
                action="device.enrolled",
                data={"device": device.id, "token": row.id, "group": row.group_name},
                at=now,
            )
            return _device_view(device)

    async def device_for_key(self, public_key: bytes) -> DeviceView | None:
        """The device with this key, if it is enrolled and not revoked."""
        async with self._transaction() as session:
            device = (
                await session.execute(select(Device).where(Device.public_key == public_key))
            ).scalar_one_or_none()
            if device is None or device.revoked_at is not None:
                return None
            return _device_view(device)

    async def record_hello(self, device_id: str, hello: m.Hello) -> None:
        """Update what the device says it is; mark it online."""
        async with self._transaction() as session:
            device = await _get(session, Device, device_id)
            device.hostname = hello.os.hostname[:256]
            device.os_family = str(hello.os.family)
            device.os_name = hello.os.name[:256]
            device.os_release = hello.os.release[:256]
            device.arch = hello.os.arch[:64]
            device.agent_version = hello.agent_version[:64]
            device.online = True
            device.last_seen = utcnow()

    async def set_online(self, device_id: str, online: bool) -> None:
        """Mark a device connected or not."""
        async with self._transaction() as session:
            await session.execute(
                update(Device)
                .where(Device.id == device_id)
                .values(online=online, last_seen=utcnow())
            )

    async def mark_all_offline(self) -> None:
        """At start-up: nothing is connected yet, whatever an earlier run left."""
        async with self._transaction(bulk=True) as session:
            await session.execute(update(Device).values(online=False))

    async def record_heartbeats(
        self, beats: Mapping[str, tuple[datetime.datetime, dict[str, Any] | None]]
    ) -> None:
        """Store many devices' last-seen times and metrics in one statement.

        Presence (``online``) is not touched: connects and disconnects set it, and a
        heartbeat written late must not bring a device that left back online.
        """
        if not beats:
            return
        rows = [
            {"id": device_id, "last_seen": seen, "metrics": metrics}
            for device_id, (seen, metrics) in beats.items()
        ]
        async with self._transaction(bulk=True) as session:
            # An ORM bulk UPDATE by primary key: one executemany, not a query per device.
            await session.execute(update(Device), rows)

    async def revoke_device(self, device_id: str, *, actor: str = "cli") -> DeviceView:
        """Revoke a device: its key is refused from now on."""
        async with self._transaction() as session:
            device = await _get(session, Device, device_id)
            if device.revoked_at is None:
                device.revoked_at = utcnow()
                device.online = False
                await audit.append(
                    session,
                    actor=actor,
                    action="device.revoked",
                    data={"device": device_id},
                    at=device.revoked_at,
                )
            return _device_view(device)

    async def revoked_since(self, since: datetime.datetime) -> set[str]:
        """The devices revoked at or after ``since``."""
        async with self._transaction() as session:
            rows = await session.execute(select(Device.id).where(Device.revoked_at >= since))
            return set(rows.scalars())

    async def list_devices(self) -> list[DeviceView]:
        """Every enrolled device, by host name."""
        async with self._reading() as session:
            rows = (
                await session.execute(select(Device).order_by(Device.hostname, Device.id))
            ).scalars()
            return [_device_view(device) for device in rows]

    async def get_device(self, device_id: str) -> DeviceView:
        """One device; ``NotFound`` if there is none with that id."""
        async with self._reading() as session:
            return _device_view(await _get(session, Device, device_id))

    # -- Snapshots -----------------------------------------------------------------------

    async def add_snapshot(self, device_id: str, snapshot: m.Snapshot) -> SnapshotInfo:
        """Keep a snapshot; prune the device's unpinned history to its last ones."""
        now = utcnow()
        row = Snapshot(
            device_id=device_id,
            taken_at=datetime.datetime.fromtimestamp(snapshot.taken_at, datetime.UTC),
            received_at=now,
            schema=snapshot.schema,
            data=_snapshot_encoder.encode(snapshot),
            pinned=False,
        )
        async with self._transaction() as session:
            await _get(session, Device, device_id)
            session.add(row)
            await session.flush()
            keep = (
                select(Snapshot.id)
                .where(Snapshot.device_id == device_id, Snapshot.pinned.is_(False))
                .order_by(Snapshot.id.desc())
                .limit(SNAPSHOT_HISTORY)
            )
            await session.execute(
                delete(Snapshot).where(
                    Snapshot.device_id == device_id,
                    Snapshot.pinned.is_(False),
                    Snapshot.id.not_in(keep.scalar_subquery()),
                )
            )
            return _snapshot_info(row)

    async def list_snapshots(self, device_id: str) -> list[SnapshotInfo]:
        """A device's snapshots, newest first."""
        async with self._reading() as session:
            await _get(session, Device, device_id)
            rows = (
                await session.execute(
                    select(Snapshot)
                    .where(Snapshot.device_id == device_id)
                    .order_by(Snapshot.id.desc())
                )
            ).scalars()
            return [_snapshot_info(row) for row in rows]

    async def get_snapshot(self, snapshot_id: int) -> SnapshotView:
        """One snapshot with its content."""
        async with self._reading() as session:
            row = await _get(session, Snapshot, snapshot_id)
            return _snapshot_view(row)

    async def latest_snapshot(self, device_id: str) -> SnapshotInfo | None:
        """The device's newest snapshot, if it has one."""
        async with self._reading() as session:
            row = (
                await session.execute(
                    select(Snapshot)
                    .where(Snapshot.device_id == device_id)
                    .order_by(Snapshot.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            return None if row is None else _snapshot_info(row)

    # -- Users and API tokens ---------------------------------------------------------------

    async def add_user(
        self, username: str, password: str, *, role: Role, display_name: str = ""
    ) -> None:
        """Create a technician account; ``Conflict`` if the name is taken."""
        if (
            not 1 <= len(username) <= 64
            or not username.replace("-", "").replace("_", "").replace(".", "").isalnum()
        ):
            raise InvalidRequest("a user name is 1-64 letters, digits, '.', '-' or '_'")
        if len(password) < 12:
            raise InvalidRequest("a password has at least 12 characters")
        password_hash = await asyncio.to_thread(_password_hasher.hash, password)
        try:
            async with self._transaction() as session:
                now = utcnow()
                session.add(
                    User(
                        username=username,
                        display_name=display_name,
                        password_hash=password_hash,
                        role=str(role),
                        created_at=now,
                        disabled=False,
                    )
                )
                await session.flush()
                await audit.append(
                    session,
                    actor="cli",
                    action="user.added",
                    data={"user": username, "role": str(role)},
                    at=now,
                )
        except IntegrityError as exc:
            raise Conflict(f"user {username!r} exists already") from exc

    async def check_password(self, username: str, password: str) -> str | None:
        """The user's role if ``password`` is theirs and the account is active."""
        async with self._transaction() as session:
            user = (
                await session.execute(select(User).where(User.username == username))
            ).scalar_one_or_none()
        stored = user.password_hash if user is not None else _DUMMY_HASH
        try:
            await asyncio.to_thread(_password_hasher.verify, stored, password)
        except argon2.exceptions.VerificationError:
            return None
        if user is None or user.disabled:
            return None
        return user.role

    async def user_exists(self, username: str) -> bool:
        """Whether an account of this name exists (enabled or not)."""
        async with self._transaction() as session:
            count = await session.scalar(
                select(func.count()).select_from(User).where(User.username == username)
            )
            return bool(count)

    async def create_api_token(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        ttl: datetime.timedelta | None,
        username: str | None = None,
        actor: str = "cli",
    ) -> ApiTokenCreated:
        """A new API token with these scopes (see ``SCOPES``), acting for ``username``."""
        wanted = sorted(set(scopes))
        unknown = set(wanted) - SCOPES
        if not wanted or unknown:
            raise InvalidRequest(
                f"scopes must be some of {', '.join(sorted(SCOPES))}"
                + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
            )
        if not 1 <= len(name) <= 128:
            raise InvalidRequest("a token name is 1-128 characters")
        token = "dsk_" + secrets.token_urlsafe(32)
        now = utcnow()
        row = ApiToken(
            name=name,
            token_hash=_hash_secret(token),
            scopes=wanted,
            created_at=now,
            expires_at=None if ttl is None else now + ttl,
            username=username,
        )
        async with self._transaction() as session:
            if username is not None and not await session.scalar(
                select(func.count()).select_from(User).where(User.username == username)
            ):
                raise InvalidRequest(f"no technician named {username!r}")
            session.add(row)
            await session.flush()
            await audit.append(
                session,
                actor=actor,
                action="apitoken.created",
                data={"id": row.id, "name": name, "scopes": wanted, "user": username},
                at=now,
            )
            return ApiTokenCreated(
                id=row.id, name=name, token=token, scopes=wanted, expires_at=row.expires_at
            )

    async def authenticate_api_token(self, token: str) -> ApiIdentity:
        """Who holds this API token; ``Unauthorized`` if it is unknown, expired or revoked."""
        if not token.startswith("dsk_") or len(token) > 128:
            raise Unauthorized("invalid API token")
        digest = _hash_secret(token)
        now = utcnow()
        # One plain statement, built once: every API call comes through here.
        row = await self._sync(
            lambda c: c.execute(_API_TOKEN, {"digest": digest}).one_or_none(), read_only=True
        )
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise Unauthorized("invalid API token")
        if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            raise Unauthorized("API token expired or revoked")
        identity = ApiIdentity(actor=f"api:{row.name}", scopes=frozenset(row.scopes))
        if row.username is not None:
            if row.user is None or row.disabled:
                raise Unauthorized("the technician of this API token is disabled")
            identity = ApiIdentity(
                actor=f"user:{row.user}",
                scopes=frozenset(row.scopes),
                username=row.user,
                role=row.role,
            )
        stale = row.last_used_at is None or now - row.last_used_at > datetime.timedelta(minutes=1)
        if stale:  # written at most once a minute, so most calls only read
            async with self._transaction() as session:
                await session.execute(
                    update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
                )
        return identity

    async def revoke_api_token(self, token_id: int) -> None:
        """Revoke an API token at once."""
        async with self._transaction() as session:
            row = await session.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"no API token {token_id}")
            row.revoked_at = row.revoked_at or utcnow()

    # -- Tickets -------------------------------------------------------------------------

    async def create_ticket(
        self,
        new: NewTicket,
        *,
        actor: str,
        source: str,
        help_request_id: str | None = None,
        snapshot: m.Snapshot | None = None,
    ) -> tuple[TicketView, bool]:
        """Open a ticket (and attach ``snapshot``); ``(ticket, created)``.

        With ``help_request_id``, a request seen before returns its ticket and
        ``created`` is False: an agent re-sending after a reconnect files one ticket.
        """
        if help_request_id is not None:
            existing = await self._ticket_for_request(help_request_id)
            if existing is not None:
                return existing, False
        now = utcnow()
        priority = self.policy.priority(new.impact, new.urgency)
        response_due, resolution_due = self.policy.due(priority, now)
        snapshot_row = None
        try:
            async with self._transaction() as session:
                if new.device_id is not None:
                    await _get(session, Device, new.device_id)
                ticket = Ticket(
                    title=new.title,
                    description=new.description,
                    requester=new.requester,
                    device_id=new.device_id,
                    category=new.category,
                    impact=new.impact,
                    urgency=new.urgency,
                    priority=priority,
                    status=str(TicketStatus.NEW),
                    assignee=None,
                    group_name=new.group,
                    source=source,
                    help_request_id=help_request_id,
                    created_at=now,
                    updated_at=now,
                    response_due=response_due,
                    resolution_due=resolution_due,
                    reopen_count=0,
                )
                session.add(ticket)
                await session.flush()
                session.add(
                    TicketEvent(
                        ticket_id=ticket.id,
                        at=now,
                        kind="created",
                        actor=actor,
                        data={
                            "title": new.title,
                            "source": source,
                            "priority": priority,
                            "impact": new.impact,
                            "urgency": new.urgency,
                        },
                    )
                )
                if snapshot is not None and new.device_id is not None:
                    snapshot_row = Snapshot(
                        device_id=new.device_id,
                        taken_at=datetime.datetime.fromtimestamp(snapshot.taken_at, datetime.UTC),
                        received_at=now,
                        schema=snapshot.schema,
                        data=_snapshot_encoder.encode(snapshot),
                        pinned=True,
                    )
                    session.add(snapshot_row)
                    await session.flush()
                    session.add(_diagnostics_event(ticket.id, now, actor, snapshot_row))
                return _ticket_view(ticket), True
        except IntegrityError:
            if help_request_id is None:
                raise
            # The same request arrived twice at once; the other one won.
            existing = await self._ticket_for_request(help_request_id)
            if existing is None:
                raise
            return existing, False

    async def _ticket_for_request(self, help_request_id: str) -> TicketView | None:
        async with self._transaction() as session:
            row = (
                await session.execute(
                    select(Ticket).where(Ticket.help_request_id == help_request_id)
                )
            ).scalar_one_or_none()
            return None if row is None else _ticket_view(row)

    async def list_tickets(
        self,
        *,
        statuses: Sequence[TicketStatus] = (),
        device_id: str | None = None,
        assignee: str | None = None,
        priority: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TicketView]:
        """Tickets matching every filter given, newest first."""
        query = select(Ticket).order_by(Ticket.id.desc()).limit(limit).offset(offset)
        if statuses:
            query = query.where(Ticket.status.in_([str(s) for s in statuses]))
        if device_id is not None:
            query = query.where(Ticket.device_id == device_id)
        if assignee is not None:
            query = query.where(Ticket.assignee == assignee)
        if priority is not None:
            query = query.where(Ticket.priority == priority)
        async with self._reading() as session:
            return [_ticket_view(row) for row in (await session.execute(query)).scalars()]

    async def ticket(self, ticket_id: int) -> TicketView:
        """A ticket without its timeline; ``NotFound`` if unknown."""
        async with self._reading() as session:
            return _ticket_view(await _get(session, Ticket, ticket_id))

    async def get_ticket(self, ticket_id: int) -> TicketDetail:
        """A ticket and its whole timeline."""
        async with self._reading() as session:
            ticket = await _get(session, Ticket, ticket_id)
            events = (
                await session.execute(
                    select(TicketEvent)
                    .where(TicketEvent.ticket_id == ticket_id)
                    .order_by(TicketEvent.id)
                )
            ).scalars()
            return TicketDetail(
                ticket=_ticket_view(ticket), timeline=[_event_view(e) for e in events]
            )

    async def update_ticket(
        self, ticket_id: int, changes: TicketChanges, *, actor: str
    ) -> TicketView:
        """Change a ticket's fields; each change is recorded on its timeline."""
        now = utcnow()
        async with self._transaction() as session:
            ticket = await _get(session, Ticket, ticket_id, lock=True)
            events: list[tuple[str, dict[str, object]]] = []
            if changes.status is not None and changes.status != ticket.status:
                current = TicketStatus(ticket.status)
                if changes.status not in TRANSITIONS[current]:
                    raise Conflict(f"a {current} ticket cannot become {changes.status}")
                events.append(("status", {"from": ticket.status, "to": str(changes.status)}))
                ticket.status = str(changes.status)
                if changes.status == TicketStatus.RESOLVED:
                    ticket.resolved_at = now
                elif changes.status == TicketStatus.CLOSED:
                    ticket.closed_at = now
                    ticket.resolved_at = ticket.resolved_at or now
                elif changes.status == TicketStatus.REOPENED:
                    ticket.reopen_count += 1
                    ticket.resolved_at = ticket.closed_at = None
                if changes.status != TicketStatus.REOPENED and ticket.first_response_at is None:
                    ticket.first_response_at = now
            if changes.assignee is not None and changes.assignee != (ticket.assignee or ""):
                assignee = changes.assignee or None
                if assignee is not None and not await session.scalar(
                    select(func.count()).select_from(User).where(User.username == assignee)
                ):
                    raise InvalidRequest(f"no technician named {assignee!r}")
                events.append(("assignment", {"from": ticket.assignee, "to": assignee}))
                ticket.assignee = assignee
                if assignee is not None and ticket.status in (
                    TicketStatus.NEW,
                    TicketStatus.REOPENED,
                ):
                    events.append(("status", {"from": ticket.status, "to": "assigned"}))
                    ticket.status = str(TicketStatus.ASSIGNED)
                    ticket.first_response_at = ticket.first_response_at or now
            field_changes: dict[str, object] = {}
            for name, column in (
                ("title", "title"),
                ("group", "group_name"),
                ("category", "category"),
            ):
                value = getattr(changes, name)
                if value is not None and value != getattr(ticket, column):
                    field_changes[name] = {"from": getattr(ticket, column), "to": value}
                    setattr(ticket, column, value)
            impact = changes.impact if changes.impact is not None else ticket.impact
            urgency = changes.urgency if changes.urgency is not None else ticket.urgency
            if (impact, urgency) != (ticket.impact, ticket.urgency):
                priority = self.policy.priority(impact, urgency)
                field_changes["priority"] = {"from": ticket.priority, "to": priority}
                field_changes["impact"] = {"from": ticket.impact, "to": impact}
                field_changes["urgency"] = {"from": ticket.urgency, "to": urgency}
                ticket.impact, ticket.urgency, ticket.priority = impact, urgency, priority
                ticket.response_due, ticket.resolution_due = self.policy.due(
                    priority, ticket.created_at
                )
            if field_changes:
                events.append(("change", field_changes))
            if not events:
                return _ticket_view(ticket)
            ticket.updated_at = now
            for kind, data in events:
                session.add(
                    TicketEvent(ticket_id=ticket.id, at=now, kind=kind, actor=actor, data=data)
                )
            return _ticket_view(ticket)

    async def add_note(self, ticket_id: int, text: str, *, actor: str) -> EventView:
        """Add a note to a ticket's timeline."""
        if not 1 <= len(text) <= 65536:
            raise InvalidRequest("a note is 1-65536 characters")
        now = utcnow()
        async with self._transaction() as session:
            ticket = await _get(session, Ticket, ticket_id, lock=True)
            ticket.updated_at = now
            if ticket.first_response_at is None and actor.startswith(("user:", "api:")):
                ticket.first_response_at = now
            entry = TicketEvent(
                ticket_id=ticket_id, at=now, kind="note", actor=actor, data={"text": text}
            )
            session.add(entry)
            await session.flush()
            return _event_view(entry)

    async def attach_snapshot(self, ticket_id: int, snapshot_id: int, *, actor: str) -> EventView:
        """Attach a device's snapshot to a ticket; it is then kept for good."""
        now = utcnow()
        async with self._transaction() as session:
            ticket = await _get(session, Ticket, ticket_id, lock=True)
            snapshot = await _get(session, Snapshot, snapshot_id)
            if ticket.device_id != snapshot.device_id:
                raise InvalidRequest("that snapshot is of another device than the ticket's")
            snapshot.pinned = True
            ticket.updated_at = now
            entry = _diagnostics_event(ticket_id, now, actor, snapshot)
            session.add(entry)
            await session.flush()
            return _event_view(entry)

    async def ticket_is_open(self, ticket_id: int) -> bool:
        """Whether the ticket exists and is not resolved or closed."""
        async with self._reading() as session:
            return _is_open((await _get(session, Ticket, ticket_id)).status)

    # -- Commands ---------------------------------------------------------------------------

    @staticmethod
    def _check_device_action(
        conn: Connection,
        ticket_id: int,
        device_id: str | None,
        identity: ApiIdentity,
        online: Callable[[str], bool],
    ) -> tuple[Any, str | None, ConsoleError | None]:
        """Whether ``identity`` may act on the ticket's device: (ticket, device, refusal).

        Needs the ``commands:run`` scope; a technician must be an admin or the
        ticket's assignee; the ticket must be open, the device enrolled, unrevoked
        and online. Run on the transaction's connection (``run_sync`` in a session).
        The ticket is (``id``, ``title``, ``status``, ``assignee``,
        ``device_id``), locked for the transaction.
        """
        ticket = conn.execute(_TICKET_FOR_ACTION, {"ticket": ticket_id}).one_or_none()
        device_id = device_id or (ticket.device_id if ticket is not None else None)
        if "commands:run" not in identity.scopes:
            return ticket, device_id, Forbidden("this API token lacks the 'commands:run' scope")
        if ticket is None:
            return None, device_id, NotFound(f"no ticket {ticket_id}")
        if (
            identity.username is not None
            and identity.role != Role.ADMIN
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
        if not _is_open(ticket.status):
            return ticket, device_id, Conflict(f"ticket #{ticket_id} is {ticket.status}")
        if device_id is None:
            return ticket, None, Conflict(f"ticket #{ticket_id} has no device; name one")
        revoked = conn.execute(_DEVICE_REVOKED, {"device": device_id}).one_or_none()
        if revoked is None or revoked[0] is not None:
            return ticket, device_id, NotFound(f"no device {device_id}")
        if not online(device_id):
            return ticket, device_id, Conflict(f"device {device_id} is not connected")
        return ticket, device_id, None

    @staticmethod
    def _record_refusal(
        conn: Connection,
        ticket: Any,
        identity: ApiIdentity,
        refusal: ConsoleError,
        data: dict[str, Any],
        now: datetime.datetime,
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
            _add_event(
                conn,
                ticket.id,
                f"{what}_refused",
                actor=identity.actor,
                data={**{k: v for k, v in data.items() if k in shown}, "reason": str(refusal)},
                at=now,
            )

    async def create_command(
        self,
        ticket_id: int,
        new: NewCommand,
        *,
        identity: ApiIdentity,
        online: Callable[[str], bool],
        runbook_run: str | None = None,
        runbook_step: int | None = None,
    ) -> tuple[CommandView, str]:
        """Record a command to run for an open ticket, after checking who asks; the
        command and its ticket's title.

        See ``_check_device_action`` for the rules. A refusal is recorded (audit
        log, and the ticket's timeline when there is a ticket) before it is raised.
        """
        if not new.argv and new.script is None:
            raise InvalidRequest("argv is empty: give a command, or the name of a script")
        if new.script is not None and new.shell:
            raise InvalidRequest("a script is not run through a shell: drop shell")
        now = utcnow()
        command_id = uuid.uuid4().hex

        def transaction(conn: Connection) -> tuple[CommandView, str] | ConsoleError:
            ticket, device_id, refusal = self._check_device_action(
                conn, ticket_id, new.device_id, identity, online
            )
            data = {
                "command": command_id,
                "ticket": ticket_id,
                "device": device_id,
                "argv": new.argv,
                "shell": new.shell,
                **({"script": new.script} if new.script is not None else {}),
            }
            if refusal is not None:
                self._record_refusal(conn, ticket, identity, refusal, data, now)
                return refusal  # raised once the refusal is committed
            assert ticket is not None
            assert device_id is not None
            values: dict[str, Any] = {
                "id": command_id,
                "ticket_id": ticket_id,
                "device_id": device_id,
                "argv": list(new.argv),
                "shell": new.shell,
                "timeout": new.timeout,
                "requested_by": identity.actor,
                "requested_at": now,
                "status": "pending",
                "consent": "",
                "error": "",
                "output_truncated": False,
                "output_bytes": 0,
                "next_seq": 0,
                "runbook_run": runbook_run,
                "runbook_step": runbook_step,
                "script": new.script,
                "started_at": None,
                "finished_at": None,
                "exit_code": None,
                "duration": None,
            }
            conn.execute(_INSERT_COMMAND, values)
            _responded(conn, ticket_id, now)
            _add_event(
                conn,
                ticket_id,
                "command",
                actor=identity.actor,
                data={
                    "command": command_id,
                    "argv": new.argv,
                    "device": device_id,
                    "shell": new.shell,
                    "timeout": new.timeout,
                    **({"runbook_run": runbook_run} if runbook_run else {}),
                    **({"script": new.script} if new.script is not None else {}),
                },
                at=now,
            )
            audit.append_sync(
                conn, actor=identity.actor, action="command.requested", data=data, at=now
            )
            return _command_view(SimpleNamespace(**values)), ticket.title

        outcome = await self._sync(transaction)
        if isinstance(outcome, ConsoleError):
            raise outcome
        return outcome

    async def runbook_commands(self, run_id: str) -> list[CommandView]:
        """The commands of a runbook run, in step order."""
        async with self._reading() as session:
            rows = (
                await session.execute(
                    select(Command)
                    .where(Command.runbook_run == run_id)
                    .order_by(Command.runbook_step)
                )
            ).scalars()
            return [_command_view(r) for r in rows]

    async def add_timeline_event(
        self, ticket_id: int, kind: str, *, actor: str, data: dict[str, Any]
    ) -> EventView:
        """Record something on a ticket's timeline (a runbook's start or end, say)."""
        now = utcnow()
        async with self._transaction() as session:
            ticket = await _get(session, Ticket, ticket_id, lock=True)
            ticket.updated_at = now
            entry = TicketEvent(ticket_id=ticket_id, at=now, kind=kind, actor=actor, data=data)
            session.add(entry)
            await session.flush()
            return _event_view(entry)

    # -- Runbooks ------------------------------------------------------------------------------

    async def runbooks(self) -> dict[str, Runbook]:
        """Every runbook: the built-in ones, and the added ones (which win on a name)."""
        found = builtin_runbooks()
        async with self._reading() as session:
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
        async with self._transaction() as session:
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
        async with self._transaction() as session:
            row = await session.get(CustomRunbook, name)
            if row is None:
                raise NotFound(f"no added runbook {name!r}")
            await session.delete(row)
            await audit.append(
                session, actor=actor, action="runbook.removed", data={"runbook": name}, at=utcnow()
            )

    # -- Terminals ---------------------------------------------------------------------------

    async def open_shell(
        self,
        ticket_id: int,
        *,
        device_id: str | None,
        identity: ApiIdentity,
        online: Callable[[str], bool],
    ) -> ShellView:
        """Record a terminal session for an open ticket (same rules as commands)."""
        now = utcnow()
        session_id = uuid.uuid4().hex
        async with self._transaction() as session:
            conn = await session.connection()
            ticket, device, refusal = await conn.run_sync(
                self._check_device_action, ticket_id, device_id, identity, online
            )
            data = {
                "shell_session": session_id,
                "ticket": ticket_id,
                "device": device,
                "terminal": True,
            }
            if refusal is not None:
                await conn.run_sync(self._record_refusal, ticket, identity, refusal, data, now)
            else:
                assert ticket is not None
                assert device is not None
                row = ShellSession(
                    id=session_id,
                    ticket_id=ticket_id,
                    device_id=device,
                    requested_by=identity.actor,
                    started_at=now,
                    status="open",
                    error="",
                    transcript=b"",
                    transcript_truncated=False,
                )
                session.add(row)
                await conn.run_sync(_responded, ticket_id, now)
                session.add(
                    TicketEvent(
                        ticket_id=ticket_id,
                        at=now,
                        kind="shell",
                        actor=identity.actor,
                        data={"shell_session": session_id, "device": device},
                    )
                )
                await audit.append(
                    session, actor=identity.actor, action="shell.opened", data=data, at=now
                )
                await session.flush()
                return _shell_view(row)
        assert refusal is not None
        raise refusal

    async def shell_started(self, device_id: str, session_id: str, consent: str) -> bool:
        """The agent allowed the terminal and its shell started; False if not this
        device's open session."""
        now = utcnow()
        async with self._transaction() as session:
            row = await session.get(ShellSession, session_id, with_for_update=True)
            if row is None or row.device_id != device_id or row.ended_at is not None:
                return False
            if not row.consent:
                row.consent = consent[:32] or "unknown"
                data = {"shell_session": row.id, "consent": row.consent}
                session.add(
                    TicketEvent(
                        ticket_id=row.ticket_id,
                        at=now,
                        kind="shell_started",
                        actor=f"agent:{device_id}",
                        data=data,
                    )
                )
                await audit.append(
                    session,
                    actor=f"agent:{device_id}",
                    action="shell.consented",
                    data=data,
                    at=now,
                )
            return True

    async def close_shell(
        self,
        session_id: str,
        *,
        status: str,
        exit_code: int | None,
        error: str,
        transcript: bytes,
        truncated: bool,
    ) -> ShellView:
        """The terminal ended: keep its transcript and record the end on the ticket."""
        now = utcnow()
        async with self._transaction(bulk=True) as session:  # up to 16 MiB of transcript
            row = await session.get(ShellSession, session_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no terminal session {session_id}")
            if row.ended_at is None:
                row.ended_at = now
                row.status = status
                row.exit_code = exit_code
                row.error = error[:4096]
                row.transcript = transcript
                row.transcript_truncated = truncated
                session.add(
                    TicketEvent(
                        ticket_id=row.ticket_id,
                        at=now,
                        kind="shell_closed",
                        actor=row.requested_by,
                        data={
                            "shell_session": row.id,
                            "status": status,
                            "exit_code": exit_code,
                            "error": row.error,
                            "consent": row.consent,
                            "transcript_bytes": len(transcript),
                        },
                    )
                )
                await audit.append(
                    session,
                    actor=f"agent:{row.device_id}",
                    action="shell.closed",
                    data={"shell_session": row.id, "status": status, "exit_code": exit_code},
                    at=now,
                )
            return _shell_view(row)

    # -- Screen sessions ----------------------------------------------------------------------

    async def request_screen(
        self,
        ticket_id: int,
        *,
        device_id: str | None,
        identity: ApiIdentity,
        online: Callable[[str], bool],
        join: str | None = None,
    ) -> tuple[str, str]:
        """Check and record a request to view the device's screen: (session id, device).

        The rules of commands apply (``commands:run`` scope, admin or assignee, open
        ticket, device enrolled and online); a refusal is recorded too. ``join``: the
        id of the technician's running session they open another viewer of.
        """
        now = utcnow()
        session_id = join or uuid.uuid4().hex
        async with self._transaction() as session:
            conn = await session.connection()
            ticket, device, refusal = await conn.run_sync(
                self._check_device_action, ticket_id, device_id, identity, online
            )
            data = {"screen_session": session_id, "ticket": ticket_id, "device": device}
            if refusal is not None:
                await conn.run_sync(
                    lambda sync: self._record_refusal(
                        sync,
                        ticket,
                        identity,
                        refusal,
                        data,
                        now,
                        what="screen",
                        shown=("screen_session",),
                    )
                )
            else:
                assert ticket is not None
                assert device is not None
                await conn.run_sync(_responded, ticket_id, now)
                session.add(
                    TicketEvent(
                        ticket_id=ticket_id,
                        at=now,
                        kind="screen_viewer_joined" if join else "screen_requested",
                        actor=identity.actor,
                        data={"screen_session": session_id, "device": device, "what": "view"},
                    )
                )
                await audit.append(
                    session,
                    actor=identity.actor,
                    action="screen.joined" if join else "screen.requested",
                    data=data,
                    at=now,
                )
                return session_id, device
        assert refusal is not None
        raise refusal

    async def record_screen_event(
        self, ticket_id: int, kind: str, *, actor: str, data: dict[str, Any]
    ) -> None:
        """A screen session's step (started, refused, viewer joined, ended): on the
        ticket's timeline and in the audit log."""
        now = utcnow()
        async with self._transaction() as session:
            ticket = await _get(session, Ticket, ticket_id, lock=True)
            ticket.updated_at = now
            session.add(TicketEvent(ticket_id=ticket_id, at=now, kind=kind, actor=actor, data=data))
            await audit.append(
                session,
                actor=actor,
                action=kind.replace("_", ".", 1),
                data={"ticket": ticket_id, **data},
                at=now,
            )

    async def save_screen_recording(
        self,
        session_id: str,
        *,
        ticket_id: int,
        device_id: str,
        requested_by: str,
        started_at: datetime.datetime,
        reason: str,
        frames: int,
        data: bytes,
        truncated: bool,
    ) -> None:
        """Keep a screen session's recording with its ticket."""
        async with self._transaction(bulk=True) as session:
            session.add(
                ScreenRecording(
                    id=session_id,
                    ticket_id=ticket_id,
                    device_id=device_id,
                    requested_by=requested_by,
                    started_at=started_at,
                    ended_at=utcnow(),
                    reason=reason[:32],
                    frames=frames,
                    data=data,
                    truncated=truncated,
                )
            )

    async def screen_recording(self, session_id: str) -> bytes:
        """A screen session's recording ("DSR1"); ``NotFound`` if it was not recorded."""
        async with self._reading(bulk=True) as session:
            row = await session.get(ScreenRecording, session_id)
            if row is None:
                raise NotFound(f"no recording of screen session {session_id}")
            return row.data

    async def get_shell(self, session_id: str) -> ShellView:
        """A terminal session (without its transcript)."""
        async with self._reading() as session:
            row = await session.get(ShellSession, session_id)
            if row is None:
                raise NotFound(f"no terminal session {session_id}")
            return _shell_view(row)

    async def shell_transcript(self, session_id: str) -> bytes:
        """A terminal session's transcript, an asciinema v2 cast."""
        async with self._reading(bulk=True) as session:
            row = await session.get(ShellSession, session_id)
            if row is None:
                raise NotFound(f"no terminal session {session_id}")
            return row.transcript

    async def command_started(
        self,
        command_id: str,
        consent: str,
        at: datetime.datetime | None = None,
        *,
        device_id: str | None = None,
    ) -> CommandView | None:
        """The agent started the command (at ``at``); None if the command is unknown (or
        not ``device_id``'s)."""

        def transaction(conn: Connection) -> CommandView | None:
            found = conn.execute(_COMMAND_LOCKED, {"command": command_id}).one_or_none()
            if found is None or (device_id is not None and found.device_id != device_id):
                return None
            row = SimpleNamespace(**found._asdict())
            if _mark_started(conn, row, consent, at or utcnow()):
                conn.execute(
                    _UPDATE_COMMAND,
                    {
                        "command": command_id,
                        "status": row.status,
                        "started_at": row.started_at,
                        "consent": row.consent,
                    },
                )
            return _command_view(row)

        return await self._sync(transaction)

    async def output_state(self, command_id: str) -> tuple[str, int] | None:
        """(device id, next expected chunk number) of a command; None if unknown."""
        async with self._reading() as session:
            row = (
                await session.execute(
                    select(Command.device_id, Command.next_seq).where(Command.id == command_id)
                )
            ).one_or_none()
            return None if row is None else (row[0], row[1])

    async def add_command_outputs(
        self, device_id: str, command_id: str, chunks: Sequence[OutputChunk]
    ) -> int:
        """Keep chunks of output in one transaction; how many were new (not seen before).

        Output past ``COMMAND_OUTPUT_CAP`` is counted as seen but not kept, and marks
        the command's output truncated.
        """
        async with self._transaction() as session:
            row = await session.get(Command, command_id, with_for_update=True)
            if row is None or row.device_id != device_id:
                return 0
            rows: list[dict[str, object]] = []
            new = 0
            for chunk in chunks:
                if chunk.seq < row.next_seq:
                    continue
                new += 1
                row.next_seq = chunk.seq + 1
                if row.output_bytes + len(chunk.data) > COMMAND_OUTPUT_CAP:
                    row.output_truncated = True
                    continue
                row.output_bytes += len(chunk.data)
                rows.append(
                    {
                        "command_id": command_id,
                        "seq": chunk.seq,
                        "stream": chunk.stream,
                        "data": chunk.data,
                    }
                )
            if rows:
                await session.execute(insert(CommandOutput), rows)
            return new

    async def finish_command(
        self,
        device_id: str,
        result: m.CommandExit,
        *,
        started: tuple[str, datetime.datetime] | None = None,
    ) -> CommandView | None:
        """The command ended (or was refused by the agent); recorded once on the ticket.

        ``started`` is (consent, time) of a start not recorded yet: both are written
        in this one transaction. Plain statements, not the ORM's unit of work: the
        technician is waiting for this.
        """
        now = utcnow()

        def transaction(conn: Connection) -> CommandView | None:
            found = conn.execute(_COMMAND_LOCKED, {"command": result.command_id}).one_or_none()
            if found is None or found.device_id != device_id:
                return None
            if found.finished_at is not None:
                return _command_view(found)  # a duplicate after a reconnect
            row = SimpleNamespace(**found._asdict())
            if started is not None:
                _mark_started(conn, row, *started)
            if result.refused:
                row.status = "refused"
            elif result.timed_out:
                row.status = "timed_out"
            elif result.cancelled:
                row.status = "cancelled"
            elif result.exit_code is None:
                row.status = "failed"
            else:
                row.status = "finished"
            row.finished_at = now
            row.exit_code = result.exit_code
            row.duration = result.duration
            row.error = result.error
            row.output_truncated = row.output_truncated or result.output_truncated
            conn.execute(
                _UPDATE_COMMAND,
                {
                    "command": row.id,
                    "status": row.status,
                    "started_at": row.started_at,
                    "consent": row.consent,
                    "finished_at": now,
                    "exit_code": row.exit_code,
                    "duration": row.duration,
                    "error": row.error,
                    "output_truncated": row.output_truncated,
                },
            )
            tail = _output_tail(conn, row.id) if row.output_bytes else ""
            _add_event(
                conn,
                row.ticket_id,
                "command_result",
                actor=f"agent:{device_id}",
                data={
                    "command": row.id,
                    "argv": row.argv,
                    "status": row.status,
                    "exit_code": row.exit_code,
                    "duration": row.duration,
                    "consent": row.consent,
                    "error": row.error,
                    "output_bytes": row.output_bytes,
                    "output_tail": tail,
                    "output_truncated": row.output_truncated,
                },
                at=now,
            )
            audit.append_sync(
                conn,
                actor=f"agent:{device_id}",
                action="command.refused_by_agent" if result.refused else "command.finished",
                data={
                    "command": row.id,
                    "status": row.status,
                    "exit_code": row.exit_code,
                    "error": row.error,
                },
                at=now,
            )
            return _command_view(row)

        return await self._sync(transaction)

    async def fail_command(self, command_id: str, error: str) -> None:
        """The command could not be sent to the device."""
        async with self._transaction() as session:
            row = await session.get(Command, command_id, with_for_update=True)
            if row is not None and row.finished_at is None:
                row.status = "failed"
                row.error = error[:4096]
                row.finished_at = utcnow()
                session.add(
                    TicketEvent(
                        ticket_id=row.ticket_id,
                        at=row.finished_at,
                        kind="command_result",
                        actor="system",
                        data={"command": row.id, "status": "failed", "error": row.error},
                    )
                )

    async def get_command(self, command_id: str) -> CommandView:
        """One command; ``NotFound`` if unknown."""
        row = await self._sync(
            lambda c: c.execute(_COMMAND, {"command": command_id}).one_or_none(), read_only=True
        )
        if row is None:
            raise NotFound(f"no command {command_id}")
        return _command_view(row)

    async def command_output(self, command_id: str, from_seq: int = 0) -> list[OutputChunk]:
        """The output the console kept, from chunk ``from_seq`` on."""
        async with self._reading(bulk=True) as session:
            rows = (
                await session.execute(
                    select(CommandOutput)
                    .where(CommandOutput.command_id == command_id, CommandOutput.seq >= from_seq)
                    .order_by(CommandOutput.seq)
                )
            ).scalars()
            return [
                OutputChunk(seq=r.seq, stream=r.stream, data=r.data)  # type: ignore[arg-type]
                for r in rows
            ]

    async def ticket_commands(self, ticket_id: int) -> list[CommandView]:
        """The commands of a ticket, oldest first."""
        async with self._reading() as session:
            rows = (
                await session.execute(
                    select(Command)
                    .where(Command.ticket_id == ticket_id)
                    .order_by(Command.requested_at)
                )
            ).scalars()
            return [_command_view(r) for r in rows]

    # -- Audit log --------------------------------------------------------------------------

    async def audit_log(self, *, limit: int = 100, before: int | None = None) -> list[AuditView]:
        """The newest audit entries (before id ``before``), newest first."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if before is not None:
            query = query.where(AuditEntry.id < before)
        async with self._reading() as session:
            return [
                AuditView(
                    id=e.id, at=e.at, actor=e.actor, action=e.action, data=e.data, hash=e.hash
                )
                for e in (await session.execute(query)).scalars()
            ]

    async def verify_audit(self) -> audit.AuditVerification:
        """Walk the whole audit chain (a snapshot of it: writers go on meanwhile)."""
        async with self._reading(bulk=True) as session:
            result = await session.stream_scalars(select(AuditEntry).order_by(AuditEntry.id))
            entries = [entry async for entry in result]
        return audit.verify(entries)


# -- Helpers -----------------------------------------------------------------------------

_DUMMY_HASH: Final = _password_hasher.hash(secrets.token_urlsafe(16))


async def _get(session: AsyncSession, model: type[Any], key: object, *, lock: bool = False) -> Any:
    row = await session.get(model, key, with_for_update=lock)
    if row is None:
        name = {Device: "device", Ticket: "ticket", Snapshot: "snapshot"}.get(model, "object")
        raise NotFound(f"no {name} {key}")
    return row


def _diagnostics_event(
    ticket_id: int, now: datetime.datetime, actor: str, snapshot: Snapshot
) -> TicketEvent:
    return TicketEvent(
        ticket_id=ticket_id,
        at=now,
        kind="diagnostics",
        actor=actor,
        data={"taken_at": snapshot.taken_at.isoformat(), "schema": snapshot.schema},
        snapshot_id=snapshot.id,
    )


def _device_view(device: Device) -> DeviceView:
    return DeviceView(
        id=device.id,
        hostname=device.hostname,
        os_family=device.os_family,
        os_name=device.os_name,
        os_release=device.os_release,
        arch=device.arch,
        agent_version=device.agent_version,
        group=device.group_name,
        enrolled_at=device.enrolled_at,
        online=device.online,
        last_seen=device.last_seen,
        metrics=device.metrics,
        revoked=device.revoked_at is not None,
        public_key=base64.b64encode(device.public_key).decode(),
    )


def _snapshot_info(row: Snapshot) -> SnapshotInfo:
    return SnapshotInfo(
        id=row.id,
        device_id=row.device_id,
        taken_at=row.taken_at,
        received_at=row.received_at,
        schema=row.schema,
    )


def _snapshot_view(row: Snapshot) -> SnapshotView:
    snapshot = _snapshot_decoder.decode(row.data)
    return SnapshotView(
        id=row.id,
        device_id=row.device_id,
        taken_at=row.taken_at,
        received_at=row.received_at,
        schema=row.schema,
        snapshot=msgspec.to_builtins(snapshot),
    )


def _ticket_view(row: Ticket) -> TicketView:
    return TicketView(
        id=row.id,
        title=row.title,
        description=row.description,
        requester=row.requester,
        device_id=row.device_id,
        category=row.category,
        impact=row.impact,
        urgency=row.urgency,
        priority=row.priority,
        status=TicketStatus(row.status),
        assignee=row.assignee,
        group=row.group_name,
        source=row.source,
        created_at=row.created_at,
        updated_at=row.updated_at,
        response_due=row.response_due,
        resolution_due=row.resolution_due,
        first_response_at=row.first_response_at,
        resolved_at=row.resolved_at,
        closed_at=row.closed_at,
        reopen_count=row.reopen_count,
    )


# The statements of the paths a technician waits on (a command's request and its
# result), built once: executed with their parameters apart, they skip the
# per-value checks that ``.values(...)`` costs on every call (280 µs -> 90 µs).
_API_TOKEN: Final = (
    select(
        ApiToken.id,
        ApiToken.token_hash,
        ApiToken.name,
        ApiToken.scopes,
        ApiToken.revoked_at,
        ApiToken.expires_at,
        ApiToken.last_used_at,
        ApiToken.username,
        User.username.label("user"),
        User.disabled,
        User.role,
    )
    .outerjoin(User, User.username == ApiToken.username)
    .where(ApiToken.token_hash == bindparam("digest"))
)
_TICKET_FOR_ACTION: Final = (
    select(Ticket.id, Ticket.title, Ticket.status, Ticket.assignee, Ticket.device_id)
    .where(Ticket.id == bindparam("ticket"))
    .with_for_update()
)
_DEVICE_REVOKED: Final = select(Device.revoked_at).where(Device.id == bindparam("device"))
_INSERT_COMMAND: Final = insert(Command)
_INSERT_EVENT: Final = insert(TicketEvent)
_COMMAND: Final = select(*Command.__table__.columns).where(Command.id == bindparam("command"))
_COMMAND_LOCKED: Final = _COMMAND.with_for_update()
_UPDATE_COMMAND: Final = update(Command).where(Command.id == bindparam("command"))
_OUTPUT_TAIL: Final = (
    select(CommandOutput.data)
    .where(CommandOutput.command_id == bindparam("command"))
    .order_by(CommandOutput.seq.desc())
    .limit(4)
)
_RESPONDED: Final = (
    update(Ticket)
    .where(Ticket.id == bindparam("ticket"))
    .values(
        updated_at=bindparam("now"),
        first_response_at=func.coalesce(Ticket.first_response_at, bindparam("now")),
    )
)


def _output_tail(conn: Connection, command_id: str) -> str:
    """The last lines of a command's output, as text, for the timeline."""
    rows = conn.execute(_OUTPUT_TAIL, {"command": command_id}).scalars()
    data = b"".join(reversed(list(rows)))[-2048:]
    return data.decode("utf-8", "replace")


def _mark_started(
    conn: Connection, row: SimpleNamespace, consent: str, at: datetime.datetime
) -> bool:
    """A pending command started, allowed by ``consent``: ``row`` (the command's
    columns) changed and the start audited, once; the caller writes ``row``. False
    if it had started already."""
    if row.status != "pending":
        return False
    row.status = "running"
    row.started_at = at
    row.consent = consent[:32]
    audit.append_sync(
        conn,
        actor=f"agent:{row.device_id}",
        action="command.consented",
        data={"command": row.id, "consent": row.consent},
        at=at,
    )
    return True


def _responded(conn: Connection, ticket_id: int, now: datetime.datetime) -> None:
    """A technician acted on the ticket: it changed, and it has had its first response."""
    conn.execute(_RESPONDED, {"ticket": ticket_id, "now": now})


def _add_event(
    conn: Connection,
    ticket_id: int,
    kind: str,
    *,
    actor: str,
    data: dict[str, Any],
    at: datetime.datetime,
) -> None:
    """An entry on a ticket's timeline, in one plain INSERT."""
    conn.execute(
        _INSERT_EVENT,
        {"ticket_id": ticket_id, "at": at, "kind": kind, "actor": actor, "data": data},
    )


def _command_view(row: Any) -> CommandView:
    """The view of a command: an ORM object, a row of its columns, or a namespace."""
    return CommandView(
        id=row.id,
        ticket_id=row.ticket_id,
        device_id=row.device_id,
        argv=list(row.argv),
        shell=row.shell,
        timeout=row.timeout,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        status=row.status,
        consent=row.consent,
        started_at=row.started_at,
        finished_at=row.finished_at,
        exit_code=row.exit_code,
        duration=row.duration,
        error=row.error,
        output_truncated=row.output_truncated,
        output_bytes=row.output_bytes,
        runbook_run=row.runbook_run,
        runbook_step=row.runbook_step,
        script=row.script,
    )


def _shell_view(row: ShellSession) -> ShellView:
    return ShellView(
        id=row.id,
        ticket_id=row.ticket_id,
        device_id=row.device_id,
        requested_by=row.requested_by,
        started_at=row.started_at,
        ended_at=row.ended_at,
        status=row.status,
        exit_code=row.exit_code,
        error=row.error,
        transcript_bytes=len(row.transcript),
        transcript_truncated=row.transcript_truncated,
        consent=row.consent,
    )


def _event_view(row: TicketEvent) -> EventView:
    return EventView(
        id=row.id,
        at=row.at,
        kind=row.kind,
        actor=row.actor,
        data=dict(row.data),
        snapshot_id=row.snapshot_id,
    )
