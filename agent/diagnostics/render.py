"""Showing a snapshot: a text report for a terminal, and indented JSON.

``render_text`` may show a snapshot that came from another machine (the console shows
its agents' snapshots), so it trusts none of its strings: each one is shown without
control characters (no terminal escapes, no forged lines) and cut to fit its column.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Final

import msgspec

from deskside.protocol.messages import Snapshot

from .limits import clip

__all__ = ["render_text", "snapshot_json"]

# Widest a table column other than the last grows; the last is cut at _LINE.
_COLUMN: Final = 40
_LINE: Final = 160

_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def _text(value: object, limit: int = _LINE) -> str:
    return clip(str(value), limit)


def _bytes(size: int) -> str:
    amount = float(size)
    for unit in _UNITS:
        if amount < 1024 or unit == _UNITS[-1]:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds:.0f} s"


def _time(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %z")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [[_text(cell, _COLUMN) for cell in row[:-1]] + [_text(row[-1])] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    lines = []
    for row in [list(headers), *cells]:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  " + "  ".join([*padded, row[-1]]).rstrip())
    return lines


def _fields(pairs: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, _ in pairs)
    return [f"  {label.ljust(width)}  {_text(value)}" for label, value in pairs]


def render_text(snapshot: Snapshot) -> str:
    """A human-readable report of ``snapshot``, one section per topic, for a terminal.

    Sections whose collector failed say so, with the collector's error.
    """
    failed: dict[str, list[str]] = {}
    for error in snapshot.errors:
        failed.setdefault(error.collector, []).append(_text(error.error))

    def notes(shown: bool, *names: str) -> list[str]:
        """What went wrong with a section: why it is empty, or what it lacks."""
        reasons = [reason for name in names for reason in failed.get(name, [])]
        if shown:
            return [f"  incomplete: {reason}" for reason in reasons]
        return [f"  not collected: {reason}" for reason in reasons] or ["  none"]

    os_info = snapshot.os
    hostname = _text(os_info.hostname or "unknown host", 256)
    out = [
        f"Deskside diagnostics: {hostname}",
        f"Taken {_time(snapshot.taken_at)} (schema {snapshot.schema})",
        "",
        "System",
    ]
    system = [
        ("OS", f"{os_info.name or 'unknown'} ({os_info.family.value})"),
        ("Kernel", f"{os_info.release} {os_info.version}".strip() or "unknown"),
        ("Architecture", os_info.arch or "unknown"),
        ("Hostname", os_info.hostname or "unknown"),
        ("Uptime", "unknown" if snapshot.uptime is None else _duration(snapshot.uptime)),
    ]
    out += _fields(system)

    out += ["", "CPU"]
    cpu = snapshot.cpu
    if cpu is None:
        out += notes(False, "cpu")
    else:
        cores = f"{cpu.logical} logical"
        if cpu.physical is not None:
            cores += f", {cpu.physical} physical"
        rows = [
            ("Model", cpu.model or "unknown"),
            ("Cores", cores),
            ("Usage", f"{cpu.percent:.1f} %"),
        ]
        if cpu.load:
            rows.append(("Load", ", ".join(f"{load:.2f}" for load in cpu.load)))
        if cpu.frequency_mhz is not None:
            rows.append(("Frequency", f"{cpu.frequency_mhz:.0f} MHz"))
        out += _fields(rows)

    out += ["", "Memory"]
    memory = snapshot.memory
    if memory is None:
        out += notes(False, "memory")
    else:
        ram = (
            f"{_bytes(memory.available)} available of {_bytes(memory.total)} "
            f"({memory.percent:.1f} % used)"
        )
        swap = (
            f"{_bytes(memory.swap_used)} used of {_bytes(memory.swap_total)}"
            if memory.swap_total
            else "none"
        )
        out += _fields([("RAM", ram), ("Swap", swap)])

    out += ["", "Disks"]
    if snapshot.disks:
        disks = [
            [
                d.mountpoint,
                d.device,
                d.fstype,
                _bytes(d.total),
                _bytes(d.free),
                f"{d.percent:.1f} %",
            ]
            for d in snapshot.disks
        ]
        out += _table(["MOUNT", "DEVICE", "TYPE", "SIZE", "FREE", "USED"], disks)
    out += notes(bool(snapshot.disks), "disks")

    out += ["", "Network interfaces"]
    if snapshot.interfaces:
        interfaces = [
            [
                i.name,
                "up" if i.is_up else "down",
                "-" if i.speed_mbps is None else f"{i.speed_mbps} Mb/s",
                i.mac or "-",
                ", ".join(i.addresses) or "-",
            ]
            for i in snapshot.interfaces
        ]
        out += _table(["NAME", "STATE", "SPEED", "MAC", "ADDRESSES"], interfaces)
    out += notes(bool(snapshot.interfaces), "interfaces")

    out += ["", "Network"]
    net = snapshot.network
    out += notes(net is not None, "network", "reachability")
    if net is not None:
        gateway = net.default_gateway or "none"
        out += _fields([("Gateway", gateway), ("DNS", ", ".join(net.dns_servers) or "none")])
        if net.checks:
            checks = [
                [
                    c.target,
                    "ok" if c.ok else "FAILED",
                    "-" if c.latency_ms is None else f"{c.latency_ms:.1f} ms",
                    c.detail,
                ]
                for c in net.checks
            ]
            out += _table(["CHECK", "RESULT", "TIME", "DETAIL"], checks)

    out += ["", "Top processes (by CPU, then by memory)"]
    if snapshot.processes:
        processes = [
            [
                str(p.pid),
                p.user or "-",
                f"{p.cpu_percent:.1f}",
                _bytes(p.memory_rss),
                p.name,
                p.cmdline or "-",
            ]
            for p in snapshot.processes
        ]
        out += _table(["PID", "USER", "CPU %", "MEMORY", "NAME", "COMMAND"], processes)
    out += notes(bool(snapshot.processes), "processes")

    out += ["", "Failed services"]
    if snapshot.failed_services:
        services = [[s.name, s.state, s.description] for s in snapshot.failed_services]
        out += _table(["SERVICE", "STATE", "DESCRIPTION"], services)
    out += notes(bool(snapshot.failed_services), "services")

    out += ["", "Logged-in users"]
    if snapshot.users:
        users = [
            [
                u.name,
                u.terminal or "-",
                u.host or "-",
                "-" if u.started is None else _time(u.started),
            ]
            for u in snapshot.users
        ]
        out += _table(["USER", "TERMINAL", "FROM", "SINCE"], users)
    out += notes(bool(snapshot.users), "users")

    out += ["", "Battery"]
    battery = snapshot.battery
    if battery is None:
        out += notes(False, "battery") if "battery" in failed else ["  no battery"]
    else:
        state = f"{battery.percent:.0f} %"
        if battery.plugged is not None:
            state += ", plugged in" if battery.plugged else ", on battery"
        if battery.seconds_left is not None:
            state += f", {_duration(battery.seconds_left)} left"
        out += [f"  {state}"]

    out += ["", "Recent errors in the system log"]
    if snapshot.logs:
        logs = [
            ["-" if e.time is None else _time(e.time), e.source or "-", e.message]
            for e in snapshot.logs
        ]
        out += _table(["TIME", "SOURCE", "MESSAGE"], logs)
    out += notes(bool(snapshot.logs), "logs")

    out += ["", "Collector errors"]
    if snapshot.errors:
        out += _table(["COLLECTOR", "ERROR"], [[e.collector, e.error] for e in snapshot.errors])
    else:
        out += ["  none"]
    return "\n".join(out) + "\n"


def snapshot_json(snapshot: Snapshot) -> bytes:
    """``snapshot`` as indented JSON, fields in their declared order, ending in a newline."""
    return msgspec.json.format(msgspec.json.encode(snapshot), indent=2) + b"\n"
