"""``webhooks:manage`` is an admin's scope: a technician's token never uses it."""

from __future__ import annotations

import pytest

from deskside.console.auth.guards import require
from deskside.console.auth.identity import ApiIdentity, Scope
from deskside.console.auth.schemas import Role
from deskside.console.errors import Forbidden, InvalidRequest
from deskside.console.store import Store

MANAGE = frozenset({str(Scope.WEBHOOKS_MANAGE)})


def test_a_technician_token_with_the_scope_is_refused() -> None:
    technician = ApiIdentity("user:tom", MANAGE, username="tom", role=Role.TECHNICIAN)
    with pytest.raises(Forbidden, match="admins"):
        require(technician, Scope.WEBHOOKS_MANAGE)
    require(ApiIdentity("user:ann", MANAGE, username="ann", role=Role.ADMIN), Scope.WEBHOOKS_MANAGE)
    require(ApiIdentity("api:rt", MANAGE), Scope.WEBHOOKS_MANAGE)  # a service token
    with pytest.raises(Forbidden, match="lacks"):
        require(ApiIdentity("api:rt", frozenset()), Scope.WEBHOOKS_MANAGE)


async def test_a_technician_cannot_be_given_the_scope(store: Store) -> None:
    await store.accounts.add_user("tom", "a-long-password-1", role=Role.TECHNICIAN)
    with pytest.raises(InvalidRequest, match="admins only"):
        await store.accounts.create_api_token("t", MANAGE, ttl=None, username="tom")
    await store.accounts.add_user("ann", "a-long-password-2", role=Role.ADMIN)
    await store.accounts.create_api_token("a", MANAGE, ttl=None, username="ann")
