"""The console's repositories over one database: what the gateway, the API and the
CLI are given.

``Store`` holds one repository per capability and owns nothing else; each
repository owns its capability's tables (``deskside.console.<capability>``).
"""

from __future__ import annotations

from deskside.console.audit.repository import AuditRepository
from deskside.console.auth.access import DeviceAccess
from deskside.console.auth.accounts import AccountRepository
from deskside.console.auth.groups import GroupRepository
from deskside.console.chat.repository import ChatRepository
from deskside.console.commands.repository import CommandRepository
from deskside.console.commands.runbooks.repository import RunbookRepository
from deskside.console.db import Database
from deskside.console.devices.repository import DeviceRepository
from deskside.console.devices.snapshots import SnapshotRepository
from deskside.console.events import EventBus
from deskside.console.screen.repository import ScreenRepository
from deskside.console.terminal.repository import TerminalRepository
from deskside.console.tickets.policy import Policy
from deskside.console.tickets.repository import TicketRepository

__all__ = ["Store"]


class Store:
    """Every capability's repository, sharing one ``Database`` and its event bus."""

    def __init__(self, db: Database, policy: Policy | None = None) -> None:
        self.db = db
        # The bus domain events go to after their commit.
        self.bus: EventBus = db.bus
        self.accounts = AccountRepository(db)
        self.groups = GroupRepository(db)
        # Who may act on a device, for actions that record nothing of their own.
        self.access = DeviceAccess(db)
        self.audit = AuditRepository(db)
        self.devices = DeviceRepository(db)
        self.snapshots = SnapshotRepository(db)
        self.tickets = TicketRepository(db, policy)
        self.commands = CommandRepository(db)
        self.runbooks = RunbookRepository(db)
        self.terminals = TerminalRepository(db)
        self.screens = ScreenRepository(db)
        self.chat = ChatRepository(db)

    @classmethod
    def connect(cls, url: str, policy: Policy | None = None, bus: EventBus | None = None) -> Store:
        """The repositories over the database at ``url`` (already migrated)."""
        return cls(Database.connect(url, bus), policy)

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        await self.db.ping()

    async def close(self) -> None:
        """Close every database connection."""
        await self.db.close()
