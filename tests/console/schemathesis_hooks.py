"""Schemathesis hooks of ``test_openapi.py``'s run (loaded by the ``schemathesis`` CLI).

The run revokes devices like any other operation, but never the one online device
it needs for the rest: a revocation of that device is sent for the spare device
instead (``DESKSIDE_TEST_ONLINE_DEVICE``, ``DESKSIDE_TEST_SPARE_DEVICE``).
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: Any
) -> None:
    """Keep the online device: its revocation goes to the spare one."""
    online = os.environ["DESKSIDE_TEST_ONLINE_DEVICE"]
    parameters = case.path_parameters or {}
    if case.operation.path.endswith("/revoke") and parameters.get("device_id") == online:
        parameters["device_id"] = os.environ["DESKSIDE_TEST_SPARE_DEVICE"]
