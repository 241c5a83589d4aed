"""Every capability's tables, on one metadata: for Alembic and the schema test."""

from __future__ import annotations

from deskside.console.audit.models import AuditEntry
from deskside.console.auth.models import (
    ApiToken,
    GroupDeviceRight,
    GroupMember,
    RecoveryCode,
    TechnicianGroup,
    TotpCredential,
    User,
    ViewerLink,
    WebAuthnKey,
    WebSession,
)
from deskside.console.chat.models import ChatLine
from deskside.console.commands.models import Command, CommandOutput, CustomRunbook
from deskside.console.db.base import Base
from deskside.console.devices.models import Device, EnrollmentToken, Snapshot
from deskside.console.knowledge.models import Article, ArticleLink, ArticleVersion
from deskside.console.screen.models import ScreenRecording
from deskside.console.terminal.models import ShellSession
from deskside.console.tickets.models import SavedView, Ticket
from deskside.console.timeline.models import TicketEvent
from deskside.console.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = ["TABLES", "Base"]

# Each capability's tables (importing them puts them on Base.metadata).
TABLES = (
    AuditEntry,
    ApiToken,
    GroupDeviceRight,
    GroupMember,
    TechnicianGroup,
    User,
    ViewerLink,
    WebSession,
    TotpCredential,
    RecoveryCode,
    WebAuthnKey,
    ChatLine,
    Command,
    CommandOutput,
    CustomRunbook,
    Device,
    EnrollmentToken,
    Snapshot,
    ScreenRecording,
    ShellSession,
    Ticket,
    TicketEvent,
    WebhookDelivery,
    WebhookEndpoint,
    SavedView,
    Article,
    ArticleLink,
    ArticleVersion,
)
