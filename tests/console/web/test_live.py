"""The live pages' event stream over a real console: it carries the queue's rows on a
change, it is bounded per user, and it ends when its session does."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx

from deskside.console.web.live import PER_USER, RECHECK
from tests.consoleproc import ConsoleProcess

from .conftest import WebClient, add_user


def _stream(web: WebClient) -> contextlib.AbstractContextManager[httpx.Response]:
    return web.http.stream("GET", "/tickets/live", headers={"Accept": "text/event-stream"})


def test_the_stream_sends_the_queues_rows_on_a_change(
    web_console: ConsoleProcess, client: WebClient
) -> None:
    client.sign_in(add_user(web_console, "readonly"))
    token = web_console.api_token("tickets:write")
    with _stream(client) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()

        def create() -> None:
            time.sleep(0.5)
            with web_console.api(token) as api:
                api.post("/api/v1/tickets", json={"title": "Live <b>one</b>", "description": "d"})

        threading.Thread(target=create).start()
        seen: list[str] = []
        for line in lines:
            seen.append(line)
            if line.startswith("data:") and "Live" in line:
                break
        assert "event: queue" in seen
        data = "\n".join(line for line in seen if line.startswith("data:"))
        assert "Live &lt;b&gt;one&lt;/b&gt;" in data  # escaped
        assert "/take" not in data  # a read-only user's rows have no action


def test_the_stream_ends_when_its_session_does(
    web_console: ConsoleProcess, client: WebClient
) -> None:
    client.sign_in(add_user(web_console))
    started = time.monotonic()
    with _stream(client) as response:
        assert response.status_code == 200
        signout = WebClient(web_console)
        signout.http.cookies.set("__Host-deskside", client.cookie or "", domain="127.0.0.1")
        signout.get("/tickets")
        assert signout.post("/signout").status_code == 303
        signout.close()
        for _ in response.iter_lines():
            assert time.monotonic() - started < RECHECK + 20
    assert time.monotonic() - started < RECHECK + 20


def test_streams_are_bounded_per_user(web_console: ConsoleProcess, client: WebClient) -> None:
    client.sign_in(add_user(web_console))
    with contextlib.ExitStack() as streams:
        for _ in range(PER_USER):
            assert streams.enter_context(_stream(client)).status_code == 200
        refused = client.http.get("/tickets/live", headers={"Accept": "text/event-stream"})
        assert refused.status_code == 429
        other = WebClient(web_console)  # another user is not counted with this one
        try:
            other.sign_in(add_user(web_console))
            with _stream(other) as response:
                assert response.status_code == 200
        finally:
            other.close()
    time.sleep(1)  # the closed streams give their places back
    with _stream(client) as response:
        assert response.status_code == 200


def test_no_stream_without_a_session(client: WebClient) -> None:
    response = client.http.get("/tickets/live", headers={"Accept": "text/event-stream"})
    assert response.status_code == 401
