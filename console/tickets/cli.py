"""``deskside-console tickets | ticket``: the queue, a ticket with its timeline, a new one."""

from __future__ import annotations

import getpass
import sys
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
from deskside.console.tickets.schemas import (
    BulkChange,
    BulkOutcome,
    NewSavedView,
    NewTicket,
    QueueSort,
    SortOrder,
    TicketChanges,
    TicketDetail,
    TicketQuery,
    TicketView,
)
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
            t.group or "-",
            t.assignee or "-",
            when(t.created_at),
            when(t.resolution_due),
        ]
        for t in tickets
    ]


def _technician(ctx: Context, username: str | None) -> str:
    """Who acts (``--as``, or the login name): a technician of this console."""
    name = username or getpass.getuser()
    if not ctx.run(lambda store: store.accounts.user_exists(name)):
        raise click.UsageError(f"no technician named {name!r}; say who you are with --as NAME")
    return name


_AS = click.option(
    "--as",
    "username",
    default=None,
    help="The technician acting [default: your login name, if it is a technician].",
)
_NUMBER = click.argument("number", type=click.IntRange(1, 2**31 - 1))
_VERSION = click.option(
    "--version",
    "version",
    type=click.IntRange(1, 2**31 - 1),
    default=None,
    help="The ticket's version you saw ('ticket show'): refused if it changed since.",
)


@click.command()
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in TicketStatus]),
    help="Only these statuses (repeat for several); open ones by default.",
)
@click.option("--all", "everything", is_flag=True, help="Every ticket, whatever its status.")
@click.option("--priority", type=click.IntRange(1, 9), default=None, help="Only this priority.")
@click.option("--group", default=None, help="Only tickets this technicians' group owns.")
@click.option("--assignee", default=None, help="Only this technician's tickets.")
@click.option("--mine", is_flag=True, help="Only the tickets assigned to you (--as).")
@click.option("--unassigned", is_flag=True, help="Only tickets nobody is assigned.")
@click.option("--breaching", is_flag=True, help="Only open tickets due within 1 h, or overdue.")
@click.option("--device", "device_id", default=None, help="Only this device's tickets.")
@click.option(
    "--search", "text", default=None, help="Text in title, description, requester or device."
)
@click.option(
    "--sort",
    type=click.Choice([s.value for s in QueueSort]),
    default=None,
    help="Order by this [default: number].",
)
@click.option("--asc", "ascending", is_flag=True, default=None, help="Smallest first.")
@click.option("--desc", "ascending", flag_value=False, help="Largest (newest) first: the default.")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0, 10_000_000), default=0, show_default=True)
@click.option("--category", default=None, help="Only this category (ID takes its subcategories).")
@click.option("--view", "view_name", default=None, help="Start from this saved view (--as's).")
@click.option("--save-view", "save_as", default=None, help="Keep these filters as a view.")
@_AS
@pass_context
def tickets(
    ctx: Context,
    statuses: Sequence[str],
    everything: bool,
    priority: int | None,
    group: str | None,
    assignee: str | None,
    mine: bool,
    unassigned: bool,
    breaching: bool,
    device_id: str | None,
    text: str | None,
    sort: str | None,
    ascending: bool | None,
    limit: int,
    offset: int,
    category: str | None,
    view_name: str | None,
    save_as: str | None,
    username: str | None,
) -> None:
    """The queue: tickets filtered, sorted and paged as the web console's.

    Open tickets, newest first, unless the options say otherwise; --view starts from a
    saved view and the other options add to it; --save-view keeps them under a name.
    """
    who = _technician(ctx, username) if (mine or view_name or save_as) else None
    base = TicketQuery()
    if view_name is not None:
        assert who is not None
        base = ctx.run(lambda store: store.tickets.saved_view(who, view_name)).query
    if everything:
        wanted: list[TicketStatus] = []
    elif statuses:
        wanted = [TicketStatus(s) for s in statuses]
    elif view_name is not None:
        wanted = list(base.statuses)
    else:
        wanted = [s for s in TicketStatus if s not in (TicketStatus.RESOLVED, TicketStatus.CLOSED)]
    fields = {
        "priority": priority,
        "group": group,
        "assignee": assignee,
        "device_id": device_id,
        "text": text,
        "category": category,
        "sort": QueueSort(sort) if sort else None,
        "order": None if ascending is None else (SortOrder.ASC if ascending else SortOrder.DESC),
    }
    flags = {"mine": mine, "unassigned": unassigned, "breaching": breaching}
    try:
        query = msgspec.convert(
            {
                **msgspec.to_builtins(base),
                **msgspec.to_builtins({k: v for k, v in fields.items() if v is not None}),
                **{k: True for k, v in flags.items() if v},
                "statuses": [s.value for s in wanted],
                "limit": limit,
                "offset": offset,
            },
            TicketQuery,
        )
    except msgspec.ValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    page = ctx.run(lambda store: store.tickets.queue(query, username=who))
    headers = ["#", "PRIO", "STATUS", "TITLE", "DEVICE", "GROUP", "ASSIGNEE", "CREATED", "DUE"]
    click.echo(table(headers, _ticket_rows(page.tickets)))
    shown = f"{offset + 1}-{offset + len(page.tickets)}" if page.tickets else "none"
    click.echo(f"({shown} of {page.total})", err=True)
    if save_as is not None:
        assert who is not None
        try:
            new = msgspec.convert(
                {"name": save_as, "query": msgspec.to_builtins(query)}, NewSavedView
            )
        except msgspec.ValidationError as exc:
            raise click.UsageError(str(exc)) from exc
        saved = ctx.run(lambda store: store.tickets.save_view(who, new))
        click.echo(f"Saved as view {saved.name!r} for {who}", err=True)


@click.group()
def view() -> None:
    """Saved views of the queue (deskside-console tickets ... --save-view NAME)."""


@view.command("list")
@_AS
@pass_context
def view_list(ctx: Context, username: str | None) -> None:
    """Your saved views and what they select."""
    who = _technician(ctx, username)
    views = ctx.run(lambda store: store.tickets.saved_views(who))
    rows = []
    for v in views:
        q = msgspec.to_builtins(v.query)
        chosen = {k: val for k, val in q.items() if k not in ("limit", "offset") and val}
        rows.append([v.name, " ".join(f"{k}={val}" for k, val in chosen.items())])
    click.echo(table(["NAME", "QUERY"], rows))


@view.command("delete")
@click.argument("name")
@_AS
@pass_context
def view_delete(ctx: Context, name: str, username: str | None) -> None:
    """Delete one of your saved views."""
    who = _technician(ctx, username)

    async def work(store: Store) -> None:
        found = await store.tickets.saved_view(who, name)
        await store.tickets.delete_view(who, found.id)

    ctx.run(work)
    click.echo(f"View {name!r} deleted")


@click.group()
def ticket() -> None:
    """One ticket."""


def _change(ctx: Context, number: int, username: str | None, **fields: Any) -> TicketView:
    """Change a ticket as the technician, as the API's PATCH would (timeline, audit)."""
    who = _technician(ctx, username)
    try:
        changes = msgspec.convert({k: v for k, v in fields.items() if v is not None}, TicketChanges)
    except msgspec.ValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    view = ctx.run(lambda store: store.tickets.update_ticket(number, changes, actor=f"user:{who}"))
    click.echo(
        f"Ticket #{view.id}: {view.status.value}, P{view.priority}, "
        f"assignee {view.assignee or '-'}, group {view.group or '-'} (version {view.version})"
    )
    return view


@ticket.command("assign")
@_NUMBER
@click.option("--to", "to", default=None, help="The technician to assign.")
@click.option("--me", is_flag=True, help="Assign yourself (--as).")
@click.option("--nobody", is_flag=True, help="Take the ticket from its assignee.")
@_VERSION
@_AS
@pass_context
def ticket_assign(
    ctx: Context,
    number: int,
    to: str | None,
    me: bool,
    nobody: bool,
    version: int | None,
    username: str | None,
) -> None:
    """Assign a ticket: --to USER, --me or --nobody."""
    if (to is not None) + me + nobody != 1:
        raise click.UsageError("give one of --to USER, --me, --nobody")
    assignee = "" if nobody else (to if to is not None else _technician(ctx, username))
    _change(ctx, number, username, assignee=assignee, version=version)


@ticket.command("status")
@_NUMBER
@click.argument("status", type=click.Choice([s.value for s in TicketStatus]))
@_VERSION
@_AS
@pass_context
def ticket_status(
    ctx: Context, number: int, status: str, version: int | None, username: str | None
) -> None:
    """Change a ticket's status (as its lifecycle allows)."""
    _change(ctx, number, username, status=status, version=version)


@ticket.command("change")
@_NUMBER
@click.option("--impact", type=click.Choice(list(LEVELS)), default=None)
@click.option("--urgency", type=click.Choice(list(LEVELS)), default=None)
@click.option("--group", default=None, help="The technicians' group that owns it ('' for none).")
@click.option("--title", default=None)
@click.option("--category", default=None)
@_VERSION
@_AS
@pass_context
def ticket_change(
    ctx: Context,
    number: int,
    impact: str | None,
    urgency: str | None,
    group: str | None,
    title: str | None,
    category: str | None,
    version: int | None,
    username: str | None,
) -> None:
    """Change a ticket's impact, urgency (and so its priority), group, title or category."""
    if all(v is None for v in (impact, urgency, group, title, category)):
        raise click.UsageError("say what to change: --impact, --urgency, --group, ...")
    _change(
        ctx,
        number,
        username,
        impact=LEVELS[impact] if impact else None,
        urgency=LEVELS[urgency] if urgency else None,
        group=group,
        title=title,
        category=category,
        version=version,
    )


@ticket.command("note")
@_NUMBER
@click.argument("text")
@_AS
@pass_context
def ticket_note(ctx: Context, number: int, text: str, username: str | None) -> None:
    """Add a note to a ticket's timeline ('-' reads it from standard input).

    Notes are the technicians' own (the console has no public replies yet).
    """
    if text == "-":
        text = sys.stdin.read()
    if not 1 <= len(text) <= 65536 or "\x00" in text:
        raise click.UsageError("a note is 1-65536 characters, without NUL")
    who = _technician(ctx, username)
    ctx.run(lambda store: store.tickets.add_note(number, text, actor=f"user:{who}"))
    click.echo(f"Note added to ticket #{number}")


@ticket.command("bulk")
@click.argument("numbers", nargs=-1, required=True, type=click.IntRange(1, 2**31 - 1))
@click.option("--assign", "assignee", default=None, help="Assign them all to this technician.")
@click.option("--status", type=click.Choice([s.value for s in TicketStatus]), default=None)
@click.option("--group", default=None, help="Give them all to this group ('' for none).")
@_AS
@pass_context
def ticket_bulk(
    ctx: Context,
    numbers: tuple[int, ...],
    assignee: str | None,
    status: str | None,
    group: str | None,
    username: str | None,
) -> None:
    """Change many tickets at once; says what happened to each. Exits 1 if any was refused
    or not found."""
    who = _technician(ctx, username)
    try:
        change = msgspec.convert(
            {"ids": list(numbers), "assignee": assignee, "status": status, "group": group},
            BulkChange,
        )
    except msgspec.ValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    results = ctx.run(lambda store: store.tickets.bulk_update(change, actor=f"user:{who}"))
    failed = False
    for result in results.results:
        failed |= result.outcome in (BulkOutcome.REFUSED, BulkOutcome.NOT_FOUND)
        detail = f": {result.detail}" if result.detail else ""
        click.echo(f"#{result.id}  {result.outcome.value}{detail}")
    if failed:
        click.get_current_context().exit(1)


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
    click.echo(f"Ticket #{t.id}: {t.title}    (version {t.version})")
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
