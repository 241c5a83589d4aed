"""Second factors of the web console's sign-in: TOTP and one-time recovery codes.

* TOTP (RFC 6238, pyotp): 30-s steps, 6 digits, one step of clock drift either way.
  A code is accepted once: accepting it stores its time step (``last_step``) with a
  conditional update, so the same code, or any code of that step or an earlier one,
  is refused after it, on this session or any other, even by two requests at once.
* Recovery codes: ten random codes (80 bits each), shown once when TOTP is enrolled,
  stored as SHA-256 hashes, each spent by its first use (again a conditional update).
"""

from __future__ import annotations

import datetime
import hmac
import secrets
from typing import Any, Final

import pyotp
from sqlalchemy import delete, func, select, update

from deskside.console.audit import chain as audit
from deskside.console.db import Database

from .identity import hash_secret
from .models import RecoveryCode, TotpCredential, WebAuthnKey

__all__ = ["ISSUER", "RECOVERY_CODES", "SecondFactorRepository", "normalize_recovery_code"]

ISSUER: Final = "Deskside"
RECOVERY_CODES: Final = 10
_STEP: Final = 30
_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


def normalize_recovery_code(code: str) -> str:
    """A recovery code as stored: lower case, without the spaces and dashes people type."""
    return "".join(c for c in code.lower() if c.isalnum())


def _step(now: datetime.datetime) -> int:
    return int(now.timestamp()) // _STEP


class SecondFactorRepository:
    """Users' TOTP secrets and recovery codes."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def has_second_factor(self, username: str) -> bool:
        """Whether the user has a confirmed TOTP secret or a WebAuthn key."""
        return await self.has_totp(username) or bool(
            await self._count(select(WebAuthnKey.id).where(WebAuthnKey.username == username))
        )

    async def has_totp(self, username: str) -> bool:
        """Whether the user has a confirmed TOTP secret."""
        async with self._db.reading() as session:
            row = await session.get(TotpCredential, username)
            return row is not None and row.confirmed_at is not None

    async def _count(self, query: Any) -> int:
        async with self._db.reading() as session:
            return int(
                await session.scalar(select(func.count()).select_from(query.subquery())) or 0
            )

    async def begin_totp(self, username: str, *, now: datetime.datetime) -> str:
        """The secret being enrolled (made now unless one waits for confirmation);
        ``ValueError`` if the user has a confirmed one already."""
        async with self._db.transaction() as session:
            row = await session.get(TotpCredential, username)
            if row is not None and row.confirmed_at is not None:
                raise ValueError("a TOTP secret is enrolled already")
            if row is None:
                row = TotpCredential(
                    username=username, secret=pyotp.random_base32(), created_at=now
                )
                session.add(row)
            return row.secret

    @staticmethod
    def provisioning_uri(secret: str, username: str) -> str:
        """The ``otpauth://`` URI an authenticator app reads from the QR code."""
        return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)

    async def confirm_totp(
        self, username: str, code: str, *, now: datetime.datetime
    ) -> list[str] | None:
        """Confirm the enrolment with a first code; the new recovery codes (shown
        once), or None if the code is wrong."""
        if not await self._accept(username, code, now=now, confirmed=False):
            return None
        async with self._db.transaction() as session:
            await session.execute(
                update(TotpCredential)
                .where(TotpCredential.username == username)
                .values(confirmed_at=now)
            )
            await audit.append(
                session, actor=f"user:{username}", action="totp.enrolled", data={}, at=now
            )
        return await self.new_recovery_codes(username, now=now)

    async def new_recovery_codes(self, username: str, *, now: datetime.datetime) -> list[str]:
        """Ten new recovery codes in place of the user's others (shown once)."""
        codes = [
            "".join(secrets.choice(_ALPHABET) for _ in range(16)) for _ in range(RECOVERY_CODES)
        ]
        async with self._db.transaction() as session:
            await session.execute(delete(RecoveryCode).where(RecoveryCode.username == username))
            session.add_all(
                RecoveryCode(username=username, code_hash=hash_secret(code), created_at=now)
                for code in codes
            )
        return [f"{c[:4]}-{c[4:8]}-{c[8:12]}-{c[12:]}" for c in codes]

    async def verify_totp(self, username: str, code: str, *, now: datetime.datetime) -> bool:
        """Whether ``code`` is the user's TOTP code, not used before (then it is spent)."""
        return await self._accept(username, code, now=now, confirmed=True)

    async def _accept(
        self, username: str, code: str, *, now: datetime.datetime, confirmed: bool
    ) -> bool:
        code = code.strip().replace(" ", "")
        if len(code) != 6 or not code.isdigit():
            return False
        async with self._db.reading() as session:
            row = await session.get(TotpCredential, username)
        if row is None or (row.confirmed_at is not None) != confirmed:
            return False
        totp = pyotp.TOTP(row.secret)
        current = _step(now)
        matched = None
        for step in (current - 1, current, current + 1):  # every one compared: no early exit
            if hmac.compare_digest(totp.at(step * _STEP), code):
                matched = step
        if matched is None:
            return False
        async with self._db.transaction() as session:
            spent = await session.execute(
                update(TotpCredential)
                .where(
                    TotpCredential.username == username,
                    (TotpCredential.last_step.is_(None)) | (TotpCredential.last_step < matched),
                )
                .values(last_step=matched)
            )
            return bool(getattr(spent, "rowcount", 0))

    async def use_recovery_code(self, username: str, code: str, *, now: datetime.datetime) -> bool:
        """Whether ``code`` is one of the user's unused recovery codes (then it is spent)."""
        plain = normalize_recovery_code(code)
        if not 8 <= len(plain) <= 64:
            return False
        async with self._db.transaction() as session:
            spent = await session.execute(
                update(RecoveryCode)
                .where(
                    RecoveryCode.username == username,
                    RecoveryCode.code_hash == hash_secret(plain),
                    RecoveryCode.used_at.is_(None),
                )
                .values(used_at=now)
            )
            if not getattr(spent, "rowcount", 0):
                return False
            await audit.append(
                session, actor=f"user:{username}", action="recovery_code.used", data={}, at=now
            )
            return True

    async def recovery_codes_left(self, username: str) -> int:
        """How many unused recovery codes the user has."""
        async with self._db.reading() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(RecoveryCode)
                .where(RecoveryCode.username == username, RecoveryCode.used_at.is_(None))
            )
            return int(count or 0)
