"""``deskside-console tickets | ticket``: the queue, a ticket with its timeline, a new one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import msgspec

from deskside.console.clitools import (
    LEVELS,
    Context,
    pass_context,
    table,
    when,
)
from deskside.console.findings.describe import finding_lines
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource, TicketStatus
from deskside.console.tickets.schemas import NewTicket, TicketDetail, TicketView
from deskside.console.timeline.describe import describe, label

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
            when(t.created_at),
            when(t.resolution_due),
        ]
        for t in tickets
    ]


@click.command()
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in TicketStatus]),
    help="Only these statuses (repeat for several); open ones by default.",
)
@click.option("--all", "everything", is_flag=True, help="Every ticket, whatever its status.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--category", default=None, help="Only this category (ID takes its subcategories).")
@pass_context
def tickets(
    ctx: Context, statuses: Sequence[str], everything: bool, limit: int, category: str | None
) -> None:
    """List tickets, newest first."""
    if everything:
        wanted: list[TicketStatus] = []
    elif statuses:
        wanted = [TicketStatus(s) for s in statuses]
    else:
        wanted = [s for s in TicketStatus if s not in (TicketStatus.RESOLVED, TicketStatus.CLOSED)]
    views = ctx.run(
        lambda store: store.tickets.list_tickets(statuses=wanted, limit=limit, category=category)
    )
    headers = ["#", "PRIO", "STATUS", "TITLE", "DEVICE", "ASSIGNEE", "CREATED", "DUE"]
    click.echo(table(headers, _ticket_rows(views)))


@click.group()
def ticket() -> None:
    """One ticket."""


@ticket.command("show")
@click.argument("number", type=click.IntRange(1, 2**31 - 1))
@pass_context
def ticket_show(ctx: Context, number: int) -> None:
    """A ticket and its whole timeline, diagnostics included."""

    async def work(store: Store) -> tuple[TicketDetail, dict[int, dict[str, Any]]]:
        detail = await store.tickets.get_ticket(number)
        detail = msgspec.structs.replace(detail, findings=await store.findings.for_ticket(number))
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
    click.echo(f"  created    {when(t.created_at)}    source {t.source}")
    click.echo(f"  due        response {when(t.response_due)}, resolution {when(t.resolution_due)}")
    click.echo("")
    click.echo("  " + t.description.replace("\n", "\n  "))
    click.echo("")
    click.echo("Timeline:")
    for event in detail.timeline:
        click.echo(
            f"  {when(event.at)}  {event.actor}  {label(event.data)}: {describe(event.data)}"
        )
        if event.snapshot_id is not None and event.snapshot_id in snapshots:
            for line in _snapshot_summary(snapshots[event.snapshot_id]):
                click.echo(f"      {line}")
    if detail.findings is not None:
        click.echo("")
        click.echo("Findings:")
        for line in finding_lines(detail.findings):
            click.echo(f"  {line}")


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
    click.echo(f"Ticket #{view.id} opened (P{view.priority}, due {when(view.resolution_due)} UTC)")
