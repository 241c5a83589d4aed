"""``deskside-agent install`` and ``uninstall``: the installer's commands on the agent's CLI.

The ``deskside-agent`` console script runs ``main`` here: the agent's command group
(``deskside.agent.cli.main``) with these two commands added. The agent's group
itself stays without them, so that the agent never imports the installer (imports
go ``installer -> agent``) and runs the same whichever of the two is imported first.
"""

from __future__ import annotations

import copy
from typing import Any

import click

from deskside.agent import cli as agent_cli
from deskside.protocol.errors import DesksideError

from . import MANAGERS, Scope
from . import service_manager as pick_manager
from .installation import install_agent, uninstall_agent

__all__ = ["install", "main", "uninstall"]


def _scope_option(func: Any) -> Any:
    func = click.option(
        "--user",
        "scope",
        flag_value="user",
        help="For you only, in your desktop session (screen sharing needs it).",
    )(func)
    return click.option(
        "--system",
        "scope",
        flag_value="system",
        default=True,
        help="For the whole machine, at boot, as its own account (the default; needs root).",
    )(func)


def _manager_option(func: Any) -> Any:
    return click.option(
        "--service-manager",
        type=click.Choice(MANAGERS),
        default="auto",
        show_default=True,
        envvar="DESKSIDE_AGENT_SERVICE_MANAGER",
        help="Which to register with; 'none' enrolls and sets up files only (containers).",
    )(func)


@click.command()
@click.argument("enrollment_string", metavar="ENROLLMENT-STRING")
@_scope_option
@_manager_option
@click.option("--force", is_flag=True, help="Enroll again even if enrolled with another console.")
@agent_cli.retry_for_option
@click.pass_context
def install(
    ctx: click.Context,
    enrollment_string: str,
    scope: str,
    service_manager: str,
    force: bool,
    retry_for: float | None,
) -> None:
    """Enroll this machine and run the agent as a service.

    Run it again (with a new version of the agent installed) to upgrade: an agent
    already enrolled with the same console keeps its identity, and the service is
    registered again and restarted. While the console is busy or out of reach,
    enrolling is tried again until the token expires.
    """
    try:
        manager = pick_manager(service_manager)
        done = install_agent(
            enrollment_string,
            Scope(scope),
            manager,
            agent_cli.explicit_paths(ctx),
            force=force,
            retry_for=retry_for,
            on_retry=agent_cli.echo_retry,
        )
    except DesksideError as exc:
        raise agent_cli.enrollment_error(exc) from exc
    verb = "Upgraded in place (identity kept)" if done.upgraded else "Enrolled and installed"
    click.echo(f"{verb}: device {done.device_id}")
    click.echo(f"Configuration: {done.spec.config_dir}; state and log: {done.spec.state_dir}")
    click.echo(done.description)


@click.command()
@_scope_option
@_manager_option
@click.option("--keep-data", is_flag=True, help="Keep the identity, configuration and logs.")
@click.pass_context
def uninstall(ctx: click.Context, scope: str, service_manager: str, keep_data: bool) -> None:
    """Stop and remove the agent's service, and (without --keep-data) its data."""
    try:
        manager = pick_manager(service_manager)
        paths = agent_cli.explicit_paths(ctx)
        done = uninstall_agent(Scope(scope), manager, paths, keep_data=keep_data)
    except DesksideError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in done:
        click.echo(line)


def _with_installer(group: click.Group) -> click.Group:
    """A copy of ``group`` with ``install`` and ``uninstall``; ``group`` is left as it is."""
    extended = copy.copy(group)
    extended.commands = {**group.commands, "install": install, "uninstall": uninstall}
    return extended


main: click.Group = _with_installer(agent_cli.main)
"""``deskside-agent``: the agent's commands, and ``install`` and ``uninstall``."""
