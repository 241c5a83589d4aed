"""Linux: ``/etc/os-release``, ``/proc/cpuinfo`` and the kernel's routing tables.

* OS name: ``PRETTY_NAME`` (else ``NAME``) of ``/etc/os-release``.
* CPU model: ``/proc/cpuinfo`` ("model name" on x86; "Model", "Hardware" or
  "cpu model" on ARM boards and others).
* Default gateway: ``/proc/net/route``, then ``/proc/net/ipv6_route``, lowest metric
  first; DNS servers and ``ping`` as every Unix (``posix``).
* Pending reboot: ``/run/reboot-required``, which Debian's and Ubuntu's package hooks
  write when an update needs a restart (False on those systems without it; None
  elsewhere, where nothing says).
* Battery health: ``energy_full`` / ``energy_full_design`` (or ``charge_full`` /
  ``charge_full_design``) of the first battery in ``/sys/class/power_supply``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import platform
import socket
import struct
from pathlib import Path
from typing import ClassVar, Final

from deskside.protocol.messages import OsFamily

from .base import Host
from .posix import PosixNetwork, read_text

__all__ = [
    "LinuxHost",
    "LinuxNetwork",
    "battery_health_in",
    "parse_cpuinfo",
    "parse_ipv6_route",
    "parse_proc_net_route",
    "pending_reboot_in",
]

# Flags of /proc/net/route: the route is up and goes through a gateway.
_RTF_UP: Final = 0x1
_RTF_GATEWAY: Final = 0x2

# Keys of /proc/cpuinfo that name the processor, best first.
_CPU_MODEL_KEYS: Final = ("model name", "cpu model", "model", "hardware")


def parse_cpuinfo(text: str) -> str | None:
    """The processor's model in the text of ``/proc/cpuinfo``, or None."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in _CPU_MODEL_KEYS:
            found.setdefault(key, value.strip())
    return next((found[key] for key in _CPU_MODEL_KEYS if found.get(key)), None)


def parse_proc_net_route(text: str) -> str | None:
    """The IPv4 default gateway in the text of ``/proc/net/route``, lowest metric first."""
    best: tuple[int, str] | None = None
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, gateway = int(fields[1], 16), int(fields[2], 16)
            flags, metric, mask = int(fields[3], 16), int(fields[6]), int(fields[7], 16)
        except ValueError:
            continue
        if destination or mask or not gateway:
            continue
        if flags & (_RTF_UP | _RTF_GATEWAY) != _RTF_UP | _RTF_GATEWAY:
            continue
        # The kernel prints the address in host byte order (little-endian on x86 and ARM).
        address = socket.inet_ntoa(struct.pack("=L", gateway))
        if best is None or metric < best[0]:
            best = (metric, address)
    return None if best is None else best[1]


def parse_ipv6_route(text: str) -> str | None:
    """The IPv6 default gateway in the text of ``/proc/net/ipv6_route``, lowest metric first."""
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or fields[1] != "00" or fields[0].strip("0"):
            continue
        try:
            hop = ipaddress.IPv6Address(bytes.fromhex(fields[4]))
            metric = int(fields[5], 16)
        except ValueError:
            continue
        if hop.is_unspecified:
            continue
        # A link-local next hop only means something with its interface.
        address = f"{hop}%{fields[9]}" if hop.is_link_local else str(hop)
        if best is None or metric < best[0]:
            best = (metric, address)
    return None if best is None else best[1]


def pending_reboot_in(root: Path) -> bool | None:
    """Whether ``root``'s system waits for a restart (see the module's docstring)."""
    for flag in ("run/reboot-required", "var/run/reboot-required"):
        if (root / flag).exists():
            return True
    return False if (root / "etc/debian_version").exists() else None


def _number_in(path: Path) -> float | None:
    text = read_text(str(path))
    try:
        return float(text.strip()) if text else None
    except ValueError:
        return None


def battery_health_in(power_supply: Path) -> float | None:
    """The first battery's full charge as a percentage of its design, or None."""
    try:
        supplies = sorted(power_supply.iterdir())
    except OSError:
        return None
    for supply in supplies:
        if (read_text(str(supply / "type")) or "").strip() != "Battery":
            continue
        for kind in ("energy", "charge"):
            full = _number_in(supply / f"{kind}_full")
            design = _number_in(supply / f"{kind}_full_design")
            if full is not None and design:
                return round(min(100.0, max(0.0, 100.0 * full / design)), 1)
    return None


class LinuxHost(Host):
    """Linux: os-release and /proc/cpuinfo."""

    family: ClassVar[OsFamily] = OsFamily.LINUX

    def os_name(self) -> str:
        """``PRETTY_NAME`` of os-release, else its ``NAME``, else "Linux"."""
        with contextlib.suppress(OSError):
            release = platform.freedesktop_os_release()
            return release.get("PRETTY_NAME") or release.get("NAME") or "Linux"
        return "Linux"

    def cpu_model(self) -> str:
        """The model in /proc/cpuinfo, else Python's guess."""
        text = read_text("/proc/cpuinfo")
        return (parse_cpuinfo(text) if text else None) or super().cpu_model()

    def pending_reboot(self) -> bool | None:
        """``/run/reboot-required`` (Debian, Ubuntu)."""
        return pending_reboot_in(Path("/"))

    def battery_health(self) -> float | None:
        """From ``/sys/class/power_supply``."""
        return battery_health_in(Path("/sys/class/power_supply"))


class LinuxNetwork(PosixNetwork):
    """Linux: the default route from /proc; resolv.conf and ping as any Unix."""

    def default_gateway(self) -> str | None:
        """The IPv4 default gateway, else the IPv6 one, from the kernel's tables."""
        text = read_text("/proc/net/route")
        gateway = parse_proc_net_route(text) if text else None
        if gateway is None:
            text = read_text("/proc/net/ipv6_route")
            gateway = parse_ipv6_route(text) if text else None
        return gateway
