"""Schemathesis hooks of ``test_openapi.py``'s run (loaded by the ``schemathesis`` CLI).

The run revokes devices like any other operation, but never the one online device
it needs for the rest: a revocation of that device is sent for the spare device
instead (``DESKSIDE_TEST_ONLINE_DEVICE``, ``DESKSIDE_TEST_SPARE_DEVICE``).

A fresh snapshot is given the time a real agent needs for one (about 1.5 s here, more
on a busy machine): a shorter wait ends in a 504, which is right for a slow device but
which the run's server-error check would count against the console.
``test_server.py`` tests that 504 itself.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import schemathesis


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: Any
) -> None:
    """Keep the online device: its revocation goes to the spare one; give snapshots
    time."""
    give_snapshots_time(case)
    keep_chat_streams_short(case)
    online = os.environ["DESKSIDE_TEST_ONLINE_DEVICE"]
    parameters = case.path_parameters or {}
    if case.operation.path.endswith("/revoke") and parameters.get("device_id") == online:
        parameters["device_id"] = os.environ["DESKSIDE_TEST_SPARE_DEVICE"]


# The least wait of a fresh snapshot in the run, in seconds.
SNAPSHOT_WAIT = 20.0


def _at_least(value: Any) -> Any:
    try:
        return max(float(value), SNAPSHOT_WAIT)
    except (TypeError, ValueError):
        return value  # not a number: the console refuses it, as it should


def give_snapshots_time(case: schemathesis.Case[Any]) -> None:
    """A snapshot asked of the online device gets a wait it can meet."""
    path = case.operation.path
    query = case.query or {}
    if path.endswith("/snapshots") and "timeout" in query:
        query["timeout"] = _at_least(query["timeout"])
    body = case.body
    if path.endswith("/diagnostics") and isinstance(body, dict) and "timeout" in body:
        body["timeout"] = _at_least(body["timeout"])


def keep_chat_streams_short(case: schemathesis.Case[Any]) -> None:
    """A chat stream lasts the ``seconds`` asked (up to an hour): a second here, well
    inside the run's request time-out."""
    query = case.query or {}
    if case.operation.path.endswith("/chat/stream") and "seconds" in query:
        # Not a number: the console refuses it, as it should.
        with contextlib.suppress(TypeError, ValueError):
            query["seconds"] = min(float(query["seconds"]), 1.0)
    elif case.operation.path.endswith("/chat/stream"):
        case.query = {**query, "seconds": 1.0}
