"""Where the agent keeps its files, its configuration and its identity.

Two directories, from platformdirs for the app ``deskside-agent`` unless overridden
(the ``--config-dir`` / ``--state-dir`` options win over the
``DESKSIDE_AGENT_CONFIG_DIR`` / ``DESKSIDE_AGENT_STATE_DIR`` variables, which win
over the defaults)::

    config dir (0700)
        agent.toml      the console to talk to and this device's settings
        identity.key    the agent's Noise static private key: 32 raw bytes, 0600
    state dir (0700)
        status.json     what the daemon is doing, for ``deskside-agent status``
        tickets.json    the tickets this device's help requests were filed as
        spool/          help requests waiting for the console's Ack
        audit.log       every command and terminal run or refused, hash-chained (0600)
        audit.head      the last entry's number and hash, so a cut tail shows
        commands/       one record per command id (at most once), results not yet acked
        shells/         terminal transcripts, asciinema v2 (0600)

The agent is *enrolled* once ``agent.toml`` exists; it is written last, after the
identity key, so a half-finished enrollment leaves an agent that is not enrolled.

``agent.toml`` also holds the owner's policy for remote commands, the
``[commands]`` table (``deskside.agent.policy``); without it the defaults apply:
any command, each one only with the logged-in user's consent, and nothing where
nobody can be asked.

The private key is held by ``Identity``, whose repr leaves it out; no message,
log line or exception of the agent contains it.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import platformdirs

from deskside.protocol import crypto
from deskside.protocol.enrollment import check_agent_url, device_id
from deskside.protocol.errors import ConfigError, DesksideError
from deskside.protocol.messages import DeviceId

from .chat.policy import ChatPolicy
from .files import ensure_private_dir, write_atomic
from .policy import CommandPolicy
from .screen.policy import ScreenPolicy

__all__ = [
    "APP_NAME",
    "CONFIG_DIR_ENV",
    "LOG_LEVELS",
    "STATE_DIR_ENV",
    "AgentConfig",
    "AgentPaths",
    "Identity",
    "load_config",
    "load_enrolled",
    "load_identity",
    "resolve_paths",
    "save_config",
    "save_identity",
]

APP_NAME: Final = "deskside-agent"
CONFIG_DIR_ENV: Final = "DESKSIDE_AGENT_CONFIG_DIR"
STATE_DIR_ENV: Final = "DESKSIDE_AGENT_STATE_DIR"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_KEY_LENGTH: Final = 32
_FINGERPRINT: Final = re.compile(r"^[0-9a-f]{64}$")
_MAX_CONFIG_SIZE: Final = 64 * 1024
_MIN_HEARTBEAT: Final = 0.1
_MAX_HEARTBEAT: Final = 3600.0


@dataclass(frozen=True)
class AgentPaths:
    """The agent's two directories, and the files in them."""

    config_dir: Path
    """Configuration and identity (platformdirs' user config dir by default)."""

    state_dir: Path
    """Status, ticket log and spool (platformdirs' user state dir by default)."""

    @property
    def config_file(self) -> Path:
        """The TOML configuration; it exists once the agent is enrolled."""
        return self.config_dir / "agent.toml"

    @property
    def identity_file(self) -> Path:
        """The static private key, 0600."""
        return self.config_dir / "identity.key"

    @property
    def status_file(self) -> Path:
        """The daemon's status, rewritten as it changes."""
        return self.state_dir / "status.json"

    @property
    def tickets_file(self) -> Path:
        """The tickets filed for this device's help requests."""
        return self.state_dir / "tickets.json"

    @property
    def spool_dir(self) -> Path:
        """Help requests not yet acknowledged by the console, one file each."""
        return self.state_dir / "spool"

    @property
    def audit_file(self) -> Path:
        """The agent's hash-chained audit log, JSON lines."""
        return self.state_dir / "audit.log"

    @property
    def audit_head_file(self) -> Path:
        """The audit log's last sequence number and hash."""
        return self.state_dir / "audit.head"

    @property
    def commands_dir(self) -> Path:
        """Command records (``<id>.json``) and result spools (``<id>.results``)."""
        return self.state_dir / "commands"

    @property
    def chat_file(self) -> Path:
        """The chat's state: the last line shown, answers not yet delivered, recent lines."""
        return self.state_dir / "chat.json"

    @property
    def shells_dir(self) -> Path:
        """Terminal transcripts, ``<session id>.cast``."""
        return self.state_dir / "shells"


def resolve_paths(
    config_dir: Path | None = None,
    state_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentPaths:
    """The agent's directories: options, else environment variables, else platformdirs."""
    env = os.environ if environ is None else environ

    def pick(option: Path | None, variable: str, default: Path) -> Path:
        if option is not None:
            return option.expanduser()
        value = env.get(variable, "")
        if value:
            return Path(value).expanduser()
        return default

    return AgentPaths(
        config_dir=pick(
            config_dir, CONFIG_DIR_ENV, platformdirs.user_config_path(APP_NAME, appauthor=False)
        ),
        state_dir=pick(
            state_dir, STATE_DIR_ENV, platformdirs.user_state_path(APP_NAME, appauthor=False)
        ),
    )


@dataclass(frozen=True)
class Identity:
    """The agent's static key pair; the private half never shows in a repr."""

    private_key: bytes = field(repr=False)
    """The X25519 private key, 32 bytes."""

    public_key: bytes
    """The X25519 public key the console knows this device by."""

    device_id: DeviceId
    """The device id derived from the public key."""

    @classmethod
    def from_private_key(cls, private_key: bytes) -> Identity:
        """The identity of an existing private key."""
        public = crypto.public_key(private_key)
        return cls(private_key, public, device_id(public))

    @classmethod
    def generate(cls) -> Identity:
        """A new random identity."""
        return cls.from_private_key(crypto.generate_private_key())


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """The agent's configuration, as written by ``deskside-agent enroll``."""

    console_url: str
    """Where the console listens for agents: ``wss://host:port/agent``."""

    console_key: bytes
    """The console's Noise static public key, pinned at enrollment (32 bytes)."""

    device_id: DeviceId
    """This device's id; must match ``identity.key``."""

    tls_fingerprint: str | None = None
    """SHA-256 of the console's TLS certificate (lower-case hex), pinned if set."""

    heartbeat_interval: float | None = None
    """Seconds between heartbeats; None: as the console asks in the handshake."""

    log_level: str = "INFO"
    """The daemon's log level: DEBUG, INFO, WARNING, ERROR or CRITICAL."""

    commands: CommandPolicy = field(default_factory=CommandPolicy)
    """The owner's policy for remote commands and terminals (``[commands]``)."""

    screen: ScreenPolicy = field(default_factory=ScreenPolicy)
    """The owner's policy for screen sessions (``[screen]``)."""

    chat: ChatPolicy = field(default_factory=ChatPolicy)
    """The owner's policy for chat with the help desk (``[chat]``)."""

    def to_toml(self) -> str:
        """The TOML text of this configuration."""
        lines = [
            "# Deskside agent configuration, written by 'deskside-agent enroll'.",
            "# The private key is in identity.key beside this file; never share it.",
            "",
            "[console]",
            f"url = {_toml_string(self.console_url)}",
            f"public_key = {_toml_string(base64.b64encode(self.console_key).decode('ascii'))}",
        ]
        if self.tls_fingerprint is not None:
            lines.append(f"tls_fingerprint = {_toml_string(self.tls_fingerprint)}")
        lines += ["", "[agent]", f"device_id = {_toml_string(self.device_id)}"]
        lines.append(f"log_level = {_toml_string(self.log_level)}")
        if self.heartbeat_interval is not None:
            lines.append(f"heartbeat_interval = {self.heartbeat_interval!r}")
        lines += ["", *self.commands.toml_lines(_toml_string)]
        lines += ["", *self.screen.toml_lines(_toml_string)]
        lines += ["", *self.chat.toml_lines(_toml_string)]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str, source: str = "the configuration") -> AgentConfig:
        """Parse and check a configuration; ``ConfigError`` names ``source`` and the fault."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source} is not valid TOML: {exc}") from exc
        reader = _TableReader(document, source)
        console = reader.table("console", {"url", "public_key", "tls_fingerprint"})
        agent = reader.table("agent", {"device_id", "log_level", "heartbeat_interval"})
        reader.no_other_tables({"console", "agent", "commands", "screen", "chat"})
        commands_table = document.get("commands", {})
        if not isinstance(commands_table, dict):
            raise ConfigError(f"{source}: commands must be a table")
        commands = CommandPolicy.from_table(commands_table, source)
        screen_table = document.get("screen", {})
        if not isinstance(screen_table, dict):
            raise ConfigError(f"{source}: screen must be a table")
        screen = ScreenPolicy.from_table(screen_table, source)
        chat_table = document.get("chat", {})
        if not isinstance(chat_table, dict):
            raise ConfigError(f"{source}: chat must be a table")
        chat = ChatPolicy.from_table(chat_table, source)

        url = console.string("url")
        try:
            check_agent_url(url)
        except ConfigError as exc:
            raise ConfigError(f"{source}: [console] url: {exc}") from exc
        key_text = console.string("public_key")
        try:
            console_key = base64.b64decode(key_text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"{source}: [console] public_key is not base64") from exc
        if len(console_key) != _KEY_LENGTH:
            raise ConfigError(
                f"{source}: [console] public_key is {len(console_key)} bytes, not {_KEY_LENGTH}"
            )
        fingerprint = console.optional_string("tls_fingerprint")
        if fingerprint is not None:
            fingerprint = fingerprint.lower()
            if not _FINGERPRINT.match(fingerprint):
                raise ConfigError(
                    f"{source}: [console] tls_fingerprint is not 64 hexadecimal digits"
                )
        device = agent.string("device_id")
        level = (agent.optional_string("log_level") or "INFO").upper()
        if level not in LOG_LEVELS:
            raise ConfigError(
                f"{source}: [agent] log_level is {level!r}, not one of {', '.join(LOG_LEVELS)}"
            )
        heartbeat = agent.optional_number("heartbeat_interval")
        if heartbeat is not None and not _MIN_HEARTBEAT <= heartbeat <= _MAX_HEARTBEAT:
            raise ConfigError(
                f"{source}: [agent] heartbeat_interval must be between "
                f"{_MIN_HEARTBEAT} and {_MAX_HEARTBEAT:g} seconds"
            )
        return cls(
            console_url=url,
            console_key=console_key,
            device_id=DeviceId(device),
            tls_fingerprint=fingerprint,
            heartbeat_interval=heartbeat,
            log_level=level,
            commands=commands,
            screen=screen,
            chat=chat,
        )


class _TableReader:
    """Typed access to one TOML table, with errors that name the file and the key."""

    def __init__(self, table: dict[str, Any], source: str, name: str = "") -> None:
        self._table = table
        self._source = source
        self._name = name

    def _where(self, key: str) -> str:
        return f"{self._source}: [{self._name}] {key}" if self._name else f"{self._source}: {key}"

    def table(self, key: str, allowed: set[str]) -> _TableReader:
        value = self._table.get(key)
        if value is None:
            raise ConfigError(f"{self._source}: the [{key}] table is missing")
        if not isinstance(value, dict):
            raise ConfigError(f"{self._source}: {key} must be a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ConfigError(f"{self._source}: [{key}] has unknown keys: {', '.join(unknown)}")
        return _TableReader(value, self._source, key)

    def no_other_tables(self, allowed: set[str]) -> None:
        unknown = sorted(set(self._table) - allowed)
        if unknown:
            raise ConfigError(f"{self._source}: unknown keys or tables: {', '.join(unknown)}")

    def string(self, key: str) -> str:
        value = self.optional_string(key)
        if value is None:
            raise ConfigError(f"{self._where(key)} is missing")
        return value

    def optional_string(self, key: str) -> str | None:
        value = self._table.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{self._where(key)} must be a non-empty string")
        return value

    def optional_number(self, key: str) -> float | None:
        value = self._table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self._where(key)} must be a number")
        if not math.isfinite(value):
            raise ConfigError(f"{self._where(key)} must be a finite number")
        return float(value)


def _toml_string(value: str) -> str:
    """``value`` as a TOML basic string."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def load_config(paths: AgentPaths) -> AgentConfig | None:
    """The configuration, or None when the agent is not enrolled (no config file).

    Raises ``ConfigError`` naming the file and what is wrong with it.
    """
    path = paths.config_file
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_CONFIG_SIZE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > _MAX_CONFIG_SIZE:
        raise ConfigError(f"{path} is over {_MAX_CONFIG_SIZE} bytes; it is not a config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text") from exc
    return AgentConfig.from_toml(text, str(path))


def save_config(paths: AgentPaths, config: AgentConfig) -> None:
    """Write the configuration atomically (0600, in a 0700 directory)."""
    ensure_private_dir(paths.config_dir)
    write_atomic(paths.config_file, config.to_toml().encode("utf-8"))


def load_identity(paths: AgentPaths) -> Identity:
    """The agent's identity from ``identity.key``; ``ConfigError`` if missing or bad."""
    path = paths.identity_file
    try:
        with path.open("rb") as file:
            data = file.read(_KEY_LENGTH + 1)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} is missing; enroll again with 'deskside-agent enroll'") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) != _KEY_LENGTH:
        # Never echo the content: it is (part of) a private key.
        raise ConfigError(f"{path} is not a {_KEY_LENGTH}-byte key file")
    try:
        return Identity.from_private_key(data)
    except DesksideError as exc:
        raise ConfigError(f"{path} does not hold a valid private key") from exc


def save_identity(paths: AgentPaths, identity: Identity) -> None:
    """Write the private key atomically to ``identity.key`` (0600, directory 0700)."""
    ensure_private_dir(paths.config_dir)
    write_atomic(paths.identity_file, identity.private_key, mode=0o600)


def load_enrolled(paths: AgentPaths) -> tuple[AgentConfig, Identity] | None:
    """Configuration and identity of an enrolled agent; None when not enrolled.

    Raises ``ConfigError`` when a file is bad or the two do not belong together.
    """
    config = load_config(paths)
    if config is None:
        return None
    identity = load_identity(paths)
    if identity.device_id != config.device_id:
        raise ConfigError(
            f"{paths.config_file}: device_id {config.device_id} does not match the key in "
            f"{paths.identity_file} ({identity.device_id}); enroll again with --force"
        )
    return config, identity
