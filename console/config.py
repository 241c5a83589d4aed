"""The console's data directory and configuration.

A data directory holds everything of one console::

    console.toml     settings (below); created by ``deskside-console init``
    noise.key        the console's Noise static private key
    tls/cert.pem     TLS certificate (self-signed unless the admin gave one)
    tls/key.pem      its private key
    deskside.db      the SQLite database, unless [database] url names another
                     (with its -wal and -shm while the console runs)

All of it is private to the console's user (directories 0700, files 0600): the
database holds tickets, terminal transcripts with what technicians typed, and
the hashes of passwords and tokens. ``init`` makes it so whatever the umask or
the directory's earlier state, the console's commands run under umask 077 (so
that SQLite creates the database, and with its mode the -wal and -shm, 0600),
and ``serve`` refuses a directory that group or others may use
(``DataDir.check_private``), naming the command that fixes it.

``console.toml``::

    [server]
    host = "0.0.0.0"
    port = 8443
    public_url = "wss://helpdesk.example.org:8443/agent"   # put in enrollment strings
    [database]
    url = "sqlite:////var/lib/deskside/deskside.db"        # or postgresql://...
    [tls]
    cert = "tls/cert.pem"
    key = "tls/key.pem"
    [priority]                                              # see deskside.console.tickets.policy
    [sla]
    [limits]                                                # see deskside.console.limits
    header_timeout = 10.0                                   # and the other time-outs, caps
    [webhooks]                                              # see deskside.console.webhooks
    allow_networks = ["10.20.0.0/16"]                       # private networks endpoints may be in
    [web]                                                   # see deskside.console.web.settings
    idle = "1h"                                             # sessions' time-outs, 2nd factor
    [cluster]                                               # several nodes: see
    redis_url = "redis://10.0.0.5:6379/0"                   # deskside.console.cluster
    [metrics]                                               # who may read /metrics: see
    allow = ["127.0.0.1/32", "10.0.0.0/8"]                  # deskside.console.metrics
    [logging]
    format = "text"                                         # or "json" (deskside.console.logs)

Environment variables override the file: ``DESKSIDE_DATA_DIR`` (where the directory
is), ``DESKSIDE_DATABASE_URL``, ``DESKSIDE_HOST``, ``DESKSIDE_PORT``,
``DESKSIDE_PUBLIC_URL``, ``DESKSIDE_REDIS_URL``, ``DESKSIDE_NODE_ID``,
``DESKSIDE_METRICS_TOKEN``, ``DESKSIDE_LOG_FORMAT``; command-line options override both.
"""

from __future__ import annotations

import base64
import os
import shlex
import socket
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from deskside.protocol import crypto
from deskside.protocol.enrollment import certificate_fingerprint, check_agent_url
from deskside.protocol.errors import ConfigError

from .cluster.settings import ClusterSettings
from .limits import ConnectionLimits
from .logs import LogFormat
from .metrics import MetricsSettings
from .tickets.policy import Policy
from .web.settings import WebSettings
from .webhooks.settings import WebhookSettings

__all__ = ["ConsoleConfig", "DataDir", "default_data_dir"]

CONFIG_FILE = "console.toml"
NOISE_KEY_FILE = "noise.key"
# The mode bits of group and others, none of which a data directory's files have.
_OTHERS = 0o077


def default_data_dir() -> Path:
    """``$DESKSIDE_DATA_DIR``, else ``./data``."""
    return Path(os.environ.get("DESKSIDE_DATA_DIR", "data"))


@dataclass(frozen=True, kw_only=True)
class ConsoleConfig:
    """The settings of one console."""

    data_dir: Path
    """The console's data directory."""

    host: str = "0.0.0.0"  # noqa: S104 - a server for a network of agents listens on all
    """Address to listen on."""

    port: int = 8443
    """TCP port of the agents' WebSocket, the API and the web UI (one TLS port)."""

    public_url: str = ""
    """The agents' URL of this console (``wss://host:port/agent``), for enrollment strings."""

    database_url: str = ""
    """SQLAlchemy URL of the database; SQLite in the data directory when empty."""

    tls_cert: Path | None = None
    """TLS certificate (PEM); None serves without TLS (only behind a TLS proxy)."""

    tls_key: Path | None = None
    """TLS private key (PEM)."""

    policy: Policy = field(default_factory=Policy)
    """Priority matrix and SLA targets."""

    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    """What unauthenticated peers may cost: time-outs and caps (``[limits]``)."""

    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    """Where webhooks may go and how long an attempt may take (``[webhooks]``)."""
    web: WebSettings = field(default_factory=WebSettings)
    """The web console's sessions and sign-in (``[web]``)."""
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    """Redis, when this console is one node of several (``[cluster]``)."""

    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    """Who may read ``/metrics`` (``[metrics]``)."""

    log_format: LogFormat = LogFormat.TEXT
    """How log lines are written (``[logging] format``)."""

    @property
    def database(self) -> str:
        """The database URL in force."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'deskside.db').resolve()}"

    @property
    def agent_url(self) -> str:
        """The URL agents connect to."""
        if self.public_url:
            return self.public_url
        scheme = "wss" if self.tls_cert is not None else "ws"
        host = socket.getfqdn() if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"{scheme}://{host}:{self.port}/agent"

    def own_names(self) -> list[str]:
        """This console's host names and addresses (webhooks may not be sent there)."""
        names = [self.host, socket.gethostname(), socket.getfqdn()]
        if self.public_url:
            names.append(urlsplit(self.public_url).hostname or "")
        return names

    @classmethod
    def load(cls, data_dir: Path, env: Mapping[str, str] | None = None) -> ConsoleConfig:
        """Read ``console.toml`` of ``data_dir``, then the environment's overrides."""
        env = os.environ if env is None else env
        path = data_dir / CONFIG_FILE
        if not path.is_file():
            raise ConfigError(
                f"{data_dir} is not a console data directory (no {CONFIG_FILE}); "
                "run 'deskside-console init' first"
            )
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        server = _table(data, "server", path)
        database = _table(data, "database", path)
        tls = _table(data, "tls", path)
        config = cls(
            data_dir=data_dir,
            host=_str(server, "host", cls.host, path),
            port=_port(server.get("port", cls.port), path),
            public_url=_str(server, "public_url", "", path),
            database_url=_str(database, "url", "", path),
            tls_cert=_path(data_dir, tls.get("cert")),
            tls_key=_path(data_dir, tls.get("key")),
            policy=Policy.from_toml(data),
            limits=ConnectionLimits.from_toml(data),
            webhooks=WebhookSettings.from_toml(data),
            web=WebSettings.from_toml(data),
            cluster=ClusterSettings.from_toml(data, env),
            metrics=MetricsSettings.from_toml(data, env),
            log_format=_log_format(_table(data, "logging", path), env, path),
        )
        overrides: dict[str, object] = {}
        if "DESKSIDE_DATABASE_URL" in env:
            overrides["database_url"] = env["DESKSIDE_DATABASE_URL"]
        if "DESKSIDE_HOST" in env:
            overrides["host"] = env["DESKSIDE_HOST"]
        if "DESKSIDE_PORT" in env:
            overrides["port"] = _port(env["DESKSIDE_PORT"], "DESKSIDE_PORT")
        if "DESKSIDE_PUBLIC_URL" in env:
            overrides["public_url"] = env["DESKSIDE_PUBLIC_URL"]
        config = replace(config, **overrides)  # type: ignore[arg-type]
        if (config.tls_cert is None) != (config.tls_key is None):
            raise ConfigError(f"{path}: [tls] needs both cert and key, or neither")
        if config.public_url:
            check_agent_url(config.public_url)
        if config.cluster.enabled and not config.database.startswith("postgresql"):
            raise ConfigError(
                "[cluster] redis_url is set: the nodes must share a PostgreSQL database "
                '([database] url = "postgresql://...")'
            )
        return config


class DataDir:
    """The files of a console's data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def initialized(self) -> bool:
        """Whether ``init`` has run here."""
        return (self.path / CONFIG_FILE).exists()

    def create(
        self,
        *,
        host: str,
        port: int,
        public_url: str,
        database_url: str,
        cert: Path | None,
        key: Path | None,
        names: list[str],
    ) -> None:
        """Write a new console's keys and configuration; refuses to overwrite one."""
        if self.initialized():
            raise ConfigError(f"{self.path} holds a console already; it was left untouched")
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(self.path / NOISE_KEY_FILE, base64.b64encode(crypto.generate_private_key()))
        tls_dir = self.path / "tls"
        tls_dir.mkdir(exist_ok=True, mode=0o700)
        if cert is not None and key is not None:
            try:
                cert_pem, key_pem = cert.read_bytes(), key.read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read the TLS certificate or key: {exc}") from exc
        else:
            cert_pem, key_pem, _ = crypto.make_self_signed_certificate(names)
        _write_private(tls_dir / "cert.pem", cert_pem)
        _write_private(tls_dir / "key.pem", key_pem)
        lines = [
            "# Deskside console settings; see deskside.console.config for every key.",
            "[server]",
            f"host = {_toml_str(host)}",
            f"port = {port}",
        ]
        if public_url:
            lines.append(f"public_url = {_toml_str(public_url)}")
        lines += ["", "[database]"]
        if database_url:
            lines.append(f"url = {_toml_str(database_url)}")
        lines += ["", "[tls]", 'cert = "tls/cert.pem"', 'key = "tls/key.pem"', ""]
        _write_private(self.path / CONFIG_FILE, "\n".join(lines).encode("utf-8"))
        self.make_private()

    def _entries(self) -> list[Path]:
        """The directory (or where its link points) and everything in it but symbolic
        links (whose own mode means nothing and whose target may be anybody's)."""
        if not self.path.is_dir():
            return []
        entries = [self.path]
        for directory, dirs, files in os.walk(self.path):
            for name in sorted(dirs) + sorted(files):
                path = Path(directory) / name
                if not path.is_symlink():
                    entries.append(path)
        return entries

    def make_private(self) -> None:
        """Take every right of group and others away from the directory and all in it."""
        for path in self._entries():
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & _OTHERS:
                path.chmod(mode & ~_OTHERS)

    def exposed(self) -> list[Path]:
        """The directory, or what is in it, that group or others may read, write or enter."""
        return [p for p in self._entries() if stat.S_IMODE(p.stat().st_mode) & _OTHERS]

    def check_private(self) -> None:
        """Raise ``ConfigError`` if anything of the directory is open to group or others,
        with the command that closes it."""
        exposed = self.exposed()
        if not exposed:
            return
        shown = ", ".join(f"{p} ({stat.S_IMODE(p.stat().st_mode):04o})" for p in exposed[:3]) + (
            f" and {len(exposed) - 3} more" if len(exposed) > 3 else ""
        )
        raise ConfigError(
            f"the console's data directory is open to other users: {shown}. It holds "
            "keys, tickets, transcripts and password hashes; make it private with: "
            f"chmod -R go-rwx {shlex.quote(str(self.path.resolve()))}"
        )

    def noise_private_key(self) -> bytes:
        """The console's Noise static private key."""
        path = self.path / NOISE_KEY_FILE
        try:
            key = base64.b64decode(path.read_bytes(), validate=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the console key {path}: {exc}") from exc
        if len(key) != 32:
            raise ConfigError(f"{path} does not hold a 32-byte key")
        return key

    def tls_fingerprint(self, config: ConsoleConfig) -> str | None:
        """SHA-256 of the TLS certificate in use (DER), or None without TLS."""
        if config.tls_cert is None:
            return None
        import ssl

        try:
            pem = config.tls_cert.read_text(encoding="ascii")
            der = ssl.PEM_cert_to_DER_cert(pem)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the TLS certificate {config.tls_cert}: {exc}") from exc
        return certificate_fingerprint(der)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _table(data: Mapping[str, object], name: str, path: Path) -> Mapping[str, object]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: [{name}] must be a table")
    return value


def _str(table: Mapping[str, object], key: str, default: str, path: Path) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {key} must be a string")
    return value


def _log_format(table: Mapping[str, object], env: Mapping[str, str], path: Path) -> LogFormat:
    unknown = set(table) - {"format"}
    if unknown:
        raise ConfigError(f"{path}: unknown setting logging.{sorted(unknown)[0]}")
    value = env.get("DESKSIDE_LOG_FORMAT", table.get("format", "text"))
    try:
        return LogFormat(str(value))
    except ValueError:
        raise ConfigError(f'{path}: logging.format must be "text" or "json"') from None


def _port(value: object, where: object) -> int:
    try:
        port = int(str(value))
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError(f"{where}: port must be 0..65535, not {value!r}")
    return port


def _path(data_dir: Path, value: object) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError("tls cert and key are file paths")
    path = Path(value)
    return path if path.is_absolute() else data_dir / path
