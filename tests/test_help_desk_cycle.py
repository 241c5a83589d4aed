"""Classify and record, end to end: a real agent's help request gets findings and a
suggested category, the technician accepts it, an article written for that finding
is suggested for the next such ticket and counted when it solves it. The console
and the agent run as processes on 127.0.0.1; everything goes through the REST API.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.conftest import Agent
from tests.consoleproc import ConsoleProcess
from tests.test_end_to_end import enroll

# An admin's rule that every real Linux snapshot meets (the shipped rules name
# problems, which a healthy test machine may not have): it stands for a problem the
# desk knows, with a category and an urgency to suggest.
SITE_RULE = """
[[rule]]
id = "linux-desktop"
severity = "info"
title = "A {os.family} desktop ({os.name})"
when = [
    { path = "os.family", op = "==", value = "linux" },
    { path = "console.delay_seconds", op = "present" },
]
category = "software/os"
urgency = 1
"""


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[ConsoleProcess]:
    process = ConsoleProcess(tmp_path / "console")
    (process.data_dir / "rules").mkdir(mode=0o700)
    (process.data_dir / "rules" / "site.toml").write_text(SITE_RULE)
    (process.data_dir / "rules" / "site.toml").chmod(0o600)
    with process:
        yield process


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    the_agent = Agent(tmp_path / "agent")
    try:
        yield the_agent
    finally:
        await the_agent.stop_all()


async def help_request(agent: Agent, text: str) -> int:
    result = await agent.cli("help", text)
    assert result.returncode == 0, result.stderr
    number = re.search(r"Ticket #(\d+) filed\.", result.stdout)
    assert number, result.stdout
    return int(number.group(1))


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_findings_classify_and_articles_record(desk: ConsoleProcess, agent: Agent) -> None:
    await enroll(agent, desk)
    first = await help_request(agent, "Word cannot save my report")
    writer = desk.api(desk.api_token("tickets:read", "tickets:write", "knowledge:write"))
    reader = desk.api(desk.api_token("tickets:read"))
    with writer, reader:
        detail = ok(reader.get(f"/api/v1/tickets/{first}"))
        findings = {f["finding"]["id"]: f for f in detail["findings"]["findings"]}
        mine = findings["linux-desktop"]["finding"]
        assert mine["title"].startswith("A linux desktop (")
        assert mine["evidence"]["os.family"] == "linux"
        assert (mine["category"], mine["urgency"]) == ("software/os", 1)
        assert detail["findings"]["snapshot_id"] is not None
        assert detail["ticket"]["category"] == ""

        # Accepting the suggestion classifies the ticket, on its timeline.
        refused = reader.post(
            f"/api/v1/tickets/{first}/findings/decisions",
            json={"finding": "linux-desktop", "decision": "accepted"},
        )
        assert refused.status_code == 403
        decided = ok(
            writer.post(
                f"/api/v1/tickets/{first}/findings/decisions",
                json={"finding": "linux-desktop", "decision": "accepted"},
            ),
            201,
        )
        assert decided["decision"] == "accepted"
        ticket = ok(reader.get(f"/api/v1/tickets/{first}"))
        assert (ticket["ticket"]["category"], ticket["ticket"]["urgency"]) == ("software/os", 1)
        kinds = [entry["kind"] for entry in ticket["timeline"]]
        assert kinds[-2:] == ["change", "finding"]
        assert ok(reader.get("/api/v1/tickets", params={"category": "software"}))[0]["id"] == first
        bad = writer.post(
            f"/api/v1/tickets/{first}/findings/decisions",
            json={"finding": "nothing-like-it", "decision": "accepted"},
        )
        assert bad.status_code == 404
        bad = writer.post(
            f"/api/v1/tickets/{first}/findings/decisions",
            json={"finding": "linux-desktop", "decision": "maybe"},
        )
        assert bad.status_code == 400
        bad = writer.patch(f"/api/v1/tickets/{first}", json={"category": "printers"})
        assert bad.status_code == 404
        assert "no category 'printers'" in bad.json()["detail"]

        # The resolution becomes an article, published.
        ok(
            writer.post(f"/api/v1/tickets/{first}/notes", json={"text": "Freed space in /home."}),
            201,
        )
        draft = ok(writer.post(f"/api/v1/tickets/{first}/kb/draft"), 201)
        assert draft["status"] == "draft"
        assert draft["findings"] == sorted(
            f["finding"]["rule"] for f in detail["findings"]["findings"]
        )
        assert draft["resolution"] == "Freed space in /home."
        assert reader.post("/api/v1/kb/articles", json={"title": "x"}).status_code == 403
        assert (
            writer.post("/api/v1/kb/articles", json={"title": "x", "tags": ["Bad Tag"]}).status_code
            == 400
        )
        article = draft["id"]
        ok(
            writer.patch(
                f"/api/v1/kb/articles/{article}",
                json={"title": "Word cannot save: free some space", "findings": ["linux-desktop"]},
            )
        )
        published = ok(writer.patch(f"/api/v1/kb/articles/{article}", json={"status": "published"}))
        assert published["version"] == 3
        versions = ok(reader.get(f"/api/v1/kb/articles/{article}/versions"))
        assert [v["change"] for v in versions] == [
            "created",
            "edited: title, findings",
            "status published",
        ]
        found = ok(reader.get("/api/v1/kb/articles", params={"q": "word save"}))
        assert [a["id"] for a in found] == [article]
        assert ok(reader.get("/api/v1/kb/articles", params={"q": "the"})) == []

        # The next such ticket is offered the article, and counts it when it solves it.
        second = await help_request(agent, "Excel will not save either")
        suggestions = ok(reader.get(f"/api/v1/tickets/{second}/kb/suggestions"))
        assert suggestions[0]["article"]["id"] == article
        assert "finding linux-desktop" in suggestions[0]["reasons"]
        link = ok(
            writer.post(
                f"/api/v1/tickets/{second}/kb/links", json={"article": article, "resolved": True}
            ),
            201,
        )
        assert link["data"] == {
            "kind": "article",
            "article": article,
            "title": "Word cannot save: free some space",
            "resolved": True,
        }
        assert ok(reader.get(f"/api/v1/kb/articles/{article}"))["solved"] == 1
        lax = writer.post(
            f"/api/v1/tickets/{second}/kb/links", json={"article": article, "resolved": 0}
        )
        assert lax.status_code == 400  # 0 is no boolean
        assert "Expected `bool`, got `int` - at `$.resolved`" in lax.json()["detail"]
        too_many = writer.patch(f"/api/v1/kb/articles/{article}", json={"tags": ["x"] * 33})
        assert too_many.status_code == 400
        missing = writer.post(
            f"/api/v1/tickets/{second}/kb/links", json={"article": 999, "resolved": True}
        )
        assert missing.status_code == 404
        assert ok(reader.get("/api/v1/categories"))[0] == {"name": "hardware", "title": "Hardware"}
        rules = ok(reader.get("/api/v1/findings/rules"))
        assert rules[-1]["id"] == "linux-desktop"
