"""``deskside-console webhook``: endpoints, their secrets and their delivery log.

The CLI works on the database directly, like the other commands; the running
console's dispatcher sends what it queues (a test, a redelivery).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import click

from deskside.console.clitools import Context, pass_context, table, when

from .addresses import AddressGuard
from .catalog import EVENT_TYPES, EventType
from .schemas import DeliveryStatus, DeliveryView, NewEndpoint

__all__ = ["webhook"]

_ACTOR = "cli"
_SUBSCRIBABLE = sorted(EVENT_TYPES - {str(EventType.WEBHOOK_TEST)})


def _guard(ctx: Context) -> AddressGuard:
    config = ctx.config()
    return config.webhooks.guard(config.own_names())


def _delivery_rows(deliveries: Sequence[DeliveryView]) -> list[list[str]]:
    return [
        [
            str(d.id),
            str(d.endpoint_id),
            d.event_type,
            str(d.status),
            str(d.attempts),
            "-" if d.last_status_code is None else str(d.last_status_code),
            "-" if d.last_latency_ms is None else f"{d.last_latency_ms} ms",
            when(d.last_attempt_at),
            d.message_id,
            d.last_error[:60],
        ]
        for d in deliveries
    ]


_DELIVERY_HEADERS = [
    "ID", "ENDPOINT", "TYPE", "STATUS", "TRIES", "CODE", "LATENCY", "LAST TRY", "WEBHOOK-ID",
    "ERROR",
]  # fmt: skip


@click.group()
def webhook() -> None:
    """Webhooks to ticket systems: signed (Standard Webhooks), retried, logged."""


@webhook.command("add")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    type=click.Choice(_SUBSCRIBABLE),
    help="An event type to send (repeat for more).",
)
@click.option("--device-group", default=None, help="Only events of devices in this group.")
@click.option("--description", default="", help="What the endpoint is, for the list.")
@pass_context
def webhook_add(
    ctx: Context, url: str, events: tuple[str, ...], device_group: str | None, description: str
) -> None:
    """Send EVENTs to URL; prints the endpoint's whsec_ secret, this once."""
    if device_group is not None and not 1 <= len(device_group) <= 128:
        raise click.BadParameter("a device group is 1-128 characters", param_hint="--device-group")
    if len(description) > 256:
        raise click.BadParameter("at most 256 characters", param_hint="--description")
    asyncio.run(_guard(ctx).resolve(url))
    new = NewEndpoint(
        url=url,
        events=[EventType(e) for e in events],
        device_group=device_group,
        description=description,
    )
    created = ctx.run(lambda store: store.webhooks.add_endpoint(new, actor=_ACTOR))
    click.echo(f"webhook {created.endpoint.id}: {url}", err=True)
    click.echo("signing secret (shown this once; the receiver verifies with it):", err=True)
    click.echo(created.secret)


@webhook.command("list")
@pass_context
def webhook_list(ctx: Context) -> None:
    """Every endpoint, its events and state (secrets are never shown again)."""
    endpoints = ctx.run(lambda store: store.webhooks.endpoints())
    rows = [
        [
            str(e.id),
            "yes" if e.enabled else f"no ({e.disabled_reason})",
            e.url,
            ",".join(e.events),
            e.device_group or "*",
            "-" if e.rotating_until is None else when(e.rotating_until),
        ]
        for e in endpoints
    ]
    click.echo(table(["ID", "ENABLED", "URL", "EVENTS", "GROUP", "ROTATING UNTIL"], rows))


@webhook.command("remove")
@click.argument("endpoint_id", type=click.IntRange(1, 2**31 - 1))
@pass_context
def webhook_remove(ctx: Context, endpoint_id: int) -> None:
    """Remove an endpoint and its delivery log."""
    ctx.run(lambda store: store.webhooks.remove_endpoint(endpoint_id, actor=_ACTOR))
    click.echo(f"webhook {endpoint_id} removed")


@webhook.command("enable")
@click.argument("endpoint_id", type=click.IntRange(1, 2**31 - 1))
@pass_context
def webhook_enable(ctx: Context, endpoint_id: int) -> None:
    """Enable an endpoint again (after 410 Gone, say): its pending deliveries go out."""
    ctx.run(lambda store: store.webhooks.set_enabled(endpoint_id, True, actor=_ACTOR))
    click.echo(f"webhook {endpoint_id} enabled")


@webhook.command("disable")
@click.argument("endpoint_id", type=click.IntRange(1, 2**31 - 1))
@pass_context
def webhook_disable(ctx: Context, endpoint_id: int) -> None:
    """Stop sending to an endpoint; its deliveries wait until it is enabled."""
    ctx.run(lambda store: store.webhooks.set_enabled(endpoint_id, False, actor=_ACTOR))
    click.echo(f"webhook {endpoint_id} disabled")


@webhook.command("rotate-secret")
@click.argument("endpoint_id", type=click.IntRange(1, 2**31 - 1))
@pass_context
def webhook_rotate(ctx: Context, endpoint_id: int) -> None:
    """A new secret, printed this once; the old one signs too for a day."""
    rotated = ctx.run(lambda store: store.webhooks.rotate_secret(endpoint_id, actor=_ACTOR))
    click.echo(
        f"webhook {endpoint_id}: new secret; the old one is also signed with until "
        f"{when(rotated.previous_until)} UTC",
        err=True,
    )
    click.echo(rotated.secret)


@webhook.command("test")
@click.argument("endpoint_id", type=click.IntRange(1, 2**31 - 1))
@click.option(
    "--wait",
    type=click.FloatRange(0, 120),
    default=15.0,
    show_default=True,
    help="Seconds to wait for the running console to send it.",
)
@pass_context
def webhook_test(ctx: Context, endpoint_id: int, wait: float) -> None:
    """Send a webhook.test message to an endpoint; exit 1 unless it was delivered."""
    queued = ctx.run(lambda store: store.webhooks.send_test(endpoint_id, actor=_ACTOR))
    deadline = time.monotonic() + wait
    delivery = queued
    while True:
        delivery = ctx.run(lambda store: store.webhooks.delivery(queued.id))
        if delivery.attempts or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    click.echo(table(_DELIVERY_HEADERS, _delivery_rows([delivery])))
    if delivery.status is not DeliveryStatus.DELIVERED:
        if not delivery.attempts:
            click.echo("not sent yet: is the console running (deskside-console serve)?", err=True)
        raise SystemExit(1)


@webhook.command("deliveries")
@click.argument("endpoint_id", type=click.IntRange(1, 2**31 - 1), required=False)
@click.option("--status", type=click.Choice([str(s) for s in DeliveryStatus]), default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@pass_context
def webhook_deliveries(
    ctx: Context, endpoint_id: int | None, status: str | None, limit: int
) -> None:
    """The delivery log, newest first (of one endpoint if given)."""
    wanted = DeliveryStatus(status) if status else None
    deliveries = ctx.run(
        lambda store: store.webhooks.deliveries(endpoint_id=endpoint_id, status=wanted, limit=limit)
    )
    click.echo(table(_DELIVERY_HEADERS, _delivery_rows(deliveries)))


@webhook.command("redeliver")
@click.argument("delivery_id", type=click.IntRange(1, 2**53 - 1))
@pass_context
def webhook_redeliver(ctx: Context, delivery_id: int) -> None:
    """Send a delivery again, with the same webhook-id, at once."""
    delivery = ctx.run(lambda store: store.webhooks.redeliver(delivery_id, actor=_ACTOR))
    click.echo(f"delivery {delivery.id} ({delivery.message_id}) queued again")
