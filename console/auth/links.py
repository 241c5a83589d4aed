"""Viewer links: one capability on one ticket's screen, for one technician, briefly.

A link (``dsv_...``, in the viewer page's URL fragment) is not an API token: it
carries no API scope, so every REST route refuses it, and it grants only
``LinkCapability.VIEW`` or ``CONTROL`` of the screen of its ticket's device (through
``auth/access.py``, with its technician's rights checked there as for any other
action), or ``REPLAY`` of one recording. It must be opened within its time to live
(minutes); the first screen session it opens is bound to it, another viewer of that
session (a reloaded page) may use it while the session lasts, and once the session
ends the link is spent.
"""

from __future__ import annotations

import datetime
import hmac
import secrets
from typing import Final

from sqlalchemy import bindparam, select, update

from deskside.console.audit import chain as audit
from deskside.console.db import Database, utcnow
from deskside.console.errors import InvalidRequest, NotFound, Unauthorized

from .identity import ApiIdentity, LinkCapability, ViewerGrant, hash_secret
from .models import User, ViewerLink
from .schemas import ViewerLinkCreated

__all__ = ["LINK_PREFIX", "MAX_LINK_TTL", "ViewerLinks"]

LINK_PREFIX: Final = "dsv_"
# The longest a link may wait to be opened.
MAX_LINK_TTL: Final = datetime.timedelta(hours=1)


class ViewerLinks:
    """Viewer links: made by an admin's CLI, checked on every use."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_link(
        self,
        username: str,
        ticket_id: int,
        capability: LinkCapability,
        *,
        ttl: datetime.timedelta,
        actor: str,
        screen_session: str | None = None,
    ) -> ViewerLinkCreated:
        """A link for ``username``; ``screen_session`` is the recording of a replay."""
        if not datetime.timedelta(0) < ttl <= MAX_LINK_TTL:
            raise InvalidRequest("a viewer link lives up to an hour")
        if (capability == LinkCapability.REPLAY) != (screen_session is not None):
            raise InvalidRequest("a replay link names its recording, and only it does")
        token = LINK_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        async with self._db.transaction() as session:
            if await session.scalar(select(User.id).where(User.username == username)) is None:
                raise NotFound(f"no technician named {username!r}")
            row = ViewerLink(
                token_hash=hash_secret(token),
                username=username,
                ticket_id=ticket_id,
                capability=str(capability),
                screen_session=screen_session,
                created_by=actor,
                created_at=now,
                expires_at=now + ttl,
            )
            session.add(row)
            await session.flush()
            await audit.append(
                session,
                actor=actor,
                action="viewerlink.created",
                data={
                    "id": row.id,
                    "user": username,
                    "ticket": ticket_id,
                    "capability": str(capability),
                    "expires_at": row.expires_at.isoformat(),
                },
                at=now,
            )
            return ViewerLinkCreated(id=row.id, token=token, expires_at=row.expires_at)

    async def authenticate(self, token: str) -> ApiIdentity:
        """Who holds this link, and what it grants; ``Unauthorized`` if it is unknown,
        expired, or its session has ended."""
        digest = hash_secret(token)
        row = await self._db.run(
            lambda c: c.execute(_LINK, {"digest": digest}).one_or_none(), read_only=True
        )
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise Unauthorized("invalid viewer link")
        if row.ended_at is not None:
            raise Unauthorized("this viewer link's session has ended; ask for a new link")
        bound = row.screen_session is not None and row.capability != LinkCapability.REPLAY
        if not bound and row.expires_at <= utcnow():
            raise Unauthorized("this viewer link has expired; ask for a new link")
        if row.user is None or row.disabled:
            raise Unauthorized("the technician of this viewer link is disabled")
        return ApiIdentity(
            actor=f"user:{row.user}",
            scopes=frozenset(),
            username=row.user,
            role=row.role,
            grant=ViewerGrant(
                link_id=row.id,
                ticket_id=row.ticket_id,
                capability=LinkCapability(row.capability),
                screen_session=row.screen_session,
            ),
        )

    async def bind(self, link_id: int, screen_session: str) -> bool:
        """Bind an unbound link to the screen session it opened; False if it was bound
        already (to another one: the caller refuses)."""
        async with self._db.transaction() as session:
            done = await session.execute(
                update(ViewerLink)
                .where(ViewerLink.id == link_id, ViewerLink.screen_session.is_(None))
                .values(screen_session=screen_session)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def end(self, link_id: int) -> None:
        """The screen session the link opened ended: the link is spent."""
        async with self._db.transaction() as session:
            await session.execute(
                update(ViewerLink)
                .where(ViewerLink.id == link_id, ViewerLink.ended_at.is_(None))
                .values(ended_at=utcnow())
            )


_LINK: Final = (
    select(
        ViewerLink.id,
        ViewerLink.token_hash,
        ViewerLink.ticket_id,
        ViewerLink.capability,
        ViewerLink.screen_session,
        ViewerLink.expires_at,
        ViewerLink.ended_at,
        User.username.label("user"),
        User.disabled,
        User.role,
    )
    .outerjoin(User, User.username == ViewerLink.username)
    .where(ViewerLink.token_hash == bindparam("digest"))
)
