"""Cross-site WebSocket hijacking: a page of another site opens the console's
WebSockets in the technician's browser (issue 12, item 4). Refused before the
WebSocket is accepted, whatever the page sends next; the console's own pages, and
scripts (which send no ``Origin``), are let through to authentication."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from tests.attacks.probes import first_message, socket
from tests.consoleproc import ConsoleProcess

BROWSER_SOCKETS = (
    "/api/v1/tickets/1/screen",
    "/api/v1/tickets/1/terminal",
    "/api/v1/tickets/1/shell",
)


@pytest.mark.parametrize("path", BROWSER_SOCKETS)
async def test_a_page_of_another_site_cannot_open_a_websocket(
    console: ConsoleProcess, path: str
) -> None:
    for origin in (
        "https://evil.example",
        f"https://evil.example:{console.port}",
        f"https://127.0.0.1:{console.port + 1}",
        f"https://127.0.0.1.evil.example:{console.port}",
        "null",
        "not a url",
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with socket(console, path, token="dsk_whatever", origin=origin):
                pass
        assert refused.value.response.status_code == 403, origin


@pytest.mark.parametrize("path", BROWSER_SOCKETS)
@pytest.mark.parametrize("own", [True, False])
async def test_the_consoles_own_pages_and_scripts_reach_authentication(
    console: ConsoleProcess, path: str, own: bool
) -> None:
    origin = f"https://127.0.0.1:{console.port}" if own else None
    async with socket(console, path, origin=origin) as websocket:
        answer = await first_message(websocket, "dsk_not-a-token" if "screen" in path else None)
    assert (answer["type"], answer["status"]) == ("error", 401)
