"""``deskside-console chat``: write to the user of a ticket's device, read the answers."""

from __future__ import annotations

import datetime
import sys
import threading
from typing import Any

import click

from deskside.console.clitools import Context, mint_token, pass_context

__all__ = ["chat"]

# How long one line waits to be shown to the user before the CLI says it is queued.
_WAIT = 10.0


def _said(line: dict[str, Any]) -> str:
    """A line as the CLI prints it: who, when, and the text (control characters are
    refused by the console, so the text prints as written)."""
    when = str(line.get("sent_at", ""))[11:19]
    who = "user" if line.get("direction") == "from_user" else line.get("author", "")
    return f"[{when}] {who}: {line.get('text', '')}"


def _outcome(line: dict[str, Any]) -> str:
    status = line.get("status")
    if status == "delivered":
        return "delivered"
    if status == "refused":
        return f"not delivered: {line.get('error') or 'refused by the device'}"
    return "queued: the device is offline; the user gets it when it comes back"


@click.command()
@click.option("--ticket", "ticket_id", type=click.IntRange(1, 2**31 - 1), required=True)
@click.option(
    "--as",
    "username",
    default=None,
    help="The technician writing [default: your login name, if it is a technician].",
)
@click.argument("text", nargs=-1)
@pass_context
def chat(ctx: Context, ticket_id: int, username: str | None, text: tuple[str, ...]) -> None:
    """Chat with the user of a ticket's device:  chat --ticket 12 "Please restart Outlook"

    With TEXT: send it, wait a moment for the user's window to show it, and say
    whether it was delivered, queued (the device is offline) or refused (chat is
    off on the device; exit status 1). Without TEXT: interactive; each line you type
    is sent, and the user's answers are printed as they come, until end of input.
    The console must be running (deskside-console serve).
    """
    from deskside.console.remote import RunFailed, follow_chat, send_chat_line

    ttl = datetime.timedelta(minutes=5) if text else datetime.timedelta(hours=8)
    created = mint_token(ctx, username, ["tickets:write", "tickets:read"], ttl)
    config = ctx.config()
    status = 0
    try:
        if text:
            line = send_chat_line(config, created.token, ticket_id, " ".join(text), wait=_WAIT)
            click.echo(f"line {line['id']}: {_outcome(line)}")
            status = 1 if line.get("status") == "refused" else 0
        else:
            _interactive(config, created.token, ticket_id, follow_chat, send_chat_line)
    except RunFailed as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        ctx.run(lambda store: store.accounts.revoke_api_token(created.id))
    click.get_current_context().exit(status)


def _interactive(config: Any, token: str, ticket_id: int, follow: Any, send: Any) -> None:
    """Print the conversation as it goes on while the technician types lines."""
    seen: dict[int, str] = {}
    ready = threading.Event()

    def reader() -> None:
        try:
            for line in follow(config, token, ticket_id):
                ready.set()
                previous = seen.get(line["id"])
                seen[line["id"]] = line["status"]
                if previous is None:
                    click.echo(_said(line))
                if line["status"] == "refused" and previous != "refused":
                    click.echo(f"  (line {line['id']} {_outcome(line)})")
        except Exception as exc:  # the thread's end is the user's to see, whatever it was
            click.echo(f"stopped following the chat: {exc}", err=True)
            ready.set()

    threading.Thread(target=reader, name="deskside-chat-follow", daemon=True).start()
    ready.wait(5.0)
    click.echo(f"chat on ticket #{ticket_id}: type a line and Enter; end of input ends it")
    for typed in sys.stdin:
        text = typed.rstrip("\n")
        if text.strip():
            send(config, token, ticket_id, text)
