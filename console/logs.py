"""The console's log lines: text for people (the default), JSON for log collectors.

``serve --log-format json`` (or ``[logging] format = "json"`` in ``console.toml``,
``DESKSIDE_LOG_FORMAT``) writes one JSON object a line: ``time`` (UTC, ISO 8601),
``level``, ``logger``, ``message``, ``node`` (the cluster's node id, when there is
one) and, for an error, ``exception`` (the traceback). Only the message the code
wrote goes out, never the arguments of a request or a peer's bytes: the console's
log calls name devices, message types and sizes, not keys, tokens or keystrokes.
uvicorn's access lines (peer, method, path, status) go through the same handler:
paths carry no secrets (a viewer link's token travels in the URL fragment, which
browsers never send; tokens travel in headers).
"""

from __future__ import annotations

import datetime
import enum
import json
import logging

__all__ = ["JsonFormatter", "LogFormat", "configure"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFormat(enum.StrEnum):
    """How log lines are written."""

    TEXT = "text"
    JSON = "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def __init__(self, node: str = "") -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.node:
            entry["node"] = self.node
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, form: LogFormat, node: str = "") -> None:
    """Send the root logger's records to standard error in ``form``."""
    handler = logging.StreamHandler()
    if form is LogFormat.JSON:
        handler.setFormatter(JsonFormatter(node))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a library's warning is a log line like any other
