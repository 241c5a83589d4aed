"""``deskside-console screen``: a viewer link to a ticket's screen, or to a recording."""

from __future__ import annotations

import datetime
import getpass
from typing import TYPE_CHECKING

import click

from deskside.console.auth.identity import LinkCapability
from deskside.console.auth.schemas import ViewerLinkCreated
from deskside.console.clitools import Context, duration, pass_context

if TYPE_CHECKING:
    from deskside.console.store import Store


@click.command()
@click.option("--ticket", "ticket_id", type=click.IntRange(1, 2**31 - 1), default=None)
@click.option("--replay", "session_id", default=None, help="A recorded session to play back.")
@click.option("--as", "username", default=None, help="The technician [default: your login name].")
@click.option(
    "--ttl",
    type=duration,
    default="10m",
    show_default=True,
    help="The link must be opened within this (1h at most).",
)
@click.option("--control", is_flag=True, help="The link may also ask the user for control.")
@click.option("--record", is_flag=True, help="Record the session (the user is told).")
@pass_context
def screen(
    ctx: Context,
    ticket_id: int | None,
    session_id: str | None,
    username: str | None,
    ttl: datetime.timedelta,
    control: bool,
    record: bool,
) -> None:
    """Print a link to view a ticket's device's screen (or to replay a recording).

    The link is good for that one thing only, for the technician (--as): view (or,
    with --control, view and ask for control) the ticket's screen, or play the
    recording back. It must be opened within --ttl; once the screen session it
    opened has ended it is spent. It travels in the URL's fragment, which browsers
    never send to a server. The device's user is asked when it opens.
    """
    if (ticket_id is None) == (session_id is None):
        raise click.UsageError("give --ticket N, or --replay SESSION")
    if session_id is not None and (control or record):
        raise click.UsageError("--control and --record are for a live screen, not --replay")
    name = username or getpass.getuser()
    actor = f"cli:{getpass.getuser()}"
    config = ctx.config()
    if session_id is not None:
        replayed = session_id
        created = ctx.run(lambda store: _replay_link(store, name, replayed, ttl=ttl, actor=actor))
    else:
        assert ticket_id is not None
        live = ticket_id
        capability = LinkCapability.CONTROL if control else LinkCapability.VIEW
        ctx.run(lambda store: _check_display(store, live))
        created = ctx.run(
            lambda store: store.accounts.links.create_link(
                name, live, capability, ttl=ttl, actor=actor
            )
        )
    base = config.agent_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    base = base.removesuffix("/agent")
    if session_id is not None:
        click.echo(f"{base}/viewer/replay.html#session={session_id}&token={created.token}")
    else:
        extra = "&record=1" if record else ""
        click.echo(f"{base}/viewer/screen.html#ticket={ticket_id}&token={created.token}{extra}")
    click.echo(f"(open it by {created.expires_at:%Y-%m-%d %H:%M:%S} UTC)", err=True)


async def _replay_link(
    store: Store, username: str, session_id: str, *, ttl: datetime.timedelta, actor: str
) -> ViewerLinkCreated:
    ticket_id = await store.screens.recording_ticket(session_id)
    return await store.accounts.links.create_link(
        username,
        ticket_id,
        LinkCapability.REPLAY,
        ttl=ttl,
        actor=actor,
        screen_session=session_id,
    )


async def _check_display(store: Store, ticket_id: int) -> None:
    """Say so before printing a link whose page could only answer "no display"."""
    device_id = (await store.tickets.ticket(ticket_id)).device_id
    if device_id is None:
        return  # the viewer names the device; the console's rules say the rest
    device = await store.devices.get_device(device_id)
    if device.display is False:
        raise click.ClickException(
            f"no display: device {device.hostname or device.id} of ticket #{ticket_id} "
            "reported none when its agent connected, so there is no screen to view "
            "(screen sharing needs the agent in a desktop session: deskside-agent "
            "install --user)"
        )
