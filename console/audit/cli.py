"""``deskside-console audit [verify]``: the audit log and its chain."""

from __future__ import annotations

import json

import click

from deskside.console.clitools import (
    Context,
    pass_context,
    when,
)


@click.group(invoke_without_command=True)
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
        click.echo(f"{entry.id:>6}  {when(entry.at)}  {entry.actor}  {entry.action}  {data}")


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
