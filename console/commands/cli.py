"""``deskside-console run | runbook``: commands and runbooks on a ticket's device."""

from __future__ import annotations

import datetime
from pathlib import Path

import click

from deskside.console.clitools import (
    Context,
    mint_token,
    pass_context,
    table,
)

# -- Commands and audit ------------------------------------------------------------------------


@click.command(context_settings={"ignore_unknown_options": True})
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
    from deskside.console.remote import (
        exit_status,
        follow_command,
        follow_runbook,
        start_command,
        token_ttl,
    )

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
    created = mint_token(ctx, username, ["commands:run", "tickets:read"], ttl)
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


@click.group()
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
    click.echo(table(["NAME", "KIND", "STEPS", "DESCRIPTION"], rows))


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
