"""The ``deskside-console`` command: the help desk's server and tools.

Commands other than ``serve`` work on the data directory's database directly
(SQLite in the directory, or the PostgreSQL its configuration names), so they
work on the console's machine whether the server runs or not.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from urllib.parse import urlsplit

import click

from .audit.cli import audit
from .auth.cli import apitoken, group, user
from .auth.schemas import Role
from .chat.cli import chat
from .clitools import Context, Group, pass_context
from .commands.cli import run, runbook
from .config import DataDir, default_data_dir
from .devices.cli import device, devices, token
from .findings.cli import categories, rules, ticket_category, ticket_finding, ticket_findings
from .knowledge.cli import kb, ticket_kb
from .screen.cli import screen
from .terminal.cli import shell, shell_replay, terminal, terminal_replay
from .tickets.cli import ticket, tickets, view
from .webhooks.cli import webhook

__all__ = ["main"]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deskside", prog_name="deskside-console")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The console's data directory [env DESKSIDE_DATA_DIR; default ./data].",
)
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None) -> None:
    """Deskside console: tickets, devices and remote support for a help desk."""
    ctx.obj = Context(data_dir or default_data_dir())


# -- Set-up and server ---------------------------------------------------------------------


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")  # noqa: S104
@click.option("--port", type=click.IntRange(0, 65535), default=8443, show_default=True)
@click.option("--public-url", default="", help="wss://host:port/agent as agents reach it.")
@click.option(
    "--database-url", default="", help="postgresql://...; SQLite in the directory if not given."
)
@click.option(
    "--cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="TLS certificate (PEM).",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Its private key (PEM).",
)
@click.option(
    "--admin", default="admin", show_default=True, help="Name of the first admin account."
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also keep the admin's password in this file (0600), e.g. for a demo.",
)
@pass_context
def init(
    ctx: Context,
    host: str,
    port: int,
    public_url: str,
    database_url: str,
    cert: Path | None,
    key: Path | None,
    admin: str,
    password_file: Path | None,
) -> None:
    """Create the data directory: keys, TLS certificate, database and an admin account."""
    if (cert is None) != (key is None):
        raise click.UsageError("give both --cert and --key, or neither")
    names = [socket.getfqdn(), "localhost", "127.0.0.1"]
    if public_url and (hostname := urlsplit(public_url).hostname):
        names.insert(0, hostname)
    if host not in ("0.0.0.0", "::"):  # noqa: S104
        names.insert(0, host)
    DataDir(ctx.data_dir).create(
        host=host,
        port=port,
        public_url=public_url,
        database_url=database_url,
        cert=cert,
        key=key,
        names=list(dict.fromkeys(names)),
    )
    password = secrets.token_urlsafe(15)
    ctx.run(lambda store: store.accounts.add_user(admin, password, role=Role.ADMIN))
    if password_file is not None:
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)  # whatever was there before
            file.write(password + "\n")
    DataDir(ctx.data_dir).make_private()  # the database too, and what was there before
    config = ctx.config()
    click.echo(f"Console created in {ctx.data_dir}")
    click.echo(f"  agents connect to  {config.agent_url}")
    click.echo(f"  database           {config.database.split('@')[-1]}")
    click.echo(f"  admin account      {admin}")
    click.echo(f"  admin password     {password}   (shown this once)")
    click.echo("Next: deskside-console serve, then deskside-console token create")


@main.command()
@click.option("--host", default=None, help="Address to listen on (overrides console.toml).")
@click.option("--port", type=click.IntRange(0, 65535), default=None)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines as text or one JSON object each [console.toml: [logging] format].",
)
@pass_context
def serve(
    ctx: Context, host: str | None, port: int | None, log_level: str, log_format: str | None
) -> None:
    """Run the console: agents' WebSocket, REST API and health checks on one TLS port.

    Refuses a data directory that other users may read (``chmod -R go-rwx DIR``).
    """
    from dataclasses import replace

    from .logs import LogFormat, configure

    config = ctx.config()
    form = LogFormat(log_format) if log_format else config.log_format
    # Before the server's modules load: what they say on import is logged in the format.
    configure(log_level, form, config.cluster.node_id if config.cluster.enabled else "")
    from .server import serve as run_server

    DataDir(ctx.data_dir).check_private()
    if host is not None:
        config = replace(config, host=host)
    if port is not None:
        config = replace(config, port=port)
    run_server(config, log_level=log_level, log_format=form)


# -- Demo -----------------------------------------------------------------------------------


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8443, show_default=True)
@pass_context
def demo(ctx: Context, port: int) -> None:
    """Run a console on SQLite with a local agent and one help request, until Ctrl-C.

    Uses (or creates) the data directory; the agent lives in DATA_DIR/demo-agent.
    """
    from .demo import run_demo

    run_demo(ctx.data_dir, port, click.echo)


for _command in (
    token,
    user,
    group,
    apitoken,
    devices,
    device,
    tickets,
    ticket,
    view,
    run,
    runbook,
    terminal,
    terminal_replay,
    shell,
    shell_replay,
    screen,
    audit,
    webhook,
    categories,
    rules,
    kb,
    chat,
):
    main.add_command(_command)
for _command in (ticket_findings, ticket_finding, ticket_category, ticket_kb):
    ticket.add_command(_command)
