"""Several console nodes starting at once on one PostgreSQL: one migrates, the others wait."""

from __future__ import annotations

import subprocess
import sys

from alembic.script import ScriptDirectory

from deskside.console.db import alembic_config, migrate
from tests.postgres import _bindir, create_database

# Each process: migrate the database, then say so.
_MIGRATE = """
import sys
from deskside.console.db import migrate
sys.stdin.readline()  # all start together
migrate(sys.argv[1])
print("migrated")
"""

NODES = 4


def test_nodes_starting_together_migrate_once_and_all_start(postgres_url: str) -> None:
    url = create_database(postgres_url)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(NODES)
    ]
    # Every interpreter has imported Alembic and SQLAlchemy before any is let go.
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("\n")
        process.stdin.flush()
    results = [process.communicate(timeout=120) for process in processes]
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err[-3000:]
        assert out.strip() == "migrated"
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert _version(url) == head
    migrate(url)  # at head already: nothing to do, nothing fails
    assert _version(url) == head


def _version(url: str) -> str:
    result = subprocess.run(
        [str(_bindir() / "psql"), url, "-Atc", "SELECT version_num FROM alembic_version"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()
