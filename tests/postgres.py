"""A throw-away PostgreSQL server for the tests, from Debian's packages.

The tests start it themselves (initdb into a temporary directory, pg_ctl on a free
port on 127.0.0.1, fsync off) and stop it at the end. As root, the server runs
as the ``postgres`` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bindir() -> Path:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name),
    )
    if not candidates:
        raise RuntimeError("PostgreSQL is not installed: run scripts/test.sh, which installs it")
    return candidates[-1].parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_server(base: Path) -> Iterator[str]:
    """Run a PostgreSQL server; yields the URL of its ``postgres`` database."""
    bindir = _bindir()
    data = base / "pgdata"
    data.mkdir(parents=True)
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "deskside"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-p {port} -k {data} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l",
         str(data / "server.log"), "start"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://deskside@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )


def create_database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    name = "t_" + uuid.uuid4().hex[:12]
    bindir = _bindir()
    subprocess.run(
        [str(bindir / "psql"), server_url, "-qc", f"CREATE DATABASE {name}"],
        check=True,
        capture_output=True,
    )
    return server_url.rsplit("/", 1)[0] + "/" + name
