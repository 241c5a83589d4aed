"""The ``[commands]`` policy: parsing, defaults, patterns and decisions."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from deskside.agent.config import AgentConfig, AgentPaths, Identity, load_config, save_config
from deskside.agent.policy import (
    CommandMode,
    CommandPolicy,
    ConsentMode,
    Refusal,
    RunPlan,
    Unattended,
    match_pattern,
    plan_command,
    plan_terminal,
)
from deskside.protocol.errors import ConfigError
from deskside.protocol.messages import CommandRequest

BASE = """
[console]
url = "wss://console.example/agent"
public_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

[agent]
device_id = "d1"
"""


def parse(commands: str) -> CommandPolicy:
    return AgentConfig.from_toml(BASE + "\n[commands]\n" + commands, "agent.toml").commands


def request(*argv: str, **fields: Any) -> CommandRequest:
    return CommandRequest(
        command_id="c1", ticket_id=1, argv=list(argv), requested_by="tech", **fields
    )


def test_defaults_are_secure_but_useful() -> None:
    policy = AgentConfig.from_toml(BASE, "agent.toml").commands
    assert policy == CommandPolicy()
    assert policy.mode is CommandMode.ANY
    assert policy.consent is ConsentMode.PROMPT
    assert policy.unattended is Unattended.REFUSE
    assert (policy.shell, policy.terminal) == (False, True)
    assert (policy.timeout_max, policy.output_cap, policy.consent_timeout) == (3600, 10 << 20, 60)
    assert (policy.cwd, policy.run_as) == (None, None)


def test_full_table_and_round_trip(tmp_path: Path) -> None:
    policy = parse(
        """
mode = "allowlist"
allow = [["systemctl", "restart", "cups"], ["journalctl", "-n", "*"], ["ls", "**"]]
shell = true
terminal = false
consent = "notify"
unattended = "allow"
consent_timeout = 20
timeout_max = 120
output_cap = 4096
cwd = "/var/tmp"
run_as = "helpdesk"

[commands.scripts]
flush-dns = ["resolvectl", "flush-caches"]
"odd.name" = ["echo", "quote \\" and \\\\ backslash"]
"""
    )
    assert policy.mode is CommandMode.ALLOWLIST
    assert policy.allow[1] == ("journalctl", "-n", "*")
    assert policy.scripts == {
        "flush-dns": ("resolvectl", "flush-caches"),
        "odd.name": ("echo", 'quote " and \\ backslash'),
    }
    assert (policy.consent, policy.unattended) == (ConsentMode.NOTIFY, Unattended.ALLOW)
    assert (policy.timeout_max, policy.output_cap, policy.cwd) == (120.0, 4096, "/var/tmp")
    # Written by save_config and read back the same, as enrollment and tests do.
    paths = AgentPaths(tmp_path / "c", tmp_path / "s")
    identity = Identity.generate()
    config = AgentConfig(
        console_url="wss://h/agent",
        console_key=bytes(32),
        device_id=identity.device_id,
        commands=policy,
    )
    save_config(paths, config)
    assert load_config(paths) == config
    assert "[commands.scripts]" in paths.config_file.read_text()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('mode = "some"', "[commands] mode is 'some', not one of 'off', 'allowlist', 'any'"),
        ('consent = "ask"', "[commands] consent is 'ask'"),
        ('unattended = "yes"', "[commands] unattended is 'yes'"),
        ('shell = "no"', "[commands] shell must be true or false"),
        ("terminal = 1", "[commands] terminal must be true or false"),
        ("timeout_max = 0", "[commands] timeout_max must be between 1 and 86400 seconds"),
        ("timeout_max = true", "[commands] timeout_max must be a number of seconds"),
        ("consent_timeout = 9999", "[commands] consent_timeout must be between 1 and 600"),
        ("output_cap = 1.5", "[commands] output_cap must be a whole number of bytes"),
        ("output_cap = 0", "[commands] output_cap must be between 1 and"),
        ('cwd = "tmp"', "[commands] cwd must be an absolute path"),
        ('run_as = ""', "[commands] run_as must be a non-empty string"),
        ('allow = "ls"', "[commands] allow must be a list of argv patterns"),
        ("allow = [[]]", "[commands] allow[0] must be a non-empty list of strings"),
        ('allow = [["ls", 1]]', "[commands] allow[0] must be a non-empty list of strings"),
        ('allow = [["ls", "**", "x"]]', "[commands] allow[0]: '**' may only be the last"),
        ('allow = [["", "x"]]', "[commands] allow[0] has an empty program"),
        ('scripts = ["x"]', "[commands] scripts must be a table of name = argv"),
        ('scripts = { "a b" = ["x"] }', "[commands] scripts: 'a b' is not a script name"),
        ("scripts = { a = [] }", "[commands] scripts.a must be a non-empty list of strings"),
        ("colour = 1", "[commands] has unknown keys: colour"),
    ],
)
def test_bad_policy_names_the_key(table: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(table)
    assert str(caught.value).startswith("agent.toml: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("output_cap = 1", "output_cap", 1),
        (f"output_cap = {2**40}", "output_cap", 2**40),
        ("timeout_max = 1", "timeout_max", 1.0),
        ("timeout_max = 86400", "timeout_max", 86400.0),
        ("consent_timeout = 1", "consent_timeout", 1.0),
        ("consent_timeout = 600", "consent_timeout", 600.0),
        ("consent_timeout = 2.5", "consent_timeout", 2.5),
    ],
)
def test_limits_are_accepted(table: str, key: str, value: float) -> None:
    assert getattr(parse(table), key) == value


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (f"output_cap = {2**40 + 1}", f"output_cap must be between 1 and {2**40}"),
        ("output_cap = -1", "output_cap must be between 1 and"),
        ("output_cap = true", "output_cap must be a whole number of bytes"),
        ("timeout_max = 86400.5", "timeout_max must be between 1 and 86400 seconds"),
        ("timeout_max = 0.5", "timeout_max must be between 1 and 86400 seconds"),
        ("timeout_max = nan", "timeout_max must be between"),
        ("timeout_max = inf", "timeout_max must be between"),
        ('timeout_max = "60"', "timeout_max must be a number of seconds"),
        ("consent_timeout = 0.5", "consent_timeout must be between 1 and 600 seconds"),
        ("consent_timeout = 600.5", "consent_timeout must be between 1 and 600 seconds"),
        ("run_as = 1", "run_as must be a non-empty string"),
        ('run_as = "a\\u0000b"', "run_as must be a non-empty string"),
        ('cwd = ""', "cwd must be a non-empty string"),
        ('allow = [["ls", "a\\u0000b"]]', "allow[0] has an empty program or a NUL character"),
        ('scripts = { x = ["", "y"] }', "scripts.x has an empty program"),
        ('scripts = { x = ["a", "**"] }', None),
        ('scripts = { "a\\n" = ["x"] }', "is not a script name"),
        (f'scripts = {{ {"s" * 65} = ["x"] }}', "is not a script name"),
        ("allow = [1]", "allow[0] must be a non-empty list of strings"),
    ],
)
def test_values_out_of_range_are_refused(table: str, message: str | None) -> None:
    if message is None:  # "**" is only special in allow patterns, not in scripts
        assert parse(table).scripts == {"x": ("a", "**")}
        return
    with pytest.raises(ConfigError) as caught:
        parse(table)
    assert message in str(caught.value)


def test_script_names_at_their_limits() -> None:
    name = "a.B-9_" + "x" * 58
    assert parse(f'scripts = {{ "{name}" = ["id"] }}').scripts == {name: ("id",)}


def test_commands_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match="commands must be a table"):
        AgentConfig.from_toml("commands = 1\n" + BASE, "agent.toml")


@pytest.mark.parametrize(
    ("pattern", "argv", "matches"),
    [
        (["systemctl", "restart", "cups"], ["systemctl", "restart", "cups"], True),
        (["systemctl", "restart", "cups"], ["systemctl", "restart", "cups", "x"], False),
        (["systemctl", "restart", "cups"], ["/usr/bin/systemctl", "restart", "cups"], False),
        (["journalctl", "-n", "*"], ["journalctl", "-n", "50"], True),
        (["journalctl", "-n", "*"], ["journalctl", "-n"], False),
        (["journalctl", "-n", "[0-9]*"], ["journalctl", "-n", "-f"], False),
        (["ls", "**"], ["ls"], True),
        (["ls", "**"], ["ls", "-l", "/tmp"], True),
        (["ls", "**"], ["lsblk"], False),
        (["ls", "**"], [], False),
        (["ls", "-l", "**"], ["ls"], False),  # shorter than the pattern's head
        (["ls", "-l", "**"], ["ls", "-l"], True),
        (["Echo"], ["echo"], False),  # case-sensitive everywhere
    ],
)
def test_patterns(pattern: list[str], argv: list[str], matches: bool) -> None:
    assert match_pattern(pattern, argv) is matches


def test_plans_and_refusals() -> None:
    any_policy = CommandPolicy(timeout_max=30, cwd="/srv", output_cap=99)
    plan = plan_command(any_policy, request("ls", "-l", timeout=600), is_root=False)
    assert plan == RunPlan(argv=("ls", "-l"), timeout=30, cwd="/srv", run_as=None, output_cap=99)
    plan = plan_command(any_policy, request("ls", cwd="/tmp"), is_root=False)
    assert isinstance(plan, RunPlan)
    assert plan.cwd == "/tmp"

    def refused(policy: CommandPolicy, req: CommandRequest, *, root: bool = False) -> str:
        outcome = plan_command(policy, req, is_root=root, platform="linux")
        assert isinstance(outcome, Refusal)
        return outcome.reason

    off = CommandPolicy(mode=CommandMode.OFF)
    assert refused(off, request("ls")) == "not allowed by this device's policy: commands are off"
    assert "shell commands are off" in refused(any_policy, request("ls", shell=True))
    shell_policy = CommandPolicy(shell=True)
    shell_plan = plan_command(
        shell_policy, request("echo hi | wc", shell=True), is_root=False, platform="linux"
    )
    assert isinstance(shell_plan, RunPlan)
    assert shell_plan.argv == ("/bin/sh", "-c", "echo hi | wc")
    windows = plan_command(
        shell_policy, request("dir", shell=True), is_root=False, platform="win32"
    )
    assert isinstance(windows, RunPlan)
    assert windows.argv[1:] == ("/c", "dir")
    assert "one string, not 2" in refused(shell_policy, request("echo", "hi", shell=True))
    allow = CommandPolicy(
        mode=CommandMode.ALLOWLIST, shell=True, allow=(("echo", "**"),), scripts={"s": ("id",)}
    )
    assert "cannot be checked against its allow-list" in refused(allow, request("x", shell=True))
    no_entry = "'id' with these arguments matches no allow-list entry"
    assert refused(allow, request("id", "-u")) == f"not allowed by this device's policy: {no_entry}"
    script = plan_command(allow, request("-u", script="s"), is_root=False)
    assert isinstance(script, RunPlan)
    assert script.argv == ("id", "-u")
    assert "no script named 'nope'" in refused(allow, request("x", script="nope"))
    assert "through a shell" in refused(allow, request("x", script="s", shell=True))
    assert "absolute path" in refused(any_policy, request("ls", cwd="tmp"))
    assert "NUL" in refused(any_policy, request("ls", "a\0b"))
    assert refused(any_policy, request()) == "the command is empty"
    assert refused(any_policy, request("", "x")) == "the command has an empty program name"
    assert "an empty program name" in refused(allow, request("", "x"))
    bare_script = plan_command(allow, request(script="s"), is_root=False)
    assert isinstance(bare_script, RunPlan)
    assert bare_script.argv == ("id",)

    run_as = CommandPolicy(run_as="helpdesk")
    reason = refused(run_as, request("id"), root=False)
    assert reason == (
        "this device's policy says run_as = 'helpdesk', which needs the agent to run as "
        "root; it does not, so nothing runs"
    )
    as_root = plan_command(run_as, request("id"), is_root=True, platform="linux")
    assert isinstance(as_root, RunPlan)
    assert as_root.run_as == "helpdesk"


def test_policies_and_refusals_are_values() -> None:
    policy = CommandPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.mode = CommandMode.OFF  # type: ignore[misc]
    with pytest.raises(TypeError):  # by name only: the order of the fields is no API
        CommandPolicy(CommandMode.OFF)  # type: ignore[call-arg]
    assert {Refusal("no"), Refusal("no")} == {Refusal("no")}
    with pytest.raises(dataclasses.FrozenInstanceError):
        Refusal("no").reason = "yes"  # type: ignore[misc]


def test_terminal_policy() -> None:
    assert plan_terminal(CommandPolicy(), is_root=False, platform="linux") is None
    for policy, reason in (
        (CommandPolicy(mode=CommandMode.OFF), "commands are off"),
        (CommandPolicy(mode=CommandMode.ALLOWLIST), "cannot be held to its allow-list"),
        (CommandPolicy(terminal=False), "terminals are off"),
        (CommandPolicy(run_as="x"), "needs the agent to run as root"),
    ):
        refusal = plan_terminal(policy, is_root=False, platform="linux")
        assert refusal is not None
        assert reason in refusal.reason
    windows = plan_terminal(CommandPolicy(), is_root=False, platform="win32")
    assert windows == Refusal("interactive terminals are not supported on Windows yet")


def test_reenrolling_keeps_the_policy(tmp_path: Path) -> None:
    from deskside.agent.enrollment import _kept_policy

    paths = AgentPaths(tmp_path / "c", tmp_path / "s")
    assert _kept_policy(paths) == CommandPolicy()
    identity = Identity.generate()
    policy = CommandPolicy(mode=CommandMode.OFF)
    config = AgentConfig(
        console_url="wss://h/agent", console_key=bytes(32), device_id=identity.device_id
    )
    save_config(paths, dataclasses.replace(config, commands=policy))
    assert _kept_policy(paths) == policy
