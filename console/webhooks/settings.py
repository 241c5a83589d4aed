"""The webhooks' settings in ``console.toml``::

    [webhooks]
    allow_networks = ["127.0.0.0/8"]   # networks endpoints may be in though not public
    timeout = 10.0                     # seconds one attempt may take

Without ``allow_networks`` only public addresses are reached (``addresses.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from deskside.console.errors import InvalidRequest
from deskside.protocol.errors import ConfigError

from .addresses import AddressGuard, Network, own_addresses, parse_networks

__all__ = ["WebhookSettings"]


@dataclass(frozen=True)
class WebhookSettings:
    """What ``[webhooks]`` says."""

    allow_networks: tuple[Network, ...] = ()
    """Networks endpoints may be in although they are private, loopback or the console's."""

    timeout: float = 10.0
    """Seconds one attempt may take, as a whole."""

    @classmethod
    def from_toml(cls, data: Mapping[str, object]) -> WebhookSettings:
        """The ``[webhooks]`` table of a parsed ``console.toml``; ``ConfigError`` if wrong."""
        table = data.get("webhooks", {})
        if not isinstance(table, Mapping):
            raise ConfigError("console.toml: [webhooks] must be a table")
        unknown = sorted(set(table) - {"allow_networks", "timeout"})
        if unknown:
            raise ConfigError(f"console.toml: [webhooks] has unknown keys: {', '.join(unknown)}")
        allow = table.get("allow_networks", [])
        if not isinstance(allow, list):
            raise ConfigError("console.toml: [webhooks] allow_networks is a list of networks")
        try:
            networks = parse_networks(allow)
        except InvalidRequest as exc:
            raise ConfigError(f"console.toml: [webhooks] {exc}") from exc
        timeout = table.get("timeout", cls.timeout)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ConfigError("console.toml: [webhooks] timeout is a number of seconds")
        if not 1 <= timeout <= 60:
            raise ConfigError("console.toml: [webhooks] timeout is 1 to 60 seconds")
        return cls(allow_networks=networks, timeout=float(timeout))

    def guard(self, names: Iterable[str]) -> AddressGuard:
        """The address guard of these settings; ``names``: the console's own host names
        and addresses (its host, public URL's host, listening address)."""
        return AddressGuard(allow_networks=self.allow_networks, own=own_addresses(names))
