"""A real console for the tests: ``deskside-console init`` and ``serve`` as processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.helpers import script


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ConsoleProcess:
    """A console data directory and, while started, its ``serve`` process."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        database_url: str = "",
        *,
        scripts: Path | None = None,
        umask: int = -1,
        env: Mapping[str, str] | None = None,
        init: bool = True,
    ) -> None:
        self.data_dir = data_dir
        # Environment variables its commands get besides this process's.
        self.env = dict(env or {})
        # The umask its commands start with (-1: this process's).
        self.umask = umask
        # The deskside-console to run: this environment's, or the one in ``scripts``.
        self.command = str(scripts / "deskside-console") if scripts else script("deskside-console")
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"console-{self.port}.log"
        self.admin_password = ""
        if not init:
            return
        args = ["init", "--host", "127.0.0.1", "--port", str(self.port)]
        if database_url:
            args += ["--database-url", database_url]
        result = self.cli(*args)
        self.admin_password = result.stdout.split("admin password", 1)[1].split()[0]

    def node(self, data_dir: Path, env: Mapping[str, str] | None = None) -> ConsoleProcess:
        """Another node of this console: a copy of its data directory (keys, certificate,
        settings; the database is shared, so it must be PostgreSQL) on a port of its own."""
        shutil.copytree(self.data_dir, data_dir)
        other = ConsoleProcess(
            data_dir, umask=self.umask, env={**self.env, **(env or {})}, init=False
        )
        other.command = self.command
        other.env["DESKSIDE_PORT"] = str(other.port)
        other.admin_password = self.admin_password
        return other

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def cert(self) -> Path:
        return self.data_dir / "tls" / "cert.pem"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts this console's self-signed certificate, and only it."""
        return ssl.create_default_context(cafile=str(self.cert))

    def cli(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``deskside-console --data-dir DIR ARGS...``."""
        result = subprocess.run(
            [self.command, "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=60,
            check=False,
            umask=self.umask,
            env={**os.environ, **self.env},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"deskside-console {' '.join(args)} failed:\n{result.stderr}")
        return result

    def start(self, timeout: float = 30.0) -> None:
        """Start ``serve`` and wait until it is ready."""
        assert self.process is None
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.command, "--data-dir", str(self.data_dir), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
                umask=self.umask,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(verify=self.ssl_context(), timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"console exited:\n{self.log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base_url}/readyz").status_code == 200:
                        return
                time.sleep(0.1)
        raise AssertionError(f"console not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Stop ``serve`` (SIGKILL to simulate a crash); its exit code."""
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def __enter__(self) -> ConsoleProcess:
        """Started; stopped on leaving, unless something stopped it already."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            self.stop()

    def api_token(self, *scopes: str) -> str:
        """A new API token with these scopes."""
        args = ["apitoken", "create", f"test-{time.monotonic_ns()}"]
        for scope in scopes:
            args += ["--scope", scope]
        return self.cli(*args).stdout.strip()

    def enrollment(self, *options: str) -> str:
        """A new enrollment string."""
        return self.cli("token", "create", *options).stdout.strip()

    def api(self, token: str) -> httpx.Client:
        """An HTTP client for the REST API with this token."""
        return httpx.Client(
            base_url=self.base_url,
            verify=self.ssl_context(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30.0,
        )
