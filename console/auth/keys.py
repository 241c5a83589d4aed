"""Security keys and passkeys (WebAuthn, py_webauthn) as a second factor.

Registration and sign-in are each one challenge and one answer: the console makes
a random challenge, keeps it on the browser's session (``sessions.set_challenge``,
taken once), and verifies the authenticator's answer against it, the console's
origin and its relying-party id (the host name browsers reach it by). The
signature counter is kept and must grow where the authenticator counts (a cloned
key would repeat a count); passkeys that always say 0 are accepted as they are.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Final

import msgspec
import webauthn
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from deskside.console.audit import chain as audit
from deskside.console.db import Database

from .models import WebAuthnKey

__all__ = ["KeyRefused", "KeyView", "RelyingParty", "WebAuthnKeys", "parse_answer"]

RP_NAME: Final = "Deskside"
MAX_KEYS: Final = 16


class KeyRefused(Exception):
    """An authenticator's answer did not verify (the reason, for the log)."""


class RelyingParty(msgspec.Struct, frozen=True):
    """Who the console is to authenticators: its host name and its origin."""

    rp_id: str
    origin: str


class KeyView(msgspec.Struct, frozen=True, kw_only=True):
    """A user's key as their account page lists it."""

    id: int
    name: str
    created_at: datetime.datetime
    last_used_at: datetime.datetime | None


class WebAuthnKeys:
    """Users' WebAuthn credentials."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def keys(self, username: str) -> list[KeyView]:
        """The user's keys, oldest first."""
        async with self._db.reading() as session:
            rows = (
                await session.execute(
                    select(WebAuthnKey)
                    .where(WebAuthnKey.username == username)
                    .order_by(WebAuthnKey.id)
                )
            ).scalars()
            return [
                KeyView(id=r.id, name=r.name, created_at=r.created_at, last_used_at=r.last_used_at)
                for r in rows
            ]

    async def registration_options(self, username: str, rp: RelyingParty) -> tuple[bytes, str]:
        """A new key's challenge and the options for ``navigator.credentials.create``."""
        known = await self._descriptors(username)
        if len(known) >= MAX_KEYS:
            raise KeyRefused(f"at most {MAX_KEYS} keys per user")
        options = webauthn.generate_registration_options(
            rp_id=rp.rp_id,
            rp_name=RP_NAME,
            user_name=username,
            user_id=username.encode(),
            exclude_credentials=known,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
        )
        return options.challenge, webauthn.options_to_json(options)

    async def register(
        self,
        username: str,
        answer: dict[str, Any],
        name: str,
        *,
        challenge: bytes,
        rp: RelyingParty,
        now: datetime.datetime,
    ) -> None:
        """Verify a new key's answer and keep its public key; ``KeyRefused`` if it fails."""
        try:
            verified = webauthn.verify_registration_response(
                credential=answer,
                expected_challenge=challenge,
                expected_rp_id=rp.rp_id,
                expected_origin=rp.origin,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise KeyRefused(str(exc)[:200]) from exc
        try:
            async with self._db.transaction() as session:
                session.add(
                    WebAuthnKey(
                        username=username,
                        credential_id=verified.credential_id,
                        public_key=verified.credential_public_key,
                        sign_count=verified.sign_count,
                        name=name or "Security key",
                        created_at=now,
                    )
                )
                await session.flush()
                await audit.append(
                    session,
                    actor=f"user:{username}",
                    action="webauthn.registered",
                    data={"name": name},
                    at=now,
                )
        except IntegrityError as exc:
            raise KeyRefused("this key is registered already") from exc

    async def authentication_options(self, username: str, rp: RelyingParty) -> tuple[bytes, str]:
        """A sign-in's challenge and the options for ``navigator.credentials.get``."""
        options = webauthn.generate_authentication_options(
            rp_id=rp.rp_id,
            allow_credentials=await self._descriptors(username),
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        return options.challenge, webauthn.options_to_json(options)

    async def authenticate(
        self,
        username: str,
        answer: dict[str, Any],
        *,
        challenge: bytes,
        rp: RelyingParty,
        now: datetime.datetime,
    ) -> None:
        """Verify a sign-in's answer by one of the user's keys; ``KeyRefused`` if not."""
        raw_id = answer.get("rawId") if isinstance(answer, dict) else None
        if not isinstance(raw_id, str) or len(raw_id) > 2048:
            raise KeyRefused("no credential id")
        try:
            credential_id = webauthn.base64url_to_bytes(raw_id)
        except ValueError as exc:
            raise KeyRefused("a malformed credential id") from exc
        async with self._db.reading() as session:
            key = (
                await session.execute(
                    select(WebAuthnKey).where(
                        WebAuthnKey.credential_id == credential_id,
                        WebAuthnKey.username == username,
                    )
                )
            ).scalar_one_or_none()
        if key is None:
            raise KeyRefused("not one of this user's keys")
        try:
            verified = webauthn.verify_authentication_response(
                credential=answer,
                expected_challenge=challenge,
                expected_rp_id=rp.rp_id,
                expected_origin=rp.origin,
                credential_public_key=key.public_key,
                credential_current_sign_count=key.sign_count,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise KeyRefused(str(exc)[:200]) from exc
        async with self._db.transaction() as session:
            await session.execute(
                update(WebAuthnKey)
                .where(WebAuthnKey.id == key.id)
                .values(sign_count=verified.new_sign_count, last_used_at=now)
            )

    async def _descriptors(self, username: str) -> list[PublicKeyCredentialDescriptor]:
        async with self._db.reading() as session:
            ids = (
                await session.execute(
                    select(WebAuthnKey.credential_id).where(WebAuthnKey.username == username)
                )
            ).scalars()
            return [PublicKeyCredentialDescriptor(id=i) for i in ids]


def parse_answer(body: bytes) -> dict[str, Any]:
    """A browser's JSON answer (``PublicKeyCredential.toJSON()``); ``KeyRefused`` if not."""
    if len(body) > 64 * 1024:
        raise KeyRefused("the answer is too large")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyRefused("the answer is not JSON") from exc
    if not isinstance(value, dict):
        raise KeyRefused("the answer is not an object")
    return value
