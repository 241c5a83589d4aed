"""Runbooks: named scripts of steps, with a variant per OS and parameters.

A runbook is TOML::

    [restart-print-spooler]
    description = "Restart the print spooler"
    params = { printer = { description = "Queue name", pattern = "^[\\\\w-]{1,64}$" } }

    [[restart-print-spooler.steps]]
    name = "restart the spooler"
    linux = ["systemctl", "restart", "cups"]
    windows = ["powershell", "-NoProfile", "-Command", "Restart-Service Spooler"]
    continue_on_error = false

Each step is run as a command on the ticket's device (its argv for the device's
OS family), one after the other; a step that fails stops the runbook unless it
says ``continue_on_error``. ``{{name}}`` in an argument is replaced by the
parameter's value, which must match the parameter's pattern: values never reach
a shell, and cannot smuggle options through a pattern that forbids them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib.resources import files
from typing import Annotated

import msgspec
from msgspec import Meta

from deskside.protocol.errors import ConfigError

__all__ = ["Param", "Runbook", "Step", "builtin_runbooks", "parse_runbooks"]

_NAME = r"^[a-z0-9][a-z0-9-]{0,63}$"
_PLACEHOLDER = re.compile(r"\{\{([a-z_][a-z0-9_]{0,31})\}\}")
DEFAULT_PATTERN = r"^[A-Za-z0-9_.:/@+=-]{1,256}$"

Argv = Annotated[list[Annotated[str, Meta(max_length=4096)]], Meta(min_length=1, max_length=256)]


class Param(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A value the technician gives when running the runbook."""

    description: Annotated[str, Meta(max_length=256)] = ""
    pattern: Annotated[str, Meta(max_length=256)] = DEFAULT_PATTERN
    default: Annotated[str, Meta(max_length=256)] | None = None


class Step(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One command of a runbook, per OS family."""

    name: Annotated[str, Meta(min_length=1, max_length=128)]
    linux: Argv | None = None
    macos: Argv | None = None
    windows: Argv | None = None
    timeout: Annotated[float, Meta(gt=0, le=3600)] = 120.0
    continue_on_error: bool = False

    def argv_for(self, os_family: str) -> list[str] | None:
        """The step's argv on this OS family, or None if it has no variant for it."""
        variant: list[str] | None = getattr(self, os_family, None) if os_family in (
            "linux", "macos", "windows"
        ) else None  # fmt: skip
        return list(variant) if variant is not None else None


class Runbook(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A named, described sequence of steps."""

    name: Annotated[str, Meta(pattern=_NAME)]
    description: Annotated[str, Meta(max_length=1024)] = ""
    params: dict[Annotated[str, Meta(pattern=r"^[a-z_][a-z0-9_]{0,31}$")], Param] = {}
    steps: Annotated[list[Step], Meta(min_length=1, max_length=50)]
    builtin: bool = False

    def resolve(self, values: Mapping[str, str]) -> dict[str, str]:
        """Every parameter's value (given, else its default), checked against its pattern."""
        unknown = set(values) - set(self.params)
        if unknown:
            raise ConfigError(f"{self.name} has no parameter {', '.join(sorted(unknown))}")
        resolved: dict[str, str] = {}
        for name, param in self.params.items():
            value = values.get(name, param.default)
            if value is None:
                raise ConfigError(f"{self.name} needs the parameter {name} ({param.description})")
            if not re.fullmatch(param.pattern, value):
                raise ConfigError(f"{name}={value!r} does not match {param.pattern}")
            resolved[name] = value
        return resolved

    def argv(self, step: Step, os_family: str, values: Mapping[str, str]) -> list[str] | None:
        """A step's argv on this OS with the parameters filled in (``resolve`` first)."""
        argv = step.argv_for(os_family)
        if argv is None:
            return None
        return [_PLACEHOLDER.sub(lambda match: values[match.group(1)], arg) for arg in argv]


def parse_runbooks(text: str, *, builtin: bool = False) -> dict[str, Runbook]:
    """Runbooks from TOML text; ``ConfigError`` says what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from exc
    runbooks: dict[str, Runbook] = {}
    for name, body in data.items():
        if not isinstance(body, dict):
            raise ConfigError(f"[{name}] must be a table")
        try:
            runbook = msgspec.convert({**body, "name": name, "builtin": builtin}, Runbook)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"runbook {name!r}: {exc}") from exc
        for step in runbook.steps:
            for argv in (step.linux, step.macos, step.windows):
                for arg in argv or ():
                    for placeholder in _PLACEHOLDER.findall(arg):
                        if placeholder not in runbook.params:
                            raise ConfigError(
                                f"runbook {name!r}, step {step.name!r}: "
                                f"{{{{{placeholder}}}}} is not a parameter"
                            )
            if not (step.linux or step.macos or step.windows):
                raise ConfigError(f"runbook {name!r}, step {step.name!r} has no OS variant")
        runbooks[name] = runbook
    return runbooks


def builtin_runbooks() -> dict[str, Runbook]:
    """The runbooks every console has."""
    text = files(__name__).joinpath("builtin.toml").read_text(encoding="utf-8")
    return parse_runbooks(text, builtin=True)
