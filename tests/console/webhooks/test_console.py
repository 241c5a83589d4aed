"""Webhooks through a real console: the CLI, the REST API, and ``kill -9`` between
commit and send, with a real receiver on 127.0.0.1 (allowed in ``console.toml``)."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.consoleproc import ConsoleProcess

from .receiver import Receiver, running

ALLOW_LOOPBACK = '\n[webhooks]\nallow_networks = ["127.0.0.0/8"]\ntimeout = 2\n'


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running(Receiver())


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleProcess]:
    """A console that may send webhooks to 127.0.0.1."""
    process = ConsoleProcess(tmp_path / "console")
    with (process.data_dir / "console.toml").open("a") as config:
        config.write(ALLOW_LOOPBACK)
    with process:
        yield process


def message_id(line: str) -> str:
    """The webhook-id in a line of ``webhook deliveries``."""
    found = re.search(r"\bmsg_\S+", line)
    assert found is not None, line
    return found.group(0)


def wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_the_cli_manages_webhooks(console: ConsoleProcess, receiver: Receiver) -> None:
    added = console.cli("webhook", "add", receiver.url, "--event", "ticket.created")
    secret = added.stdout.strip()
    assert secret.startswith("whsec_")
    assert secret not in added.stderr
    receiver.secrets.append(secret)
    listing = console.cli("webhook", "list").stdout
    assert receiver.url in listing
    assert "ticket.created" in listing
    assert secret not in listing
    tested = console.cli("webhook", "test", "1")
    assert "delivered" in tested.stdout
    (message,) = receiver.verified()
    assert message.verified["type"] == "webhook.test"
    deliveries = console.cli("webhook", "deliveries", "1").stdout
    assert message.message_id in deliveries
    assert "204" in deliveries
    console.cli("webhook", "redeliver", deliveries.splitlines()[1].split()[0])
    wait_for(lambda: len(receiver.received) == 2)
    assert receiver.received[1].message_id == message.message_id
    rotated = console.cli("webhook", "rotate-secret", "1").stdout.strip()
    assert rotated.startswith("whsec_")
    assert rotated != secret
    console.cli("webhook", "test", "1")
    last = receiver.received[-1]
    Webhook(secret).verify(last.body, last.headers)
    Webhook(rotated).verify(last.body, last.headers)
    console.cli("webhook", "remove", "1")
    assert receiver.url not in console.cli("webhook", "list").stdout
    audit = console.cli("audit").stdout
    for action in ("webhook.added", "webhook.test", "webhook.redelivered", "webhook.removed"):
        assert action in audit
    assert secret not in audit
    assert secret not in console.log.read_text()


BAD_ADDS = [
    (["ftp://127.0.0.1/x", "--event", "ticket.created"], "http:// or https://"),
    (["http://10.1.2.3/x", "--event", "ticket.created"], "allow_networks"),
    (["http://169.254.169.254/", "--event", "ticket.created"], "link-local"),
    (["http://user:pw@127.0.0.1/", "--event", "ticket.created"], "no user"),
    (["http://127.0.0.1/x", "--event", "ticket.exploded"], "ticket.exploded"),
    (["http://127.0.0.1/x"], "--event"),
    (["http://127.0.0.1/x", "--event", "ticket.created", "--device-group", ""], "1-128"),
]


def test_the_cli_refuses_bad_input(tmp_path: Path) -> None:
    process = ConsoleProcess(tmp_path / "console")
    with (process.data_dir / "console.toml").open("a") as config:
        config.write(ALLOW_LOOPBACK)
    for args, message in BAD_ADDS:
        result = process.cli("webhook", "add", *args, check=False)
        assert result.returncode in (1, 2), args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert process.cli("webhook", "list").stdout.count("\n") == 1  # the header alone
    for command in (["remove", "7"], ["rotate-secret", "7"], ["redeliver", "7"], ["test", "7"]):
        result = process.cli("webhook", *command, check=False)
        assert result.returncode == 1
        assert "no webhook" in result.stderr


def test_the_rest_api_manages_webhooks(console: ConsoleProcess, receiver: Receiver) -> None:
    token = console.api_token("webhooks:manage")
    with console.api(token) as api:
        created = api.post(
            "/api/v1/webhooks",
            json={"url": receiver.url, "events": ["ticket.created"], "description": "RT"},
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        endpoint = created.json()["endpoint"]
        assert secret.startswith("whsec_")
        assert endpoint["events"] == ["ticket.created"]
        receiver.secrets.append(secret)
        listed = api.get("/api/v1/webhooks").json()
        assert [e["id"] for e in listed] == [endpoint["id"]]
        assert "secret" not in listed[0]
        queued = api.post(f"/api/v1/webhooks/{endpoint['id']}/test")
        assert queued.status_code == 202
        wait_for(lambda: receiver.verified())
        log = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").json()
        assert log[0]["status"] in ("delivered", "pending")
        wait_for(
            lambda: (
                api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").json()[0]["status"]
                == "delivered"
            )
        )
        again = api.post(f"/api/v1/webhooks/deliveries/{log[0]['id']}/redeliver")
        assert again.status_code == 202
        rotated = api.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret")
        assert rotated.status_code == 200
        assert rotated.json()["secret"] != secret
        for body, status in [
            ({"url": receiver.url, "events": ["nope"]}, 400),
            ({"url": receiver.url, "events": []}, 400),
            ({"url": "gopher://127.0.0.1/", "events": ["ticket.created"]}, 400),
            ({"url": "http://10.0.0.1/", "events": ["ticket.created"]}, 400),
            ({"url": "http://[::1]:9/", "events": ["ticket.created"]}, 400),
            ({"events": ["ticket.created"]}, 400),
            ({"url": receiver.url, "events": ["ticket.created"], "extra": 1}, 400),
            ({"url": "x" * 3000, "events": ["ticket.created"]}, 400),
        ]:
            answer = api.post("/api/v1/webhooks", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert "detail" in answer.json()
        assert api.get("/api/v1/webhooks/999").status_code == 404
        assert api.delete("/api/v1/webhooks/999").status_code == 404
        assert api.post("/api/v1/webhooks/deliveries/999/redeliver").status_code == 404
        assert api.get("/api/v1/webhooks/1/deliveries?status=nope").status_code == 400
        assert api.delete(f"/api/v1/webhooks/{endpoint['id']}").status_code == 204
        assert api.get("/api/v1/webhooks").json() == []
    with console.api(console.api_token("tickets:read", "audit:read")) as api:
        assert api.get("/api/v1/webhooks").status_code == 403
        assert api.post("/api/v1/webhooks", json={}).status_code == 403
        actions = [e["action"] for e in api.get("/api/v1/audit").json()]
    for action in ("webhook.added", "webhook.test", "webhook.secret_rotated", "webhook.removed"):
        assert action in actions


def test_the_scope_is_for_admins(console: ConsoleProcess) -> None:
    console.cli("user", "add", "tom", "--role", "technician")
    refused = console.cli(
        "apitoken", "create", "t", "--scope", "webhooks:manage", "--user", "tom", check=False
    )
    assert refused.returncode == 1
    assert "admins only" in refused.stderr
    console.cli("apitoken", "create", "a", "--scope", "webhooks:manage", "--user", "admin")


def test_kill_9_between_commit_and_send_loses_nothing(
    console: ConsoleProcess, receiver: Receiver
) -> None:
    secret = console.cli("webhook", "add", receiver.url, "--event", "ticket.created").stdout
    receiver.secrets.append(secret.strip())
    receiver.delay = 0.3  # a slow ticket system: messages are in flight when the console dies
    tickets = []
    with console.api(console.api_token("tickets:write")) as api:
        for n in range(24):
            answer = api.post("/api/v1/tickets", json={"title": f"t{n}", "description": "x"})
            assert answer.status_code == 201
            tickets.append(answer.json()["id"])
    assert console.stop(signal.SIGKILL) == -signal.SIGKILL
    log = console.cli("webhook", "deliveries", "--limit", "100").stdout.splitlines()[1:]
    assert len(log) == len(tickets)  # every committed ticket has its outbox row
    delivered_before = {message_id(line) for line in log if line.split()[3] == "delivered"}
    assert len(delivered_before) < len(tickets)  # the kill came before all were sent
    seen_before = len(receiver.received)
    receiver.delay = 0.0
    console.start()
    want = set(tickets)

    def all_arrived() -> bool:
        got = {m.verified["data"]["ticket"]["id"] for m in receiver.verified()}
        return got == want

    wait_for(all_arrived, timeout=60)
    after = receiver.received[seen_before:]
    # Nothing recorded as delivered before the kill was sent again...
    assert not {m.message_id for m in after} & delivered_before
    # ... each message has one id, and duplicates are only of what was in flight.
    by_ticket: dict[int, set[str]] = {}
    for message in receiver.verified():
        by_ticket.setdefault(message.verified["data"]["ticket"]["id"], set()).add(
            message.message_id
        )
    assert all(len(ids) == 1 for ids in by_ticket.values())
    duplicates = len(receiver.received) - len(want)
    assert duplicates <= 16  # at most the attempts in flight (the dispatcher's concurrency)
    final = console.cli("webhook", "deliveries", "--limit", "100").stdout.splitlines()[1:]
    wait_for(
        lambda: all(
            line.split()[3] == "delivered"
            for line in console.cli("webhook", "deliveries", "--limit", "100").stdout.splitlines()[
                1:
            ]
        )
    )
    assert len(final) == len(tickets)
