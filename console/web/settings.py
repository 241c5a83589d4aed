"""The web console's settings: the ``[web]`` table of ``console.toml``::

    [web]
    idle = "1h"                     # a session unused this long ends
    absolute = "12h"                # a session ends this long after sign-in, however used
    require_second_factor = false   # true: everyone signs in with a second factor
    signin_failures_per_account = 10   # failed sign-ins a window allows, per account
    signin_failures_per_address = 30   # ... and per client address
    signin_window = "15m"

Why these defaults: a technician steps away for a call or a meeting and should find
the console still signed in, but a session left open on an unattended desk should
not outlive a lunch break: one hour idle. Twelve hours absolute is one working day
with its overtime: a sign-in a day, and a stolen cookie is worth a day at most.
Ten failures per account in fifteen minutes stop password guessing (a few hundred
guesses a day) and leave the owner room for typos; the per-address limit, higher
because offices share an address behind NAT, stops one client from trying many
accounts. Limits count failures only: signing in successfully is never slowed.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from deskside.protocol.errors import ConfigError

__all__ = ["WebSettings", "parse_duration"]

_DURATION: Final = re.compile(r"^\s*(\d{1,6})\s*([smhd])\s*$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, name: str) -> datetime.timedelta:
    """``"90s"``, ``"30m"``, ``"1h"``, ``"7d"``; ``ConfigError`` otherwise."""
    match = _DURATION.match(text)
    if match is None or int(match[1]) == 0:
        raise ConfigError(f'{name} must be a duration such as "30m", "1h" or "12h"')
    return datetime.timedelta(seconds=int(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    """The ``[web]`` table (every key optional)."""

    idle: datetime.timedelta = datetime.timedelta(hours=1)
    """A session unused this long ends."""

    absolute: datetime.timedelta = datetime.timedelta(hours=12)
    """A session ends this long after its sign-in, however active."""

    require_second_factor: bool = False
    """Everyone signs in with a second factor; users without one enrol right after
    their password."""

    signin_failures_per_account: int = 10
    """Failed sign-ins (password or code) an account may have in ``signin_window``."""

    signin_failures_per_address: int = 30
    """Failed sign-ins one client address may have in ``signin_window``."""

    signin_window: datetime.timedelta = datetime.timedelta(minutes=15)
    """The window the failures are counted in."""

    @classmethod
    def from_toml(cls, data: Mapping[str, object]) -> WebSettings:
        """Read the ``[web]`` table of ``console.toml``."""
        table = data.get("web", {})
        if not isinstance(table, Mapping):
            raise ConfigError("[web] must be a table")
        values: dict[str, object] = {}
        for key, value in table.items():
            if key in ("idle", "absolute", "signin_window"):
                if not isinstance(value, str):
                    raise ConfigError(f'web.{key} must be a duration such as "1h"')
                values[key] = parse_duration(value, f"web.{key}")
            elif key == "require_second_factor":
                if not isinstance(value, bool):
                    raise ConfigError("web.require_second_factor must be true or false")
                values[key] = value
            elif key in ("signin_failures_per_account", "signin_failures_per_address"):
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**6:
                    raise ConfigError(f"web.{key} must be a whole number from 1")
                values[key] = value
            else:
                raise ConfigError(f"unknown setting web.{key}")
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.idle > settings.absolute:
            raise ConfigError("web.idle must not be longer than web.absolute")
        return settings
