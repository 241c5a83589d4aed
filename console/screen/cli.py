"""``deskside-console screen``: a link to the screen viewer for a ticket."""

from __future__ import annotations

import datetime

import click

from deskside.console.clitools import (
    Context,
    duration,
    mint_token,
    pass_context,
)


@click.command()
@click.option("--ticket", "ticket_id", type=click.IntRange(1, 2**31 - 1), default=None)
@click.option("--replay", "session_id", default=None, help="A recorded session to play back.")
@click.option("--as", "username", default=None, help="The technician [default: your login name].")
@click.option("--ttl", type=duration, default="2h", show_default=True, help="The link works for.")
@click.option("--record", is_flag=True, help="Record the session (the user is told).")
@pass_context
def screen(
    ctx: Context,
    ticket_id: int | None,
    session_id: str | None,
    username: str | None,
    ttl: datetime.timedelta,
    record: bool,
) -> None:
    """Print a link to view a ticket's device's screen (or to replay a recording).

    The link carries a new API token for the technician, valid for --ttl, in its
    fragment (never sent to a server). The device's user is asked when it opens.
    """
    if (ticket_id is None) == (session_id is None):
        raise click.UsageError("give --ticket N, or --replay SESSION")
    config = ctx.config()
    scopes = ["tickets:read"] if session_id is not None else ["commands:run", "tickets:read"]
    created = mint_token(ctx, username, scopes, ttl)
    base = config.agent_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    base = base.removesuffix("/agent")
    if session_id is not None:
        click.echo(f"{base}/viewer/replay.html#session={session_id}&token={created.token}")
    else:
        extra = "&record=1" if record else ""
        click.echo(f"{base}/viewer/screen.html#ticket={ticket_id}&token={created.token}{extra}")
