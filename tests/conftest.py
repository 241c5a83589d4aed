"""Test-session hooks shared by the whole suite."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many published Noise test vectors passed in this run."""
    noise_tests = sys.modules.get("tests.protocol.test_noise")
    if noise_tests is None:
        return
    passed = len(noise_tests.VECTORS_PASSED)
    total = len(noise_tests.VECTORS)
    terminalreporter.write_line(
        f"Noise test vectors: {passed} of {total} passed ({noise_tests.VECTORS_PATH})"
    )
