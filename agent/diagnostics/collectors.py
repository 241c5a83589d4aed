"""The collectors that psutil and the standard library answer on every OS.

Each ``collect_*`` function is blocking and fills one section of a ``Snapshot``; the
orchestrator (``deskside.agent.diagnostics.snapshot``) runs them in threads with a
time bound. What differs per OS is asked of this OS's ``Host``
(``deskside.agent.diagnostics.platforms``). What each one reads:

* ``collect_os``: ``platform.uname()``, the host name, and the OS's name for people
  (on Linux, ``PRETTY_NAME`` of ``/etc/os-release``).
* ``collect_uptime``: the boot time (psutil).
* ``collect_cpu``: CPU counts, usage over half a second, load average, frequency
  (psutil); the model as the OS tells it (``/proc/cpuinfo`` on Linux, ``sysctl`` on
  macOS, the registry on Windows).
* ``collect_memory``: memory and swap totals (psutil).
* ``collect_disks``: the mount table and each file system's size (psutil); pseudo
  file systems are skipped, network ones get one second each.
* ``collect_interfaces``: interface addresses, state and speed (psutil).
* ``collect_processes``: every process's name, user, CPU over half a second, resident
  memory and command line (cut to 200 characters); never its environment.
* ``collect_users``: logged-in sessions (psutil, from utmp or the OS).
* ``collect_battery``: charge and power source (psutil), and the health this OS's
  backend reads; None without a battery.
* ``collect_pending_reboot``: whether updates wait for a restart (this OS's backend).

Processes that vanish or refuse access while being read are skipped or kept without
the refused fields: that is normal, not an error.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import re
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import psutil  # type: ignore[import-untyped,unused-ignore]

from deskside.protocol.messages import (
    BatteryInfo,
    CpuInfo,
    DiskInfo,
    InterfaceInfo,
    MemoryInfo,
    OsFamily,
    OsInfo,
    ProcessInfo,
    UserSession,
)

from . import platforms
from .limits import (
    MAX_ADDRESSES,
    MAX_CMDLINE,
    MAX_DISKS,
    MAX_INTERFACES,
    MAX_NAME,
    MAX_PATH,
    MAX_USERS,
    TOP_PROCESSES,
    call_with_timeout,
    clip,
    count,
    number,
)

__all__ = [
    "NETWORK_FILESYSTEMS",
    "PSEUDO_FILESYSTEMS",
    "SAMPLE_INTERVAL",
    "Mount",
    "ProcessSample",
    "collect_battery",
    "collect_cpu",
    "collect_disks",
    "collect_interfaces",
    "collect_memory",
    "collect_os",
    "collect_pending_reboot",
    "collect_processes",
    "collect_uptime",
    "collect_users",
    "disk_usage",
    "list_mounts",
    "list_processes",
    "os_family",
    "redact_arguments",
]

# How long CPU usage (of the machine and of each process) is measured.
SAMPLE_INTERVAL: Final = 0.5

# File systems that hold no user data, or whose "usage" means nothing: kernel
# interfaces, memory-backed mounts, read-only snap and image mounts.
PSEUDO_FILESYSTEMS: Final = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "fuse.gvfsd-fuse",
        "fuse.lxcfs",
        "fuse.portal",
        "fuse.snapfuse",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "nullfs",
        "overlay",
        "proc",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tmpfs",
        "tracefs",
    }
)

# File systems whose ``statvfs`` can hang for minutes when the server is gone.
NETWORK_FILESYSTEMS: Final = frozenset(
    {"nfs", "nfs4", "cifs", "smbfs", "smb3", "afpfs", "webdav", "9p", "ceph", "glusterfs"}
)

# How long a network file system may take to say how full it is.
_NETWORK_FS_TIMEOUT: Final = 1.0

# Names of options and variables whose values are secrets.
_SECRET_WORD: Final = re.compile(
    r"passw(or)?d|passphrase|secret|token|api[-_]?key|private[-_]?key|credential|auth",
    re.IGNORECASE,
)
# "scheme://user:password@" in a URL.
_URL_CREDENTIALS: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
# A secret-looking key with its string value in JSON or a Python literal.
_QUOTED_SECRET: Final = re.compile(
    r"""(["'][^"']*(?:passw(?:or)?d|secret|token|api[-_]?key|credential|auth)[^"']*["']\s*:\s*)"""
    r"""["'][^"']*["']""",
    re.IGNORECASE,
)


# -- Operating system ---------------------------------------------------------------------


def os_family() -> OsFamily:
    """The family of the running OS (no I/O)."""
    return platforms.current().host.family


def collect_os() -> OsInfo:
    """The OS name, kernel release and version, architecture and host name."""
    host = platforms.current().host
    uname = platform.uname()
    return OsInfo(
        family=host.family,
        name=clip(host.os_name(), MAX_NAME),
        release=clip(uname.release, MAX_NAME),
        version=clip(uname.version, MAX_NAME),
        arch=clip(uname.machine, MAX_NAME),
        hostname=clip(socket.gethostname(), MAX_NAME),
    )


def collect_uptime() -> float:
    """Seconds since the machine booted."""
    return number(time.time() - float(psutil.boot_time()))


# -- CPU and memory -----------------------------------------------------------------------


def _load_average() -> list[float]:
    # Windows has none; psutil's emulation reads zeros for its first seconds.
    if not hasattr(os, "getloadavg"):
        return []
    try:
        return [number(value, high=1e6) for value in os.getloadavg()]
    except OSError:
        return []


def _frequency_mhz() -> float | None:
    try:
        frequency = psutil.cpu_freq()
    except (OSError, NotImplementedError, RuntimeError):
        return None
    if frequency is None or not frequency.current or frequency.current <= 0:
        return None
    return number(frequency.current)


def collect_cpu() -> CpuInfo:
    """Processor model and counts, usage over ``SAMPLE_INTERVAL``, load and frequency."""
    physical = psutil.cpu_count(logical=False)
    return CpuInfo(
        model=clip(platforms.current().host.cpu_model(), MAX_NAME),
        logical=count(psutil.cpu_count() or 0),
        physical=None if physical is None else count(physical),
        percent=number(psutil.cpu_percent(interval=SAMPLE_INTERVAL), high=100.0),
        load=_load_average(),
        frequency_mhz=_frequency_mhz(),
    )


def collect_memory() -> MemoryInfo:
    """Physical memory and swap, in bytes."""
    memory = psutil.virtual_memory()
    try:
        swap = psutil.swap_memory()
        swap_total, swap_used = count(swap.total), count(swap.used)
    except (OSError, RuntimeError):  # no page file, or an unreadable one
        swap_total = swap_used = 0
    return MemoryInfo(
        total=count(memory.total),
        available=count(memory.available),
        percent=number(memory.percent, high=100.0),
        swap_total=swap_total,
        swap_used=swap_used,
    )


# -- Disks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """A mounted file system that holds data (not a pseudo file system)."""

    device: str
    mountpoint: str
    fstype: str

    @property
    def is_network(self) -> bool:
        """Whether it lives on a server, so that reading its size may hang."""
        return self.fstype in NETWORK_FILESYSTEMS or self.fstype.startswith("fuse.sshfs")


def _is_data_mount(mountpoint: str, fstype: str) -> bool:
    if fstype == "overlay":
        # A container's root is an overlay; the overlays of a container host are not.
        return mountpoint == "/"
    if fstype in PSEUDO_FILESYSTEMS:
        return False
    return not platforms.current().host.hides_mount(mountpoint)


def list_mounts() -> list[Mount]:
    """The mounted file systems worth reporting, in mount-table order.

    A mount point mounted over shows once, as its latest mount.
    """
    mounts: dict[str, Mount] = {}
    for partition in psutil.disk_partitions(all=True):
        mountpoint, fstype = str(partition.mountpoint), str(partition.fstype)
        if _is_data_mount(mountpoint, fstype):
            mounts.pop(mountpoint, None)
            mounts[mountpoint] = Mount(str(partition.device), mountpoint, fstype)
    return list(mounts.values())


def _usage(mountpoint: str) -> tuple[int, int, float] | None:
    # Containers bind-mount single files (/etc/hosts); they are not disks.
    if not os.path.isdir(mountpoint):
        return None
    usage = psutil.disk_usage(mountpoint)
    return int(usage.total), int(usage.free), float(usage.percent)


def disk_usage(mount: Mount) -> tuple[int, int, float] | None:
    """Total and free bytes and percent used of ``mount``; None if it is not a directory.

    Raises ``OSError`` if it cannot be read (an empty drive), ``TimeoutError`` if a
    network file system does not answer within a second.
    """
    if mount.is_network:
        return call_with_timeout(
            lambda: _usage(mount.mountpoint), _NETWORK_FS_TIMEOUT, name="disk-usage"
        )
    return _usage(mount.mountpoint)


def collect_disks(problems: list[str] | None = None) -> list[DiskInfo]:
    """Mounted file systems with their size and free space.

    A file system that cannot be read is left out; one whose server does not answer
    is left out and named in ``problems``.
    """
    disks: list[DiskInfo] = []
    for mount in list_mounts():
        try:
            usage = disk_usage(mount)
        except TimeoutError as exc:
            if problems is not None:
                problems.append(f"{mount.mountpoint} ({mount.fstype}): {exc}")
            continue
        except OSError:
            continue  # a drive without a medium, a mount point this user cannot enter
        if usage is None:
            continue
        total, free, percent = usage
        disks.append(
            DiskInfo(
                mountpoint=clip(mount.mountpoint, MAX_PATH),
                device=clip(mount.device, MAX_PATH),
                fstype=clip(mount.fstype, MAX_NAME),
                total=count(total),
                free=count(free),
                percent=number(percent, high=100.0),
            )
        )
        if len(disks) == MAX_DISKS:
            break
    return disks


# -- Network interfaces -------------------------------------------------------------------


def _prefix_length(netmask: str | None) -> int | None:
    if not netmask:
        return None
    try:
        bits = int(ipaddress.ip_address(netmask))
    except ValueError:
        return None
    return bin(bits).count("1")


def _format_address(address: str, netmask: str | None) -> str:
    prefix = _prefix_length(netmask)
    return address if prefix is None else f"{address}/{prefix}"


def collect_interfaces() -> list[InterfaceInfo]:
    """Network interfaces with their IP addresses (``address/prefix``), state and speed."""
    addresses = psutil.net_if_addrs()
    stats = psutil.net_if_stats()
    interfaces: list[InterfaceInfo] = []
    for name in [*addresses, *(name for name in stats if name not in addresses)]:
        mac = ""
        ips: list[str] = []
        for entry in addresses.get(name, []):
            if entry.family == psutil.AF_LINK:
                mac = str(entry.address).replace("-", ":").lower()
            elif entry.family in (socket.AF_INET, socket.AF_INET6):
                ips.append(clip(_format_address(str(entry.address), entry.netmask), MAX_NAME))
        stat = stats.get(name)
        speed = int(stat.speed) if stat is not None and stat.speed else 0
        interfaces.append(
            InterfaceInfo(
                name=clip(str(name), MAX_NAME),
                is_up=bool(stat.isup) if stat is not None else False,
                mac=clip(mac, MAX_NAME),
                addresses=ips[:MAX_ADDRESSES],
                speed_mbps=count(speed) if speed > 0 else None,
            )
        )
        if len(interfaces) == MAX_INTERFACES:
            break
    return interfaces


# -- Processes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessSample:
    """One process as read from the system, before ranking and cutting."""

    pid: int
    name: str
    user: str = ""
    cpu_percent: float = 0.0
    memory_rss: int = 0
    cmdline: list[str] = field(default_factory=list)


def _optional(read: psutil.Process, attribute: str) -> object:
    # The fields a process may refuse (other users' processes on Windows and macOS).
    try:
        return getattr(read, attribute)()
    except (psutil.AccessDenied, psutil.ZombieProcess, KeyError, OSError):
        return None


def _open_processes() -> Iterator[psutil.Process]:
    host = platforms.current().host
    for pid in psutil.pids():
        if host.hides_process(pid):
            continue
        try:
            yield psutil.Process(pid)
        except psutil.Error:
            continue


def list_processes(interval: float = SAMPLE_INTERVAL) -> list[ProcessSample]:
    """Every readable process, with its CPU usage measured over ``interval`` seconds.

    Processes that end or refuse access to their name and memory are skipped.
    """
    processes: list[psutil.Process] = []
    for process in _open_processes():
        try:
            process.cpu_percent(None)  # starts this process's measurement
        except psutil.Error:
            continue
        processes.append(process)
    time.sleep(interval)
    samples: list[ProcessSample] = []
    for process in processes:
        try:
            with process.oneshot():
                cpu = float(process.cpu_percent(None))
                name = str(process.name())
                rss = int(process.memory_info().rss)
                user = _optional(process, "username")
                cmdline = _optional(process, "cmdline")
        except psutil.Error:
            continue
        samples.append(
            ProcessSample(
                pid=int(process.pid),
                name=name,
                user=user if isinstance(user, str) else "",
                cpu_percent=cpu,
                memory_rss=rss,
                cmdline=[str(arg) for arg in cmdline] if isinstance(cmdline, list) else [],
            )
        )
    return samples


def redact_arguments(args: Sequence[str]) -> list[str]:
    """``args`` with the values of secret-looking options replaced by ``***``.

    Catches ``--password=x``, ``--token x``, ``DB_SECRET=x``, ``"api_key": "x"`` and
    the credentials in ``scheme://user:pass@host``; it cannot catch every secret, which
    is why command lines are also cut short.
    """
    redacted: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next and not arg.startswith("-"):
            redacted.append("***")
            hide_next = False
            continue
        name, equals, _ = arg.partition("=")
        if _SECRET_WORD.search(name) and equals and " " not in name:
            arg = f"{name}=***"
        hide_next = arg.startswith("-") and not equals and bool(_SECRET_WORD.search(arg))
        arg = _URL_CREDENTIALS.sub(r"\1***@", arg)
        arg = _QUOTED_SECRET.sub(r'\1"***"', arg)
        redacted.append(arg)
    return redacted


def _process_info(sample: ProcessSample) -> ProcessInfo:
    # Only the first MAX_CMDLINE characters are ever read from the arguments.
    cmdline = ""
    for arg in redact_arguments([arg[: MAX_CMDLINE + 1] for arg in sample.cmdline[:64]]):
        cmdline = f"{cmdline} {arg[: MAX_CMDLINE + 1]}" if cmdline else arg[: MAX_CMDLINE + 1]
        if len(cmdline) > MAX_CMDLINE:
            break
    return ProcessInfo(
        pid=count(sample.pid),
        name=clip(sample.name, MAX_NAME),
        user=clip(sample.user, MAX_NAME),
        cpu_percent=number(sample.cpu_percent, high=1e6),
        memory_rss=count(sample.memory_rss),
        cmdline=clip(cmdline, MAX_CMDLINE),
    )


def collect_processes() -> list[ProcessInfo]:
    """The top ``TOP_PROCESSES`` processes by CPU, then by memory, without duplicates."""
    samples = list_processes()
    by_cpu = sorted(samples, key=lambda s: (-s.cpu_percent, -s.memory_rss))[:TOP_PROCESSES]
    by_memory = sorted(samples, key=lambda s: -s.memory_rss)[:TOP_PROCESSES]
    chosen: dict[int, ProcessSample] = {}
    for sample in [*by_cpu, *by_memory]:
        chosen.setdefault(sample.pid, sample)
    return [_process_info(sample) for sample in chosen.values()]


# -- Users and battery --------------------------------------------------------------------


def collect_users() -> list[UserSession]:
    """Logged-in user sessions."""
    sessions: list[UserSession] = []
    for user in psutil.users()[:MAX_USERS]:
        started = float(user.started) if user.started else None
        sessions.append(
            UserSession(
                name=clip(str(user.name or ""), MAX_NAME),
                terminal=clip(str(user.terminal or ""), MAX_NAME),
                host=clip(str(user.host or ""), MAX_NAME),
                started=None if started is None else number(started, high=1e11),
            )
        )
    return sessions


def collect_battery() -> BatteryInfo | None:
    """Battery charge, power source and time left; None when there is no battery."""
    battery = psutil.sensors_battery()
    if battery is None:
        return None
    seconds_left = battery.secsleft
    # psutil says "unknown" and "unlimited" (on mains) with negative constants.
    known = isinstance(seconds_left, int | float) and 0 <= seconds_left < 10**9
    health = platforms.current().host.battery_health()
    return BatteryInfo(
        percent=number(battery.percent, high=100.0),
        plugged=None if battery.power_plugged is None else bool(battery.power_plugged),
        seconds_left=count(int(seconds_left)) if known else None,
        health_percent=None if health is None else number(health, high=100.0),
    )


def collect_pending_reboot() -> bool | None:
    """Whether installed updates wait for a restart; None where the OS does not say."""
    return platforms.current().host.pending_reboot()
