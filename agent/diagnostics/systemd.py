"""What systemd knows: failed units and recent errors in the journal (Linux only).

* ``collect_failed_services`` runs ``systemctl --failed --no-legend --plain``; where
  systemctl is missing or does not work (no systemd as init, in a container, on
  macOS and Windows) the list is empty and that is not an error.
* ``collect_recent_errors`` runs ``journalctl -p err -n 20 -o json --since -1h`` and
  keeps each entry's time, source (syslog identifier, command or unit) and message,
  cut to 1000 characters; where journalctl is missing or fails, the list is empty.

A tool that does not finish in time is killed and the collector fails with
``subprocess.TimeoutExpired``, which the snapshot records in ``errors``.
"""

from __future__ import annotations

from typing import Final

import msgspec

from deskside.protocol.messages import LogEntry, ServiceInfo

from .commands import find_tool, run_tool
from .limits import (
    MAX_DESCRIPTION,
    MAX_LOG_MESSAGE,
    MAX_LOGS,
    MAX_NAME,
    MAX_SERVICES,
    clip,
    number,
)

__all__ = [
    "collect_failed_services",
    "collect_recent_errors",
    "parse_journal",
    "parse_systemctl_failed",
]

# Time allowed to each tool.
_TOOL_TIMEOUT: Final = 4.0

# Journal fields naming where an entry comes from, best first.
_SOURCE_FIELDS: Final = ("SYSLOG_IDENTIFIER", "_COMM", "_SYSTEMD_UNIT")


def parse_systemctl_failed(text: str) -> list[ServiceInfo]:
    """The units in the output of ``systemctl --failed --no-legend --plain``.

    Each line is ``UNIT LOAD ACTIVE SUB DESCRIPTION``; the state is the ACTIVE column.
    """
    services: list[ServiceInfo] = []
    for line in text.splitlines():
        fields = line.split(None, 4)
        if len(fields) < 4:
            continue
        unit, _load, active, _sub = fields[:4]
        services.append(
            ServiceInfo(
                name=clip(unit, MAX_NAME),
                state=clip(active, MAX_NAME),
                description=clip(fields[4] if len(fields) > 4 else "", MAX_DESCRIPTION),
            )
        )
        if len(services) == MAX_SERVICES:
            break
    return services


def collect_failed_services() -> list[ServiceInfo]:
    """The system's failed systemd units; empty where systemd is not running."""
    tool = find_tool("systemctl")
    if tool is None:
        return []
    argv = [tool, "--failed", "--no-legend", "--plain", "--no-pager"]
    result = run_tool(argv, timeout=_TOOL_TIMEOUT)
    if result.returncode != 0:
        return []  # "System has not been booted with systemd", no bus, ...
    return parse_systemctl_failed(result.stdout)


def _journal_text(value: object) -> str:
    # journalctl gives a field as a string, as a list of byte values when it is not
    # valid UTF-8, as a list of those when repeated, or as null when too large.
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, list) and value:
        return _journal_text(value[0])
    return ""


def parse_journal(text: str) -> list[LogEntry]:
    """The entries in the output of ``journalctl -o json`` (one object per line)."""
    entries: list[LogEntry] = []
    for line in text.splitlines():
        try:
            record = msgspec.json.decode(line)
        except msgspec.DecodeError:
            continue
        if not isinstance(record, dict):
            continue
        message = _journal_text(record.get("MESSAGE"))
        source = next((_journal_text(record.get(f)) for f in _SOURCE_FIELDS if record.get(f)), "")
        when: float | None = None
        stamp = record.get("__REALTIME_TIMESTAMP")
        if isinstance(stamp, str) and stamp.isdigit():
            when = number(int(stamp) / 1e6, high=1e11)
        entries.append(
            LogEntry(
                time=when,
                source=clip(source, MAX_NAME),
                message=clip(message, MAX_LOG_MESSAGE),
            )
        )
    return entries[-MAX_LOGS:]


def collect_recent_errors() -> list[LogEntry]:
    """Up to 20 error-or-worse journal entries of the last hour, oldest first."""
    tool = find_tool("journalctl")
    if tool is None:
        return []
    argv = [tool, "-p", "err", "-n", str(MAX_LOGS), "--no-pager", "-o", "json"]
    result = run_tool([*argv, "--since", "-1h", "-q"], timeout=_TOOL_TIMEOUT)
    if result.returncode != 0:
        return []  # no journal here, or none this user may read
    return parse_journal(result.stdout)
