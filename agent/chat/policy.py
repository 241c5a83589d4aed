"""The owner's policy for chat: the ``[chat]`` table of ``agent.toml``.

::

    [chat]
    enabled = true           # may the help desk chat with the user of this machine
    lines_per_minute = 10    # the user's lines a minute, at most (1 to 60)

With ``enabled = false`` every line from the help desk is refused, and the
technician is told "chat is off on this device".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from deskside.protocol.errors import ConfigError

__all__ = ["ChatPolicy"]

_KEYS: Final = frozenset({"enabled", "lines_per_minute"})
_RATE_RANGE: Final = (1, 60)


@dataclass(frozen=True, kw_only=True)
class ChatPolicy:
    """The ``[chat]`` table; see the module docstring."""

    enabled: bool = True
    """Whether the help desk may chat with this machine's user."""

    lines_per_minute: int = 10
    """How many lines the user may send in a minute (the console allows a few more)."""

    @classmethod
    def from_table(cls, table: Mapping[str, Any], source: str) -> ChatPolicy:
        """Check and read a ``[chat]`` table; ``ConfigError`` names the bad key."""
        where = f"{source}: [chat]"
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ConfigError(f"{where} has unknown keys: {', '.join(unknown)}")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where} enabled must be true or false")
        rate = table.get("lines_per_minute", 10)
        low, high = _RATE_RANGE
        if isinstance(rate, bool) or not isinstance(rate, int) or not low <= rate <= high:
            raise ConfigError(f"{where} lines_per_minute must be a whole number, {low} to {high}")
        return cls(enabled=enabled, lines_per_minute=rate)

    def toml_lines(self, quote: Callable[[str], str]) -> list[str]:
        """The ``[chat]`` table as TOML lines (``quote`` is unused: no strings)."""
        del quote
        return [
            "# Whether the help desk may chat with the user (deskside.agent.chat).",
            "[chat]",
            f"enabled = {'true' if self.enabled else 'false'}",
            f"lines_per_minute = {self.lines_per_minute}",
        ]
