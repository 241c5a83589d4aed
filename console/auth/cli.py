"""``deskside-console user | apitoken``: technicians' accounts and API tokens."""

from __future__ import annotations

import datetime
import secrets
import sys
from collections.abc import Sequence

import click

from deskside.console.auth.identity import SCOPES
from deskside.console.auth.schemas import Role
from deskside.console.clitools import (
    Context,
    duration,
    pass_context,
)


@click.group()
def user() -> None:
    """Technician accounts."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role", type=click.Choice([r.value for r in Role]), default="technician", show_default=True
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_context
def user_add(ctx: Context, name: str, role: str, password_stdin: bool) -> None:
    """Add a technician; without --password-stdin a password is made and shown once."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else secrets.token_urlsafe(15)
    ctx.run(lambda store: store.accounts.add_user(name, password, role=Role(role)))
    click.echo(f"user {name} ({role}) added")
    if not password_stdin:
        click.echo(f"password: {password}   (shown this once)")


@click.group()
def apitoken() -> None:
    """API tokens for ticket systems and scripts."""


@apitoken.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(sorted(SCOPES)),
    help="What the token may do; repeat for several.",
)
@click.option(
    "--ttl", type=duration, default=None, help="Expires after (e.g. 90d); never if not given."
)
@pass_context
def apitoken_create(
    ctx: Context, name: str, scopes: Sequence[str], ttl: datetime.timedelta | None
) -> None:
    """Create an API token; it is shown this once."""
    created = ctx.run(lambda store: store.accounts.create_api_token(name, scopes, ttl=ttl))
    click.echo(created.token)
    click.echo(f"(scopes: {', '.join(created.scopes)})", err=True)
