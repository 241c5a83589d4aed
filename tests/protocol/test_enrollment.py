from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskside.protocol import crypto
from deskside.protocol.enrollment import (
    PREFIX,
    Enrollment,
    certificate_fingerprint,
    device_id,
    parse_enrollment,
)
from deskside.protocol.errors import ConfigError

KEY = crypto.public_key(crypto.generate_private_key())


def make(**changes: object) -> Enrollment:
    fields: dict[str, object] = {
        "url": "wss://console.example:8443/agent",
        "token": "A" * 43,
        "console_key": KEY,
        "tls_fingerprint": certificate_fingerprint(b"cert"),
    }
    fields.update(changes)
    return Enrollment(**fields)  # type: ignore[arg-type]


def test_round_trip() -> None:
    enrollment = make()
    text = enrollment.encode()
    assert text.startswith(PREFIX)
    assert parse_enrollment(f"  {text}\n") == enrollment


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello", "starts with"),
        (PREFIX + "!!!!", "damaged"),
        (PREFIX + "AAAA", "damaged"),
        (make(url="https://x/agent").encode(), "not a ws:// or wss://"),
        (make(url="wss:///agent").encode(), "not a ws:// or wss://"),
        (PREFIX + "A" * 3000, "too long"),
    ],
)
def test_bad_strings_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_enrollment(text)


@given(st.text(max_size=300))
def test_any_text_parses_or_is_a_config_error(text: str) -> None:
    try:
        result = parse_enrollment(PREFIX + text)
    except ConfigError:
        return
    assert isinstance(result, Enrollment)


def test_device_id_is_stable_and_distinct() -> None:
    other = crypto.public_key(crypto.generate_private_key())
    assert device_id(KEY) == device_id(KEY)
    assert device_id(KEY) != device_id(other)
    assert len(device_id(KEY)) == 20
    assert device_id(KEY).startswith("d")
