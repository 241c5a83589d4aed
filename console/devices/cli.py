"""``deskside-console token | devices | device``: enrollment tokens and devices."""

from __future__ import annotations

import datetime

import click

from deskside.console.clitools import (
    Context,
    duration,
    pass_context,
    table,
    when,
)
from deskside.console.config import ConsoleConfig, DataDir
from deskside.protocol import crypto
from deskside.protocol.enrollment import Enrollment

# -- Enrollment, accounts, tokens -------------------------------------------------------------


@click.group()
def token() -> None:
    """Enrollment tokens for agents."""


@token.command("create")
@click.option(
    "--ttl", type=duration, default="24h", show_default=True, help="Valid for (15m, 24h, 7d)."
)
@click.option("--uses", type=click.IntRange(1, 100_000), default=1, show_default=True)
@click.option("--group", default=None, help="Group the enrolled devices join.")
@click.option(
    "--install-line",
    is_flag=True,
    help="Print the one-line install commands (Linux/macOS, Windows) instead of the string.",
)
@pass_context
def token_create(
    ctx: Context, ttl: datetime.timedelta, uses: int, group: str | None, install_line: bool
) -> None:
    """Print an enrollment string for 'deskside-agent enroll' (or the install lines)."""
    config = ctx.config()
    data = DataDir(ctx.data_dir)
    console_key = crypto.public_key(data.noise_private_key())
    fingerprint = data.tls_fingerprint(config)
    created = ctx.run(
        lambda store: store.devices.create_enrollment_token(
            ttl=ttl, uses=uses, group=group, created_by="cli"
        )
    )
    enrollment = Enrollment(
        url=config.agent_url,
        token=created.token,
        console_key=console_key,
        tls_fingerprint=fingerprint,
        expires=int(created.expires_at.replace(tzinfo=datetime.UTC).timestamp()),
    )
    if install_line:
        _echo_install_lines(config, enrollment)
    else:
        click.echo(enrollment.encode())
    click.echo(
        f"(valid until {created.expires_at:%Y-%m-%d %H:%M} UTC for {uses} "
        f"enrollment{'s' if uses > 1 else ''}; agents connect to {config.agent_url})",
        err=True,
    )


def _echo_install_lines(config: ConsoleConfig, enrollment: Enrollment) -> None:
    """The commands that install the agent from this console, with the string filled in."""
    import ssl

    from deskside.installer.package import install_lines

    if config.tls_cert is None or enrollment.tls_fingerprint is None:
        raise click.ClickException("the install line needs the console to serve TLS")
    try:
        der = ssl.PEM_cert_to_DER_cert(config.tls_cert.read_text(encoding="ascii"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {config.tls_cert}: {exc}") from exc
    lines = install_lines(
        config.agent_url,
        enrollment.encode(),
        public_key_pin=crypto.public_key_pin(der),
        fingerprint=enrollment.tls_fingerprint,
    )
    click.echo("# Linux, macOS: for the whole machine, as a system service")
    click.echo(lines["sh"])
    click.echo("# Linux, macOS: for you, in your desktop session (what screen sharing needs)")
    click.echo(lines["sh_user"])
    click.echo("# Windows, in an administrator's cmd.exe")
    click.echo(lines["powershell"])


@click.command()
@pass_context
def devices(ctx: Context) -> None:
    """List enrolled devices."""
    views = ctx.run(lambda store: store.devices.list_devices())
    rows = [
        [
            d.id,
            d.hostname or "?",
            d.os_name or d.os_family or "?",
            d.agent_version or "?",
            "revoked" if d.revoked else ("online" if d.online else "offline"),
            when(d.last_seen),
            d.group or "-",
        ]
        for d in views
    ]
    click.echo(table(["ID", "HOST", "OS", "AGENT", "STATE", "LAST SEEN", "GROUP"], rows))


@click.group()
def device() -> None:
    """One device."""


@device.command("revoke")
@click.argument("device_id")
@pass_context
def device_revoke(ctx: Context, device_id: str) -> None:
    """Revoke a device: its key is refused from now on (a running console cuts it off)."""
    view = ctx.run(lambda store: store.devices.revoke_device(device_id))
    click.echo(f"device {view.id} ({view.hostname or '?'}) revoked")
