"""``deskside-console run``: a command on a device, followed from the console's machine.

The CLI has the data directory, so its user is the console's administrator. It
mints a short-lived API token acting for the named technician, so the server
applies that technician's rights and records them as the one who asked; then it
calls the running server's API over TLS (trusting exactly the console's
certificate), prints the output as it streams in, passes Ctrl-C on as a cancel,
revokes the token and exits with the command's exit code.
"""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import sys
from collections.abc import Iterator
from typing import Any

import httpx

from .config import ConsoleConfig
from .errors import ConsoleError

__all__ = [
    "EXIT_CODES",
    "RunFailed",
    "exit_status",
    "follow_command",
    "server_base_url",
    "start_command",
    "token_ttl",
]

# How the CLI exits when the command did not simply exit with a code.
EXIT_CODES = {"refused": 126, "timed_out": 124, "cancelled": 130, "failed": 1}


class RunFailed(ConsoleError):
    """The server refused the command or could not be reached."""


def server_base_url(config: ConsoleConfig) -> str:
    """Where this machine reaches the running console's API."""
    host = config.host if config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
    scheme = "https" if config.tls_cert is not None else "http"
    return f"{scheme}://{host}:{config.port}"


def _client(config: ConsoleConfig, token: str) -> httpx.Client:
    verify: ssl.SSLContext | bool = False
    if config.tls_cert is not None:
        # Exactly this console's certificate is trusted, whatever name it carries.
        context = ssl.create_default_context(cafile=str(config.tls_cert))
        context.check_hostname = False
        verify = context
    return httpx.Client(
        base_url=server_base_url(config),
        verify=verify,
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(30.0, read=None),
    )


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except (ValueError, AttributeError):
        return response.text[:500]


def start_command(
    config: ConsoleConfig, token: str, ticket: int, body: dict[str, Any]
) -> dict[str, Any]:
    """Ask the server to run the command; the command as it recorded it."""
    try:
        with _client(config, token) as client:
            response = client.post(f"/api/v1/tickets/{ticket}/commands", json=body)
    except httpx.HTTPError as exc:
        raise RunFailed(f"cannot reach the console at {server_base_url(config)}: {exc}") from exc
    if response.status_code != 201:
        raise RunFailed(f"refused: {_detail(response)}")
    result: dict[str, Any] = response.json()
    return result


def _events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream."""
    event = "message"
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)


def follow_command(config: ConsoleConfig, token: str, command_id: str) -> dict[str, Any]:
    """Print the command's output as it comes; the command once it ended.

    Ctrl-C asks the device to cancel the command, then keeps following it.
    """
    with _client(config, token) as client:
        while True:
            try:
                with client.stream("GET", f"/api/v1/commands/{command_id}/stream") as response:
                    if response.status_code != 200:
                        raise RunFailed(f"cannot follow the command: {_detail(response)}")
                    for event, data in _events(response):
                        if event == "output":
                            chunk = json.loads(data)
                            out = sys.stdout if chunk["stream"] == "stdout" else sys.stderr
                            out.buffer.write(base64.b64decode(chunk["data"]))
                            out.flush()
                        elif event == "exit":
                            result: dict[str, Any] = json.loads(data)
                            return result
                raise RunFailed("the console ended the stream early")
            except KeyboardInterrupt:
                print("\ncancelling...", file=sys.stderr)
                response = client.post(f"/api/v1/commands/{command_id}/cancel")
                if response.status_code not in (202, 409):
                    raise RunFailed(f"cancel refused: {_detail(response)}") from None
            except httpx.HTTPError as exc:
                raise RunFailed(f"lost the console: {exc}") from exc


def exit_status(command: dict[str, Any]) -> int:
    """The CLI's exit code for a finished command (like a shell's)."""
    status = command.get("status")
    code = command.get("exit_code")
    if status == "finished" and isinstance(code, int):
        return code if 0 <= code <= 255 else 128 + (-code % 128)
    return EXIT_CODES.get(str(status), 1)


def token_ttl(timeout: float) -> datetime.timedelta:
    """Long enough for the command to run and be followed to its end."""
    return datetime.timedelta(seconds=timeout + 300)
