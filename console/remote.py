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
    "follow_chat",
    "follow_command",
    "follow_runbook",
    "open_terminal",
    "replay",
    "send_chat_line",
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


def follow_runbook(
    config: ConsoleConfig, token: str, ticket: int, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Start a runbook and print each step's output as it runs; the last step's command.

    A failing step ends the run (unless it may fail), so the last step's command is
    the run's result.
    """
    import time

    with _client(config, token) as client:
        try:
            response = client.post(f"/api/v1/tickets/{ticket}/runbooks/{name}", json=body)
        except httpx.HTTPError as exc:
            raise RunFailed(
                f"cannot reach the console at {server_base_url(config)}: {exc}"
            ) from exc
        if response.status_code != 202:
            raise RunFailed(f"refused: {_detail(response)}")
        run_id = response.json()["id"]
        followed: list[dict[str, Any]] = []
        while True:
            state = client.get(f"/api/v1/runbook-runs/{run_id}").json()
            fresh = state["commands"][len(followed) :]
            for command in fresh:
                step = command.get("runbook_step", len(followed))
                print(f"== step {step + 1}: {' '.join(command['argv'])}", file=sys.stderr)
                followed.append(follow_command(config, token, command["id"]))
            if state["done"] and not fresh:
                break
            time.sleep(0.2)
    if not followed:
        raise RunFailed("the runbook ran no step; see the ticket's timeline")
    return followed[-1]


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


async def open_terminal(
    config: ConsoleConfig, token: str, ticket: int, device: str | None
) -> dict[str, Any]:
    """Relay this terminal to a shell on the ticket's device until either side ends it.

    Returns the closing message (``exit_code``, ``refused``, ``error``).
    """
    import asyncio
    import contextlib
    import os
    import shutil
    import signal
    import termios
    import tty
    from urllib.parse import urlencode

    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    cols, rows = shutil.get_terminal_size()
    query = {"cols": str(cols), "rows": str(rows)} | ({"device": device} if device else {})
    base = server_base_url(config).replace("https://", "wss://").replace("http://", "ws://")
    url = f"{base}/api/v1/tickets/{ticket}/terminal?{urlencode(query)}"
    context: ssl.SSLContext | None = None
    if config.tls_cert is not None:
        context = ssl.create_default_context(cafile=str(config.tls_cert))
        context.check_hostname = False
    loop = asyncio.get_running_loop()
    stdin = sys.stdin.fileno()
    interactive = os.isatty(stdin)
    typed: asyncio.Queue[bytes] = asyncio.Queue()

    def on_input() -> None:
        data = os.read(stdin, 65536)
        if not data:
            loop.remove_reader(stdin)
        typed.put_nowait(data)

    try:
        websocket = await ws_connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            ssl=context,
            compression=None,
            max_size=1 << 21,
        )
    except (OSError, InvalidHandshake) as exc:
        raise RunFailed(f"cannot reach the console at {base}: {exc}") from exc
    saved = termios.tcgetattr(stdin) if interactive else None
    result: dict[str, Any] = {"exit_code": None, "refused": False, "error": "connection lost"}

    async def send_typed() -> None:
        while data := await typed.get():
            await websocket.send(data)

    resizes: set[asyncio.Task[None]] = set()  # kept until sent, as asyncio asks

    def send_size() -> None:
        size = shutil.get_terminal_size()
        message = json.dumps({"type": "resize", "cols": size.columns, "rows": size.lines})
        task = loop.create_task(websocket.send(message))
        resizes.add(task)
        task.add_done_callback(resizes.discard)

    sender = asyncio.create_task(send_typed())
    try:
        if interactive:
            tty.setraw(stdin)
            loop.add_signal_handler(signal.SIGWINCH, send_size)
        loop.add_reader(stdin, on_input)
        async for message in websocket:
            if isinstance(message, bytes):
                sys.stdout.buffer.write(message)
                sys.stdout.flush()
                continue
            control = json.loads(message)
            if control.get("type") == "error":
                raise RunFailed(f"refused: {control.get('detail')}")
            if control.get("type") == "closed":
                result = control
                break
    except ConnectionClosed:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(stdin)
        if interactive:
            loop.remove_signal_handler(signal.SIGWINCH)
            assert saved is not None
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        await websocket.close()
    return result


def replay(transcript: bytes, speed: float, out: Any) -> None:
    """Play an asciinema v2 cast's output to ``out`` with its timing (pauses capped at 2 s)."""
    import time

    previous = 0.0
    for line in transcript.splitlines()[1:]:
        when, kind, data = json.loads(line)
        if kind != "o":
            continue
        time.sleep(min(2.0, max(0.0, float(when) - previous)) / speed)
        previous = float(when)
        out.write(str(data))
        out.flush()


# -- Chat -----------------------------------------------------------------------------------


def send_chat_line(
    config: ConsoleConfig, token: str, ticket: int, text: str, wait: float = 0.0
) -> dict[str, Any]:
    """Write a line to the user of the ticket's device; the line as the server keeps it
    (after ``wait`` seconds at most for the device to show it)."""
    try:
        with _client(config, token) as client:
            response = client.post(
                f"/api/v1/tickets/{ticket}/chat", params={"wait": wait}, json={"text": text}
            )
    except httpx.HTTPError as exc:
        raise RunFailed(f"cannot reach the console at {server_base_url(config)}: {exc}") from exc
    if response.status_code != 201:
        raise RunFailed(f"refused: {_detail(response)}")
    result: dict[str, Any] = response.json()
    return result


def follow_chat(
    config: ConsoleConfig, token: str, ticket: int, seconds: float = 600.0
) -> Iterator[dict[str, Any]]:
    """The ticket's chat lines so far, then new lines and changes, as they come; a new
    stream is opened each time the server ends one."""
    with _client(config, token) as client:
        while True:
            try:
                with client.stream(
                    "GET", f"/api/v1/tickets/{ticket}/chat/stream", params={"seconds": seconds}
                ) as response:
                    if response.status_code != 200:
                        raise RunFailed(f"cannot follow the chat: {_detail(response)}")
                    for event, data in _events(response):
                        if event == "line":
                            line: dict[str, Any] = json.loads(data)
                            yield line
            except httpx.HTTPError as exc:
                raise RunFailed(f"lost the console: {exc}") from exc
