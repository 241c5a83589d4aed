"""Viewer links and groups on a real database: what a link grants, and when it stops."""

from __future__ import annotations

import datetime

import pytest
from sqlalchemy import update

from deskside.console.auth.identity import LinkCapability
from deskside.console.auth.models import User
from deskside.console.auth.schemas import Role
from deskside.console.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource
from deskside.console.tickets.schemas import NewTicket

MINUTES = datetime.timedelta(minutes=10)


async def scene(store: Store) -> int:
    await store.accounts.add_user("alice", "a long password!", role=Role.TECHNICIAN)
    ticket, _ = await store.tickets.create_ticket(
        NewTicket(title="t", description="d"), actor="t", source=TicketSource.CLI
    )
    return ticket.id


async def test_a_link_is_its_technician_with_one_grant_and_no_scope(store: Store) -> None:
    ticket = await scene(store)
    created = await store.accounts.links.create_link(
        "alice", ticket, LinkCapability.VIEW, ttl=MINUTES, actor="cli:root"
    )
    assert created.token.startswith("dsv_")
    assert len(created.token) == 4 + 43  # 32 random bytes
    identity = await store.accounts.authenticate_api_token(created.token)
    assert (identity.actor, identity.username, identity.role) == (
        "user:alice",
        "alice",
        "technician",
    )
    assert identity.scopes == frozenset()
    assert identity.grant is not None
    assert (identity.grant.ticket_id, identity.grant.capability) == (ticket, LinkCapability.VIEW)
    (audit,) = await store.audit.log(limit=1)
    assert (audit.action, audit.actor, audit.data["capability"]) == (
        "viewerlink.created",
        "cli:root",
        "view",
    )
    assert created.token not in str(audit.data)  # no secret in the log


async def test_a_link_binds_to_one_session_and_is_spent_when_it_ends(store: Store) -> None:
    ticket = await scene(store)
    created = await store.accounts.links.create_link(
        "alice", ticket, LinkCapability.CONTROL, ttl=MINUTES, actor="t"
    )
    links = store.accounts.links
    assert await links.bind(created.id, "s1")
    assert not await links.bind(created.id, "s2")  # raced, or used again: refused
    identity = await store.accounts.authenticate_api_token(created.token)
    assert identity.grant is not None
    assert identity.grant.screen_session == "s1"
    await links.end(created.id)
    with pytest.raises(Unauthorized, match="session has ended"):
        await store.accounts.authenticate_api_token(created.token)


async def test_a_link_must_be_opened_in_time_and_lives_an_hour_at_most(store: Store) -> None:
    ticket = await scene(store)
    links = store.accounts.links
    for ttl in (datetime.timedelta(hours=2), datetime.timedelta(0)):
        with pytest.raises(InvalidRequest, match="up to an hour"):
            await links.create_link("alice", ticket, LinkCapability.VIEW, ttl=ttl, actor="t")
    with pytest.raises(InvalidRequest, match="replay link names its recording"):
        await links.create_link("alice", ticket, LinkCapability.REPLAY, ttl=MINUTES, actor="t")
    with pytest.raises(NotFound, match="no technician named 'mallory'"):
        await links.create_link("mallory", ticket, LinkCapability.VIEW, ttl=MINUTES, actor="t")
    short = await links.create_link(
        "alice", ticket, LinkCapability.VIEW, ttl=datetime.timedelta(microseconds=1), actor="t"
    )
    with pytest.raises(Unauthorized, match="has expired"):
        await store.accounts.authenticate_api_token(short.token)
    with pytest.raises(Unauthorized, match="invalid viewer link"):
        await store.accounts.authenticate_api_token("dsv_" + "x" * 43)


async def test_groups_members_and_device_groups(store: Store) -> None:
    await scene(store)
    groups = store.groups
    await groups.add_group("desk", actor="t")
    with pytest.raises(Conflict):
        await groups.add_group("desk", actor="t")
    with pytest.raises(InvalidRequest):
        await groups.add_group(" padded", actor="t")
    with pytest.raises(NotFound, match="no user 'mallory'"):
        await groups.change_group("desk", actor="t", add_members=("mallory",))
    view = await groups.change_group(
        "desk", actor="t", add_members=("alice", "alice"), add_device_groups=("sales", "lab")
    )
    assert (view.members, view.device_groups) == (["alice"], ["lab", "sales"])
    view = await groups.change_group("desk", actor="t", remove_device_groups=("lab",))
    assert view.device_groups == ["sales"]
    await groups.delete_group("desk", actor="t")
    assert await groups.groups() == []
    with pytest.raises(NotFound):
        await groups.groups("desk")
    actions = [e.action for e in await store.audit.log(limit=10)]
    assert actions[:4] == ["group.deleted", "group.changed", "group.changed", "group.added"]


async def test_a_bound_link_outlives_its_opening_time_but_a_replay_link_does_not(
    store: Store,
) -> None:
    ticket = await scene(store)
    links = store.accounts.links
    instant = datetime.timedelta(microseconds=1)
    live = await links.create_link("alice", ticket, LinkCapability.VIEW, ttl=instant, actor="t")
    assert await links.bind(live.id, "s1")  # opened in time (as the screen route does)
    identity = await store.accounts.authenticate_api_token(live.token)
    assert identity.grant is not None
    replay = await links.create_link(
        "alice", ticket, LinkCapability.REPLAY, ttl=instant, actor="t", screen_session="s1"
    )
    with pytest.raises(Unauthorized, match="has expired"):
        await store.accounts.authenticate_api_token(replay.token)


async def test_a_disabled_technicians_link_is_refused(store: Store) -> None:
    ticket = await scene(store)
    created = await store.accounts.links.create_link(
        "alice", ticket, LinkCapability.VIEW, ttl=MINUTES, actor="t"
    )
    await store.db.run(lambda conn: conn.execute(update(User).values(disabled=True)))
    with pytest.raises(Unauthorized, match="disabled"):
        await store.accounts.authenticate_api_token(created.token)
