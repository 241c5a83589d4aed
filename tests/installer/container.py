"""This machine's own Debian, booted under a real systemd in a container, for the tests.

systemd is not PID 1 on the test machines, so the installer's systemd path runs
in a container instead: ``systemd-nspawn`` boots ``/usr/lib/systemd/systemd`` on a
throwaway overlay of ``/`` (every write goes to a directory of the test, ``/``
itself is never changed). The container shares the host's network, so it reaches
a console on 127.0.0.1 and the package index; it boots to ``basic.target`` only,
so none of the host's services (a PostgreSQL on its port, say) start in it.
Commands run inside with ``nsenter`` into the container's namespaces.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SystemdContainer:
    """A booted container; ``run`` executes shell commands in it as root."""

    def __init__(self, base: Path, name: str = "deskside-test") -> None:
        # Upper and work directories of the overlay, and its mount point.
        self.base = base
        self.root = base / "root"
        self.name = name
        self.log = base / "nspawn.log"
        self.process: subprocess.Popen[bytes] | None = None
        # The container's PID 1 (systemd), as the host sees it.
        self.init_pid: int | None = None

    def start(self, timeout: float = 90.0) -> None:
        """Mount the overlay, boot, and wait until systemd says it is up."""
        upper, work = self.base / "upper", self.base / "work"
        for directory in (upper, work, self.root):
            directory.mkdir(parents=True)
        subprocess.run(
            [
                "mount", "-t", "overlay", "overlay", "-o",
                f"lowerdir=/,upperdir={upper},workdir={work}", str(self.root),
            ],
            check=True,
        )  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    "systemd-nspawn", "--quiet", "--directory", str(self.root), "--boot",
                    "--machine", self.name, "--register=no", "--keep-unit",
                    "--console=passive", "--", "--unit=basic.target",
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the container exited:\n{self.log.read_text()[-3000:]}")
            if self.init_pid is None:
                self.init_pid = self._find_init()
            if self.init_pid is not None:
                state = self.run("systemctl is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.5)
        raise AssertionError(f"the container did not boot:\n{self.log.read_text()[-3000:]}")

    def _find_init(self) -> int | None:
        assert self.process is not None
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                if child.name() == "systemd":
                    return int(child.pid)
        return None

    def run(
        self,
        command: str,
        *,
        check: bool = True,
        timeout: float = 300.0,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` with ``sh -c`` in the container, as root, in a clean environment."""
        assert self.init_pid is not None
        variables = {"PATH": _PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        result = subprocess.run(
            [
                "nsenter", "--target", str(self.init_pid), "--all",
                "env", "-i", *(f"{k}={v}" for k, v in variables.items()),
                "sh", "-c", command,
            ],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"in the container, {command!r} exited {result.returncode}:\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        return result

    def stop(self) -> None:
        """Power the container off and unmount the overlay."""
        if self.process is not None:
            self.process.terminate()  # nspawn halts the container on SIGTERM
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        unmounted = subprocess.run(["umount", str(self.root)], capture_output=True, check=False)
        if unmounted.returncode != 0 and self.root.is_mount():
            subprocess.run(["umount", "--lazy", str(self.root)], check=False)
