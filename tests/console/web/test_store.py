"""Sessions and second factors in the database (SQLite and PostgreSQL), the clock
passed in."""

from __future__ import annotations

import datetime

import pyotp
from sqlalchemy import select, update

from deskside.console.auth.models import RecoveryCode, User, WebSession
from deskside.console.auth.schemas import Role
from deskside.console.auth.sessions import SessionTimes, Stage
from deskside.console.db import utcnow
from deskside.console.store import Store

TIMES = SessionTimes(idle=datetime.timedelta(hours=1), absolute=datetime.timedelta(hours=12))
MINUTE = datetime.timedelta(minutes=1)
STEP = datetime.timedelta(seconds=30)  # TOTP's


async def _user(store: Store, name: str = "alice") -> str:
    await store.accounts.add_user(name, "a password long enough", role=Role.TECHNICIAN)
    return name


async def _session(
    store: Store, name: str, now: datetime.datetime, stage: str = Stage.SIGNED_IN
) -> str:
    return await store.sessions.create(
        name, stage, times=TIMES, address="192.0.2.7", user_agent="Test/1", now=now
    )


async def test_only_a_hash_of_the_session_id_is_stored(store: Store) -> None:
    name = await _user(store)
    token = await _session(store, name, utcnow())
    async with store.db.reading() as session:
        (row,) = (await session.execute(select(WebSession))).scalars()
    assert len(token) >= 43
    assert token.encode() not in row.token_hash
    assert row.token_hash != token.encode()


async def test_idle_and_absolute_time_outs(store: Store) -> None:
    name = await _user(store)
    start = utcnow()
    token = await _session(store, name, start)
    now = start
    for _ in range(11):  # used every 59 minutes: alive until the absolute time-out
        now += 59 * MINUTE
        assert await store.sessions.find(token, times=TIMES, now=now) is not None
    assert await store.sessions.find(token, times=TIMES, now=start + 12 * 60 * MINUTE) is None
    idle = await _session(store, name, start)
    assert await store.sessions.find(idle, times=TIMES, now=start + 59 * MINUTE) is not None
    later = start + 59 * MINUTE + 60 * MINUTE
    assert await store.sessions.find(idle, times=TIMES, now=later) is None
    # Gone for good, not only refused at that time.
    assert await store.sessions.find(idle, times=TIMES, now=start) is None


async def test_a_live_streams_lookups_do_not_keep_a_session_alive(store: Store) -> None:
    name = await _user(store)
    start = utcnow()
    token = await _session(store, name, start)
    for minutes in range(10, 60, 10):
        found = await store.sessions.find(
            token, times=TIMES, now=start + minutes * MINUTE, touch=False
        )
        assert found is not None
    assert await store.sessions.find(token, times=TIMES, now=start + 61 * MINUTE) is None


async def test_a_pending_sign_in_lasts_minutes_and_rotation_changes_the_id(store: Store) -> None:
    name = await _user(store)
    start = utcnow()
    pending = await _session(store, name, start, Stage.SECOND_FACTOR)
    found = await store.sessions.find(pending, times=TIMES, now=start)
    assert found is not None
    assert found.stage == Stage.SECOND_FACTOR
    rotated = await store.sessions.rotate(pending, Stage.SIGNED_IN, times=TIMES, now=start)
    assert rotated is not None
    assert rotated != pending
    assert await store.sessions.find(pending, times=TIMES, now=start) is None
    signed = await store.sessions.find(rotated, times=TIMES, now=start)
    assert signed is not None
    assert signed.stage == Stage.SIGNED_IN
    assert signed.expires_at == start + TIMES.absolute
    stale = await _session(store, name, start, Stage.SECOND_FACTOR)
    assert await store.sessions.find(stale, times=TIMES, now=start + 11 * MINUTE) is None


async def test_a_disabled_users_sessions_end(store: Store) -> None:
    name = await _user(store)
    token = await _session(store, name, utcnow())
    async with store.db.transaction() as session:
        await session.execute(update(User).where(User.username == name).values(disabled=True))
    assert await store.sessions.find(token, times=TIMES, now=utcnow()) is None


async def test_totp_steps_are_spent_once_and_in_order(store: Store) -> None:
    name = await _user(store)
    now = utcnow()
    secret = await store.factors.begin_totp(name, now=now)
    assert await store.factors.begin_totp(name, now=now) == secret  # until confirmed
    totp = pyotp.TOTP(secret)
    wrong = next(
        c for c in ("000000", "111111") if c not in {totp.at(now + k * STEP) for k in (-1, 0, 1)}
    )
    assert await store.factors.confirm_totp(name, wrong, now=now) is None
    codes = await store.factors.confirm_totp(name, totp.at(now - STEP), now=now)
    assert codes is not None
    assert len(set(codes)) == 10
    assert await store.factors.has_second_factor(name)
    current = totp.at(now)
    assert await store.factors.verify_totp(name, current, now=now)
    assert not await store.factors.verify_totp(name, current, now=now)  # used
    assert not await store.factors.verify_totp(name, totp.at(now - STEP), now=now)
    assert await store.factors.verify_totp(name, totp.at(now + STEP), now=now)
    assert not await store.factors.verify_totp(name, totp.at(now + 2 * MINUTE), now=now)
    assert not await store.factors.verify_totp(name, "12345", now=now)
    assert not await store.factors.verify_totp("nobody", current, now=now)


async def test_recovery_codes_are_hashed_and_single_use(store: Store) -> None:
    name = await _user(store)
    now = utcnow()
    totp = pyotp.TOTP(await store.factors.begin_totp(name, now=now))
    codes = await store.factors.confirm_totp(name, totp.at(now), now=now)
    assert codes is not None
    async with store.db.reading() as session:
        stored = [row.code_hash for row in (await session.execute(select(RecoveryCode))).scalars()]
    assert all(code.encode() not in hashed for code in codes for hashed in stored)
    assert await store.factors.use_recovery_code(name, codes[0], now=now)
    assert not await store.factors.use_recovery_code(name, codes[0], now=now)
    assert await store.factors.use_recovery_code(name, codes[1].replace("-", " ").upper(), now=now)
    assert await store.factors.recovery_codes_left(name) == 8
    other = await _user(store, "bob")
    assert not await store.factors.use_recovery_code(other, codes[2], now=now)
