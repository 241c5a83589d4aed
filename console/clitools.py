"""What every ``deskside-console`` command shares: the data directory, errors, tables.

Commands other than ``serve`` work on the data directory's database directly
(SQLite in the directory, or the PostgreSQL its configuration names), so they
work on the console's machine whether the server runs or not.
"""

from __future__ import annotations

import asyncio
import datetime
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from deskside.protocol.errors import DesksideError

from .config import ConsoleConfig
from .db import migrate
from .store import Store
from .tickets.policy import parse_duration

__all__ = ["LEVELS", "Context", "Group", "duration", "mint_token", "pass_context", "table", "when"]

T = TypeVar("T")

LEVELS = {"high": 1, "medium": 2, "low": 3}

# The umask commands run under: nothing for group and others.
PRIVATE_UMASK = 0o077


class Context:
    """What every command needs: where the data directory is."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def config(self) -> ConsoleConfig:
        return ConsoleConfig.load(self.data_dir)

    def run(self, work: Callable[[Store], Awaitable[T]]) -> T:
        """Migrate the database, then run ``work`` with a store on it."""
        config = self.config()
        migrate(config.database)

        async def go() -> T:
            store = Store.connect(config.database, config.policy, data_dir=config.data_dir)
            try:
                return await work(store)
            finally:
                await store.close()

        return asyncio.run(go())


pass_context = click.make_pass_decorator(Context)


class Group(click.Group):
    """Turns Deskside's errors into a clear message and exit code 1, and runs commands
    under umask 077: what the console creates (the database and its -wal and -shm,
    the wheel it serves, logs) is its user's alone, whatever the caller's umask."""

    def invoke(self, ctx: click.Context) -> Any:
        umask = os.umask(PRIVATE_UMASK)
        try:
            return super().invoke(ctx)
        except DesksideError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            os.umask(umask)


def duration(text: str) -> datetime.timedelta:
    try:
        return parse_duration(text)
    except DesksideError as exc:
        raise click.BadParameter(str(exc)) from exc


def when(value: datetime.datetime | None) -> str:
    """A time as the CLI shows it (UTC, to the second), or "-"."""
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def mint_token(
    ctx: Context, username: str | None, scopes: list[str], ttl: datetime.timedelta
) -> Any:
    """A short-lived API token acting for the technician (the CLI's user is the admin)."""
    import getpass

    name = username or getpass.getuser()
    if not ctx.run(lambda store: store.accounts.user_exists(name)):
        raise click.UsageError(f"no technician named {name!r}; say who you are with --as NAME")
    return ctx.run(
        lambda store: store.accounts.create_api_token(
            f"cli-{name}", scopes, ttl=ttl, username=name, actor=f"cli:{getpass.getuser()}"
        )
    )
