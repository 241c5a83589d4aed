"""The ``deskside-agent`` command: the end-user side of Deskside.

Exit codes: 0 success, 1 an error (message on stderr), 2 a usage error, 3 from
``status`` when the agent is not enrolled. Only this module (and the installer's
commands, which ``deskside.installer.cli`` adds to this group for the
``deskside-agent`` script) turns Deskside's exceptions into messages and exit codes.
The agent never imports the installer: imports go ``installer -> agent``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from deskside.protocol.enrollment import Enrollment, parse_enrollment
from deskside.protocol.errors import (
    ConfigError,
    ConnectionClosed,
    DesksideError,
    HandshakeError,
)
from deskside.protocol.messages import Impact, Urgency

from .config import (
    CONFIG_DIR_ENV,
    LOG_LEVELS,
    STATE_DIR_ENV,
    AgentConfig,
    AgentPaths,
    Identity,
    load_config,
    load_enrolled,
    resolve_paths,
)
from .daemon import BACKOFF_MAX_ENV, SPOOL_INTERVAL_ENV, Daemon, DaemonSettings
from .spool import Spool
from .state import daemon_alive, read_status, read_tickets
from .uplink import describe_failure, is_refusal, refusal_reason

__all__ = [
    "EXIT_NOT_ENROLLED",
    "echo_retry",
    "enrollment_error",
    "explicit_paths",
    "main",
    "retry_for_option",
]

# ``deskside-agent status`` exits with this when the agent is not enrolled.
EXIT_NOT_ENROLLED = 3

_LEVELS = {"high": 1, "medium": 2, "low": 3}
_LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Context:
    """What the group options decided, for the subcommands."""

    paths: AgentPaths


def _run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine; Deskside errors become a ``ClickException`` with their message."""
    try:
        return asyncio.run(coroutine)
    except DesksideError as exc:
        raise click.ClickException(str(exc)) from exc


def _paths(ctx: click.Context) -> AgentPaths:
    found = ctx.find_object(_Context)
    return found.paths if found is not None else resolve_paths()


def _enrolled_or_fail(paths: AgentPaths) -> tuple[AgentConfig, Identity]:
    """Config and identity of an enrolled agent, or a ``ClickException`` (exit 1)."""
    try:
        loaded = load_enrolled(paths)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if loaded is None:
        raise click.ClickException(
            "this agent is not enrolled; enroll it first with "
            "deskside-agent enroll 'ENROLLMENT-STRING'"
        )
    return loaded


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deskside", prog_name="deskside-agent")
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Configuration and identity key directory [env: {CONFIG_DIR_ENV}].",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Status and spool directory [env: {STATE_DIR_ENV}].",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log warnings (-v) or everything (-vv) to stderr; 'run' logs INFO and up anyway.",
)
@click.pass_context
def main(ctx: click.Context, config_dir: Path | None, state_dir: Path | None, verbose: int) -> None:
    """Deskside agent: diagnostics, help requests and remote support for this machine.

    It keeps one outbound, end-to-end encrypted channel to your help desk's console.
    Start with 'deskside-agent enroll', then run the daemon with 'deskside-agent run'.

    Exit codes: 0 success, 1 error, 2 usage error, 3 not enrolled (status).
    """
    levels = (logging.ERROR, logging.WARNING, logging.DEBUG)
    logging.basicConfig(
        stream=sys.stderr,
        level=levels[min(verbose, len(levels) - 1)],
        format=_LOG_FORMAT,
    )
    ctx.obj = _Context(resolve_paths(config_dir, state_dir))


# -- enroll ------------------------------------------------------------------------------


def enrollment_error(exc: DesksideError) -> click.ClickException:
    """What ``enroll`` and ``install`` tell the user when enrolling failed."""
    if isinstance(exc, HandshakeError):
        if is_refusal(exc):
            return click.ClickException(
                f"the console refused the enrollment: {refusal_reason(exc)}"
            )
        return click.ClickException(f"enrollment failed: {exc}")
    if isinstance(exc, ConnectionClosed):
        return click.ClickException(f"cannot reach the console: {describe_failure(exc)}")
    return click.ClickException(str(exc))


def retry_for_option(func: Any) -> Any:
    """``--retry-for SECONDS``, for ``enroll`` and ``install``."""
    return click.option(
        "--retry-for",
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help="Try again for at most this long while the console is busy or out of reach "
        "(default: until the token expires).",
    )(func)


def echo_retry(text: str) -> None:
    """Tell the user, on stderr, that enrolling will be tried again."""
    click.echo(text, err=True)


@main.command()
@click.argument("enrollment_string", required=False, metavar="ENROLLMENT-STRING")
@click.option("--server", metavar="URL", help="The console's agent URL (wss://host:port/agent).")
@click.option("--token", metavar="TOKEN", help="A one-time enrollment token.")
@click.option("--console-key", metavar="BASE64", help="The console's public key, to pin.")
@click.option(
    "--tls-fingerprint",
    metavar="HEX",
    help="SHA-256 of the console's TLS certificate, to pin (optional).",
)
@click.option("--force", is_flag=True, help="Enroll again, replacing this device's identity.")
@retry_for_option
@click.pass_context
def enroll(
    ctx: click.Context,
    enrollment_string: str | None,
    server: str | None,
    token: str | None,
    console_key: str | None,
    tls_fingerprint: str | None,
    force: bool,
    retry_for: float | None,
) -> None:
    """Enroll this machine with a console.

    Give the ENROLLMENT-STRING your help desk sent you, or --server, --token and
    --console-key (and --tls-fingerprint if they gave one). A new identity key is
    made and registered; nothing is written unless the console accepts it. While
    the console is busy or out of reach, enroll tries again until the token
    expires; a refused token ends it at once.
    """
    from .enrollment import enroll as do_enroll
    from .enrollment import enrollment_from_options

    paths = _paths(ctx)
    options = (server, token, console_key)
    try:
        if enrollment_string is not None:
            if any(o is not None for o in (*options, tls_fingerprint)):
                raise click.UsageError(
                    "give either an ENROLLMENT-STRING or --server/--token/--console-key"
                )
            enrollment: Enrollment = parse_enrollment(enrollment_string)
        elif all(o is not None for o in options):
            enrollment = enrollment_from_options(
                str(server), str(token), str(console_key), tls_fingerprint
            )
        else:
            raise click.UsageError(
                "give an ENROLLMENT-STRING, or all of --server, --token and --console-key"
            )
        config, identity = asyncio.run(
            do_enroll(paths, enrollment, force=force, retry_for=retry_for, on_retry=echo_retry)
        )
    except DesksideError as exc:
        raise enrollment_error(exc) from exc
    click.echo(f"Enrolled with {config.console_url}.")
    click.echo(f"Device id: {identity.device_id}")


# -- run ---------------------------------------------------------------------------------


@main.command()
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="Log level (default: log_level in the configuration, INFO).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also log to this file (rotated at 1 MiB, 3 kept); services use the state dir's.",
)
@click.option("--syslog", is_flag=True, help="Also log to syslog (on macOS: the unified log).")
@click.option(
    "--inbox",
    type=click.Path(file_okay=False, path_type=Path),
    help="Take help requests that users leave in this directory (a system-wide daemon).",
)
@click.pass_context
def run(
    ctx: click.Context,
    log_level: str | None,
    log_file: Path | None,
    syslog: bool,
    inbox: Path | None,
) -> None:
    """Run the agent daemon: stay connected to the console and answer it.

    Logs go to stderr. SIGTERM or SIGINT stop it (exit 0). Reconnection delays grow
    up to 60 s; {backoff} sets another maximum (seconds), {spool} how often (seconds)
    the spool of help requests is checked.
    """
    paths = _paths(ctx)
    config, identity = _enrolled_or_fail(paths)
    try:
        settings = DaemonSettings.from_environ()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    status = read_status(paths.status_file)
    if status is not None and daemon_alive(status):
        raise click.ClickException(f"the agent daemon is already running (pid {status.pid})")
    logging.basicConfig(
        stream=sys.stderr,
        level=(log_level or config.log_level).upper(),
        format=_LOG_FORMAT,
        force=True,
    )
    _add_log_handlers(log_file, syslog)
    if inbox is not None:
        settings = dataclasses.replace(settings, inbox_dir=inbox)
    # websockets logs every frame at DEBUG: ciphertext, of no use in the agent's log.
    logging.getLogger("websockets").setLevel(logging.INFO)
    _run(Daemon(paths, config, identity, settings).run())


def _add_log_handlers(log_file: Path | None, syslog: bool) -> None:
    """The service's log file and the platform's log, beside stderr."""
    import logging.handlers

    root = logging.getLogger()
    if log_file is not None:
        try:
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=1 << 20, backupCount=3, encoding="utf-8"
            )
        except OSError as exc:
            raise click.ClickException(f"cannot open the log file {log_file}: {exc}") from exc
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        root.addHandler(handler)
    if syslog:
        address = next(
            (p for p in ("/var/run/syslog", "/dev/log") if Path(p).exists()), ("localhost", 514)
        )
        handler = logging.handlers.SysLogHandler(address=address)
        handler.setFormatter(logging.Formatter("deskside-agent: %(levelname)s %(message)s"))
        root.addHandler(handler)


if run.help is not None:
    run.help = run.help.format(backoff=BACKOFF_MAX_ENV, spool=SPOOL_INTERVAL_ENV)


# -- help --------------------------------------------------------------------------------


def _check_description(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from .help_request import MAX_DESCRIPTION

    if not value.strip():
        raise click.BadParameter("describe the problem; it cannot be empty", ctx, param)
    if len(value) > MAX_DESCRIPTION:
        raise click.BadParameter(
            f"is {len(value)} characters; at most {MAX_DESCRIPTION} fit", ctx, param
        )
    return value


def _check_requester(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from .help_request import MAX_REQUESTER

    if value is not None and len(value) > MAX_REQUESTER:
        raise click.BadParameter(f"at most {MAX_REQUESTER} characters", ctx, param)
    return value


_LEVEL = click.Choice(sorted(_LEVELS, key=_LEVELS.__getitem__), case_sensitive=False)


@main.command(name="help")
@click.argument("description", callback=_check_description)
@click.option(
    "--impact",
    type=_LEVEL,
    default="low",
    show_default=True,
    help="How many people or how much work the problem touches.",
)
@click.option(
    "--urgency",
    type=_LEVEL,
    default="medium",
    show_default=True,
    help="How soon the problem hurts.",
)
@click.option(
    "--requester",
    metavar="NAME",
    callback=_check_requester,
    help="Who asks (default: your login name).",
)
@click.pass_context
def help_(
    ctx: click.Context, description: str, impact: str, urgency: str, requester: str | None
) -> None:
    """Ask your help desk for help: DESCRIPTION says what is wrong.

    A diagnostics snapshot of this machine goes with it. The request is saved first;
    if the console cannot be reached now, the agent daemon sends it later.
    """
    from .help_request import Outcome, ask_for_help, default_requester

    paths = _paths(ctx)
    inbox = _system_inbox_for(paths)
    if inbox is not None:
        _hand_over(inbox, description, impact, urgency, requester)
        return
    config, identity = _enrolled_or_fail(paths)
    delivery = _run(
        ask_for_help(
            paths,
            config,
            identity,
            description,
            impact=Impact(_LEVELS[impact.lower()]),
            urgency=Urgency(_LEVELS[urgency.lower()]),
            requester=requester if requester is not None else default_requester(),
        )
    )
    if delivery.outcome is Outcome.FILED:
        if delivery.ticket_id is not None:
            click.echo(f"Ticket #{delivery.ticket_id} filed.")
        else:
            click.echo("Your request was received by the help desk.")
        return
    if delivery.outcome is Outcome.REJECTED:
        raise click.ClickException(f"the help desk could not accept the request: {delivery.detail}")
    click.echo(
        "Your request is saved and will be sent by the agent daemon as soon as the "
        "console is reachable."
    )
    click.echo(f"({delivery.detail})", err=True)
    daemon = read_status(paths.status_file)
    if daemon is None or not daemon_alive(daemon):
        click.echo(
            "Note: the agent daemon is not running here; start it with 'deskside-agent run' "
            "(or ask your help desk).",
            err=True,
        )


def _system_inbox_for(paths: AgentPaths) -> Path | None:
    """The system daemon's inbox, when this user has no agent of their own but one exists."""
    import os

    from .inbox import system_inbox

    try:
        if load_config(paths) is not None:
            return None
    except ConfigError:
        return None
    inbox = system_inbox()
    if inbox is None or not inbox.is_dir() or not os.access(inbox, os.W_OK | os.X_OK):
        return None
    return inbox


def _hand_over(
    inbox: Path, description: str, impact: str, urgency: str, requester: str | None
) -> None:
    """Leave a help request for the system-wide daemon, which files it."""
    from .help_request import _snapshot, build_help_request, default_requester
    from .inbox import hand_over

    request = build_help_request(
        description,
        impact=Impact(_LEVELS[impact.lower()]),
        urgency=Urgency(_LEVELS[urgency.lower()]),
        requester=requester if requester is not None else default_requester(),
        snapshot=_run(_snapshot("")),
    )
    try:
        hand_over(inbox, request)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        "Your request was handed to this machine's Deskside service; it files a ticket "
        "with your help desk as soon as it reaches the console."
    )


# -- For commands added by other packages ---------------------------------------------


def explicit_paths(ctx: click.Context) -> AgentPaths | None:
    """The directories given as options or environment variables, if any were.

    For commands that have defaults of their own when none were given (the
    installer's ``install`` and ``uninstall``).
    """
    import os

    root = ctx.find_root()
    given = any(root.params.get(k) for k in ("config_dir", "state_dir"))
    if given or os.environ.get(CONFIG_DIR_ENV) or os.environ.get(STATE_DIR_ENV):
        return _paths(ctx)
    return None


# -- status ------------------------------------------------------------------------------


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    moment = datetime.datetime.fromtimestamp(timestamp).astimezone()
    ago = max(0, round(time.time() - timestamp))
    return f"{moment.isoformat(timespec='seconds')} ({ago} s ago)"


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show enrollment, daemon and spool state.

    Exit code 0 when enrolled, 3 when not enrolled, 1 when the configuration is bad.
    """
    paths = _paths(ctx)
    try:
        config = load_config(paths)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    spooled = Spool(paths.spool_dir).count()
    if config is None:
        click.echo("Enrolled: no (enroll with: deskside-agent enroll 'ENROLLMENT-STRING')")
        if _system_inbox_for(paths) is not None:
            click.echo("A system-wide agent runs here: 'deskside-agent help' goes through it.")
        click.echo(f"Spooled help requests: {spooled}")
        ctx.exit(EXIT_NOT_ENROLLED)
    click.echo("Enrolled: yes")
    click.echo(f"Device id: {config.device_id}")
    click.echo(f"Console: {config.console_url}")
    daemon = read_status(paths.status_file)
    if daemon is None or not daemon_alive(daemon):
        click.echo("Daemon: not running")
    else:
        click.echo(f"Daemon: running (pid {daemon.pid})")
        if daemon.connected:
            click.echo(f"Connected: yes, since {_when(daemon.connected_since)}")
        else:
            click.echo("Connected: no")
        click.echo(f"Last contact: {_when(daemon.last_contact)}")
        if daemon.last_error:
            click.echo(f"Last error: {daemon.last_error}")
    click.echo(f"Spooled help requests: {spooled}")
    tickets = [t for t in read_tickets(paths.tickets_file) if t.ticket_id is not None]
    if tickets:
        click.echo(f"Last ticket: #{tickets[-1].ticket_id} filed {_when(tickets[-1].filed_at)}")


# -- audit -------------------------------------------------------------------------------


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON lines.")
@click.pass_context
def audit(ctx: click.Context, as_json: bool) -> None:
    """Show what the help desk ran or was refused on this machine.

    The agent's own log, kept apart from the console's: every command run or
    refused, every terminal, who asked and for which ticket. Its entries are
    chained by SHA-256 hashes; 'deskside-agent audit verify' checks the chain.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .audit import canonical, format_entry, read_entries

    paths = _paths(ctx)
    count = 0
    try:
        for entry in read_entries(paths.audit_file):
            count += 1
            if as_json:
                click.echo(canonical(entry).decode() if entry is not None else "null")
            else:
                click.echo(format_entry(entry))
    except OSError as exc:
        raise click.ClickException(
            f"cannot read {paths.audit_file}: {exc.strerror or exc}"
        ) from exc
    if count == 0 and not as_json:
        click.echo(f"Nothing was run or refused here yet ({paths.audit_file} is empty).")


@audit.command()
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Check that no audit entry was changed, removed or cut off.

    Exit code 0 when the chain and its head are intact ("N entries, chain
    intact"), 1 naming the first bad entry (or when the log cannot be read).
    """
    from .audit import verify_log

    paths = _paths(ctx)
    try:
        result = verify_log(paths.audit_file, paths.audit_head_file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if not result.ok:
        raise click.ClickException(f"the audit log is not intact: {result}")
    click.echo(str(result))


# -- diagnose ----------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@click.pass_context
def diagnose(ctx: click.Context, as_json: bool) -> None:
    """Take a diagnostics snapshot of this machine and print it."""
    from deskside.agent.diagnostics import collect_snapshot, render_text, snapshot_json

    paths = _paths(ctx)
    console_url: str | None = None
    try:
        config = load_config(paths)
    except ConfigError as exc:
        click.echo(f"warning: {exc}; checking without the console", err=True)
        config = None
    if config is not None:
        console_url = config.console_url
    snapshot = _run(collect_snapshot(console_url=console_url))
    if as_json:
        click.echo(snapshot_json(snapshot))
    else:
        click.echo(render_text(snapshot).rstrip("\n"))
