"""Runbooks: their format, their parameters, and runs through a real console."""

from __future__ import annotations

import asyncio
import re
from asyncio.subprocess import PIPE
from pathlib import Path

import httpx
import pytest

from deskside.console.commands.runbooks import builtin_runbooks, parse_runbooks
from deskside.protocol import messages as m
from deskside.protocol.errors import ConfigError
from tests.console.commands.test_routes import PlayedAgent, agent, api, console, new_ticket  # noqa: F401
from tests.consoleproc import ConsoleProcess
from tests.helpers import script


def test_builtin_runbooks_cover_every_os() -> None:
    runbooks = builtin_runbooks()
    assert {"flush-dns", "restart-print-spooler", "recent-system-logs"} <= set(runbooks)
    for runbook in runbooks.values():
        for step in runbook.steps:
            for family in ("linux", "macos", "windows"):
                assert step.argv_for(family), (runbook.name, step.name, family)


def test_parameters_are_checked_and_never_reach_a_shell() -> None:
    logs = builtin_runbooks()["recent-system-logs"]
    assert logs.argv(logs.steps[0], "linux", logs.resolve({"minutes": "15"})) == [
        "journalctl", "--no-pager", "--since", "-15min",
    ]  # fmt: skip
    assert logs.resolve({}) == {"minutes": "60"}
    for bad in ("15; rm -rf /", "-1", "99999", "$(reboot)"):
        with pytest.raises(ConfigError, match="does not match"):
            logs.resolve({"minutes": bad})
    with pytest.raises(ConfigError, match="no parameter"):
        logs.resolve({"hours": "1"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[x\n", "not valid TOML"),
        ("[Bad-Name]\n[[Bad-Name.steps]]\nname='s'\nlinux=['true']\n", "Bad-Name"),
        ("[a]\ndescription='no steps'\n", "steps"),
        ("[a]\n[[a.steps]]\nname='s'\n", "no OS variant"),
        ("[a]\n[[a.steps]]\nname='s'\nlinux=['echo', '{{who}}']\n", "{{who}} is not a parameter"),
        ("[a]\n[[a.steps]]\nname='s'\nlinux=['true']\nsudo=true\n", "sudo"),
    ],
)
def test_bad_runbooks_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_runbooks(text)


def test_runbooks_are_added_listed_shown_and_removed(
    console: ConsoleProcess, tmp_path: Path
) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        "[clear-teams-cache]\ndescription = 'Clear the Teams cache'\n"
        "[[clear-teams-cache.steps]]\nname = 'remove the cache'\n"
        "windows = ['cmd', '/c', 'rd', '/s', '/q', '%APPDATA%\\\\Microsoft\\\\Teams']\n"
    )
    assert "added: clear-teams-cache" in console.cli("runbook", "add", str(path)).stdout
    listed = console.cli("runbook", "list").stdout
    assert re.search(r"clear-teams-cache\s+added\s+1\s+Clear the Teams cache", listed)
    assert "flush-dns" in listed
    shown = console.cli("runbook", "show", "restart-print-spooler").stdout
    assert "linux    systemctl restart cups" in shown
    assert "(continues on error)" in shown
    path.write_text("[broken\n")
    bad = console.cli("runbook", "add", str(path), check=False)
    assert (bad.returncode, "not valid TOML" in bad.stderr) == (1, True)
    console.cli("runbook", "remove", "clear-teams-cache")
    assert "clear-teams-cache" not in console.cli("runbook", "list").stdout
    assert "runbook.added" in console.cli("audit").stdout


async def answer(agent: PlayedAgent, output: bytes, code: int) -> m.CommandRequest:
    request = await agent.next_request()
    assert isinstance(request, m.CommandRequest)
    await agent.channel.send(m.CommandStarted(command_id=request.command_id, consent="policy"))
    if output:
        await agent.channel.send(
            m.CommandOutput(
                command_id=request.command_id, seq=0, stream=m.OutputStream.STDOUT, data=output
            )
        )
    await agent.channel.send(
        m.CommandExit(command_id=request.command_id, exit_code=code, duration=0.1)
    )
    return request


async def test_a_runbook_runs_its_steps_in_order(
    console: ConsoleProcess,
    api: httpx.Client,
    agent: PlayedAgent,
) -> None:
    ticket = new_ticket(api, agent.id, title="Cannot print")
    process = await asyncio.create_subprocess_exec(
        script("deskside-console"), "--data-dir", str(console.data_dir),
        "run", "--ticket", str(ticket), "--runbook", "restart-print-spooler", "--as", "admin",
        stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    first = await answer(agent, b"", 0)
    assert first.argv == ["systemctl", "restart", "cups"]  # the device said it runs Linux
    second = await answer(agent, b"no entries\n", 0)
    assert second.argv == ["lpstat", "-o"]
    stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, stderr
    assert stdout == b"no entries\n"
    assert b"== step 1: systemctl restart cups" in stderr
    timeline = api.get(f"/api/v1/tickets/{ticket}").json()["timeline"]
    kinds = [event["kind"] for event in timeline]
    assert kinds[1:] == [
        "runbook", "command", "command_result", "command", "command_result", "runbook_result",
    ]  # fmt: skip
    assert timeline[-1]["data"]["status"] == "finished"


async def test_a_failing_step_stops_the_runbook(
    console: ConsoleProcess,
    api: httpx.Client,
    agent: PlayedAgent,
) -> None:
    ticket = new_ticket(api, agent.id)
    response = await asyncio.to_thread(
        api.post, f"/api/v1/tickets/{ticket}/runbooks/restart-print-spooler", json={}
    )
    assert response.status_code == 202, response.text
    await answer(agent, b"Job for cups.service failed\n", 1)
    for _ in range(100):
        run = api.get(f"/api/v1/runbook-runs/{response.json()['id']}").json()
        if run["done"]:
            break
        await asyncio.sleep(0.1)
    assert run["done"]
    assert [c["exit_code"] for c in run["commands"]] == [1]  # step 2 never ran
    assert agent.requests.empty()
    result = api.get(f"/api/v1/tickets/{ticket}").json()["timeline"][-1]
    assert (result["kind"], result["data"]["status"]) == ("runbook_result", "failed")
    assert "exit code 1" in result["data"]["detail"]
    refused = await asyncio.to_thread(
        api.post, f"/api/v1/tickets/{ticket}/runbooks/recent-system-logs",
        json={"params": {"minutes": "5; reboot"}},
    )  # fmt: skip
    assert refused.status_code == 400
    missing = await asyncio.to_thread(api.post, f"/api/v1/tickets/{ticket}/runbooks/nope", json={})
    assert missing.status_code == 404
