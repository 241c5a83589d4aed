"""The ``deskside-console`` command: the help desk's server and tools.

Commands other than ``serve`` work on the data directory's database directly
(SQLite in the directory, or the PostgreSQL its configuration names), so they
work on the console's machine whether the server runs or not.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import secrets
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from deskside.protocol import crypto
from deskside.protocol.enrollment import Enrollment
from deskside.protocol.errors import DesksideError

from .auth.identity import SCOPES
from .auth.schemas import Role
from .config import ConsoleConfig, DataDir, default_data_dir
from .db import migrate
from .store import Store
from .tickets.lifecycle import TicketSource, TicketStatus
from .tickets.policy import parse_duration
from .tickets.schemas import NewTicket, TicketDetail, TicketView

__all__ = ["main"]

T = TypeVar("T")

LEVELS = {"high": 1, "medium": 2, "low": 3}


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
            store = Store.connect(config.database, config.policy)
            try:
                return await work(store)
            finally:
                await store.close()

        return asyncio.run(go())


pass_context = click.make_pass_decorator(Context)


class Group(click.Group):
    """Turns Deskside's errors into a clear message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DesksideError as exc:
            raise click.ClickException(str(exc)) from exc


def duration(text: str) -> datetime.timedelta:
    try:
        return parse_duration(text)
    except DesksideError as exc:
        raise click.BadParameter(str(exc)) from exc


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
@pass_context
def serve(ctx: Context, host: str | None, port: int | None, log_level: str) -> None:
    """Run the console: agents' WebSocket, REST API and health checks on one TLS port."""
    from dataclasses import replace

    from .server import serve as run_server

    config = ctx.config()
    if host is not None:
        config = replace(config, host=host)
    if port is not None:
        config = replace(config, port=port)
    run_server(config, log_level=log_level)


# -- Enrollment, accounts, tokens -------------------------------------------------------------


@main.group()
def token() -> None:
    """Enrollment tokens for agents."""


@token.command("create")
@click.option(
    "--ttl", type=duration, default="24h", show_default=True, help="Valid for (15m, 24h, 7d)."
)
@click.option("--uses", type=click.IntRange(1, 100_000), default=1, show_default=True)
@click.option("--group", default=None, help="Group the enrolled devices join.")
@click.option(
    "--install-line",
    is_flag=True,
    help="Print the one-line install commands (Linux/macOS, Windows) instead of the string.",
)
@pass_context
def token_create(
    ctx: Context, ttl: datetime.timedelta, uses: int, group: str | None, install_line: bool
) -> None:
    """Print an enrollment string for 'deskside-agent enroll' (or the install lines)."""
    config = ctx.config()
    data = DataDir(ctx.data_dir)
    console_key = crypto.public_key(data.noise_private_key())
    fingerprint = data.tls_fingerprint(config)
    created = ctx.run(
        lambda store: store.devices.create_enrollment_token(
            ttl=ttl, uses=uses, group=group, created_by="cli"
        )
    )
    enrollment = Enrollment(
        url=config.agent_url,
        token=created.token,
        console_key=console_key,
        tls_fingerprint=fingerprint,
    )
    if install_line:
        _echo_install_lines(config, enrollment)
    else:
        click.echo(enrollment.encode())
    click.echo(
        f"(valid until {created.expires_at:%Y-%m-%d %H:%M} UTC for {uses} "
        f"enrollment{'s' if uses > 1 else ''}; agents connect to {config.agent_url})",
        err=True,
    )


def _echo_install_lines(config: ConsoleConfig, enrollment: Enrollment) -> None:
    """The commands that install the agent from this console, with the string filled in."""
    import ssl

    from deskside.installer.package import install_lines

    if config.tls_cert is None or enrollment.tls_fingerprint is None:
        raise click.ClickException("the install line needs the console to serve TLS")
    try:
        der = ssl.PEM_cert_to_DER_cert(config.tls_cert.read_text(encoding="ascii"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {config.tls_cert}: {exc}") from exc
    lines = install_lines(
        config.agent_url,
        enrollment.encode(),
        public_key_pin=crypto.public_key_pin(der),
        fingerprint=enrollment.tls_fingerprint,
    )
    click.echo("# Linux, macOS: for the whole machine, as a system service")
    click.echo(lines["sh"])
    click.echo("# Linux, macOS: for you, in your desktop session (what screen sharing needs)")
    click.echo(lines["sh_user"])
    click.echo("# Windows, in an administrator's cmd.exe")
    click.echo(lines["powershell"])


@main.group()
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


@main.group()
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


# -- Devices --------------------------------------------------------------------------------


def _when(value: datetime.datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


@main.command()
@pass_context
def devices(ctx: Context) -> None:
    """List enrolled devices."""
    views = ctx.run(lambda store: store.devices.list_devices())
    rows = [
        [
            d.id,
            d.hostname or "?",
            d.os_name or d.os_family or "?",
            d.agent_version or "?",
            "revoked" if d.revoked else ("online" if d.online else "offline"),
            _when(d.last_seen),
            d.group or "-",
        ]
        for d in views
    ]
    click.echo(_table(["ID", "HOST", "OS", "AGENT", "STATE", "LAST SEEN", "GROUP"], rows))


@main.group()
def device() -> None:
    """One device."""


@device.command("revoke")
@click.argument("device_id")
@pass_context
def device_revoke(ctx: Context, device_id: str) -> None:
    """Revoke a device: its key is refused from now on (a running console cuts it off)."""
    view = ctx.run(lambda store: store.devices.revoke_device(device_id))
    click.echo(f"device {view.id} ({view.hostname or '?'}) revoked")


# -- Tickets --------------------------------------------------------------------------------


def _ticket_rows(tickets: Sequence[TicketView]) -> list[list[str]]:
    return [
        [
            f"#{t.id}",
            f"P{t.priority}",
            t.status.value,
            t.title if len(t.title) <= 50 else t.title[:49] + "…",
            t.device_id or "-",
            t.assignee or "-",
            _when(t.created_at),
            _when(t.resolution_due),
        ]
        for t in tickets
    ]


@main.command()
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in TicketStatus]),
    help="Only these statuses (repeat for several); open ones by default.",
)
@click.option("--all", "everything", is_flag=True, help="Every ticket, whatever its status.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@pass_context
def tickets(ctx: Context, statuses: Sequence[str], everything: bool, limit: int) -> None:
    """List tickets, newest first."""
    if everything:
        wanted: list[TicketStatus] = []
    elif statuses:
        wanted = [TicketStatus(s) for s in statuses]
    else:
        wanted = [s for s in TicketStatus if s not in (TicketStatus.RESOLVED, TicketStatus.CLOSED)]
    views = ctx.run(lambda store: store.tickets.list_tickets(statuses=wanted, limit=limit))
    headers = ["#", "PRIO", "STATUS", "TITLE", "DEVICE", "ASSIGNEE", "CREATED", "DUE"]
    click.echo(_table(headers, _ticket_rows(views)))


@main.group()
def ticket() -> None:
    """One ticket."""


@ticket.command("show")
@click.argument("number", type=click.IntRange(1, 2**31 - 1))
@pass_context
def ticket_show(ctx: Context, number: int) -> None:
    """A ticket and its whole timeline, diagnostics included."""

    async def work(store: Store) -> tuple[TicketDetail, dict[int, dict[str, Any]]]:
        detail = await store.tickets.get_ticket(number)
        snapshots = {}
        for event in detail.timeline:
            if event.snapshot_id is not None:
                snapshots[event.snapshot_id] = (
                    await store.snapshots.get_snapshot(event.snapshot_id)
                ).snapshot
        return detail, snapshots

    detail, snapshots = ctx.run(work)
    t = detail.ticket
    click.echo(f"Ticket #{t.id}: {t.title}")
    click.echo(
        f"  status     {t.status.value}    priority P{t.priority} "
        f"(impact {t.impact}, urgency {t.urgency})"
    )
    click.echo(f"  requester  {t.requester or '-'}    device {t.device_id or '-'}")
    click.echo(
        f"  assignee   {t.assignee or '-'}    group {t.group or '-'}    "
        f"category {t.category or '-'}"
    )
    click.echo(f"  created    {_when(t.created_at)}    source {t.source}")
    click.echo(
        f"  due        response {_when(t.response_due)}, resolution {_when(t.resolution_due)}"
    )
    click.echo("")
    click.echo("  " + t.description.replace("\n", "\n  "))
    click.echo("")
    click.echo("Timeline:")
    for event in detail.timeline:
        click.echo(
            f"  {_when(event.at)}  {event.actor}  {event.kind}: {_describe(event.kind, event.data)}"
        )
        if event.snapshot_id is not None and event.snapshot_id in snapshots:
            for line in _snapshot_summary(snapshots[event.snapshot_id]):
                click.echo(f"      {line}")


def _describe(kind: str, data: dict[str, Any]) -> str:
    if kind == "note":
        return str(data.get("text", ""))
    if kind in ("status", "assignment"):
        return f"{data.get('from') or '-'} -> {data.get('to') or '-'}"
    if kind == "created":
        priority, source = data.get("priority", "?"), data.get("source", "?")
        return f"{data.get('title', '')} (P{priority}, from {source})"
    if kind == "diagnostics":
        return f"snapshot taken {str(data.get('taken_at', '?'))[:19]}"
    if kind == "command" and data.get("script"):
        args = " ".join(str(a) for a in data.get("argv", []))
        return f"script {data['script']} {args}".rstrip()
    if kind == "command":
        return " ".join(str(a) for a in data.get("argv", []))
    if kind == "command_refused":
        what = " ".join(str(a) for a in data.get("argv", [])) or "terminal"
        return f"{what}: refused ({data.get('reason', '')})"
    if kind == "command_result":
        result = f"{data.get('status')}, exit {data.get('exit_code')}"
        if data.get("error"):
            result += f" ({data['error']})"
        tail = str(data.get("output_tail") or "").strip()
        return result + ("\n        " + tail.replace("\n", "\n        ") if tail else "")
    if kind == "shell":
        return f"terminal opened (session {data.get('shell_session')})"
    if kind == "shell_started":
        return f"terminal started, allowed by {data.get('consent')}"
    if kind == "shell_closed":
        return (
            f"terminal {data.get('status')}, exit {data.get('exit_code')}, "
            f"{data.get('transcript_bytes', 0)} bytes recorded "
            f"(shell-replay {data.get('shell_session')})"
        )
    if kind.startswith("screen_"):
        return _describe_screen(kind, data)
    return ", ".join(
        f"{k} {v.get('from')} -> {v.get('to')}" if isinstance(v, dict) else f"{k} {v}"
        for k, v in data.items()
    )


def _describe_screen(kind: str, data: dict[str, Any]) -> str:
    """A screen session's step (``deskside.console.screenrelay``), in words."""
    session = data.get("screen_session")
    if kind == "screen_requested":
        return f"screen view asked of the user (session {session})"
    if kind == "screen_viewer_joined":
        return f"another viewer joined (session {session})"
    if kind == "screen_started":
        recorded = ", recorded" if data.get("recorded") else ""
        return f"screen shared (consent: {data.get('consent')}{recorded})"
    error = f" ({data['error']})" if data.get("error") else ""
    if kind == "screen_refused":
        return f"screen refused: {data.get('reason')}{error}"
    if kind == "screen_control_requested":
        return f"control of mouse and keyboard asked of the user (session {session})"
    if kind == "screen_control_granted":
        return f"control granted (consent: {data.get('consent')})"
    if kind == "screen_control_refused":
        return f"control refused: {data.get('reason')}{error}"
    if kind == "screen_control_ended":
        return f"control ended: {data.get('reason')}{error}"
    if kind == "screen_ended":
        text = f"screen session ended: {data.get('reason')}{error}"
        if "frames" in data:
            text += f", {data['frames']} frames in {data.get('duration', 0):.0f} s"
        if data.get("drawings"):
            text += f", {data['drawings']} drawings"
        if data.get("recording_bytes"):
            text += f", recording of {data['recording_bytes']} bytes"
        return text
    return ", ".join(f"{k} {v}" for k, v in data.items())


def _snapshot_summary(snapshot: dict[str, Any]) -> list[str]:
    """A few lines of what a technician looks at first."""
    lines = []
    os_info = snapshot.get("os") or {}
    lines.append(
        f"host {os_info.get('hostname', '?')}: "
        f"{os_info.get('name', '?')} {os_info.get('release', '')}".rstrip()
    )
    memory = snapshot.get("memory")
    if memory:
        lines.append(
            f"memory {memory.get('percent', 0):.0f}% used "
            f"of {memory.get('total', 0) / 2**30:.1f} GiB"
        )
    cpu = snapshot.get("cpu")
    if cpu:
        lines.append(f"cpu {cpu.get('percent', 0):.0f}% ({cpu.get('logical', '?')} threads)")
    for disk in (snapshot.get("disks") or [])[:4]:
        lines.append(f"disk {disk.get('mountpoint')}: {disk.get('percent', 0):.0f}% used")
    network = snapshot.get("network") or {}
    for check in (network.get("checks") or [])[:4]:
        lines.append(
            f"{'ok  ' if check.get('ok') else 'FAIL'} "
            f"{check.get('target')} {check.get('detail', '')}".rstrip()
        )
    failed = snapshot.get("failed_services") or []
    if failed:
        lines.append("failed services: " + ", ".join(s.get("name", "?") for s in failed[:6]))
    for error in snapshot.get("errors") or []:
        lines.append(f"(collector {error.get('collector')} failed: {error.get('error')})")
    return lines


@ticket.command("new")
@click.option("--title", required=True)
@click.option("--description", required=True)
@click.option("--requester", default="")
@click.option("--device", "device_id", default=None)
@click.option("--impact", type=click.Choice(list(LEVELS)), default="low", show_default=True)
@click.option("--urgency", type=click.Choice(list(LEVELS)), default="medium", show_default=True)
@click.option("--category", default="")
@pass_context
def ticket_new(
    ctx: Context,
    title: str,
    description: str,
    requester: str,
    device_id: str | None,
    impact: str,
    urgency: str,
    category: str,
) -> None:
    """Open a ticket by hand (a phone call, a walk-in)."""
    import msgspec

    try:
        new = msgspec.convert(
            {
                "title": title,
                "description": description,
                "requester": requester,
                "device_id": device_id,
                "impact": LEVELS[impact],
                "urgency": LEVELS[urgency],
                "category": category,
            },
            NewTicket,
        )
    except msgspec.ValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    view, _ = ctx.run(
        lambda store: store.tickets.create_ticket(new, actor="cli", source=TicketSource.CLI)
    )
    click.echo(f"Ticket #{view.id} opened (P{view.priority}, due {_when(view.resolution_due)} UTC)")


# -- Commands and audit ------------------------------------------------------------------------


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--ticket", "ticket_id", type=click.IntRange(1, 2**31 - 1), required=True)
@click.option("--device", "device_id", default=None, help="Another device than the ticket's.")
@click.option("--timeout", type=click.FloatRange(0.1, 86400), default=60.0, show_default=True)
@click.option("--shell", is_flag=True, help="Run one string with the device's shell.")
@click.option("--runbook", default=None, help="Run this runbook's steps instead of a command.")
@click.option("--param", "params", multiple=True, help="A runbook parameter, NAME=VALUE.")
@click.option(
    "--script",
    default=None,
    help="Run the device's own named script ([commands.scripts]) with ARGV appended.",
)
@click.option(
    "--as",
    "username",
    default=None,
    help="The technician asking [default: your login name, if it is a technician].",
)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@pass_context
def run(
    ctx: Context,
    ticket_id: int,
    device_id: str | None,
    timeout: float,
    shell: bool,
    runbook: str | None,
    params: tuple[str, ...],
    script: str | None,
    username: str | None,
    argv: tuple[str, ...],
) -> None:
    """Run a command on a ticket's device:  run --ticket 12 -- ipconfig /all

    Or a runbook:  run --ticket 12 --runbook recent-system-logs --param minutes=30

    Or a script the device's policy names:  run --ticket 12 --script restart-spooler

    Output streams as it comes; Ctrl-C cancels the command on the device. Exits
    with the command's exit code (126 refused, 124 timed out, 130 cancelled).
    The console must be running (deskside-console serve).
    """
    from .remote import exit_status, follow_command, follow_runbook, start_command, token_ttl

    if runbook and (argv or script):
        raise click.UsageError("--runbook runs its own steps: no command, no --script")
    if not runbook and not argv and not script:
        raise click.UsageError("give a command after --, --script NAME or --runbook NAME")
    if script and shell:
        raise click.UsageError("a script is not run through a shell: drop --shell")
    values: dict[str, str] = {}
    for param in params:
        key, sep, value = param.partition("=")
        if not sep:
            raise click.BadParameter(f"{param!r} is not NAME=VALUE", param_hint="--param")
        values[key] = value
    ttl = token_ttl(timeout) if not runbook else datetime.timedelta(hours=6)
    created = _mint_token(ctx, username, ["commands:run", "tickets:read"], ttl)
    config = ctx.config()
    try:
        if runbook:
            result = follow_runbook(
                config,
                created.token,
                ticket_id,
                runbook,
                {"params": values, "device_id": device_id},
            )
        else:
            body = {
                "argv": list(argv),
                "shell": shell,
                "timeout": timeout,
                "device_id": device_id,
                "script": script,
            }
            command = start_command(config, created.token, ticket_id, body)
            result = follow_command(config, created.token, command["id"])
    finally:
        ctx.run(lambda store: store.accounts.revoke_api_token(created.id))
    status = exit_status(result)
    if result.get("status") != "finished":
        click.echo(
            f"command {result.get('status')}: {result.get('error') or ''}".rstrip(), err=True
        )
    click.get_current_context().exit(status)


@main.group()
def runbook() -> None:
    """Runbooks: named scripts with a variant per OS (see 'runbook show flush-dns')."""


@runbook.command("list")
@pass_context
def runbook_list(ctx: Context) -> None:
    """Every runbook, built-in and added."""
    found = ctx.run(lambda store: store.runbooks.runbooks())
    rows = [
        [r.name, "built-in" if r.builtin else "added", str(len(r.steps)), r.description]
        for r in sorted(found.values(), key=lambda r: r.name)
    ]
    click.echo(_table(["NAME", "KIND", "STEPS", "DESCRIPTION"], rows))


@runbook.command("show")
@click.argument("name")
@pass_context
def runbook_show(ctx: Context, name: str) -> None:
    """A runbook's parameters and steps."""
    found = ctx.run(lambda store: store.runbooks.get_runbook(name))
    click.echo(f"{found.name}: {found.description}")
    for key, param in found.params.items():
        default = f" (default {param.default})" if param.default is not None else ""
        click.echo(f"  param {key}: {param.description}{default}, matching {param.pattern}")
    for index, step in enumerate(found.steps, 1):
        note = " (continues on error)" if step.continue_on_error else ""
        click.echo(f"  step {index}: {step.name}{note}")
        for family in ("linux", "macos", "windows"):
            variant = step.argv_for(family)
            if variant is not None:
                click.echo(f"    {family:8} {' '.join(variant)}")


@runbook.command("add")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@pass_context
def runbook_add(ctx: Context, path: Path) -> None:
    """Add (or replace) the runbooks of a TOML file."""
    import getpass

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc
    names = ctx.run(
        lambda store: store.runbooks.add_runbooks(text, actor=f"cli:{getpass.getuser()}")
    )
    click.echo(f"added: {', '.join(names)}")


@runbook.command("remove")
@click.argument("name")
@pass_context
def runbook_remove(ctx: Context, name: str) -> None:
    """Remove an added runbook."""
    import getpass

    ctx.run(lambda store: store.runbooks.remove_runbook(name, actor=f"cli:{getpass.getuser()}"))
    click.echo(f"removed: {name}")


def _mint_token(
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


@main.command()
@click.option("--ticket", "ticket_id", type=click.IntRange(1, 2**31 - 1), required=True)
@click.option("--device", "device_id", default=None, help="Another device than the ticket's.")
@click.option("--as", "username", default=None, help="The technician [default: your login name].")
@pass_context
def shell(ctx: Context, ticket_id: int, device_id: str | None, username: str | None) -> None:
    """An interactive terminal on a ticket's device, recorded to the ticket.

    The device's policy and its user decide whether it opens. Exits with the
    shell's exit code (126 if refused). Replay it with 'shell-replay'.
    """
    from .remote import open_terminal

    created = _mint_token(
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


@main.command()
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
    created = _mint_token(ctx, username, scopes, ttl)
    base = config.agent_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    base = base.removesuffix("/agent")
    if session_id is not None:
        click.echo(f"{base}/viewer/replay.html#session={session_id}&token={created.token}")
    else:
        extra = "&record=1" if record else ""
        click.echo(f"{base}/viewer/screen.html#ticket={ticket_id}&token={created.token}{extra}")


@main.command("shell-replay")
@click.argument("session_id")
@click.option("--speed", type=click.FloatRange(0.1, 100), default=1.0, show_default=True)
@click.option("--cast", is_flag=True, help="Print the asciinema v2 cast instead of playing it.")
@pass_context
def shell_replay(ctx: Context, session_id: str, speed: float, cast: bool) -> None:
    """Play back a terminal session recorded on a ticket."""
    from .remote import replay

    transcript = ctx.run(lambda store: store.terminals.terminal_transcript(session_id))
    if cast:
        sys.stdout.buffer.write(transcript)
        return
    replay(transcript, speed, sys.stdout)


@main.group(invoke_without_command=True)
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.pass_context
def audit(click_ctx: click.Context, limit: int) -> None:
    """The audit log (newest first); 'audit verify' checks its hash chain."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Context = click_ctx.obj
    entries = ctx.run(lambda store: store.audit.log(limit=limit))
    for entry in entries:
        data = json.dumps(entry.data, sort_keys=True, ensure_ascii=False)
        click.echo(f"{entry.id:>6}  {_when(entry.at)}  {entry.actor}  {entry.action}  {data}")


@audit.command("verify")
@pass_context
def audit_verify(ctx: Context) -> None:
    """Check that no audit entry was changed or deleted; exit 1 if one was."""
    result = ctx.run(lambda store: store.audit.verify())
    if result.ok:
        click.echo(
            f"{result.entries} entries, chain intact; head #{result.head_id} {result.head_hash}"
        )
        return
    click.echo(
        f"audit log damaged: {result.problem} (after {result.entries} good entries)", err=True
    )
    raise SystemExit(1)


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
