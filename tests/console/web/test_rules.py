"""The web console's rules without a server: the sign-in limiter (time passed in), the
[web] settings, where a sign-in may lead, and the roles' table."""

from __future__ import annotations

import datetime

import pytest

from deskside.console.auth.identity import Scope
from deskside.console.auth.roles import ROLE_PERMISSIONS, Permission, permitted, scope_permitted
from deskside.console.auth.schemas import Role
from deskside.console.web.forms import safe_next
from deskside.console.web.limiter import SignInLimiter
from deskside.console.web.settings import WebSettings
from deskside.protocol.errors import ConfigError


def test_the_limiter_counts_failures_per_account_and_per_address() -> None:
    limiter = SignInLimiter(per_account=3, per_address=5, window=60.0)
    for t in range(3):
        assert limiter.retry_after("alice", "10.0.0.1", float(t)) == 0
        limiter.failed("alice", "10.0.0.1", float(t))
    assert limiter.retry_after("alice", "10.0.0.9", 3.0) == 57  # the account, anywhere
    assert limiter.retry_after("bob", "10.0.0.1", 3.0) == 0
    limiter.failed("bob", "10.0.0.1", 3.0)
    limiter.failed("carol", "10.0.0.1", 4.0)
    assert limiter.retry_after("dave", "10.0.0.1", 5.0) == 55  # the address, any account
    assert limiter.retry_after("dave", "10.0.0.2", 5.0) == 0
    assert limiter.retry_after("alice", "10.0.0.9", 59.5) == 1
    assert limiter.retry_after("alice", "10.0.0.9", 60.0) == 0  # the oldest left the window


def test_settings_read_durations_and_refuse_nonsense() -> None:
    settings = WebSettings.from_toml(
        {"web": {"idle": "30m", "absolute": "8h", "require_second_factor": True}}
    )
    assert settings.idle == datetime.timedelta(minutes=30)
    assert settings.absolute == datetime.timedelta(hours=8)
    assert settings.require_second_factor
    defaults = WebSettings.from_toml({})
    assert (defaults.idle, defaults.absolute) == (
        datetime.timedelta(hours=1),
        datetime.timedelta(hours=12),
    )
    for bad in (
        {"idle": 30},
        {"idle": "soon"},
        {"idle": "0m"},
        {"idle": "13h"},
        {"require_second_factor": "yes"},
        {"signin_failures_per_account": 0},
        {"signin_failures_per_address": True},
        {"colour": "blue"},
    ):
        with pytest.raises(ConfigError):
            WebSettings.from_toml({"web": bad})
    with pytest.raises(ConfigError):
        WebSettings.from_toml({"web": "on"})


@pytest.mark.parametrize(
    ("asked", "goes"),
    [
        ("/tickets/7", "/tickets/7"),
        ("/account/sessions?x=1", "/account/sessions?x=1"),
        ("//evil.example/", "/tickets"),
        ("/\\evil.example/", "/tickets"),
        ("https://evil.example/", "/tickets"),
        ("javascript:alert(1)", "/tickets"),
        ("/x\r\nSet-Cookie: a=b", "/tickets"),
        ("", "/tickets"),
        (None, "/tickets"),
    ],
)
def test_a_sign_in_leads_only_to_the_consoles_own_pages(asked: str | None, goes: str) -> None:
    assert safe_next(asked) == goes


def test_the_roles_table() -> None:
    assert ROLE_PERMISSIONS.keys() == set(Role)
    assert permitted("readonly", Permission.TICKETS_VIEW)
    assert not permitted("readonly", Permission.TICKETS_WORK)
    assert not permitted("readonly", Permission.DEVICES_ACT)
    assert permitted("technician", Permission.DEVICES_ACT)
    assert not permitted("technician", Permission.ADMIN)
    assert all(permitted("admin", p) for p in Permission)
    assert not permitted("superuser", Permission.TICKETS_VIEW)
    assert not permitted(None, Permission.TICKETS_VIEW)
    assert scope_permitted("readonly", Scope.TICKETS_READ)
    assert not scope_permitted("readonly", Scope.COMMANDS_RUN)
    assert scope_permitted(None, Scope.COMMANDS_RUN)  # a service token: its scopes decide
    assert not scope_permitted("superuser", Scope.TICKETS_READ)
