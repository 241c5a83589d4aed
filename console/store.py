"""The console's repositories over one database: what the gateway, the API and the
CLI are given.

``Store`` holds one repository per capability and owns nothing else; each
repository owns its capability's tables (``deskside.console.<capability>``).
"""

from __future__ import annotations

from pathlib import Path

from deskside.console.audit.repository import AuditRepository
from deskside.console.auth.access import DeviceAccess
from deskside.console.auth.accounts import AccountRepository
from deskside.console.auth.factors import SecondFactorRepository
from deskside.console.auth.groups import GroupRepository
from deskside.console.auth.keys import WebAuthnKeys
from deskside.console.auth.sessions import SessionRepository
from deskside.console.chat.repository import ChatRepository
from deskside.console.commands.repository import CommandRepository
from deskside.console.commands.runbooks.repository import RunbookRepository
from deskside.console.db import Database
from deskside.console.devices.repository import DeviceRepository
from deskside.console.devices.snapshots import SnapshotRepository
from deskside.console.events import EventBus
from deskside.console.findings.rules import load_rules
from deskside.console.findings.service import FindingService
from deskside.console.knowledge.repository import KnowledgeRepository
from deskside.console.screen.repository import ScreenRepository
from deskside.console.terminal.repository import TerminalRepository
from deskside.console.tickets.categories import Categories
from deskside.console.tickets.policy import Policy
from deskside.console.tickets.repository import TicketRepository
from deskside.console.webhooks.repository import WebhookRepository

__all__ = ["Store"]


class Store:
    """Every capability's repository, sharing one ``Database`` and its event bus."""

    def __init__(
        self, db: Database, policy: Policy | None = None, data_dir: Path | None = None
    ) -> None:
        self.db = db
        # The bus domain events go to after their commit.
        self.bus: EventBus = db.bus
        self.accounts = AccountRepository(db)
        self.groups = GroupRepository(db)
        # The web console's sessions and second factors.
        self.sessions = SessionRepository(db)
        self.factors = SecondFactorRepository(db)
        self.keys = WebAuthnKeys(db)
        # Who may act on a device, for actions that record nothing of their own.
        self.access = DeviceAccess(db)
        self.audit = AuditRepository(db)
        self.devices = DeviceRepository(db)
        self.snapshots = SnapshotRepository(db)
        # The categories and the findings' rules: shipped, or the admin's in ``data_dir``.
        self.categories = Categories.load(data_dir)
        self.tickets = TicketRepository(db, policy, self.categories)
        self.findings = FindingService(
            load_rules(data_dir, self.categories), self.tickets, self.snapshots
        )
        self.knowledge = KnowledgeRepository(db, self.categories, self.tickets, self.findings)
        self.commands = CommandRepository(db)
        self.runbooks = RunbookRepository(db)
        self.terminals = TerminalRepository(db)
        self.screens = ScreenRepository(db)
        # Endpoints and the outbox: its stager writes outbox rows in every transaction.
        self.webhooks = WebhookRepository(db)
        db.add_stager(self.webhooks.stage)
        self.chat = ChatRepository(db)

    @classmethod
    def connect(
        cls,
        url: str,
        policy: Policy | None = None,
        bus: EventBus | None = None,
        data_dir: Path | None = None,
    ) -> Store:
        """The repositories over the database at ``url`` (already migrated); categories
        and rules from ``data_dir`` (``ConfigError`` if the admin's are invalid)."""
        return cls(Database.connect(url, bus), policy, data_dir)

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        await self.db.ping()

    async def close(self) -> None:
        """Close every database connection."""
        await self.db.close()
