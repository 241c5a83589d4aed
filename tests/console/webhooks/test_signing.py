"""Signing as the Standard Webhooks specification says: its published test vector, and
the ``standardwebhooks`` package's verifier."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from deskside.console.errors import InvalidRequest
from deskside.console.webhooks import signing

# The test vector of the Standard Webhooks reference libraries (standard-webhooks/
# standard-webhooks, libraries/*/ tests: "sign function works").
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_published_test_vector() -> None:
    got = signing.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert got == VECTOR_SIGNATURE


def _headers(secrets: list[str], body: bytes, timestamp: int | None = None) -> dict[str, str]:
    message_id = signing.new_message_id()
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signing.signature_header(secrets, message_id, ts, body),
    }


def test_the_reference_verifier_accepts_what_is_signed() -> None:
    secret = signing.new_secret()
    body = b'{"type":"ticket.created","version":1}'
    assert Webhook(secret).verify(body, _headers([secret], body)) == {
        "type": "ticket.created",
        "version": 1,
    }


def test_the_reference_verifier_refuses_other_secrets_bodies_and_old_timestamps() -> None:
    secret, other = signing.new_secret(), signing.new_secret()
    body = b"{}"
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, _headers([secret], body))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"x":1}', _headers([secret], body))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, _headers([secret], body, int(time.time()) - 3600))


def test_during_a_rotation_both_secrets_verify() -> None:
    new, old = signing.new_secret(), signing.new_secret()
    body = b"{}"
    headers = _headers([new, old], body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_secrets_are_whsec_and_32_random_bytes() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert signing.new_message_id() != signing.new_message_id()


@pytest.mark.parametrize(
    "secret",
    ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_" + "A" * 8],
)
def test_bad_secrets_are_refused(secret: str) -> None:
    with pytest.raises(InvalidRequest):
        signing.sign(secret, "msg_1", 1, b"")
