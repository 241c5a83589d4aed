"""The machine owner's policy for remote commands and terminals: the ``[commands]`` table.

The console decides what a technician *may ask*; this policy decides what this
machine *will do*, so a breached console can do no more than the owner allowed.
It lives in ``agent.toml`` and is read again before each connection::

    [commands]
    mode = "any"              # "off", "allowlist" or "any"
    allow = [["systemctl", "restart", "cups"], ["journalctl", "-n", "*"]]
    shell = false             # may a request run through /bin/sh -c (cmd /c)?
    terminal = true           # may the console open an interactive terminal?
    consent = "prompt"        # "prompt", "notify" or "none"
    unattended = "refuse"     # what "prompt" means with nobody to ask: "refuse", "allow"
    consent_timeout = 60      # seconds the user has to answer; silence is a "Deny"
    timeout_max = 3600        # a request's time-out is capped to this (seconds)
    output_cap = 10485760     # bytes of output per command; then it is ended
    cwd = "/var/tmp"          # working directory (default: the home of the user it runs as)
    run_as = "helpdesk"       # run as this user (only when the agent runs as root)

    [commands.scripts]        # named scripts: argv, plus the request's argv appended
    flush-dns = ["resolvectl", "flush-caches"]

The defaults (no ``[commands]`` table) are *secure but useful*: any command may be
asked for (``mode = "any"``), but each one needs the logged-in user's click
(``consent = "prompt"``), and where nobody is logged in to click, nothing runs
(``unattended = "refuse"``). So nothing runs without either the user's consent or
the owner's explicit policy. Shell syntax is off (``shell = false``): commands are
argv lists; an interactive terminal may be asked for (``terminal = true``), with
the same consent.

Rules worth knowing:

* ``allow`` patterns match argument by argument with ``fnmatch`` (``*``, ``?``,
  ``[...]``; case-sensitive); the pattern and the argv have the same length,
  except that a final ``"**"`` matches any number (zero included) of remaining
  arguments. ``*`` matches anything, ``/`` and leading dashes included, so
  ``["journalctl", "*"]`` allows any one option. ``argv[0]`` is matched as sent
  (``"systemctl"`` does not match ``"/usr/bin/systemctl"``) and found on the
  agent's ``PATH``.
* Named scripts run in every mode but ``off``; the request's ``argv`` is appended
  to the script's, so a script is as wide as the arguments it accepts.
* ``shell = true`` works only in ``mode = "any"``: a shell command line cannot be
  checked against an allow-list, so ``allowlist`` refuses every shell request.
  (In mode ``any`` an argv can name a shell program anyway; ``shell`` is about the
  console's explicit shell requests.)
* ``terminal = true`` works only in ``mode = "any"`` for the same reason.
* Commands inherit the agent's environment (with ``HOME``, ``USER``, ``LOGNAME``
  set to the run-as user's when ``run_as`` applies); stdin is empty.
"""

from __future__ import annotations

import enum
import fnmatch
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from deskside.protocol.errors import ConfigError
from deskside.protocol.messages import CommandRequest

__all__ = [
    "DEFAULT_CONSENT_TIMEOUT",
    "DEFAULT_OUTPUT_CAP",
    "DEFAULT_TIMEOUT_MAX",
    "CommandMode",
    "CommandPolicy",
    "ConsentMode",
    "Refusal",
    "RunPlan",
    "Unattended",
    "match_pattern",
    "plan_command",
    "plan_terminal",
]

DEFAULT_OUTPUT_CAP: Final = 10 << 20
DEFAULT_TIMEOUT_MAX: Final = 3600.0
DEFAULT_CONSENT_TIMEOUT: Final = 60.0

# The longest time-out a policy may allow: the wire limit of CommandRequest.timeout.
_TIMEOUT_LIMIT: Final = 86400.0
_OUTPUT_CAP_LIMIT: Final = 1 << 40
_CONSENT_TIMEOUT_RANGE: Final = (1.0, 600.0)
_SCRIPT_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KEYS: Final = frozenset(
    {
        "mode",
        "allow",
        "scripts",
        "shell",
        "terminal",
        "consent",
        "unattended",
        "consent_timeout",
        "timeout_max",
        "output_cap",
        "cwd",
        "run_as",
    }
)
# A final pattern element that matches any remaining arguments.
REST: Final = "**"


class CommandMode(enum.StrEnum):
    """Which commands the console may have run here."""

    OFF = "off"
    ALLOWLIST = "allowlist"
    ANY = "any"


class ConsentMode(enum.StrEnum):
    """How the logged-in user is involved."""

    PROMPT = "prompt"  # ask; Allow or Deny
    NOTIFY = "notify"  # tell, and run at once
    NONE = "none"  # run silently (still audited)


class Unattended(enum.StrEnum):
    """What ``consent = "prompt"`` means when there is nobody to ask."""

    REFUSE = "refuse"
    ALLOW = "allow"


@dataclass(frozen=True, kw_only=True)
class CommandPolicy:
    """The ``[commands]`` table of ``agent.toml``; see the module docstring."""

    mode: CommandMode = CommandMode.ANY
    """``off``: nothing runs; ``allowlist``: ``allow`` patterns and scripts; ``any``."""

    allow: tuple[tuple[str, ...], ...] = ()
    """argv patterns for ``allowlist`` mode (fnmatch per argument, final ``**``)."""

    scripts: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    """Named scripts: name -> argv; the request's argv is appended."""

    shell: bool = False
    """Whether requests with ``shell = true`` may run (only in mode ``any``)."""

    terminal: bool = True
    """Whether an interactive terminal may be opened (only in mode ``any``)."""

    consent: ConsentMode = ConsentMode.PROMPT
    """Ask the user, notify them, or neither."""

    unattended: Unattended = Unattended.REFUSE
    """What ``prompt`` does when no desktop session exists."""

    consent_timeout: float = DEFAULT_CONSENT_TIMEOUT
    """Seconds the consent dialog waits for an answer; then it counts as Deny."""

    timeout_max: float = DEFAULT_TIMEOUT_MAX
    """A request's time-out is capped to this many seconds."""

    output_cap: int = DEFAULT_OUTPUT_CAP
    """Bytes of output sent per command; beyond it the command is ended."""

    cwd: str | None = None
    """Default working directory; None: the home directory of the user it runs as."""

    run_as: str | None = None
    """Run as this user (and their groups); honoured only when the agent is root."""

    @classmethod
    def from_table(cls, table: Mapping[str, Any], source: str) -> CommandPolicy:
        """Check and read a ``[commands]`` table; ``ConfigError`` names the bad key."""
        where = f"{source}: [commands]"
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ConfigError(f"{where} has unknown keys: {', '.join(unknown)}")

        def choice(key: str, kind: type[enum.StrEnum], default: enum.StrEnum) -> Any:
            value = table.get(key, default.value)
            allowed = [member.value for member in kind]
            if value not in allowed:
                raise ConfigError(
                    f"{where} {key} is {value!r}, not one of {', '.join(map(repr, allowed))}"
                )
            return kind(value)

        def flag(key: str, default: bool) -> bool:
            value = table.get(key, default)
            if not isinstance(value, bool):
                raise ConfigError(f"{where} {key} must be true or false")
            return value

        def seconds(key: str, default: float, low: float, high: float) -> float:
            value = table.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{where} {key} must be a number of seconds")
            if not math.isfinite(value) or not low <= value <= high:
                raise ConfigError(f"{where} {key} must be between {low:g} and {high:g} seconds")
            return float(value)

        def text(key: str) -> str | None:
            value = table.get(key)
            if value is not None and (not isinstance(value, str) or not value or "\0" in value):
                raise ConfigError(f"{where} {key} must be a non-empty string")
            return value

        def argv(value: Any, what: str, *, patterns: bool) -> tuple[str, ...]:
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(item, str) for item in value)
            ):
                raise ConfigError(f"{where} {what} must be a non-empty list of strings")
            if not value[0] or "\0" in "".join(value):
                raise ConfigError(f"{where} {what} has an empty program or a NUL character")
            if patterns and REST in value[:-1]:
                raise ConfigError(f"{where} {what}: {REST!r} may only be the last element")
            return tuple(value)

        allow_value = table.get("allow", [])
        if not isinstance(allow_value, list):
            raise ConfigError(f"{where} allow must be a list of argv patterns")
        allow = tuple(
            argv(item, f"allow[{index}]", patterns=True) for index, item in enumerate(allow_value)
        )
        scripts_value = table.get("scripts", {})
        if not isinstance(scripts_value, dict):
            raise ConfigError(f"{where} scripts must be a table of name = argv")
        scripts: dict[str, tuple[str, ...]] = {}
        for name, value in scripts_value.items():
            if not _SCRIPT_NAME.fullmatch(name):
                raise ConfigError(
                    f"{where} scripts: {name!r} is not a script name (letters, digits, . _ -)"
                )
            scripts[name] = argv(value, f"scripts.{name}", patterns=False)

        output_cap = table.get("output_cap", DEFAULT_OUTPUT_CAP)
        if isinstance(output_cap, bool) or not isinstance(output_cap, int):
            raise ConfigError(f"{where} output_cap must be a whole number of bytes")
        if not 1 <= output_cap <= _OUTPUT_CAP_LIMIT:
            raise ConfigError(f"{where} output_cap must be between 1 and {_OUTPUT_CAP_LIMIT}")
        cwd = text("cwd")
        if cwd is not None and not os.path.isabs(cwd):
            raise ConfigError(f"{where} cwd must be an absolute path")
        return cls(
            mode=choice("mode", CommandMode, CommandMode.ANY),
            allow=allow,
            scripts=scripts,
            shell=flag("shell", False),
            terminal=flag("terminal", True),
            consent=choice("consent", ConsentMode, ConsentMode.PROMPT),
            unattended=choice("unattended", Unattended, Unattended.REFUSE),
            consent_timeout=seconds(
                "consent_timeout", DEFAULT_CONSENT_TIMEOUT, *_CONSENT_TIMEOUT_RANGE
            ),
            timeout_max=seconds("timeout_max", DEFAULT_TIMEOUT_MAX, 1.0, _TIMEOUT_LIMIT),
            output_cap=output_cap,
            cwd=cwd,
            run_as=text("run_as"),
        )

    def toml_lines(self, quote: Callable[[str], str]) -> list[str]:
        """The ``[commands]`` table as TOML lines; ``quote`` makes a TOML string."""

        def array(items: Sequence[str]) -> str:
            return "[" + ", ".join(quote(item) for item in items) + "]"

        lines = [
            "# What the help desk may run on this machine (module deskside.agent.policy).",
            "[commands]",
            f"mode = {quote(self.mode.value)}",
            f"consent = {quote(self.consent.value)}",
            f"unattended = {quote(self.unattended.value)}",
            f"shell = {'true' if self.shell else 'false'}",
            f"terminal = {'true' if self.terminal else 'false'}",
            f"consent_timeout = {self.consent_timeout!r}",
            f"timeout_max = {self.timeout_max!r}",
            f"output_cap = {self.output_cap}",
        ]
        if self.cwd is not None:
            lines.append(f"cwd = {quote(self.cwd)}")
        if self.run_as is not None:
            lines.append(f"run_as = {quote(self.run_as)}")
        lines.append("allow = [" + ", ".join(array(pattern) for pattern in self.allow) + "]")
        if self.scripts:
            lines += ["", "[commands.scripts]"]
            lines += [f"{quote(name)} = {array(argv)}" for name, argv in self.scripts.items()]
        return lines


def match_pattern(pattern: Sequence[str], argv: Sequence[str]) -> bool:
    """True if ``argv`` matches an ``allow`` pattern (fnmatch per argument, final ``**``)."""
    if pattern and pattern[-1] == REST:
        head = pattern[:-1]
        if len(argv) < len(head):
            return False
        argv = argv[: len(head)]
        pattern = head
    elif len(pattern) != len(argv):
        return False
    return all(fnmatch.fnmatchcase(arg, pat) for pat, arg in zip(pattern, argv, strict=True))


@dataclass(frozen=True)
class Refusal:
    """The policy refuses; ``reason`` is what the technician and the audit log see."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """What the policy allows a request to run, and how."""

    argv: tuple[str, ...]
    """The program and its arguments, as executed (the shell included, for shell requests)."""

    timeout: float
    """Seconds before the process tree is ended."""

    cwd: str | None
    """Working directory; None: the run-as user's home (or the agent's)."""

    run_as: str | None
    """The user to switch to; None: the agent's own user."""

    output_cap: int
    """Bytes of output sent before the command is ended."""


def _check_run_as(policy: CommandPolicy, *, is_root: bool, platform: str) -> Refusal | None:
    if policy.run_as is None:
        return None
    if platform == "win32":
        return Refusal(f"run_as = {policy.run_as!r} is not supported on Windows yet")
    if not is_root:
        return Refusal(
            f"this device's policy says run_as = {policy.run_as!r}, which needs the agent "
            "to run as root; it does not, so nothing runs"
        )
    return None


def plan_command(
    policy: CommandPolicy,
    request: CommandRequest,
    *,
    is_root: bool,
    platform: str = sys.platform,
) -> RunPlan | Refusal:
    """Decide what ``request`` runs under ``policy``, or why it is refused."""
    if policy.mode is CommandMode.OFF:
        return Refusal("not allowed by this device's policy: commands are off")
    if request.script is not None:
        if request.shell:
            return Refusal("a script cannot be run through a shell")
        script = policy.scripts.get(request.script)
        if script is None:
            return Refusal(
                f"not allowed by this device's policy: no script named {request.script!r}"
            )
        argv: tuple[str, ...] = (*script, *request.argv)
    elif request.shell:
        if policy.mode is not CommandMode.ANY:
            return Refusal(
                "not allowed by this device's policy: shell commands cannot be checked "
                "against its allow-list"
            )
        if not policy.shell:
            return Refusal("not allowed by this device's policy: shell commands are off")
        if len(request.argv) != 1:
            return Refusal(f"a shell command is one string, not {len(request.argv)}")
        shell = (
            (os.environ.get("COMSPEC", "cmd.exe"), "/c")
            if platform == "win32"
            else ("/bin/sh", "-c")
        )
        argv = (*shell, request.argv[0])
    else:
        argv = tuple(request.argv)
        if not argv:
            return Refusal("the command is empty")
        if not argv[0]:
            return Refusal("the command has an empty program name")
        if policy.mode is CommandMode.ALLOWLIST and not any(
            match_pattern(pattern, argv) for pattern in policy.allow
        ):
            return Refusal(
                f"not allowed by this device's policy: {argv[0]!r} with these arguments "
                "matches no allow-list entry"
            )
    if any("\0" in arg for arg in argv):
        return Refusal("the command has a NUL character in an argument")
    refusal = _check_run_as(policy, is_root=is_root, platform=platform)
    if refusal is not None:
        return refusal
    if request.cwd is not None and not os.path.isabs(request.cwd):
        return Refusal(f"the working directory must be an absolute path, not {request.cwd!r}")
    return RunPlan(
        argv=argv,
        timeout=min(request.timeout, policy.timeout_max),
        cwd=request.cwd if request.cwd is not None else policy.cwd,
        run_as=policy.run_as,
        output_cap=policy.output_cap,
    )


def plan_terminal(
    policy: CommandPolicy, *, is_root: bool, platform: str = sys.platform
) -> Refusal | None:
    """None if an interactive terminal may be opened; else why not."""
    if platform == "win32":
        return Refusal("interactive terminals are not supported on Windows yet")
    if policy.mode is CommandMode.OFF:
        return Refusal("not allowed by this device's policy: commands are off")
    if policy.mode is not CommandMode.ANY:
        return Refusal(
            "not allowed by this device's policy: a terminal cannot be held to its allow-list"
        )
    if not policy.terminal:
        return Refusal("not allowed by this device's policy: terminals are off")
    return _check_run_as(policy, is_root=is_root, platform=platform)
