"""``deskside-console categories | rules | ticket findings | ticket finding | ticket
category``: the categories and rules in force, a ticket's findings and decisions."""

from __future__ import annotations

import click

from deskside.console.clitools import Context, pass_context, table
from deskside.console.store import Store
from deskside.console.tickets.categories import Categories
from deskside.console.tickets.schemas import TicketChanges

from .describe import finding_line, finding_lines
from .routes import category_views, rule_views
from .rules import load_rules
from .schemas import Decision, FindingView

__all__ = [
    "categories",
    "rules",
    "ticket_category",
    "ticket_finding",
    "ticket_findings",
]

TicketNumber = click.IntRange(1, 2**31 - 1)


def actor(ctx: Context, username: str | None) -> str:
    """Who the timeline names: ``user:NAME`` for a technician given with ``--as``."""
    if username is None:
        return "cli"
    if not ctx.run(lambda store: store.accounts.user_exists(username)):
        raise click.UsageError(f"no technician named {username!r}")
    return f"user:{username}"


@click.command()
@pass_context
def categories(ctx: Context) -> None:
    """The categories a ticket may have (DATA_DIR/categories.toml replaces the shipped)."""
    views = category_views(Categories.load(ctx.data_dir))
    click.echo(table(["CATEGORY", "TITLE"], [[v.name, v.title] for v in views]))


@click.command()
@pass_context
def rules(ctx: Context) -> None:
    """The findings' rules in force (shipped, and the admin's in DATA_DIR/rules/*.toml).

    Invalid rule files are named with what is wrong, and nothing runs until they are
    fixed: run this after editing them.
    """
    views = rule_views(load_rules(ctx.data_dir, Categories.load(ctx.data_dir)))
    rows = [[v.id, v.severity.value, v.category or "-", str(v.urgency or "-")] for v in views]
    click.echo(table(["RULE", "SEVERITY", "CATEGORY", "URGENCY"], rows))


@click.command("findings")
@click.argument("number", type=TicketNumber)
@pass_context
def ticket_findings(ctx: Context, number: int) -> None:
    """What the rules find in the newest snapshot attached to a ticket."""
    found = ctx.run(lambda store: store.findings.for_ticket(number))
    for line in finding_lines(found):
        click.echo(line)


@click.command("finding")
@click.argument("number", type=TicketNumber)
@click.argument("finding")
@click.option("--accept", "decision", flag_value=Decision.ACCEPTED.value, help="Apply it.")
@click.option("--dismiss", "decision", flag_value=Decision.DISMISSED.value, help="Set it aside.")
@click.option("--as", "username", default=None, help="The technician deciding.")
@pass_context
def ticket_finding(
    ctx: Context, number: int, finding: str, decision: str | None, username: str | None
) -> None:
    """Accept (its category and urgency are set) or dismiss a finding of a ticket."""
    if decision is None:
        raise click.UsageError("say --accept or --dismiss")
    who = actor(ctx, username)

    async def work(store: Store) -> FindingView:
        return await store.findings.decide(number, finding, Decision(decision), actor=who)

    view = ctx.run(work)
    click.echo(f"{view.decision.value if view.decision else '-'}: {finding_line(view)}")


@click.command("category")
@click.argument("number", type=TicketNumber)
@click.argument("category")
@click.option("--as", "username", default=None, help="The technician changing it.")
@pass_context
def ticket_category(ctx: Context, number: int, category: str, username: str | None) -> None:
    """Set a ticket's category (ID or ID/SUB; see `categories`)."""
    who = actor(ctx, username)
    if len(category) > 64:
        raise click.BadParameter("64 characters at most", param_hint="CATEGORY")
    view = ctx.run(
        lambda store: store.tickets.update_ticket(
            number, TicketChanges(category=category), actor=who
        )
    )
    click.echo(f"Ticket #{view.id}: category {view.category or '-'}")
