"""How a ticket's priority and SLA clocks follow from its impact and urgency.

The defaults are the usual ITIL matrix: priority 1 (critical) to 5 (planning),
with response and resolution targets per priority. Both can be changed in the
console's configuration file (``[priority]`` and ``[sla]``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field

from deskside.protocol.errors import ConfigError

__all__ = ["DEFAULT_MATRIX", "DEFAULT_SLA", "Policy", "Sla", "parse_duration"]

# (impact, urgency) -> priority; 1 is high for all three.
DEFAULT_MATRIX: Mapping[tuple[int, int], int] = {
    (1, 1): 1, (1, 2): 2, (1, 3): 3,
    (2, 1): 2, (2, 2): 3, (2, 3): 4,
    (3, 1): 3, (3, 2): 4, (3, 3): 5,
}  # fmt: skip


@dataclass(frozen=True)
class Sla:
    """Targets for one priority."""

    response: datetime.timedelta
    """Time from creation to the first response by the help desk."""

    resolution: datetime.timedelta
    """Time from creation to resolution."""


DEFAULT_SLA: Mapping[int, Sla] = {
    1: Sla(datetime.timedelta(minutes=15), datetime.timedelta(hours=4)),
    2: Sla(datetime.timedelta(hours=1), datetime.timedelta(hours=8)),
    3: Sla(datetime.timedelta(hours=4), datetime.timedelta(hours=24)),
    4: Sla(datetime.timedelta(hours=8), datetime.timedelta(hours=72)),
    5: Sla(datetime.timedelta(hours=24), datetime.timedelta(days=7)),
}


@dataclass(frozen=True)
class Policy:
    """The priority matrix and the SLA targets in force."""

    matrix: Mapping[tuple[int, int], int] = field(default_factory=lambda: dict(DEFAULT_MATRIX))
    sla: Mapping[int, Sla] = field(default_factory=lambda: dict(DEFAULT_SLA))

    def __post_init__(self) -> None:
        for impact in (1, 2, 3):
            for urgency in (1, 2, 3):
                priority = self.matrix.get((impact, urgency))
                if priority is None:
                    raise ConfigError(f"priority matrix lacks impact {impact} x urgency {urgency}")
                if priority not in self.sla:
                    raise ConfigError(f"no SLA for priority {priority}")

    def priority(self, impact: int, urgency: int) -> int:
        """The priority of a ticket of this impact and urgency."""
        return self.matrix[(impact, urgency)]

    def due(
        self, priority: int, start: datetime.datetime
    ) -> tuple[datetime.datetime, datetime.datetime]:
        """The response and resolution due times of a ticket opened at ``start``."""
        sla = self.sla[priority]
        return start + sla.response, start + sla.resolution

    @classmethod
    def from_toml(cls, data: Mapping[str, object]) -> Policy:
        """Read ``[priority]`` (``matrix = [[1,2,3],[2,3,4],[3,4,5]]``, rows are impact)
        and ``[sla]`` (``P1 = {response = "15m", resolution = "4h"}``)."""
        matrix = dict(DEFAULT_MATRIX)
        sla = dict(DEFAULT_SLA)
        section = data.get("priority", {})
        if not isinstance(section, Mapping):
            raise ConfigError("[priority] must be a table")
        rows = section.get("matrix")
        if rows is not None:
            if not (
                isinstance(rows, list)
                and len(rows) == 3
                and all(isinstance(r, list) and len(r) == 3 for r in rows)
            ):
                raise ConfigError("priority.matrix must be 3 rows of 3 priorities")
            for impact, row in enumerate(rows, 1):
                for urgency, value in enumerate(row, 1):
                    if not isinstance(value, int) or not 1 <= value <= 9:
                        raise ConfigError("priorities in priority.matrix are 1..9")
                    matrix[(impact, urgency)] = value
        targets = data.get("sla", {})
        if not isinstance(targets, Mapping):
            raise ConfigError("[sla] must be a table")
        for key, value in targets.items():
            if not (isinstance(key, str) and key[:1] == "P" and key[1:].isdigit()):
                raise ConfigError(f"sla keys are P1, P2, ...; not {key!r}")
            if not isinstance(value, Mapping):
                raise ConfigError(f"sla.{key} must be a table with response and resolution")
            sla[int(key[1:])] = Sla(
                parse_duration(str(value.get("response", ""))),
                parse_duration(str(value.get("resolution", ""))),
            )
        return cls(matrix, sla)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> datetime.timedelta:
    """``"90s"``, ``"15m"``, ``"4h"``, ``"2d"``, ``"1w"`` as a timedelta."""
    text = text.strip()
    if len(text) < 2 or text[-1] not in _UNITS or not text[:-1].isdigit():
        raise ConfigError(f"{text!r} is not a duration like 15m, 4h or 2d")
    value = int(text[:-1]) * _UNITS[text[-1]]
    if not 0 < value <= 10 * 365 * 86400:
        raise ConfigError(f"duration {text!r} is out of range")
    return datetime.timedelta(seconds=value)
