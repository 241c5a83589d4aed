"""The bounds on unauthenticated peers: the [limits] table and the admission count."""

from __future__ import annotations

import pytest

from deskside.console.limits import Admission, ConnectionLimits
from deskside.protocol.errors import ConfigError


def test_limits_are_read_from_the_limits_table() -> None:
    limits = ConnectionLimits.from_toml({"limits": {"header_timeout": 3, "handshakes": 5}})
    assert limits.header_timeout == 3.0
    assert isinstance(limits.header_timeout, float)
    assert limits.handshakes == 5
    assert ConnectionLimits.from_toml({}) == ConnectionLimits()


@pytest.mark.parametrize(
    "table",
    [
        {"header_timeout": 0},
        {"header_timeout": -1.0},
        {"header_timeout": float("inf")},
        {"handshakes": 2.5},
        {"handshakes": True},
        {"handshakes": "5"},
        {"no_such_limit": 1},
    ],
)
def test_bad_limits_are_refused(table: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="limits"):
        ConnectionLimits.from_toml({"limits": table})


def test_limits_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match=r"\[limits\]"):
        ConnectionLimits.from_toml({"limits": 3})


def test_admission_caps_per_address_and_in_all() -> None:
    admission = Admission(total=3, per_address=2)
    a1, a2 = admission.enter("a"), admission.enter("a")
    assert a1 is not None
    assert a2 is not None
    assert admission.enter("a") is None  # the address's cap
    b1 = admission.enter("b")
    assert b1 is not None
    assert admission.enter("c") is None  # the total cap
    a1.release()
    a1.release()  # a second release frees nothing more
    assert admission.held == 2
    assert admission.enter("c") is not None
    assert admission.enter("c") is None
