"""The exceptions of Deskside, one tree for the whole project.

::

    DesksideError
     ├── ConfigError                 a configuration file, option or variable is wrong
     ├── ProtocolError               the channel or a message broke a rule
     │    ├── LocalProtocolError     this side misused the API (a bug here)
     │    └── RemoteProtocolError    the peer sent something invalid
     │         ├── DecryptionError   a frame failed authentication or came out of order
     │         └── HandshakeError    the handshake failed: wrong keys, refused peer, no
     │                               common version
     └── ConnectionClosed            the channel is closed; carries the close code
          ├── ConnectionClosedOK     ... after a normal close
          └── ConnectionClosedError  ... after an error, by either side or the network
               └── TryAgainLater     the peer is busy and refused a new connection for
                                     now (HTTP 503, close code 1013): ``retry_after``

The other parts add their own branches under the same root, each defined (and
drawn in full) in the module named beside it::

    DesksideError
     ├── ConsoleError                what the console refuses, with an HTTP status
     │                               (deskside.console.errors)
     ├── ScreenError                 a screen session cannot capture, encode, inject or
     │                               draw (deskside.agent.screen.errors)
     └── InstallerError              installing or removing the agent's service failed
                                     (deskside.installer.base)

Like h11, ``LocalProtocolError`` means "your code is wrong" and
``RemoteProtocolError`` means "the peer is wrong": the first is a bug to fix, the
second is input to refuse. Like trio, a closed channel says who closed it and
why (``ConnectionClosed.code``, ``.reason``, ``.by_peer``).

Third-party exceptions (``cryptography``, ``msgspec``, ``websockets``) are converted
to these at the boundary with ``raise ... from exc``; only the command-line tools
turn them into exit codes and messages.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DecryptionError",
    "DesksideError",
    "HandshakeError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "TryAgainLater",
]


class DesksideError(Exception):
    """Root of every exception Deskside raises on purpose."""


class ConfigError(DesksideError):
    """A configuration file, command-line option or environment variable is invalid."""


class ProtocolError(DesksideError):
    """A rule of the wire protocol or the secure channel was broken."""


class LocalProtocolError(ProtocolError):
    """This side used the protocol API wrongly, e.g. sent before the handshake."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that are not a valid message or frame.

    ``close_code`` is the code the connection closes with because of it.
    """

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        # None: the generic protocol-error code applies (chosen by the connection).
        self.close_code = close_code


class DecryptionError(RemoteProtocolError):
    """A frame failed authentication: tampered, truncated, replayed or reordered."""


class HandshakeError(RemoteProtocolError):
    """The handshake failed: wrong keys, an unknown or revoked peer, no common version."""


class ConnectionClosed(DesksideError):
    """The channel is closed; sending or receiving on it is no longer possible."""

    def __init__(self, code: int, reason: str = "", *, by_peer: bool = False) -> None:
        who = "peer" if by_peer else "local side"
        text = f"connection closed by {who} with code {code}"
        super().__init__(f"{text}: {reason}" if reason else text)
        # The close code (see deskside.protocol.connection.CloseCode).
        self.code = code
        # A human-readable reason, never secret.
        self.reason = reason
        # True when the peer (or the network) closed, False when this side did.
        self.by_peer = by_peer


class ConnectionClosedOK(ConnectionClosed):
    """The channel closed normally."""


class ConnectionClosedError(ConnectionClosed):
    """The channel closed because of an error on either side or in the network."""


class TryAgainLater(ConnectionClosedError):
    """The peer is busy and refused a new connection; come back in ``retry_after`` s.

    A console under load says so (HTTP 503 with ``Retry-After`` before the WebSocket
    upgrade, or close code 1013) rather than start a handshake it could not finish.
    """

    def __init__(self, code: int, reason: str = "", *, retry_after: float) -> None:
        super().__init__(code, reason, by_peer=True)
        # Seconds the peer asked to wait before the next attempt.
        self.retry_after = retry_after
