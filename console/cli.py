"""The ``deskside-console`` command: the help desk's server and tools."""

from __future__ import annotations

import asyncio

import click

from .demo import run_channel_demo

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deskside", prog_name="deskside-console")
def main() -> None:
    """Deskside console: tickets, devices and remote support for a help desk."""


@main.command()
@click.option("--messages", default=1000, show_default=True, help="Heartbeats to send.")
def demo(messages: int) -> None:
    """Open a secure channel between a console and an agent on 127.0.0.1.

    Both sides run in this process over a real WebSocket: a Noise IK handshake, a
    hello, heartbeats and a ping, and what each side saw is printed.
    """
    if not 1 <= messages <= 1_000_000:
        raise click.BadParameter("must be between 1 and 1000000", param_hint="--messages")
    for line in asyncio.run(run_channel_demo(messages)):
        click.echo(line)
