"""A throw-away Redis server for the tests, from Debian's ``redis-server`` package.

One server per test session on a free port on 127.0.0.1 (no persistence, nothing
written but its log); each test that uses it starts from an empty one (``FLUSHALL``,
about a millisecond). Tests may stop and start it again on the same port, to see
the console notice Redis going away and coming back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.consoleproc import free_port


class RedisServer:
    """``redis-server`` in a directory of its own, on one port for its whole life."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed: scripts/test.sh installs it")
        self.dir = base
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        assert self.process is None
        log = (self.dir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir),
             "--protected-mode", "yes"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{(self.dir / 'redis.log').read_text()}")
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.5) as client:
                    if client.ping():
                        return
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer in time")

    def stop(self) -> None:
        """Kill the server (as a crash would: nothing is saved anyway)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None
        # The port is free again once the kernel has closed the listener.
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", self.port))

    def flush(self) -> None:
        """Empty the server."""
        with redis.Redis(port=self.port) as client:
            client.flushall()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None
