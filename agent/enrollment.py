"""Enrolling this agent with a console.

The agent makes a new static key and connects with the one-time token from the
enrollment string; the console accepts or refuses inside the Noise handshake (a
refusal is a ``HandshakeError`` carrying the console's reason). Only after the
console has accepted the key does the agent write anything: first
``identity.key``, then ``agent.toml``, which is what makes it enrolled. A refused
or failed enrollment leaves the files as they were.

A roll-out enrolls thousands of machines at once, and a console under that load
turns some away (503 with ``Retry-After``) rather than start handshakes it could
not finish; some answers get lost. So a failure that may pass (busy, out of
reach, timed out: ``deskside.channel.retry``) is tried again, with the same key,
after jittered exponential backoff on top of the console's ``Retry-After``, until
the token expires (the enrollment string says when; ``retry_for`` overrides it).
The console enrolls a key again with the token it enrolled with without spending
another use, so a lost answer costs nothing. A definite refusal (unknown, spent
or expired token, revoked device, not the pinned console) ends it at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec

from deskside.channel.retry import with_retries
from deskside.protocol.connection import CloseCode
from deskside.protocol.enrollment import Enrollment, check_agent_url
from deskside.protocol.errors import ConfigError, DesksideError

from .backoff import Backoff
from .config import AgentConfig, AgentPaths, Identity, load_config, save_config, save_identity
from .policy import CommandPolicy
from .system import make_hello
from .uplink import describe_failure, open_uplink

__all__ = ["DEFAULT_RETRY_WINDOW", "check_not_enrolled", "enroll", "enrollment_from_options"]

logger = logging.getLogger(__name__)

# How long to keep trying when the enrollment string does not say when its token
# expires (one made by an older console), in seconds.
DEFAULT_RETRY_WINDOW = 600.0


def enrollment_from_options(
    server: str, token: str, console_key: str, tls_fingerprint: str | None = None
) -> Enrollment:
    """An ``Enrollment`` from separate values; ``ConfigError`` says which one is wrong."""
    try:
        key = base64.b64decode(console_key.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("the console key is not base64") from exc
    try:
        enrollment = msgspec.convert(
            {
                "url": server.strip(),
                "token": token.strip(),
                "console_key": key,
                "tls_fingerprint": tls_fingerprint.strip().lower() if tls_fingerprint else None,
            },
            Enrollment,
        )
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid enrollment option: {exc}") from exc
    check_agent_url(enrollment.url)
    return enrollment


def check_not_enrolled(paths: AgentPaths) -> None:
    """Raise ``ConfigError`` if this agent is already enrolled (a config file exists)."""
    try:
        config = load_config(paths)
    except ConfigError as exc:
        raise ConfigError(
            f"this agent already has a configuration, which is damaged ({exc}); "
            "use --force to enroll again, which replaces it"
        ) from exc
    if config is not None:
        raise ConfigError(
            f"this agent is already enrolled as device {config.device_id} with "
            f"{config.console_url}; use --force to enroll again, which replaces its identity"
        )


async def enroll(
    paths: AgentPaths,
    enrollment: Enrollment,
    *,
    force: bool = False,
    open_timeout: float = 10.0,
    retry_for: float | None = None,
    on_retry: Callable[[str], None] | None = None,
    backoff: Backoff | None = None,
) -> tuple[AgentConfig, Identity]:
    """Enroll with the console named by ``enrollment``; the new config and identity.

    Tries again while the failure may pass, until the token expires (or for
    ``retry_for`` seconds); ``on_retry`` is told why and how long it waits.
    Raises ``ConfigError`` if already enrolled (unless ``force``), and the channel's
    ``HandshakeError`` / ``ConnectionClosedError`` when the console refuses or
    cannot be reached in that time; nothing is written then.
    """
    if not force:
        await asyncio.to_thread(check_not_enrolled, paths)
    policy = await asyncio.to_thread(_kept_policy, paths)
    identity = await asyncio.to_thread(Identity.generate)
    now = time.time()
    if retry_for is not None:
        until = now + retry_for
    elif enrollment.expires is not None:
        until = float(enrollment.expires)
    else:
        until = now + DEFAULT_RETRY_WINDOW
    backoff = backoff or Backoff(base=1.0, cap=30.0)

    def retrying(exc: DesksideError, delay: float) -> None:
        text = f"cannot enroll yet ({describe_failure(exc)}); trying again in {delay:.0f} s"
        logger.warning("%s", text)
        if on_retry is not None:
            on_retry(text)

    channel = await with_retries(
        lambda: open_uplink(
            enrollment.url,
            enrollment.console_key,
            identity,
            tls_fingerprint=enrollment.tls_fingerprint,
            open_timeout=open_timeout,
            enrollment_token=enrollment.token,
        ),
        until=until,
        next_delay=backoff.next_delay,
        on_retry=retrying,
    )
    # The console has registered the key: from here on, enrollment has happened,
    # so a failure to say hello must not keep the agent from saving its identity.
    try:
        await channel.send(await make_hello())
    except DesksideError as exc:
        logger.warning("enrolled, but sending Hello failed: %s", exc)
    finally:
        with contextlib.suppress(DesksideError, TimeoutError):
            await asyncio.wait_for(channel.close(CloseCode.NORMAL, "enrolled"), open_timeout)
    config = AgentConfig(
        console_url=enrollment.url,
        console_key=enrollment.console_key,
        device_id=identity.device_id,
        tls_fingerprint=enrollment.tls_fingerprint,
        commands=policy,
    )
    await asyncio.to_thread(_save, paths, config, identity)
    return config, identity


def _kept_policy(paths: AgentPaths) -> CommandPolicy:
    """The owner's command policy of the configuration being replaced, if it is readable.

    Enrolling again changes who the device talks to, not what it allows.
    """
    try:
        config = load_config(paths)
    except ConfigError:
        config = None
    return config.commands if config is not None else CommandPolicy()


def _save(paths: AgentPaths, config: AgentConfig, identity: Identity) -> None:
    save_identity(paths, identity)
    save_config(paths, config)
