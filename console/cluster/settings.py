"""The ``[cluster]`` table of ``console.toml``: whether this console is one of several."""

from __future__ import annotations

import math
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

from deskside.protocol.errors import ConfigError

__all__ = ["ClusterSettings", "default_node_id"]


def default_node_id() -> str:
    """``host-pid-random``: unique per process, so a restarted node is a new node
    (its predecessor's claims expire on their own)."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, kw_only=True)
class ClusterSettings:
    """How this node meets the others (``[cluster]``); no ``redis_url``: a single node."""

    redis_url: str = ""
    """``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``); empty: no
    Redis, the in-process event bus and presence in the database only."""

    node_id: str = field(default_factory=default_node_id)
    """This node's name in the presence registry and in events it publishes."""

    claim_ttl: float = 5.0
    """Seconds a node's claims on its agents outlive its last renewal: how long
    after a crash its devices still show online."""

    outbox: int = 65536
    """Events a node keeps for Redis while it cannot reach it; beyond, the newest are
    dropped and the other nodes' subscribers are told (``overflowed``)."""

    def __post_init__(self) -> None:
        if self.redis_url and urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("cluster.redis_url must be a redis://, rediss:// or unix:// URL")
        if not (0 < len(self.node_id) <= 64 and self.node_id.isprintable()):
            raise ConfigError("cluster.node_id must be 1 to 64 printable characters")
        if not (math.isfinite(self.claim_ttl) and 1.0 <= self.claim_ttl <= 300.0):
            raise ConfigError("cluster.claim_ttl must be between 1 and 300 seconds")
        if not 16 <= self.outbox <= 10_000_000:
            raise ConfigError("cluster.outbox must be between 16 and 10000000")

    @property
    def enabled(self) -> bool:
        """Whether this node is one of several (Redis is configured)."""
        return bool(self.redis_url)

    @classmethod
    def from_toml(cls, data: Mapping[str, object], env: Mapping[str, str]) -> ClusterSettings:
        """Read ``[cluster]`` (every key optional), then ``DESKSIDE_REDIS_URL`` and
        ``DESKSIDE_NODE_ID``."""
        table = data.get("cluster", {})
        if not isinstance(table, Mapping):
            raise ConfigError("[cluster] must be a table")
        kinds = {item.name: item.type for item in fields(cls)}
        values: dict[str, object] = {}
        for key, value in table.items():
            if key not in kinds:
                raise ConfigError(f"unknown setting cluster.{key}")
            kind = kinds[key]
            if kind == "str" and not isinstance(value, str):
                raise ConfigError(f"cluster.{key} must be a string")
            if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"cluster.{key} must be a whole number")
            if kind == "float":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"cluster.{key} must be a number")
                value = float(value)
            values[key] = value
        if "DESKSIDE_REDIS_URL" in env:
            values["redis_url"] = env["DESKSIDE_REDIS_URL"]
        if env.get("DESKSIDE_NODE_ID"):
            values["node_id"] = env["DESKSIDE_NODE_ID"]
        return cls(**values)  # type: ignore[arg-type]

    def safe_url(self) -> str:
        """The Redis URL without its password, for logs."""
        parts = urlsplit(self.redis_url)
        if parts.password is None:
            return self.redis_url
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
