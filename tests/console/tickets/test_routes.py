"""The queue through a real console's REST API: filters, pages, bad parameters, stale
versions, bulk changes and saved views."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.consoleproc import ConsoleProcess


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    with ConsoleProcess(tmp_path_factory.mktemp("console") / "data") as process:
        process.cli("user", "add", "alice")
        process.cli("user", "add", "bob")
        process.cli("group", "add", "desk")
        process.cli("group", "add", "field")
        yield process


@pytest.fixture(scope="module")
def alice(console: ConsoleProcess) -> Iterator[httpx.Client]:
    """A client acting as the technician alice."""
    token = console.cli(
        "apitoken", "create", "alice-t", "--user", "alice",
        "--scope", "tickets:read", "--scope", "tickets:write",
    ).stdout.strip()  # fmt: skip
    with console.api(token) as client:
        yield client


@pytest.fixture(scope="module")
def service(console: ConsoleProcess) -> Iterator[httpx.Client]:
    """A client with a service token (no technician)."""
    with console.api(console.api_token("tickets:read", "tickets:write")) as client:
        yield client


def new(client: httpx.Client, title: str, **fields: object) -> dict[str, object]:
    response = client.post("/api/v1/tickets", json={"title": title, "description": "d", **fields})
    assert response.status_code == 201, response.text
    ticket: dict[str, object] = response.json()
    return ticket


def test_the_queue_filters_sorts_and_pages(alice: httpx.Client, service: httpx.Client) -> None:
    tag = "queue-test"
    made = [new(alice, f"{tag} {n}", group="desk" if n % 2 else "field") for n in range(5)]
    first = made[0]["id"]
    response = alice.patch(f"/api/v1/tickets/{first}", json={"assignee": "alice"})
    assert response.status_code == 200, response.text
    response = alice.get("/api/v1/tickets", params={"q": tag, "limit": 2})
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "5"
    assert [t["id"] for t in response.json()] == [made[4]["id"], made[3]["id"]]
    response = alice.get(
        "/api/v1/tickets", params={"q": tag, "sort": "number", "order": "asc", "offset": 4}
    )
    assert [t["id"] for t in response.json()] == [made[4]["id"]]
    assert response.headers["X-Total-Count"] == "5"
    response = alice.get("/api/v1/tickets", params={"q": tag, "group": "desk"})
    assert [t["id"] for t in response.json()] == [made[3]["id"], made[1]["id"]]
    response = alice.get("/api/v1/tickets", params={"q": tag, "mine": "true"})
    assert [t["id"] for t in response.json()] == [first]
    response = alice.get("/api/v1/tickets", params={"q": tag, "unassigned": "true"})
    assert response.headers["X-Total-Count"] == "4"
    response = alice.get(
        "/api/v1/tickets", params=[("q", tag), ("status", "assigned"), ("status", "resolved")]
    )
    assert [t["id"] for t in response.json()] == [first]
    response = alice.get("/api/v1/tickets", params={"q": tag, "breaching": "true"})
    assert (response.status_code, response.json()) == (200, [])
    # A service token has no tickets of its own; contradictory filters select nothing.
    response = service.get("/api/v1/tickets", params={"mine": "true"})
    assert (response.status_code, response.json()) == (200, [])
    response = alice.get("/api/v1/tickets", params={"unassigned": "true", "assignee": "alice"})
    assert (response.status_code, response.headers["X-Total-Count"]) == (200, "0")


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "colour"},
        {"order": "sideways"},
        {"limit": "0"},
        {"limit": "501"},
        {"offset": "-1"},
        {"offset": "10000001"},
        {"priority": "10"},
        {"status": "lost"},
        {"q": ""},
        {"q": "x" * 257},
        {"group": "g" * 129},
        {"mine": "perhaps"},
        {"breaching": "2"},
    ],
)
def test_bad_queue_parameters_are_a_400(alice: httpx.Client, params: dict[str, str]) -> None:
    response = alice.get("/api/v1/tickets", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["detail"]


def test_a_stale_version_is_refused_with_the_current_ticket(alice: httpx.Client) -> None:
    ticket = new(alice, "Two editors")
    url = f"/api/v1/tickets/{ticket['id']}"
    assert ticket["version"] == 1
    response = alice.patch(url, json={"impact": 1, "version": 1})
    assert (response.status_code, response.json()["version"]) == (200, 2)
    response = alice.patch(url, json={"urgency": 1, "version": 1})
    assert response.status_code == 409
    body = response.json()
    assert "changed since version 1" in body["detail"]
    assert (body["extra"]["ticket"]["version"], body["extra"]["ticket"]["impact"]) == (2, 1)
    assert alice.get(url).json()["ticket"]["urgency"] == ticket["urgency"]
    assert alice.patch(url, json={"version": 0}).status_code == 400


def test_bulk_changes_answer_per_ticket(alice: httpx.Client) -> None:
    fresh = new(alice, "Bulk fresh")
    closed = new(alice, "Bulk closed")
    alice.patch(f"/api/v1/tickets/{closed['id']}", json={"status": "closed"})
    response = alice.post(
        "/api/v1/tickets/bulk",
        json={"ids": [fresh["id"], closed["id"], 2_000_000], "status": "in_progress"},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["id"], r["outcome"]) for r in results] == [
        (fresh["id"], "changed"),
        (closed["id"], "refused"),
        (2_000_000, "not_found"),
    ]
    assert "cannot become in_progress" in results[1]["detail"]
    assert results[0]["ticket"]["status"] == "in_progress"
    response = alice.post(
        "/api/v1/tickets/bulk", json={"ids": [fresh["id"]], "assignee": "bob", "group": "field"}
    )
    assert response.json()["results"][0]["ticket"]["assignee"] == "bob"
    timeline = alice.get(f"/api/v1/tickets/{fresh['id']}").json()["timeline"]
    assert {"status", "assignment", "change"} <= {e["kind"] for e in timeline}
    for body in (
        {"ids": [], "status": "closed"},
        {"ids": list(range(1, 502)), "status": "closed"},
        {"ids": [fresh["id"]], "colour": "red"},
        {"ids": [fresh["id"]], "group": 5},
        {"ids": [str(fresh["id"])], "status": "closed"},
        {"ids": [0], "status": "closed"},
    ):
        assert alice.post("/api/v1/tickets/bulk", json=body).status_code == 400, body
    response = alice.post("/api/v1/tickets/bulk", json={"ids": [fresh["id"]], "group": "nope"})
    assert response.status_code == 404


def test_saved_views_through_the_api(alice: httpx.Client, service: httpx.Client) -> None:
    query = {"statuses": ["new"], "group": "desk", "sort": "sla_due", "order": "asc"}
    response = alice.post("/api/v1/saved-views", json={"name": "Desk", "query": query})
    assert response.status_code == 201, response.text
    view = response.json()
    assert view["query"]["group"] == "desk"
    assert [v["name"] for v in alice.get("/api/v1/saved-views").json()] == ["Desk"]
    response = alice.post("/api/v1/saved-views", json={"name": "Desk", "query": query})
    assert response.status_code == 409
    for body in (
        {"name": "", "query": query},
        {"name": "a\nb", "query": query},
        {"name": "x", "query": {"sort": "colour"}},
        {"name": "x", "query": {"limit": 0}},
        {"name": "x", "query": {"breaching": 0}},  # not a boolean, however Litestar reads it
        {"name": "x", "query": query, "extra": 1},
    ):
        assert alice.post("/api/v1/saved-views", json=body).status_code == 400, body
    assert service.get("/api/v1/saved-views").status_code == 403
    assert service.delete(f"/api/v1/saved-views/{view['id']}").status_code == 403
    assert alice.delete(f"/api/v1/saved-views/{view['id']}").status_code == 204
    assert alice.delete(f"/api/v1/saved-views/{view['id']}").status_code == 404
    assert alice.get("/api/v1/saved-views").json() == []


@pytest.mark.parametrize(
    "body",
    [
        b"6 x",  # a number of the wrong type, then trailing bytes
        b"6\xc3\xbfh\xc4\xb4\xef\x1b",  # schemathesis's find: the same, not UTF-8
        b'{"title": "\xff"}',
        b"\xff\xfe",
        b'{"impact": 0}',
        b'{"assignee": 1}',
    ],
)
def test_a_body_that_is_not_the_schema_or_not_json_is_a_400(
    alice: httpx.Client, body: bytes
) -> None:
    ticket = new(alice, "Body check")
    answer = alice.patch(
        f"/api/v1/tickets/{ticket['id']}",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"]
    assert alice.get(f"/api/v1/tickets/{ticket['id']}").json()["ticket"]["title"] == "Body check"
