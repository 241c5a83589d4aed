"""The console's exceptions, under the project's one root (``DesksideError``).

::

    DesksideError
     └── ConsoleError
          ├── NotFound            no such ticket, device, snapshot, ...      (404)
          ├── InvalidRequest      a value is not allowed                      (400/422)
          ├── Conflict            the request clashes with the state: a
          │                       closed ticket, an offline device, ...       (409)
          │    └── StaleVersion   the object changed since the caller saw it  (409)
          ├── Unauthorized        no or bad credentials                       (401)
          ├── Forbidden           credentials lack the scope or role          (403)
          ├── GatewayTimeout      an agent did not answer in time             (504)
          └── EnrollmentRefused   an enrollment token is unknown, spent or
                                  expired
"""

from __future__ import annotations

from deskside.protocol.errors import DesksideError

__all__ = [
    "Conflict",
    "ConsoleError",
    "EnrollmentRefused",
    "Forbidden",
    "GatewayTimeout",
    "InvalidRequest",
    "NotFound",
    "StaleVersion",
    "TooManyRequests",
    "Unauthorized",
]


class ConsoleError(DesksideError):
    """Something the console refuses to do; the message is safe to show to the caller."""

    status_code = 400


class NotFound(ConsoleError):
    """The named object does not exist."""

    status_code = 404


class InvalidRequest(ConsoleError):
    """A value in the request is not allowed."""

    status_code = 400


class Conflict(ConsoleError):
    """The request cannot be done in the object's present state."""

    status_code = 409


class StaleVersion(Conflict):
    """The object changed since the version the caller saw; ``current`` is what it is
    now (a JSON-ready view), so that the caller can look again before retrying."""

    def __init__(self, message: str, current: dict[str, object]) -> None:
        super().__init__(message)
        self.current = current


class Unauthorized(ConsoleError):
    """Missing or invalid credentials."""

    status_code = 401


class Forbidden(ConsoleError):
    """Valid credentials without the right to do this."""

    status_code = 403


class TooManyRequests(ConsoleError):
    """The caller asked too often; the limit is in the message."""

    status_code = 429


class EnrollmentRefused(ConsoleError):
    """An agent's enrollment token is unknown, spent or expired."""

    status_code = 403


class GatewayTimeout(ConsoleError):
    """An agent did not answer in time."""

    status_code = 504
