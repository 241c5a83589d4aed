"""The owner's policy for screen sessions: the ``[screen]`` table of ``agent.toml``.

::

    [screen]
    view = true              # may the help desk ask to see the screen at all
    consent = "prompt"       # "prompt" (ask), "notify" (tell, then show), "none"
    unattended = "refuse"    # with "prompt" and nobody to ask: "refuse" or "allow"
    consent_timeout = 60.0   # seconds before an unanswered prompt counts as Deny
    control = true           # may the technician ask to take control (mouse, keyboard)
    control_consent = "prompt"  # control's own, second consent: "prompt", "notify", "none"

Whatever the policy, a session shows the indicator with its Stop button where a
desktop exists, and every request, answer and end goes to the audit log.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from deskside.agent.policy import ConsentMode, Unattended
from deskside.protocol.errors import ConfigError

__all__ = ["ScreenPolicy"]

_KEYS: Final = frozenset(
    {"view", "consent", "unattended", "consent_timeout", "control", "control_consent"}
)
_TIMEOUT_RANGE: Final = (5.0, 600.0)


@dataclass(frozen=True, kw_only=True)
class ScreenPolicy:
    """The ``[screen]`` table; see the module docstring."""

    view: bool = True
    """Whether the console may ask to see this machine's screen."""

    consent: ConsentMode = ConsentMode.PROMPT
    """Ask the user, notify them, or neither (the indicator shows regardless)."""

    unattended: Unattended = Unattended.REFUSE
    """What ``prompt`` does when no desktop session can be asked."""

    consent_timeout: float = 60.0
    """Seconds the prompt waits for an answer; then it counts as Deny."""

    control: bool = True
    """Whether the technician may ask to control the pointer and keyboard."""

    control_consent: ConsentMode = ConsentMode.PROMPT
    """How control is consented to, apart from viewing: always asked unless set otherwise."""

    @classmethod
    def from_table(cls, table: Mapping[str, Any], source: str) -> ScreenPolicy:
        """Check and read a ``[screen]`` table; ``ConfigError`` names the bad key."""
        where = f"{source}: [screen]"
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ConfigError(f"{where} has unknown keys: {', '.join(unknown)}")
        view = table.get("view", True)
        if not isinstance(view, bool):
            raise ConfigError(f"{where} view must be true or false")
        consent = table.get("consent", ConsentMode.PROMPT.value)
        if consent not in [c.value for c in ConsentMode]:
            raise ConfigError(f"{where} consent must be 'prompt', 'notify' or 'none'")
        unattended = table.get("unattended", Unattended.REFUSE.value)
        if unattended not in [u.value for u in Unattended]:
            raise ConfigError(f"{where} unattended must be 'refuse' or 'allow'")
        timeout = table.get("consent_timeout", 60.0)
        low, high = _TIMEOUT_RANGE
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or not low <= timeout <= high
        ):
            raise ConfigError(f"{where} consent_timeout must be between {low:g} and {high:g}")
        control = table.get("control", True)
        if not isinstance(control, bool):
            raise ConfigError(f"{where} control must be true or false")
        control_consent = table.get("control_consent", ConsentMode.PROMPT.value)
        if control_consent not in [c.value for c in ConsentMode]:
            raise ConfigError(f"{where} control_consent must be 'prompt', 'notify' or 'none'")
        return cls(
            view=view,
            consent=ConsentMode(consent),
            unattended=Unattended(unattended),
            consent_timeout=float(timeout),
            control=control,
            control_consent=ConsentMode(control_consent),
        )

    def toml_lines(self, quote: Callable[[str], str]) -> list[str]:
        """The ``[screen]`` table as TOML lines; ``quote`` makes a TOML string."""
        return [
            "# Whether and how the help desk may see this screen (deskside.agent.screen).",
            "[screen]",
            f"view = {'true' if self.view else 'false'}",
            f"consent = {quote(self.consent.value)}",
            f"unattended = {quote(self.unattended.value)}",
            f"consent_timeout = {self.consent_timeout!r}",
            f"control = {'true' if self.control else 'false'}",
            f"control_consent = {quote(self.control_consent.value)}",
        ]
