"""The web console's sessions, kept on the server: a browser holds only a random id.

Theory of operation::

    POST /signin (password right) ──> create(stage) ──> new id, cookie set
         stage "second_factor" ──> code right ──> rotate(): new id, stage "signed_in"
         stage "enrol" ────────> TOTP enrolled ─> rotate(): new id, stage "signed_in"
    each request ──> find(id): by SHA-256 of the id; refused past the idle or absolute
                     time-out (and then deleted); last_seen written at most once a minute
    sign-out, revoke ──> delete(): the row goes, so a copied cookie is refused after

Only the SHA-256 of a session's id is stored (the id is 256 random bits, so a plain
hash is enough and useless to whoever reads the database). A new id at every step
of the sign-in (rotation) means an id planted in a browser before sign-in (session
fixation) is worth nothing after it. The clock is passed in (``now``).
"""

from __future__ import annotations

import datetime
import hmac
import secrets
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from sqlalchemy import delete, select, update

from deskside.console.audit import chain as audit
from deskside.console.db import Database

from .identity import hash_secret
from .models import User, WebSession

__all__ = ["PENDING_LIFETIME", "SessionRepository", "SessionTimes", "SessionView", "Stage"]

# How long a sign-in may wait for its second factor (or enrolment) after the password.
PENDING_LIFETIME: Final = datetime.timedelta(minutes=10)
# last_seen_at is written at most this often, so most requests only read.
_TOUCH_EVERY: Final = datetime.timedelta(minutes=1)
_MAX_FLASHES: Final = 8


class Stage:
    """How far a session's sign-in got (``WebSession.stage``)."""

    SECOND_FACTOR: Final = "second_factor"
    ENROL: Final = "enrol"
    SIGNED_IN: Final = "signed_in"


class SessionTimes(msgspec.Struct, frozen=True, kw_only=True):
    """A session's time-outs."""

    idle: datetime.timedelta
    absolute: datetime.timedelta


class SessionView(msgspec.Struct, frozen=True, kw_only=True):
    """A session as its user sees it (and as a request knows its own)."""

    id: int
    username: str
    role: str
    display_name: str
    stage: str
    created_at: datetime.datetime
    last_seen_at: datetime.datetime
    expires_at: datetime.datetime
    address: str
    user_agent: str


class SessionRepository:
    """Web sessions: created at sign-in, found per request, deleted at sign-out."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        username: str,
        stage: str,
        *,
        times: SessionTimes,
        address: str,
        user_agent: str,
        now: datetime.datetime,
    ) -> str:
        """A new session for ``username``; its id (for the cookie, never stored)."""
        token = secrets.token_urlsafe(32)
        lifetime = times.absolute if stage == Stage.SIGNED_IN else PENDING_LIFETIME
        async with self._db.transaction() as session:
            session.add(
                WebSession(
                    token_hash=hash_secret(token),
                    username=username,
                    stage=stage,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + lifetime,
                    address=address[:64],
                    user_agent=user_agent[:256],
                    flashes=[],
                )
            )
        return token

    async def find(
        self, token: str, *, times: SessionTimes, now: datetime.datetime, touch: bool = True
    ) -> SessionView | None:
        """The session of this id if it is alive; an expired one is deleted.
        ``touch``: the request is the user's doing, so it counts as activity (a live
        page's stream, which runs on its own, passes False)."""
        if not token or len(token) > 128:
            return None
        digest = hash_secret(token)
        async with self._db.reading() as session:
            found = (
                await session.execute(
                    select(WebSession, User.role, User.display_name, User.disabled)
                    .join(User, User.username == WebSession.username)
                    .where(WebSession.token_hash == digest)
                )
            ).one_or_none()
        if found is None or not hmac.compare_digest(found[0].token_hash, digest):
            return None
        row, role, display_name, disabled = found
        if disabled or now >= row.expires_at or now - row.last_seen_at >= times.idle:
            await self.delete(token)
            return None
        if touch and now - row.last_seen_at >= _TOUCH_EVERY:
            async with self._db.transaction() as session:
                await session.execute(
                    update(WebSession).where(WebSession.id == row.id).values(last_seen_at=now)
                )
        return SessionView(
            id=row.id,
            username=row.username,
            role=role,
            display_name=display_name,
            stage=row.stage,
            created_at=row.created_at,
            last_seen_at=now
            if touch and now - row.last_seen_at >= _TOUCH_EVERY
            else row.last_seen_at,
            expires_at=row.expires_at,
            address=row.address,
            user_agent=row.user_agent,
        )

    async def rotate(
        self, token: str, stage: str, *, times: SessionTimes, now: datetime.datetime
    ) -> str | None:
        """Give the session a new id (and ``stage``); the new id, or None if it is gone."""
        new = secrets.token_urlsafe(32)
        async with self._db.transaction() as session:
            row = (
                await session.execute(
                    select(WebSession).where(WebSession.token_hash == hash_secret(token))
                )
            ).scalar_one_or_none()
            if row is None:
                return None
            row.token_hash = hash_secret(new)
            row.stage = stage
            row.last_seen_at = now
            if stage == Stage.SIGNED_IN:
                row.created_at = now
                row.expires_at = now + times.absolute
        return new

    async def delete(self, token: str) -> None:
        """End a session (sign-out, time-out)."""
        async with self._db.transaction() as session:
            await session.execute(
                delete(WebSession).where(WebSession.token_hash == hash_secret(token))
            )

    async def list_for(self, username: str) -> list[SessionView]:
        """A user's signed-in sessions, the most recently used first."""
        async with self._db.reading() as session:
            rows = (
                await session.execute(
                    select(WebSession, User.role, User.display_name)
                    .join(User, User.username == WebSession.username)
                    .where(WebSession.username == username, WebSession.stage == Stage.SIGNED_IN)
                    .order_by(WebSession.last_seen_at.desc(), WebSession.id.desc())
                )
            ).all()
        return [
            SessionView(
                id=row.id,
                username=row.username,
                role=role,
                display_name=display_name,
                stage=row.stage,
                created_at=row.created_at,
                last_seen_at=row.last_seen_at,
                expires_at=row.expires_at,
                address=row.address,
                user_agent=row.user_agent,
            )
            for row, role, display_name in rows
        ]

    async def revoke(self, username: str, session_id: int, *, now: datetime.datetime) -> bool:
        """End one of ``username``'s sessions (not another user's); whether it existed."""
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(WebSession).where(
                    WebSession.id == session_id, WebSession.username == username
                )
            )
            gone = bool(getattr(result, "rowcount", 0))
            if gone:
                await audit.append(
                    session,
                    actor=f"user:{username}",
                    action="session.revoked",
                    data={"session": session_id},
                    at=now,
                )
            return gone

    async def flash(self, session_id: int, message: str) -> None:
        """Keep a message for the session's next page."""
        async with self._db.transaction() as session:
            row = await session.get(WebSession, session_id)
            if row is not None:
                row.flashes = [*row.flashes, message[:500]][-_MAX_FLASHES:]

    async def take_flashes(self, session_id: int) -> list[str]:
        """The messages kept for this page, forgotten once read."""
        async with self._db.reading() as session:
            row = await session.get(WebSession, session_id)
            if row is None or not row.flashes:
                return []
        async with self._db.transaction() as session:
            row = await session.get(WebSession, session_id)
            if row is None:
                return []
            messages, row.flashes = list(row.flashes), []
            return messages

    async def set_challenge(self, session_id: int, challenge: bytes) -> None:
        """Keep the WebAuthn challenge given to this session's browser."""
        async with self._db.transaction() as session:
            await session.execute(
                update(WebSession).where(WebSession.id == session_id).values(challenge=challenge)
            )

    async def take_challenge(self, session_id: int) -> bytes | None:
        """The session's WebAuthn challenge, forgotten at once (each is answered once)."""
        async with self._db.transaction() as session:
            row = await session.get(WebSession, session_id, with_for_update=True)
            if row is None:
                return None
            challenge, row.challenge = row.challenge, None
            return challenge

    async def record(
        self, actor: str, action: str, data: Mapping[str, Any], *, now: datetime.datetime
    ) -> None:
        """Append an entry to the audit log (a failed sign-in, a refused request...)."""
        async with self._db.transaction() as session:
            await audit.append(session, actor=actor, action=action, data=data, at=now)
