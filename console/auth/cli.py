"""``deskside-console user | group | apitoken``: technicians' accounts, their groups, API
tokens."""

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
@click.option(
    "--user",
    "username",
    default=None,
    help="The technician it acts for, with their rights [default: a service token].",
)
@pass_context
def apitoken_create(
    ctx: Context,
    name: str,
    scopes: Sequence[str],
    ttl: datetime.timedelta | None,
    username: str | None,
) -> None:
    """Create an API token; it is shown this once.

    A service token (a ticket system's) acts for no technician: with a scope, it may
    act on every device. A technician's token (--user) has their rights too.
    """
    created = ctx.run(
        lambda store: store.accounts.create_api_token(name, scopes, ttl=ttl, username=username)
    )
    click.echo(created.token)
    click.echo(f"(scopes: {', '.join(created.scopes)})", err=True)


@click.group()
def group() -> None:
    """Technicians' groups, and the device groups their members may act on.

    A device's group is the --group of the enrollment token it enrolled with. A
    member of a group with rights on it may act on the device through any of its
    open tickets.
    """


@group.command("add")
@click.argument("name")
@pass_context
def group_add(ctx: Context, name: str) -> None:
    """Add an empty group."""
    ctx.run(lambda store: store.groups.add_group(name, actor=_actor()))
    click.echo(f"group {name} added")


@group.command("delete")
@click.argument("name")
@pass_context
def group_delete(ctx: Context, name: str) -> None:
    """Delete a group (its members keep their accounts)."""
    ctx.run(lambda store: store.groups.delete_group(name, actor=_actor()))
    click.echo(f"group {name} deleted")


@group.command("change")
@click.argument("name")
@click.option("--add-member", multiple=True, help="A technician to add; repeat for several.")
@click.option("--remove-member", multiple=True, help="A technician to remove.")
@click.option("--add-devices", multiple=True, help="A device group its members may act on.")
@click.option("--remove-devices", multiple=True, help="A device group to take away.")
@pass_context
def group_change(
    ctx: Context,
    name: str,
    add_member: tuple[str, ...],
    remove_member: tuple[str, ...],
    add_devices: tuple[str, ...],
    remove_devices: tuple[str, ...],
) -> None:
    """Change a group's members and device groups, all at once."""
    view = ctx.run(
        lambda store: store.groups.change_group(
            name,
            actor=_actor(),
            add_members=add_member,
            remove_members=remove_member,
            add_device_groups=add_devices,
            remove_device_groups=remove_devices,
        )
    )
    _show(view.name, view.members, view.device_groups)


@group.command("list")
@pass_context
def group_list(ctx: Context) -> None:
    """Every group, its members and its device groups."""
    for view in ctx.run(lambda store: store.groups.groups()):
        _show(view.name, view.members, view.device_groups)


def _show(name: str, members: Sequence[str], device_groups: Sequence[str]) -> None:
    click.echo(
        f"{name}: members {', '.join(members) or '-'}; devices of {', '.join(device_groups) or '-'}"
    )


def _actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"
