"""What a peer may cost the console before it has proven who it is.

Theory of operation. Every connection to the console's port is unauthenticated
until it has sent a request head (the API then checks the request's token) or,
for an agent, until the Noise handshake has admitted its key. Until then it is
held to small, fixed bounds, so that a flood of peers that never authenticate
costs little memory and no time::

    TCP ─> TLS handshake ─> request head ─┬─> HTTP request (token checked per request)
    tls_handshake_timeout   header_timeout │
    (asyncio)               connections,   └─> /agent WebSocket ─> Noise handshake ─> agent
                            ..._per_address     handshake_timeout, handshake_bytes,
                            (deskside.console.listener)   handshakes, ..._per_address
                                                          (deskside.console.gateway)

A peer over a cap is refused at once, with HTTP 503 and ``Retry-After``, before
the console starts any work for it: a console under an enrollment storm sheds the
connections it could not finish rather than let every handshake time out.
Agents wait at least that long, plus their own jittered backoff, and try again.

``Admission`` counts the slots; it does no I/O and reads no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

from deskside.protocol.errors import ConfigError

__all__ = ["END", "EXTENSION", "HOLD", "Admission", "ConnectionLimits", "Slot"]

# The listener's ASGI extension for WebSockets whose peer authenticates inside them
# (deskside.console.listener): the application holds the byte limit, then ends it.
EXTENSION: Final = "deskside.preauth"
HOLD: Final = "deskside.preauth.hold"
END: Final = "deskside.preauth.end"


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    """Bounds on unauthenticated peers; the ``[limits]`` table of ``console.toml``."""

    tls_handshake_timeout: float = 10.0
    """Seconds a new connection may take to finish its TLS handshake."""

    header_timeout: float = 10.0
    """Seconds from the connection (or the previous response) until the request head
    has arrived whole; bytes dripped in do not extend it."""

    keepalive_timeout: int = 5
    """Seconds an idle connection is kept open after a response, waiting for the next
    request."""

    connections: int = 2048
    """Connections waiting for their request head, from all addresses together."""

    connections_per_address: int = 256
    """Connections waiting for their request head, from one address."""

    handshake_timeout: float = 10.0
    """Seconds an agent has from its WebSocket's opening to the end of the Noise
    handshake."""

    handshake_bytes: int = 4096
    """Bytes an agent may send on its WebSocket before the handshake has admitted it
    (its first handshake message is under 1 KiB)."""

    handshakes: int = 128
    """Agent WebSockets in their handshake, from all addresses together; beyond it a
    new one is refused with ``Retry-After`` (an enrollment storm is shed, not
    started and timed out)."""

    handshakes_per_address: int = 64
    """Agent WebSockets in their handshake from one address (a whole office may sit
    behind one NAT address: refused agents come back after ``retry_after``)."""

    retry_after: int = 2
    """Seconds a refused peer is told to wait (``Retry-After``); agents add jitter."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"limits.{item.name} must be a positive number")
            if item.type == "int" and not isinstance(value, int):
                raise ConfigError(f"limits.{item.name} must be a whole number")

    @classmethod
    def from_toml(cls, data: Mapping[str, object]) -> ConnectionLimits:
        """Read the ``[limits]`` table (every key optional)."""
        table = data.get("limits", {})
        if not isinstance(table, Mapping):
            raise ConfigError("[limits] must be a table")
        known = {item.name: item.type for item in fields(cls)}
        values: dict[str, float | int] = {}
        for key, value in table.items():
            if key not in known:
                raise ConfigError(f"unknown setting limits.{key}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"limits.{key} must be a number")
            if known[key] == "float":
                value = float(value)
            values[key] = value
        return cls(**values)  # type: ignore[arg-type]


class Slot:
    """One peer's place among the unauthenticated; ``release`` it once it is not."""

    def __init__(self, admission: Admission, address: str) -> None:
        self._admission = admission
        self._address = address
        # True until released: releasing twice must not free a second place.
        self.held = True

    def release(self) -> None:
        """Give the place back (idempotent)."""
        if self.held:
            self.held = False
            self._admission._leave(self._address)


class Admission:
    """Counts unauthenticated peers, in total and per address, against two caps."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        # Places held, per peer address; an address with none is not a key.
        self._by_address: dict[str, int] = {}
        # Places held in all.
        self.held = 0

    def enter(self, address: str) -> Slot | None:
        """A place for a peer from ``address``; None when a cap is reached."""
        count = self._by_address.get(address, 0)
        if self.held >= self.total or count >= self.per_address:
            return None
        self._by_address[address] = count + 1
        self.held += 1
        return Slot(self, address)

    def _leave(self, address: str) -> None:
        count = self._by_address[address] - 1
        if count:
            self._by_address[address] = count
        else:
            del self._by_address[address]
        self.held -= 1
