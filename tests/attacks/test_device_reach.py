"""A technician with a script reaches no device but their own tickets': by every route.

The attack (issue 12, item 1): ``tech-b``, assignee of a ticket without a device,
named the device of ``tech-c``'s ticket, and ran ``id`` as root, opened a root
terminal and asked for its screen. Items 2 and 3: cancelling someone else's command,
and a runbook that wrote its start before its first step was refused.
"""

from __future__ import annotations

from typing import Any

import httpx

from deskside.protocol import messages as m
from tests.attacks.conftest import user_token
from tests.attacks.probes import quiet, refusal, ticket, timeline
from tests.console.commands.test_routes import PlayedAgent
from tests.consoleproc import ConsoleProcess


async def test_a_technician_reaches_no_other_device_by_any_route(
    console: ConsoleProcess, admin: httpx.Client, agent: PlayedAgent
) -> None:
    device = agent.id
    theirs = ticket(admin, device, "tech-c")
    own = ticket(admin, None, "tech-b")
    token = user_token(console, "tech-b")
    with console.api(token) as b:
        probes: dict[str, httpx.Response] = {
            "command through their own ticket": b.post(
                f"/api/v1/tickets/{own}/commands", json={"argv": ["id"], "device_id": device}
            ),
            "command on the other's ticket": b.post(
                f"/api/v1/tickets/{theirs}/commands", json={"argv": ["id"]}
            ),
            "runbook through their own ticket": b.post(
                f"/api/v1/tickets/{own}/runbooks/flush-dns", json={"device_id": device}
            ),
            "runbook on the other's ticket": b.post(
                f"/api/v1/tickets/{theirs}/runbooks/flush-dns", json={}
            ),
            "fresh diagnostics": b.post(
                f"/api/v1/tickets/{theirs}/diagnostics", json={"fresh": True, "timeout": 2}
            ),
            "a device's snapshot": b.post(f"/api/v1/devices/{device}/snapshots?timeout=2"),
        }
    for name, response in probes.items():
        assert response.status_code == 403, (name, response.text)
    assert "tech-b may not act on device" in probes["command through their own ticket"].text
    for path in (
        f"/api/v1/tickets/{own}/terminal?device={device}",
        f"/api/v1/tickets/{own}/shell?device={device}",
        f"/api/v1/tickets/{theirs}/terminal",
        f"/api/v1/tickets/{own}/screen?device={device}",
        f"/api/v1/tickets/{theirs}/screen",
    ):
        answer = await refusal(console, path, token)
        assert (answer["type"], answer["status"]) == ("error", 403), (path, answer)
    assert await quiet(agent) == []  # nothing reached the device

    # Nothing was written in tech-b's name but the refusals; their ticket has no device.
    for number in (own, theirs):
        kinds = {e["kind"] for e in timeline(admin, number) if e["actor"] == "user:tech-b"}
        assert kinds <= {"command_refused", "screen_refused"}, kinds
    assert admin.get(f"/api/v1/tickets/{own}").json()["ticket"]["device_id"] is None
    refused = [e for e in timeline(admin, theirs) if e["kind"] == "command_refused"]
    assert any(e["data"].get("runbook") == "flush-dns" for e in refused)


async def test_the_assignee_still_acts_and_their_action_lands_on_the_devices_ticket(
    console: ConsoleProcess, admin: httpx.Client, agent: PlayedAgent
) -> None:
    device = agent.id
    theirs = ticket(admin, device, "tech-c")
    bare = ticket(admin, None, "tech-c")  # from e-mail, say: no device yet
    with console.api(user_token(console, "tech-c")) as c:
        ran = c.post(f"/api/v1/tickets/{theirs}/commands", json={"argv": ["id"]})
        assert ran.status_code == 201, ran.text
        named = c.post(
            f"/api/v1/tickets/{bare}/commands", json={"argv": ["uptime"], "device_id": device}
        )
        assert named.status_code == 201, named.text
    requests = [r for r in await quiet(agent) if isinstance(r, m.CommandRequest)]
    assert [(r.ticket_id, r.argv) for r in requests] == [(theirs, ["id"]), (bare, ["uptime"])]
    # The bare ticket is now the ticket of that device, and says so.
    assert admin.get(f"/api/v1/tickets/{bare}").json()["ticket"]["device_id"] == device
    change = [e for e in timeline(admin, bare) if e["kind"] == "change"][-1]
    assert (change["actor"], change["data"]) == (
        "user:tech-c",
        {"kind": "change", "device": {"from": None, "to": device}},
    )


async def test_only_who_may_run_a_command_cancels_it_and_who_did_is_recorded(
    console: ConsoleProcess, admin: httpx.Client, agent: PlayedAgent
) -> None:
    number = ticket(admin, agent.id, "tech-c")
    with console.api(user_token(console, "tech-c")) as c:
        started = c.post(f"/api/v1/tickets/{number}/commands", json={"argv": ["sleep", "60"]})
        assert started.status_code == 201, started.text
        command = started.json()["id"]
        assert isinstance(await agent.next_request(), m.CommandRequest)
        with console.api(user_token(console, "tech-b")) as b:
            refused = b.post(f"/api/v1/commands/{command}/cancel")
        assert refused.status_code == 403, refused.text
        assert await quiet(agent) == []  # the command runs on
        cancelled = c.post(f"/api/v1/commands/{command}/cancel")
        assert cancelled.status_code == 202, cancelled.text
    assert await agent.next_request() == m.CommandCancel(command_id=command)
    entries = [(e["kind"], e["actor"], e["data"]) for e in timeline(admin, number)]
    assert ("command_cancel", "user:tech-c", {"kind": "command_cancel", "command": command}) in (
        entries
    )
    assert any(
        kind == "command_refused" and actor == "user:tech-b" and data.get("cancel") == command
        for kind, actor, data in entries
    )
    log: list[dict[str, Any]] = admin.get("/api/v1/audit", params={"limit": 50}).json()
    who = {(e["action"], e["actor"]) for e in log if e["data"].get("command") == command}
    assert {("command.cancel", "user:tech-c"), ("command.refused", "user:tech-b")} <= who
