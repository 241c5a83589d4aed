"""Opening the agent's channel to its console, and saying why it failed.

Enrollment, the daemon and ``deskside-agent help`` all connect the same way: to
the configured URL, with the agent's key, pinning the console's key and, when
enrollment gave one, its TLS certificate.
"""

from __future__ import annotations

from deskside.channel import Channel, connect
from deskside.protocol.connection import ChannelConfig, CloseCode
from deskside.protocol.errors import ConnectionClosed, DesksideError, HandshakeError

from .config import AgentConfig, Identity
from .system import agent_version

__all__ = ["channel_config", "describe_failure", "is_refusal", "open_uplink", "refusal_reason"]


def channel_config(*, handshake_timeout: float = 10.0) -> ChannelConfig:
    """The agent side's channel settings."""
    # Heartbeats go out every 30 s; a keep-alive ping more often than that only costs
    # the console CPU (benchmarks/fleet.py). The console pings every 45 s as well.
    return ChannelConfig(
        software_version=agent_version(),
        handshake_timeout=handshake_timeout,
        keepalive_interval=45.0,
        idle_timeout=100.0,
    )


async def open_uplink(
    console_url: str,
    console_key: bytes,
    identity: Identity,
    *,
    tls_fingerprint: str | None = None,
    open_timeout: float = 10.0,
    enrollment_token: str | None = None,
) -> Channel:
    """Open an authenticated channel to the console.

    Raises ``ConnectionClosedError`` when the console cannot be reached and
    ``HandshakeError`` when it is not the pinned console or refuses this agent.
    """
    return await connect(
        console_url,
        identity.private_key,
        console_key,
        config=channel_config(handshake_timeout=open_timeout),
        open_timeout=open_timeout,
        enrollment_token=enrollment_token,
        tls_fingerprint=tls_fingerprint,
    )


async def open_configured_uplink(
    config: AgentConfig, identity: Identity, *, open_timeout: float = 10.0
) -> Channel:
    """Open the channel of an enrolled agent, as its configuration says."""
    return await open_uplink(
        config.console_url,
        config.console_key,
        identity,
        tls_fingerprint=config.tls_fingerprint,
        open_timeout=open_timeout,
    )


def is_refusal(exc: BaseException) -> bool:
    """True when the console refused this agent (unknown, revoked, bad token)."""
    code = exc.close_code if isinstance(exc, HandshakeError) else None
    if isinstance(exc, ConnectionClosed):
        code = exc.code
    return code == CloseCode.UNKNOWN_PEER


def refusal_reason(exc: DesksideError) -> str:
    """The console's own words for a refusal."""
    if isinstance(exc, ConnectionClosed):
        return exc.reason or f"close code {exc.code}"
    return str(exc)


def describe_failure(exc: BaseException) -> str:
    """One line saying why a connection attempt or a connection ended."""
    if isinstance(exc, HandshakeError):
        if is_refusal(exc):
            return f"the console refused this device: {refusal_reason(exc)}"
        return str(exc)
    if isinstance(exc, ConnectionClosed):
        if is_refusal(exc):
            return f"the console refused this device: {refusal_reason(exc)}"
        if exc.code == CloseCode.ABNORMAL and exc.reason:
            return exc.reason  # the network's words: "cannot open a WebSocket to ..."
        who = "the console" if exc.by_peer else "the agent"
        text = f"closed by {who} with code {exc.code}"
        return f"{text}: {exc.reason}" if exc.reason else text
    if isinstance(exc, DesksideError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
