"""A real console process: REST API, agents' WebSocket, TLS, restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deskside.channel import Channel, connect
from deskside.installer.package import wheel_name
from deskside.protocol import crypto
from deskside.protocol import messages as m
from deskside.protocol.connection import CloseCode
from deskside.protocol.enrollment import device_id, parse_enrollment
from deskside.protocol.errors import ConnectionClosed, HandshakeError
from tests.consoleproc import ConsoleProcess

ALL_SCOPES = ("tickets:read", "tickets:write", "devices:read", "devices:write")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    with ConsoleProcess(tmp_path_factory.mktemp("console") / "data") as process:
        yield process


@pytest.fixture(scope="module")
def api(console: ConsoleProcess) -> Iterator[httpx.Client]:
    with console.api(console.api_token(*ALL_SCOPES)) as client:
        yield client


def snapshot(host: str) -> m.Snapshot:
    return m.Snapshot(
        taken_at=time.time(),
        os=m.OsInfo(family=m.OsFamily.LINUX, name="Debian GNU/Linux 12", hostname=host),
        memory=m.MemoryInfo(total=8 << 30, available=1 << 30, percent=87.5),
    )


async def enroll(console: ConsoleProcess, host: str = "pc-1") -> tuple[bytes, Channel]:
    """Enroll a new agent key; its open channel, after its Hello."""
    enrollment = parse_enrollment(console.enrollment())
    key = crypto.generate_private_key()
    channel = await connect(
        enrollment.url,
        key,
        enrollment.console_key,
        enrollment_token=enrollment.token,
        tls_fingerprint=enrollment.tls_fingerprint,
    )
    await channel.send(
        m.Hello(
            agent_version="test", os=m.OsInfo(family=m.OsFamily.LINUX, name="Debian", hostname=host)
        )
    )
    return key, channel


# -- REST API -------------------------------------------------------------------------------


def ticket_count(api: httpx.Client) -> int:
    return len(api.get("/api/v1/tickets", params={"limit": 500}).json())


def test_ticket_life_through_the_api(api: httpx.Client) -> None:
    created = api.post(
        "/api/v1/tickets",
        json={"title": "VPN down", "description": "No VPN since 9:00", "impact": 1, "urgency": 1},
    )
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert (ticket["priority"], ticket["status"], ticket["source"]) == (1, "new", "api")
    number = ticket["id"]
    assert (
        api.post(f"/api/v1/tickets/{number}/notes", json={"text": "called user"}).status_code == 201
    )
    changed = api.patch(f"/api/v1/tickets/{number}", json={"status": "resolved"})
    assert changed.json()["status"] == "resolved"
    refused = api.patch(f"/api/v1/tickets/{number}", json={"status": "in_progress"})
    assert refused.status_code == 409
    assert "cannot become in_progress" in refused.json()["detail"]
    detail = api.get(f"/api/v1/tickets/{number}").json()
    assert [e["kind"] for e in detail["timeline"]] == ["created", "note", "status"]
    assert [t["id"] for t in api.get("/api/v1/tickets", params={"status": "resolved"}).json()] == [
        number
    ]


def test_bad_input_gets_a_4xx_and_stores_nothing(
    api: httpx.Client, console: ConsoleProcess
) -> None:
    before = ticket_count(api)
    bad = [
        ("post", "/api/v1/tickets", {"content": b"{not json"}, 400),
        ("post", "/api/v1/tickets", {"json": {"title": "x"}}, 400),  # no description
        ("post", "/api/v1/tickets", {"json": {"title": "", "description": "d"}}, 400),
        ("post", "/api/v1/tickets", {"json": {"title": "t", "description": "d", "impact": 7}}, 400),
        (
            "post",
            "/api/v1/tickets",
            {"json": {"title": "t", "description": "d", "owner": "x"}},
            400,
        ),
        (
            "post",
            "/api/v1/tickets",
            {"json": {"title": "t", "description": "d", "device_id": "dX"}},
            404,
        ),
        ("post", "/api/v1/tickets", {"json": {"title": "t", "description": "x" * 2_000_000}}, 413),
        ("get", "/api/v1/tickets/999999", {}, 404),
        ("get", "/api/v1/tickets/abc", {}, 404),
        ("get", "/api/v1/tickets", {"params": {"limit": 0}}, 400),
        ("get", "/api/v1/tickets", {"params": {"status": "lost"}}, 400),
        ("patch", "/api/v1/tickets/1", {"json": {"assignee": "nobody-here"}}, 404),
        ("get", "/api/v1/snapshots/424242", {}, 404),
        ("get", "/api/v1/devices/nope", {}, 404),
    ]
    for method, path, kwargs, status in bad:
        response = api.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/json"), path
    assert ticket_count(api) == before


def test_tokens_and_scopes_are_enforced(console: ConsoleProcess) -> None:
    with httpx.Client(base_url=console.base_url, verify=console.ssl_context()) as anonymous:
        response = anonymous.get("/api/v1/tickets")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert (
            anonymous.get(
                "/api/v1/tickets", headers={"Authorization": "Bearer dsk_nope"}
            ).status_code
            == 401
        )
    with console.api(console.api_token("tickets:read")) as reader:
        assert reader.get("/api/v1/tickets").status_code == 200
        response = reader.post("/api/v1/tickets", json={"title": "t", "description": "d"})
        assert response.status_code == 403
        assert "tickets:write" in response.json()["detail"]
        assert reader.get("/api/v1/devices").status_code == 403


def test_openapi_document_and_health(console: ConsoleProcess) -> None:
    with httpx.Client(base_url=console.base_url, verify=console.ssl_context()) as client:
        document = client.get("/api/schema/openapi.json").json()
        assert "/api/v1/tickets/{ticket_id}" in document["paths"]
        assert "NewTicket" in document["components"]["schemas"]
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}


def test_pages_tell_browsers_to_keep_them_to_themselves(console: ConsoleProcess) -> None:
    """A strict CSP (no inline script, nothing from elsewhere, no framing), HSTS over TLS,
    no referrer, no sniffing; on pages, errors and the API alike."""
    with httpx.Client(base_url=console.base_url, verify=console.ssl_context()) as client:
        for path, status in (
            ("/viewer/screen.html", 200),
            ("/viewer/replay.html", 200),
            ("/viewer/screen.js", 200),
            ("/viewer/nothing.html", 404),
            ("/api/v1/tickets", 401),
            ("/api/schema/openapi.json", 200),
        ):
            response = client.get(path)
            assert response.status_code == status, path
            headers = response.headers
            policy = dict(
                [*directive.split(" ", 1), ""][:2]
                for directive in headers["Content-Security-Policy"].split("; ")
            )
            assert policy["default-src"] == "'self'", path
            assert policy["script-src"] == "'self'", path  # no 'unsafe-inline', no host
            assert policy["style-src"] == "'self'", path
            assert policy["object-src"] == "'none'", path
            assert policy["frame-ancestors"] == "'none'", path
            assert not [v for v in policy.values() if "http" in v or "unsafe" in v], path
            assert headers["Strict-Transport-Security"].startswith("max-age="), path
            assert int(headers["Strict-Transport-Security"].split("=")[1]) >= 180 * 86400
            assert headers["Referrer-Policy"] == "no-referrer", path
            assert headers["X-Content-Type-Options"] == "nosniff", path
            assert headers["X-Frame-Options"] == "DENY", path


def test_api_documentation_loads_nothing_from_elsewhere(console: ConsoleProcess) -> None:
    """The OpenAPI document as JSON and YAML; no page that loads code from a CDN."""
    with httpx.Client(base_url=console.base_url, verify=console.ssl_context()) as client:
        document = client.get("/api/schema/openapi.json")
        assert document.headers["content-type"] == "application/vnd.oai.openapi+json"
        assert client.get("/api/schema/openapi.yaml").text.startswith(
            ("openapi:", "info:", "components:")
        )
        for page in ("swagger", "redoc", "elements", "rapidoc", "scalar", "oauth2-redirect.html"):
            response = client.get(f"/api/schema/{page}")
            assert response.status_code == 404, page
            assert "<script" not in response.text
        root = client.get("/api/schema")
        assert root.status_code == 200
        assert "<script" not in root.text


def test_install_scripts_are_served_with_one_charset(console: ConsoleProcess) -> None:
    with httpx.Client(base_url=console.base_url, verify=console.ssl_context()) as client:
        shell = client.get("/install/agent.sh")
        powershell = client.get("/install/agent.ps1")
    assert shell.headers["content-type"] == "text/x-shellscript; charset=utf-8"
    assert powershell.headers["content-type"] == "text/plain; charset=utf-8"


# -- Agents --------------------------------------------------------------------------------


async def test_help_request_reaches_ticket_show_with_its_snapshot(console: ConsoleProcess) -> None:
    key, channel = await enroll(console, host="reception-pc")
    request = m.HelpRequest(
        request_id="help-0001",
        description="Printer on floor 2 prints blank pages",
        created_at=time.time(),
        impact=m.Impact.MEDIUM,
        urgency=m.Urgency.HIGH,
        requester="dana",
        snapshot=snapshot("reception-pc"),
    )
    await channel.send(request)
    ack = await asyncio.wait_for(channel.recv(), 10)
    assert isinstance(ack, m.Ack)
    assert ack.request_id == "help-0001"
    assert ack.ticket_id is not None
    await channel.send(request)  # delivered again after a reconnect, say: same ticket
    again = await asyncio.wait_for(channel.recv(), 10)
    assert again == ack
    await channel.close()
    shown = console.cli("ticket", "show", str(ack.ticket_id)).stdout
    assert "Printer on floor 2 prints blank pages" in shown
    assert f"agent:{device_id(crypto.public_key(key))}" in shown
    assert "diagnostics: snapshot taken" in shown
    assert "host reception-pc: Debian GNU/Linux 12" in shown
    assert "memory 88% used of 8.0 GiB" in shown
    assert "P2" in shown  # impact medium x urgency high
    listed = console.cli("tickets").stdout
    assert listed.count("Printer on floor 2") == 1


async def test_spent_token_and_revoked_device_are_refused(console: ConsoleProcess) -> None:
    text = console.enrollment()
    enrollment = parse_enrollment(text)
    first = crypto.generate_private_key()
    channel = await connect(
        enrollment.url,
        first,
        enrollment.console_key,
        enrollment_token=enrollment.token,
        tls_fingerprint=enrollment.tls_fingerprint,
    )
    await channel.send(m.Hello(agent_version="t", os=m.OsInfo(family=m.OsFamily.LINUX, name="x")))
    with pytest.raises(HandshakeError, match="already used"):
        await connect(
            enrollment.url,
            crypto.generate_private_key(),
            enrollment.console_key,
            enrollment_token=enrollment.token,
            tls_fingerprint=enrollment.tls_fingerprint,
        )
    assert "online" in console.cli("devices").stdout
    console.cli("device", "revoke", device_id(crypto.public_key(first)))
    # The running console cuts the live channel off within its check interval...
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(channel.recv(), 15)
    assert info.value.code == CloseCode.UNKNOWN_PEER
    # ... and refuses the key from then on.
    with pytest.raises(HandshakeError, match="unknown or revoked"):
        await connect(
            enrollment.url,
            first,
            enrollment.console_key,
            tls_fingerprint=enrollment.tls_fingerprint,
        )
    assert "revoked" in console.cli("devices").stdout


async def test_fresh_diagnostics_are_asked_of_the_agent(
    console: ConsoleProcess, api: httpx.Client
) -> None:
    key, channel = await enroll(console, host="accounting-7")
    ident = device_id(crypto.public_key(key))

    async def answer() -> None:
        async for message in channel:
            if isinstance(message, m.SnapshotRequest):
                await channel.send(
                    m.DiagnosticsSnapshot(
                        snapshot=snapshot("accounting-7"), request_id=message.request_id
                    )
                )

    answering = asyncio.create_task(answer())
    try:
        ticket = api.post(
            "/api/v1/tickets",
            json={"title": "Slow", "description": "Very slow", "device_id": ident},
        ).json()
        # No snapshot yet: attaching "the latest" is a conflict, not a crash.
        response = await asyncio.to_thread(
            api.post, f"/api/v1/tickets/{ticket['id']}/diagnostics", json={}
        )
        assert response.status_code == 409
        response = await asyncio.to_thread(
            api.post,
            f"/api/v1/tickets/{ticket['id']}/diagnostics",
            json={"fresh": True, "timeout": 10},
        )
        assert response.status_code == 201, response.text
        event = response.json()
        assert event["kind"] == "diagnostics"
        snapshot_view = (
            await asyncio.to_thread(api.get, f"/api/v1/snapshots/{event['snapshot_id']}")
        ).json()
        assert snapshot_view["snapshot"]["os"]["hostname"] == "accounting-7"
    finally:
        answering.cancel()
        await channel.close()
    # Offline now: a fresh snapshot cannot be had.
    await asyncio.sleep(0.5)
    response = await asyncio.to_thread(
        api.post, f"/api/v1/devices/{ident}/snapshots", params={"timeout": 2}
    )
    assert response.status_code == 409
    assert "not connected" in response.json()["detail"]


async def test_an_agent_that_does_not_answer_times_out(
    console: ConsoleProcess, api: httpx.Client
) -> None:
    key, channel = await enroll(console, host="silent")
    ident = device_id(crypto.public_key(key))
    await asyncio.sleep(0.3)
    response = await asyncio.to_thread(
        api.post, f"/api/v1/devices/{ident}/snapshots", params={"timeout": 1}
    )
    assert response.status_code == 504
    await channel.close()
    # Every 5xx is logged with its traceback.
    log = console.log.read_text()
    assert f"POST /api/v1/devices/{ident}/snapshots: 504" in log
    assert "Traceback" in log.split(f"{ident}/snapshots: 504", 1)[1]
    assert "GatewayTimeout" in log.split(f"{ident}/snapshots: 504", 1)[1]


def test_a_request_that_fails_is_logged_with_its_traceback(tmp_path: Path) -> None:
    """A bug gives a bare 500, and its traceback goes to the console's log."""
    with ConsoleProcess(tmp_path / "data") as console:
        # Where the wheel would be written is a file: packing it fails.
        (console.data_dir / "install").write_text("not a directory")
        with httpx.Client(verify=console.ssl_context(), timeout=60) as client:
            response = client.get(f"{console.base_url}/install/{wheel_name()}")
        assert response.status_code == 500
        assert "install" not in response.text  # nothing of the failure shown to the caller
    log = console.log.read_text()
    failure = log.split(f"GET /install/{wheel_name()} failed", 1)
    assert len(failure) == 2, log[-3000:]
    assert "ERROR" in failure[0].rsplit("\n", 1)[-1]
    assert "Traceback" in failure[1]
    assert "FileExistsError" in failure[1]


def test_console_survives_a_crash_and_keeps_its_data(tmp_path: Path) -> None:
    console = ConsoleProcess(tmp_path / "data")
    console.start()
    token = console.api_token("tickets:read", "tickets:write")
    with console.api(token) as api:
        api.post("/api/v1/tickets", json={"title": "Before", "description": "the crash"})
    import signal

    console.stop(signal.SIGKILL)
    console.start()
    with console.api(token) as api:
        titles = [t["title"] for t in api.get("/api/v1/tickets").json()]
    assert titles == ["Before"]
    assert console.stop() == 0


async def test_console_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    from tests.postgres import create_database

    console = ConsoleProcess(tmp_path / "data", database_url=create_database(postgres_url))
    console.start()
    try:
        _, channel = await enroll(console, host="pg-client")
        await channel.send(
            m.HelpRequest(request_id="pg-1", description="Disk full", created_at=time.time())
        )
        ack = await asyncio.wait_for(channel.recv(), 10)
        assert isinstance(ack, m.Ack)
        await channel.close()
        assert "Disk full" in console.cli("ticket", "show", str(ack.ticket_id)).stdout
        assert "postgresql" in (console.data_dir / "console.toml").read_text()
    finally:
        console.stop()
