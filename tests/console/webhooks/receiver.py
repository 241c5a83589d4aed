"""A real webhook receiver for the tests: an HTTP server on 127.0.0.1 in a thread,
verifying each message with the ``standardwebhooks`` package, as a ticket system would."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    # The verified JSON, or None if no secret verified it.
    verified: Any = None
    error: str = ""

    @property
    def message_id(self) -> str:
        return self.headers.get("webhook-id", "")


@dataclass
class Receiver:
    """Answers ``status`` (one per request from ``script`` first) and keeps what came."""

    status: int = 204
    secrets: list[str] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    # Seconds to wait before answering (a slow ticket system).
    delay: float = 0.0
    # Answer with a body that never ends (a hostile one), in chunks of this size.
    endless: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def verified(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.verified is not None]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length", "0"))
        body = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        item = Received(path=handler.path, headers=headers, body=body)
        errors = []
        for secret in self.secrets:
            try:
                item.verified = Webhook(secret).verify(body, headers)
                break
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        item.error = "; ".join(errors)
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.received.append(item)
            status = self.script.pop(0) if self.script else self.status
        handler.send_response(status)
        for name, value in self.headers.items():
            handler.send_header(name, value)
        if self.endless:
            handler.end_headers()  # no length: the body lasts until the connection ends
            try:
                while True:
                    handler.wfile.write(b"x" * self.endless)
                    time.sleep(0.01)
            except OSError:
                return
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver._handle(self)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def start(receiver: Receiver, port: int = 0) -> Receiver:
    """Serve ``receiver`` on 127.0.0.1 until ``stop``."""
    receiver.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    return receiver


def stop(receiver: Receiver) -> None:
    if receiver.server is not None:
        receiver.server.shutdown()
        receiver.server.server_close()


def running(receiver: Receiver) -> Iterator[Receiver]:
    """For fixtures: started, stopped after."""
    start(receiver)
    try:
        yield receiver
    finally:
        stop(receiver)


def payload(item: Received) -> Any:
    return json.loads(item.body)
