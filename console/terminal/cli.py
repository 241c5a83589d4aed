"""``deskside-console terminal | terminal-replay``: a terminal on a ticket's device, and its
replay. ``shell`` and ``shell-replay``, their names before, still work (hidden).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import sys

import click

from deskside.console.clitools import (
    Context,
    mint_token,
    pass_context,
)


@click.command("terminal")
@click.option("--ticket", "ticket_id", type=click.IntRange(1, 2**31 - 1), required=True)
@click.option("--device", "device_id", default=None, help="Another device than the ticket's.")
@click.option("--as", "username", default=None, help="The technician [default: your login name].")
@pass_context
def terminal(ctx: Context, ticket_id: int, device_id: str | None, username: str | None) -> None:
    """An interactive terminal on a ticket's device, recorded to the ticket.

    The device's policy and its user decide whether it opens. Exits with the
    shell's exit code (126 if refused). Replay it with 'terminal-replay'.
    """
    from deskside.console.remote import open_terminal

    created = mint_token(
        ctx, username, ["commands:run", "tickets:read"], datetime.timedelta(hours=12)
    )
    config = ctx.config()
    try:
        result = asyncio.run(open_terminal(config, created.token, ticket_id, device_id))
    finally:
        ctx.run(lambda store: store.accounts.revoke_api_token(created.id))
    if result.get("refused") or (result.get("error") and result.get("exit_code") is None):
        click.echo(f"\r\nterminal closed: {result.get('error') or 'refused'}", err=True)
        click.get_current_context().exit(126 if result.get("refused") else 1)
    code = result.get("exit_code")
    click.get_current_context().exit(code if isinstance(code, int) and 0 <= code <= 255 else 1)


@click.command("terminal-replay")
@click.argument("session_id")
@click.option("--speed", type=click.FloatRange(0.1, 100), default=1.0, show_default=True)
@click.option("--cast", is_flag=True, help="Print the asciinema v2 cast instead of playing it.")
@pass_context
def terminal_replay(ctx: Context, session_id: str, speed: float, cast: bool) -> None:
    """Play back a terminal session recorded on a ticket."""
    from deskside.console.remote import replay

    transcript = ctx.run(lambda store: store.terminals.terminal_transcript(session_id))
    if cast:
        sys.stdout.buffer.write(transcript)
        return
    replay(transcript, speed, sys.stdout)


def _hidden(command: click.Command, name: str) -> click.Command:
    """``command`` under its old name, kept working but no longer listed."""
    alias = copy.copy(command)
    alias.name, alias.hidden = name, True
    return alias


# The commands' names before "terminal" was the one word for the concept.
shell = _hidden(terminal, "shell")
shell_replay = _hidden(terminal_replay, "shell-replay")
