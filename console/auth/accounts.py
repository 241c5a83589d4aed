"""Technicians' accounts and API tokens: creating them, and checking who calls."""

from __future__ import annotations

import asyncio
import datetime
import hmac
import secrets
from collections.abc import Iterable
from typing import Final

import argon2
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from deskside.console.audit import chain as audit
from deskside.console.db import Database, utcnow
from deskside.console.errors import Conflict, InvalidRequest, NotFound, Unauthorized

from .identity import ADMIN_SCOPES, SCOPES, ApiIdentity, hash_secret
from .links import LINK_PREFIX, ViewerLinks
from .models import ApiToken, User
from .schemas import ApiTokenCreated, Role

__all__ = ["AccountRepository"]

_password_hasher = argon2.PasswordHasher()
# Verified against when the account does not exist, so both cost the same time.
_DUMMY_HASH: Final = _password_hasher.hash(secrets.token_urlsafe(16))


class AccountRepository:
    """Technician accounts and API tokens."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.links = ViewerLinks(db)

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
            async with self._db.transaction() as session:
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
        async with self._db.transaction() as session:
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
        async with self._db.reading() as session:
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
            token_hash=hash_secret(token),
            scopes=wanted,
            created_at=now,
            expires_at=None if ttl is None else now + ttl,
            username=username,
        )
        async with self._db.transaction() as session:
            if username is not None and not await session.scalar(
                select(func.count()).select_from(User).where(User.username == username)
            ):
                raise InvalidRequest(f"no technician named {username!r}")
            if username is not None and set(wanted) & ADMIN_SCOPES:
                role = await session.scalar(select(User.role).where(User.username == username))
                if role != Role.ADMIN:
                    raise InvalidRequest(
                        f"{', '.join(sorted(set(wanted) & ADMIN_SCOPES))}: admins only"
                    )
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
        """Who holds this API token (or viewer link, ``links.py``); ``Unauthorized`` if
        it is unknown, expired or revoked."""
        if token.startswith(LINK_PREFIX) and len(token) <= 128:
            return await self.links.authenticate(token)
        if not token.startswith("dsk_") or len(token) > 128:
            raise Unauthorized("invalid API token")
        digest = hash_secret(token)
        now = utcnow()
        # One plain statement, built once: every API call comes through here.
        row = await self._db.run(
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
            async with self._db.transaction() as session:
                await session.execute(
                    update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
                )
        return identity

    async def revoke_api_token(self, token_id: int) -> None:
        """Revoke an API token at once."""
        async with self._db.transaction() as session:
            row = await session.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"no API token {token_id}")
            row.revoked_at = row.revoked_at or utcnow()


# Built once: executed with its parameter apart, it skips the per-value checks
# that building a statement costs on every call (every API call comes here).
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
