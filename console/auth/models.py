"""Accounts' tables: technicians and API tokens.

Secrets are never stored: API tokens are kept as SHA-256 hashes (long random
strings, so a plain hash is enough to look them up and useless to a thief),
passwords as argon2 hashes.
"""

from __future__ import annotations

import datetime

from sqlalchemy import JSON, Boolean, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, UTCDateTime

__all__ = ["ApiToken", "User"]


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
