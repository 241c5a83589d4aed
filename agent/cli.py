"""The ``deskside-agent`` command: the end-user side of Deskside."""

from __future__ import annotations

import click

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deskside", prog_name="deskside-agent")
def main() -> None:
    """Deskside agent: diagnostics, help requests and remote support for this machine.

    It keeps one outbound, end-to-end encrypted channel to your help desk's console.
    Enrolling, the daemon and diagnostics arrive in the next releases.
    """
