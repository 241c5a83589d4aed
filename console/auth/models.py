"""Accounts' tables: technicians, their groups, API tokens and viewer links.

Secrets are never stored: API tokens, web sessions' ids and recovery codes are
kept as SHA-256 hashes (long random
strings, so a plain hash is enough to look them up and useless to a thief),
passwords as argon2 hashes.
"""

from __future__ import annotations

import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, UTCDateTime

__all__ = [
    "ApiToken",
    "GroupDeviceRight",
    "GroupMember",
    "RecoveryCode",
    "TechnicianGroup",
    "TotpCredential",
    "User",
    "ViewerLink",
    "WebAuthnKey",
    "WebSession",
]


class User(Base):
    """A technician or administrator account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """A scoped token for a ticket system or script using the REST API."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    # The technician this token acts for (e.g. minted by the CLI); None: a service.
    username: Mapped[str | None] = mapped_column(String(64))


class TechnicianGroup(Base):
    """A group of technicians (first-line desk, specialists, field service...)."""

    __tablename__ = "technician_groups"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())


class GroupMember(Base):
    """A technician in a group."""

    __tablename__ = "group_members"

    group_name: Mapped[str] = mapped_column(
        ForeignKey("technician_groups.name", ondelete="CASCADE"), primary_key=True
    )
    username: Mapped[str] = mapped_column(
        ForeignKey("users.username", ondelete="CASCADE"), primary_key=True
    )


class GroupDeviceRight(Base):
    """A group's members may act on the devices of a device group (its enrollment
    token's ``group``)."""

    __tablename__ = "group_device_rights"

    group_name: Mapped[str] = mapped_column(
        ForeignKey("technician_groups.name", ondelete="CASCADE"), primary_key=True
    )
    device_group: Mapped[str] = mapped_column(String(128), primary_key=True)


class ViewerLink(Base):
    """A link that lets one technician view (or view and control) one ticket's screen
    session, or replay one recording: nothing else. Kept as a SHA-256 hash.

    It must be opened before ``expires_at``; it is bound to the first screen session
    it opens (``screen_session``) and spent when that session ends (``ended_at``).
    """

    __tablename__ = "viewer_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    username: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    # "view", "control" (view and control) or "replay".
    capability: Mapped[str] = mapped_column(String(16))
    screen_session: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A browser signed in to the web console (``auth/sessions.py``), known by the
    SHA-256 of the id in its cookie.

    ``stage`` says how far the sign-in got: ``second_factor`` (the password was right,
    a code is due), ``enrol`` (the password was right, a second factor is required
    and the user has none yet) or ``signed_in``.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    # The absolute time-out: the session ends then, however active.
    expires_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    address: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(256))
    # Messages for the next page shown (after a redirect), oldest first.
    flashes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The WebAuthn challenge this session's browser was given, until it answers.
    challenge: Mapped[bytes | None] = mapped_column(LargeBinary(64))


class TotpCredential(Base):
    """A user's TOTP secret (RFC 6238, 30-s steps, 6 digits).

    The secret must be readable to check codes, so it is stored as it is: whoever
    reads the database could make codes, but still needs the password. ``last_step``
    is the time step of the last code accepted: a code is accepted once, and no code
    of that step or an earlier one is accepted after it, on any session.
    """

    __tablename__ = "totp_credentials"

    username: Mapped[str] = mapped_column(
        ForeignKey("users.username", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    # None until the user has typed a first code (enrolment confirmed).
    confirmed_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    last_step: Mapped[int | None] = mapped_column(Integer)


class RecoveryCode(Base):
    """A one-time code that stands in for the second factor; its SHA-256 only."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"))
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())


class WebAuthnKey(Base):
    """A security key or passkey a user signs in with (WebAuthn, py_webauthn): its
    public key and signature counter; the private key never leaves the authenticator."""

    __tablename__ = "webauthn_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"))
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(2048))
    sign_count: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
