"""``categories``, ``rules``, ``ticket findings | finding | category | kb`` and ``kb ...``
on a real data directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from deskside.console.config import ConsoleConfig
from deskside.console.store import Store
from tests.console.findings.test_service import recorded, ticket_with
from tests.console.test_cli import run
from tests.consoleproc import ConsoleProcess


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return ConsoleProcess(tmp_path / "data").data_dir


def a_ticket_with_a_full_disk(data_dir: Path) -> int:
    """A help request's ticket with the recorded snapshot's disk filled (as an agent
    would file it; the CLI has no way to make a snapshot without one)."""

    async def go() -> int:
        store = Store.connect(ConsoleConfig.load(data_dir).database)
        try:
            return await ticket_with(store, recorded("disk"))
        finally:
            await store.close()

    return asyncio.run(go())


def test_categories_and_rules(data_dir: Path) -> None:
    code, output = run(data_dir, "categories")
    assert code == 0
    assert "network/dns" in output
    assert "Network connectivity / Name resolution" in output
    code, output = run(data_dir, "rules")
    assert code == 0
    assert "disk-nearly-full" in output
    (data_dir / "rules").mkdir()
    (data_dir / "rules" / "local.toml").write_text('[[rule]]\nid = "x"\n')
    code, output = run(data_dir, "rules")
    assert code == 1
    assert f"{data_dir / 'rules' / 'local.toml'}: " in output
    assert "missing required field" in output
    code, output = run(data_dir, "tickets")  # nothing runs on rules that do not load
    assert code == 1
    (data_dir / "categories.toml").write_text('[printers]\ntitle = "Printers"\n')
    (data_dir / "rules" / "local.toml").unlink()
    code, output = run(data_dir, "categories")
    assert (code, output.split()) == (0, ["CATEGORY", "TITLE", "printers", "Printers"])
    code, output = run(data_dir, "rules")  # the shipped rules name categories no more
    assert code == 1
    assert "no category 'hardware/storage'" in output


def test_findings_category_and_knowledge_on_a_ticket(data_dir: Path) -> None:
    number = str(a_ticket_with_a_full_disk(data_dir))
    code, output = run(data_dir, "ticket", "show", number)
    assert code == 0
    assert "Findings:" in output
    assert "WARNING  disk-nearly-full:/: Disk / is 97% full (7.0 GiB free)" in output
    assert "evidence: disks.0.percent=97.0" in output
    assert "suggested: category hardware/storage, urgency 2" in output

    code, output = run(data_dir, "ticket", "finding", number, "disk-nearly-full:/")
    assert (code, "say --accept or --dismiss" in output) == (2, True)
    code, output = run(data_dir, "ticket", "finding", number, "nope", "--accept")
    assert (code, "has no finding 'nope'" in output) == (1, True)
    code, output = run(
        data_dir, "ticket", "finding", number, "disk-nearly-full:/", "--accept", "--as", "admin"
    )
    assert code == 0, output
    code, output = run(data_dir, "ticket", "findings", number)
    assert "[accepted by user:admin]" in output
    code, output = run(data_dir, "tickets", "--category", "hardware")
    assert f"#{number}" in output
    code, output = run(data_dir, "ticket", "category", number, "printers")
    assert (code, "no category 'printers'" in output) == (1, True)
    code, output = run(data_dir, "ticket", "category", number, "software/os")
    assert (code, output) == (0, f"Ticket #{number}: category software/os\n")
    code, output = run(data_dir, "tickets", "--category", "hardware")
    assert f"#{number}" not in output

    code, output = run(
        data_dir,
        "kb",
        "add",
        "--title",
        "Disk full",
        "--resolution-file",
        "-",
        "--category",
        "hardware/storage",
        "--finding",
        "disk-nearly-full",
        "--tag",
        "disk",
        stdin="Run `apt-get clean`.\n\n<script>alert(1)</script>\n",
    )
    assert (code, output) == (0, "Article 1 written (draft, version 1)\n")
    code, output = run(data_dir, "kb", "add", "--resolution", "x")
    assert (code, "an article needs --title" in output) == (2, True)
    code, output = run(data_dir, "kb", "add", "--title", "x", "--tag", "Not A Tag")
    assert (code, "Expected `str` matching regex" in output) == (2, True)
    code, output = run(data_dir, "ticket", "kb", number)
    assert output == "No published article matches this ticket.\n"
    code, output = run(data_dir, "kb", "publish", "1", "--as", "admin")
    assert (code, output) == (0, "Article 1 published (version 2)\n")
    code, output = run(data_dir, "ticket", "kb", number)
    assert "finding disk-nearly-full" in output
    code, output = run(data_dir, "kb", "search", "apt-get")
    assert "Disk full" in output
    code, output = run(data_dir, "kb", "show", "1", "--html", "--versions")
    assert "<code>apt-get clean</code>" in output
    assert "&lt;script&gt;" in output
    assert "<script>" not in output
    assert "user:admin  status published" in output
    code, output = run(data_dir, "kb", "edit", "1", "--title", "Disk full: clean the caches")
    assert (code, output) == (0, "Article 1 is at version 3\n")
    code, output = run(data_dir, "ticket", "kb", number, "--resolved-with", "1")
    assert (code, output) == (
        0,
        f"Ticket #{number} resolved with article 1: Disk full: clean the caches\n",
    )
    code, output = run(data_dir, "kb", "list")
    assert output.splitlines()[1].split()[:4] == ["1", "published", "3", "1"]
    code, output = run(data_dir, "ticket", "show", number)
    assert "article: resolved with article 1: Disk full: clean the caches" in output
    code, output = run(data_dir, "kb", "draft", "--ticket", number)
    assert code == 0
    assert output.startswith(f"Article 2 drafted from ticket #{number}")
    code, output = run(data_dir, "kb", "show", "9")
    assert (code, "no article 9" in output) == (1, True)
