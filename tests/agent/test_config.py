"""Configuration, identity and directories of the agent."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from deskside.agent.config import (
    AgentConfig,
    AgentPaths,
    Identity,
    load_config,
    load_enrolled,
    load_identity,
    resolve_paths,
    save_config,
    save_identity,
)
from deskside.protocol.errors import ConfigError
from deskside.protocol.messages import DeviceId


def make_config(identity: Identity, **changes: object) -> AgentConfig:
    values: dict[str, object] = {
        "console_url": "wss://console.example:8443/agent",
        "console_key": bytes(range(32)),
        "device_id": identity.device_id,
        "tls_fingerprint": "ab" * 32,
        "heartbeat_interval": 2.5,
        "log_level": "DEBUG",
    }
    values.update(changes)
    return AgentConfig(**values)  # type: ignore[arg-type]


def test_paths_option_beats_environment_beats_default(tmp_path: Path) -> None:
    env = {
        "DESKSIDE_AGENT_CONFIG_DIR": str(tmp_path / "env-c"),
        "DESKSIDE_AGENT_STATE_DIR": str(tmp_path / "env-s"),
    }
    paths = resolve_paths(tmp_path / "opt-c", None, env)
    assert paths.config_dir == tmp_path / "opt-c"
    assert paths.state_dir == tmp_path / "env-s"
    defaults = resolve_paths(None, None, {})
    assert "deskside-agent" in str(defaults.config_dir)
    assert "deskside-agent" in str(defaults.state_dir)
    assert paths.spool_dir == tmp_path / "env-s" / "spool"


def test_config_round_trip(tmp_path: Path) -> None:
    paths = AgentPaths(tmp_path / "c", tmp_path / "s")
    identity = Identity.generate()
    for config in (
        make_config(identity),
        make_config(identity, tls_fingerprint=None, heartbeat_interval=None, log_level="INFO"),
        make_config(identity, console_url='ws://h/agent?q="\\x\x7f"'),
    ):
        save_config(paths, config)
        assert load_config(paths) == config
    assert stat.S_IMODE(paths.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.config_dir.stat().st_mode) == 0o700
    assert not [p for p in paths.config_dir.iterdir() if p.name.startswith(".")]  # no temp left


def test_identity_round_trip_and_secrecy(tmp_path: Path) -> None:
    paths = AgentPaths(tmp_path / "c", tmp_path / "s")
    identity = Identity.generate()
    save_identity(paths, identity)
    assert load_identity(paths) == identity
    assert stat.S_IMODE(paths.identity_file.stat().st_mode) == 0o600
    text = repr(identity) + str(identity)
    assert identity.private_key.hex() not in text
    assert repr(identity.private_key) not in text
    assert identity.device_id in text


def test_damaged_identity(tmp_path: Path) -> None:
    paths = AgentPaths(tmp_path / "c", tmp_path / "s")
    with pytest.raises(ConfigError, match="missing"):
        load_identity(paths)
    paths.config_dir.mkdir()
    paths.identity_file.write_bytes(b"secret-ish but short")
    with pytest.raises(ConfigError, match="not a 32-byte key file") as info:
        load_identity(paths)
    assert "secret-ish" not in str(info.value)


def test_enrolled_needs_matching_key(tmp_path: Path) -> None:
    paths = AgentPaths(tmp_path / "c", tmp_path / "s")
    assert load_enrolled(paths) is None
    identity = Identity.generate()
    save_identity(paths, identity)
    save_config(paths, make_config(identity, device_id=DeviceId("d0000")))
    with pytest.raises(ConfigError, match="does not match"):
        load_enrolled(paths)
    save_config(paths, make_config(identity))
    assert load_enrolled(paths) == (make_config(identity), identity)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("x = ", "not valid TOML"),
        ("[console]\nurl = 1\n[agent]\n", "[console] url must be a non-empty string"),
        ("[console]\nurl = 'ws://h/a'\n[agent]\n", "[console] public_key is missing"),
        ("[extra]\n[console]\n[agent]\n", "unknown keys or tables: extra"),
        (
            "[console]\nurl='ws://h/a'\npublic_key='" + "A" * 43 + "='\ntls_fingerprint='xyz'\n"
            "[agent]\ndevice_id='d'\n",
            "tls_fingerprint is not 64 hexadecimal digits",
        ),
        (
            "[console]\nurl='ws://h/a'\npublic_key='" + "A" * 43 + "='\n"
            "[agent]\ndevice_id='d'\nlog_level='LOUD'\n",
            "log_level is 'LOUD'",
        ),
        (
            "[console]\nurl='ws://h/a'\npublic_key='" + "A" * 43 + "='\n"
            "[agent]\ndevice_id='d'\nheartbeat_interval=0\n",
            "heartbeat_interval must be between",
        ),
    ],
)
def test_config_errors_name_file_and_fault(text: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as info:
        AgentConfig.from_toml(text, "/etc/agent.toml")
    assert complaint in str(info.value)
    assert str(info.value).startswith("/etc/agent.toml")


def test_non_utf8_config(tmp_path: Path) -> None:
    paths = AgentPaths(tmp_path, tmp_path)
    paths.config_file.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(paths)
