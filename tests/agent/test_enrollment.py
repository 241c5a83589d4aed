"""``deskside-agent enroll`` through the real console script, against a fake console."""

from __future__ import annotations

import asyncio
import base64
import stat
import time
from pathlib import Path

import pytest

from deskside.agent.config import load_config, load_enrolled
from deskside.protocol import messages as m
from deskside.protocol.enrollment import device_id
from tests.agent.conftest import Agent
from tests.agent.fake_console import FakeConsole


async def test_enroll_writes_key_and_config(console: FakeConsole, agent: Agent) -> None:
    token = console.new_token()
    result = await agent.cli("enroll", console.enrollment_string(token))
    assert result.returncode == 0, result.stderr

    loaded = load_enrolled(agent.paths)
    assert loaded is not None
    config, identity = loaded
    assert config.console_url == console.url
    assert config.console_key == console.public_key
    assert config.tls_fingerprint is None
    assert config.device_id == identity.device_id == device_id(identity.public_key)
    assert f"Device id: {config.device_id}" in result.stdout
    # The console registered exactly this key, and got a Hello on the enrolling channel.
    assert console.devices == {config.device_id: identity.public_key}
    assert console.tokens[token] == "used"
    (hello,) = console.received(config.device_id, m.Hello)
    assert isinstance(hello, m.Hello)
    assert hello.os.hostname
    assert hello.agent_version

    key_file = agent.paths.identity_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(agent.paths.config_dir.stat().st_mode) == 0o700
    assert key_file.stat().st_size == 32
    # The private key appears nowhere but in its own file.
    private_b64 = base64.b64encode(identity.private_key).decode()
    assert private_b64 not in agent.paths.config_file.read_text()
    assert private_b64 not in result.stdout + result.stderr
    assert identity.private_key.hex() not in repr(identity)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("used", "enrollment token already used"),
        ("expired", "enrollment token expired"),
        ("unknown", "unknown token"),
    ],
)
async def test_refused_enrollment_writes_nothing(
    console: FakeConsole, agent: Agent, state: str, reason: str
) -> None:
    token = console.new_token(state) if state != "unknown" else "x" * 32
    result = await agent.cli("enroll", console.enrollment_string(token))
    assert result.returncode == 1
    assert reason in result.stderr
    assert "refused" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one clear line, no traceback
    assert not agent.paths.config_dir.exists()
    assert not agent.paths.state_dir.exists()
    assert console.devices == {}


async def test_a_token_is_single_use(console: FakeConsole, agent: Agent, tmp_path: Path) -> None:
    token = console.new_token()
    assert (await agent.cli("enroll", console.enrollment_string(token))).returncode == 0
    other = Agent(tmp_path / "other")
    result = await other.cli("enroll", console.enrollment_string(token))
    assert result.returncode == 1
    assert "already used" in result.stderr


async def test_enrolled_agent_needs_force(console: FakeConsole, agent: Agent) -> None:
    first = await agent.enroll(console)
    key_before = agent.paths.identity_file.read_bytes()

    result = await agent.cli("enroll", console.enrollment_string(console.new_token()))
    assert result.returncode == 1
    assert "already enrolled" in result.stderr
    assert "--force" in result.stderr
    assert agent.paths.identity_file.read_bytes() == key_before

    result = await agent.cli("enroll", "--force", console.enrollment_string(console.new_token()))
    assert result.returncode == 0, result.stderr
    config = load_config(agent.paths)
    assert config is not None
    assert config.device_id != first
    assert agent.paths.identity_file.read_bytes() != key_before
    assert set(console.devices) == {first, config.device_id}


async def test_enroll_with_options(console: FakeConsole, agent: Agent) -> None:
    result = await agent.cli(
        "enroll",
        "--server",
        console.url,
        "--token",
        console.new_token(),
        "--console-key",
        base64.b64encode(console.public_key).decode(),
    )
    assert result.returncode == 0, result.stderr
    assert load_config(agent.paths) is not None


async def test_enroll_usage_errors(agent: Agent) -> None:
    result = await agent.cli("enroll")
    assert result.returncode == 2
    assert "ENROLLMENT-STRING" in result.stderr
    result = await agent.cli("enroll", "--server", "ws://127.0.0.1:1/agent", "--token", "t" * 20)
    assert result.returncode == 2
    result = await agent.cli("enroll", "not-an-enrollment-string")
    assert result.returncode == 1
    assert "deskside:1:" in result.stderr
    assert not agent.paths.config_dir.exists()


async def test_unreachable_console(agent: Agent) -> None:
    """Tried again until the token expires, then the last failure is told."""
    console = FakeConsole()
    await console.start()
    enrollment = console.enrollment_string(console.new_token(), expires=int(time.time()) + 5)
    await console.stop()
    started = time.monotonic()
    result = await agent.cli("enroll", enrollment)
    assert result.returncode == 1
    assert time.monotonic() - started < 15
    assert "cannot enroll yet" in result.stderr
    assert "trying again in" in result.stderr
    assert "cannot reach the console" in result.stderr
    assert not agent.paths.config_dir.exists()


async def test_enroll_waits_for_a_console_that_comes_up(agent: Agent) -> None:
    """A roll-out that starts before the console is up still ends enrolled."""
    console = FakeConsole()
    await console.start()
    token = console.new_token()
    enrollment = console.enrollment_string(token)
    await console.stop()
    enrolling = asyncio.create_task(agent.cli("enroll", enrollment, "--retry-for", "20"))
    await asyncio.sleep(1.5)
    await console.start()
    try:
        result = await enrolling
    finally:
        await console.stop()
    assert result.returncode == 0, result.stderr
    assert "trying again in" in result.stderr
    assert console.tokens[token] == "used"
    assert load_enrolled(agent.paths) is not None


async def test_enroll_tries_again_while_the_console_is_busy(
    console: FakeConsole, agent: Agent
) -> None:
    """A console that sheds handshakes (1013) is asked again, after its wait."""
    console.busy = 2
    token = console.new_token()
    result = await agent.cli("enroll", console.enrollment_string(token))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("trying again in") == 2
    assert "busy" in result.stderr
    assert console.tokens[token] == "used"


async def test_tls_enrollment_pins_the_certificate(agent: Agent, tmp_path: Path) -> None:
    console = FakeConsole()
    console.use_tls(tmp_path)
    await console.start()
    try:
        device = await agent.enroll(console)
        config = load_config(agent.paths)
        assert config is not None
        assert config.console_url.startswith("wss://")
        assert config.tls_fingerprint == console.tls_fingerprint
        # The pinned certificate is used again for later connections: help files a ticket.
        result = await agent.cli("help", "printer on fire")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "Ticket #1 filed."
        (request,) = console.received(device, m.HelpRequest)
        assert isinstance(request, m.HelpRequest)
        assert request.description == "printer on fire"
    finally:
        await console.stop()
