"""Tests of deskside.protocol.noise: the cacophony test vectors, then the failure modes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deskside.protocol import crypto
from deskside.protocol.errors import (
    DecryptionError,
    HandshakeError,
    LocalProtocolError,
    RemoteProtocolError,
)
from deskside.protocol.noise import (
    MAX_MESSAGE_LEN,
    MAX_PLAINTEXT_LEN,
    PATTERNS,
    CipherState,
    HandshakePattern,
    HandshakeState,
    SymmetricState,
    parse_protocol_name,
)

# The cacophony project's vectors for this cipher suite; vectors/README.md names the source.
VECTORS_PATH = Path(__file__).parent / "vectors" / "cacophony-25519-chachapoly-sha256.json"
EXPECTED_VECTOR_COUNT = 59

Vector = dict[str, Any]


def _load_vectors() -> list[Vector]:
    with VECTORS_PATH.open(encoding="utf-8") as file:
        vectors: list[Vector] = json.load(file)["vectors"]
    return vectors


VECTORS = _load_vectors()

# One-way patterns (N, K, X) and their psk variants: all transport goes initiator -> responder.
ONE_WAY = re.compile(r"Noise_[NKX](psk[0-9]+(\+psk[0-9]+)*)?_")


def _optional_hex(vector: Vector, field: str) -> bytes | None:
    value = vector.get(field)
    return None if value is None else bytes.fromhex(value)


def _handshake_from_vector(vector: Vector, initiator: bool) -> HandshakeState:
    prefix = "init" if initiator else "resp"
    return HandshakeState(
        vector["protocol_name"],
        initiator,
        prologue=bytes.fromhex(vector.get(f"{prefix}_prologue", "")),
        s=_optional_hex(vector, f"{prefix}_static"),
        e=_optional_hex(vector, f"{prefix}_ephemeral"),
        rs=_optional_hex(vector, f"{prefix}_remote_static"),
        psks=[bytes.fromhex(psk) for psk in vector.get(f"{prefix}_psks", [])],
    )


def _play_vector(vector: Vector) -> None:
    """Run one vector: the handshake messages, the handshake hash, then transport."""
    initiator = _handshake_from_vector(vector, initiator=True)
    responder = _handshake_from_vector(vector, initiator=False)
    messages = vector["messages"]

    index = 0
    while not initiator.is_complete:
        assert index < len(messages), "the vector ends before the handshake does"
        writer, reader = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        payload = bytes.fromhex(messages[index]["payload"])
        ciphertext = writer.write_message(payload)
        assert ciphertext.hex() == messages[index]["ciphertext"], f"message {index}"
        assert reader.read_message(ciphertext) == payload, f"message {index}"
        index += 1
    assert responder.is_complete
    assert initiator.handshake_hash.hex() == vector["handshake_hash"]
    assert responder.handshake_hash.hex() == vector["handshake_hash"]

    initiator_send, initiator_receive = initiator.split()
    responder_receive, responder_send = responder.split()
    one_way = ONE_WAY.match(vector["protocol_name"]) is not None
    # Transport messages keep the numbering, and so the turns, of the handshake.
    for position in range(index, len(messages)):
        if one_way or position % 2 == 0:
            sender, receiver = initiator_send, responder_receive
        else:
            sender, receiver = responder_send, initiator_receive
        payload = bytes.fromhex(messages[position]["payload"])
        ciphertext = sender.encrypt_with_ad(b"", payload)
        assert ciphertext.hex() == messages[position]["ciphertext"], f"message {position}"
        assert receiver.decrypt_with_ad(b"", ciphertext) == payload, f"message {position}"


# Vectors that passed in this run; tests/conftest.py prints the count at the end.
VECTORS_PASSED: list[str] = []


@pytest.mark.parametrize(
    "vector",
    [pytest.param(v, id=f"{v['protocol_name']}-{i}") for i, v in enumerate(VECTORS)],
)
def test_vector(vector: Vector) -> None:
    _play_vector(vector)
    VECTORS_PASSED.append(vector["protocol_name"])


def test_every_vector_runs() -> None:
    with VECTORS_PATH.open(encoding="utf-8") as file:
        in_file = len(json.load(file)["vectors"])
    n = 0
    for vector in VECTORS:
        _play_vector(vector)
        n += 1
    print(f"{n} Noise vectors")
    assert n == in_file == EXPECTED_VECTOR_COUNT


def test_vectors_cover_every_pattern() -> None:
    names = {parse_protocol_name(v["protocol_name"]).pattern_name for v in VECTORS}
    assert names == set(PATTERNS)


# Helpers for the tests below: fixed keys, so failures are reproducible.

IK = "Noise_IK_25519_ChaChaPoly_SHA256"
PROLOGUE = b"deskside test"


def _private_key(n: int) -> bytes:
    return crypto.hash(b"deskside test key %d" % n)


INITIATOR_STATIC = _private_key(1)
RESPONDER_STATIC = _private_key(2)
INITIATOR_EPHEMERAL = _private_key(3)
RESPONDER_EPHEMERAL = _private_key(4)


def _ik_initiator(rs: bytes | None = None, e: bytes | None = INITIATOR_EPHEMERAL) -> HandshakeState:
    if rs is None:
        rs = crypto.public_key(RESPONDER_STATIC)
    return HandshakeState(IK, True, PROLOGUE, s=INITIATOR_STATIC, e=e, rs=rs)


def _ik_responder() -> HandshakeState:
    return HandshakeState(IK, False, PROLOGUE, s=RESPONDER_STATIC, e=RESPONDER_EPHEMERAL)


def _ik_handshake() -> tuple[HandshakeState, HandshakeState]:
    initiator, responder = _ik_initiator(), _ik_responder()
    assert responder.read_message(initiator.write_message(b"hello")) == b"hello"
    assert initiator.read_message(responder.write_message(b"welcome")) == b"welcome"
    return initiator, responder


def _transport() -> tuple[CipherState, CipherState, CipherState, CipherState]:
    """Return (initiator send, initiator receive, responder send, responder receive)."""
    initiator, responder = _ik_handshake()
    initiator_send, initiator_receive = initiator.split()
    responder_receive, responder_send = responder.split()
    return initiator_send, initiator_receive, responder_send, responder_receive


def _flip(data: bytes, position: int, bit: int = 0) -> bytes:
    flipped = bytearray(data)
    flipped[position] ^= 1 << bit
    return bytes(flipped)


VALID_IK_MESSAGE = _ik_initiator().write_message(b"agent hello")


# Handshakes with generated keys, for every pattern.


def _roundtrip(name: str, psks: list[bytes]) -> None:
    protocol = parse_protocol_name(name)
    pattern = protocol.pattern
    initiator_static = crypto.generate_private_key()
    responder_static = crypto.generate_private_key()
    initiator = HandshakeState(
        name,
        True,
        s=initiator_static,
        rs=crypto.public_key(responder_static) if "s" in pattern.responder_premessage else None,
        psks=psks,
    )
    responder = HandshakeState(
        name,
        False,
        s=responder_static,
        rs=crypto.public_key(initiator_static) if "s" in pattern.initiator_premessage else None,
        psks=psks,
    )
    for index in range(len(pattern.messages)):
        writer, reader = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        assert not writer.is_complete
        assert reader.read_message(writer.write_message(b"payload %d" % index)) == (
            b"payload %d" % index
        )
    assert initiator.is_complete
    assert responder.is_complete
    assert initiator.handshake_hash == responder.handshake_hash

    # Each side knows the other's static key exactly when the pattern conveys it.
    sent_by_initiator = {t for m in pattern.messages[0::2] for t in m}
    sent_by_responder = {t for m in pattern.messages[1::2] for t in m}
    if "s" in sent_by_initiator | set(pattern.initiator_premessage):
        assert responder.remote_static == crypto.public_key(initiator_static)
    else:
        assert responder.remote_static is None
    if "s" in sent_by_responder | set(pattern.responder_premessage):
        assert initiator.remote_static == crypto.public_key(responder_static)
    else:
        assert initiator.remote_static is None

    c1_initiator, c2_initiator = initiator.split()
    c1_responder, c2_responder = responder.split()
    assert c1_responder.decrypt_with_ad(b"", c1_initiator.encrypt_with_ad(b"", b"up")) == b"up"
    if not protocol.one_way:
        assert c2_initiator.decrypt_with_ad(b"", c2_responder.encrypt_with_ad(b"", b"dn")) == b"dn"


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_every_pattern_with_generated_ephemerals(pattern: str) -> None:
    _roundtrip(f"Noise_{pattern}_25519_ChaChaPoly_SHA256", [])


@pytest.mark.parametrize(
    ("modifiers", "psk_count"),
    [("psk0", 1), ("psk1", 1), ("psk0+psk2", 2), ("psk1+psk2+psk3", 3)],
)
def test_psk_modifiers_combine(modifiers: str, psk_count: int) -> None:
    psks = [crypto.hash(b"psk %d" % i) for i in range(psk_count)]
    _roundtrip(f"Noise_XX{modifiers}_25519_ChaChaPoly_SHA256", psks)


def test_different_psks_fail() -> None:
    name = "Noise_NNpsk0_25519_ChaChaPoly_SHA256"
    initiator = HandshakeState(name, True, psks=[bytes(32)])
    responder = HandshakeState(name, False, psks=[b"\x01" * 32])
    with pytest.raises(DecryptionError):
        responder.read_message(initiator.write_message(b"secret"))


def test_different_prologues_fail() -> None:
    initiator = _ik_initiator()
    responder = HandshakeState(IK, False, b"another prologue", s=RESPONDER_STATIC)
    with pytest.raises(DecryptionError):
        responder.read_message(initiator.write_message())


# Transport: nonces, tampering, rekey.


def test_decrypt_failure_does_not_advance_nonce() -> None:
    initiator_send, _, _, responder_receive = _transport()
    ciphertext = initiator_send.encrypt_with_ad(b"", b"first")
    with pytest.raises(DecryptionError):
        responder_receive.decrypt_with_ad(b"", _flip(ciphertext, 0))
    assert responder_receive.nonce == 0
    with pytest.raises(DecryptionError):
        responder_receive.decrypt_with_ad(b"", ciphertext[:-1])
    assert responder_receive.nonce == 0
    assert responder_receive.decrypt_with_ad(b"", ciphertext) == b"first"
    assert responder_receive.nonce == 1


def test_in_place_paths_match_the_copying_ones() -> None:
    send_a, _, _, receive_a = _transport()
    send_b, _, _, receive_b = _transport()
    # Same keys on both pairs, so both paths must give the same bytes.
    send_b._cipher, receive_b._cipher = send_a._cipher, receive_a._cipher
    plaintext = bytes(range(256)) * 100
    out = bytearray(len(plaintext) + 16)
    assert send_a.encrypt_into(b"ad", memoryview(plaintext), out) == len(out)
    assert bytes(out) == send_b.encrypt_with_ad(b"ad", plaintext)
    opened = bytearray(len(plaintext))
    tampered = _flip(bytes(out), 5)
    with pytest.raises(DecryptionError):
        receive_a.decrypt_into(b"ad", tampered, opened)
    assert receive_a.nonce == 0
    assert receive_a.decrypt_into(b"ad", memoryview(out), opened) == len(plaintext)
    assert bytes(opened) == plaintext
    assert receive_a.nonce == send_a.nonce == 1
    with pytest.raises(LocalProtocolError):
        send_a.encrypt_into(b"", b"x" * (MAX_PLAINTEXT_LEN + 1), bytearray(MAX_MESSAGE_LEN + 17))
    with pytest.raises(LocalProtocolError, match="key"):
        CipherState().encrypt_into(b"", b"x", bytearray(17))


def test_replayed_or_reordered_transport_message_fails() -> None:
    initiator_send, _, _, responder_receive = _transport()
    first = initiator_send.encrypt_with_ad(b"", b"first")
    second = initiator_send.encrypt_with_ad(b"", b"second")
    with pytest.raises(DecryptionError):
        responder_receive.decrypt_with_ad(b"", second)
    assert responder_receive.decrypt_with_ad(b"", first) == b"first"
    with pytest.raises(DecryptionError):
        responder_receive.decrypt_with_ad(b"", first)
    assert responder_receive.decrypt_with_ad(b"", second) == b"second"


def test_any_flipped_bit_in_transport_message_fails() -> None:
    _, initiator_receive, responder_send, _ = _transport()
    ciphertext = responder_send.encrypt_with_ad(b"ad", b"command output")
    for position in range(len(ciphertext)):
        for bit in (0, 7):
            with pytest.raises(DecryptionError):
                initiator_receive.decrypt_with_ad(b"ad", _flip(ciphertext, position, bit))
    with pytest.raises(DecryptionError):
        initiator_receive.decrypt_with_ad(b"other ad", ciphertext)
    assert initiator_receive.decrypt_with_ad(b"ad", ciphertext) == b"command output"


@pytest.mark.parametrize("message_index", [0, 1])
def test_any_flipped_bit_in_handshake_message_fails(message_index: int) -> None:
    initiator, responder = _ik_initiator(), _ik_responder()
    first = initiator.write_message(b"hello")
    reference = _ik_responder()
    reference.read_message(first)
    second = reference.write_message(b"welcome")
    message = (first, second)[message_index]
    for position in range(len(message)):
        for bit in (0, 7):
            initiator, responder = _ik_initiator(), _ik_responder()
            if message_index == 0:
                reader = responder
            else:
                responder.read_message(initiator.write_message(b"hello"))
                assert responder.write_message(b"welcome") == second
                reader = initiator
            with pytest.raises(DecryptionError):
                reader.read_message(_flip(message, position, bit))
            # The transcript is spoiled: the handshake cannot go on.
            with pytest.raises(LocalProtocolError):
                reader.read_message(message)


def test_rekey_changes_the_key_on_both_sides() -> None:
    initiator_send, _, _, responder_receive = _transport()
    assert responder_receive.decrypt_with_ad(b"", initiator_send.encrypt_with_ad(b"", b"a")) == b"a"
    before = initiator_send.encrypt_with_ad(b"", b"same")
    assert responder_receive.decrypt_with_ad(b"", before) == b"same"

    initiator_send.rekey()
    responder_receive.rekey()
    assert initiator_send.nonce == responder_receive.nonce == 2  # rekey keeps the nonce
    initiator_send.set_nonce(1)
    assert initiator_send.encrypt_with_ad(b"", b"same") != before
    ciphertext = initiator_send.encrypt_with_ad(b"", b"after rekey")
    assert responder_receive.decrypt_with_ad(b"", ciphertext) == b"after rekey"

    # Only one side rekeys: the other cannot read any more.
    initiator_send.rekey()
    with pytest.raises(DecryptionError):
        responder_receive.decrypt_with_ad(b"", initiator_send.encrypt_with_ad(b"", b"lost"))


def test_rekey_is_the_spec_default() -> None:
    key = crypto.hash(b"transport key")
    expected = crypto.ChaChaPoly(key).encrypt(crypto.MAX_NONCE, b"", bytes(32))[:32]
    rekeyed, reference = CipherState(key), CipherState(expected)
    rekeyed.rekey()
    assert rekeyed.encrypt_with_ad(b"", b"x") == reference.encrypt_with_ad(b"", b"x")


def test_reserved_nonce() -> None:
    key = crypto.hash(b"transport key")
    sender, receiver = CipherState(key), CipherState(key)
    sender.set_nonce(2**64 - 2)
    receiver.set_nonce(2**64 - 2)
    assert receiver.decrypt_with_ad(b"", sender.encrypt_with_ad(b"", b"last")) == b"last"
    assert sender.nonce == receiver.nonce == 2**64 - 1
    with pytest.raises(LocalProtocolError):
        sender.encrypt_with_ad(b"", b"one too many")
    # Refused even when properly sealed under the reserved nonce: not a failed tag.
    sealed = crypto.ChaChaPoly(key).encrypt(2**64 - 1, b"", b"reserved")
    with pytest.raises(DecryptionError, match="exhausted"):
        receiver.decrypt_with_ad(b"", sealed)
    for bad in (-1, 2**64):
        with pytest.raises(LocalProtocolError):
            sender.set_nonce(bad)
    for good in (0, 2**64 - 1):  # the whole range, ends included
        sender.set_nonce(good)
        assert sender.nonce == good


def test_reserved_nonce_on_the_in_place_paths() -> None:
    # The transport's fast path refuses nonce 2**64-1 as encrypt_with_ad does.
    key = crypto.hash(b"transport key")
    sender, receiver = CipherState(key), CipherState(key)
    sender.set_nonce(2**64 - 2)
    receiver.set_nonce(2**64 - 2)
    sealed = bytearray(4 + 16)
    assert sender.encrypt_into(b"ad", b"last", sealed) == 20
    opened = bytearray(4)
    assert receiver.decrypt_into(b"ad", sealed, opened) == 4
    assert opened == b"last"
    assert sender.nonce == receiver.nonce == 2**64 - 1
    with pytest.raises(LocalProtocolError, match="exhausted"):
        sender.encrypt_into(b"ad", b"one too many", bytearray(12 + 16))
    sealed_reserved = crypto.ChaChaPoly(key).encrypt(2**64 - 1, b"ad", b"reserved")
    with pytest.raises(DecryptionError, match="exhausted"):
        receiver.decrypt_into(b"ad", sealed_reserved, bytearray(8))
    assert sender.nonce == receiver.nonce == 2**64 - 1


def test_cipher_state_without_key_passes_through() -> None:
    state = CipherState()
    assert not state.has_key()
    assert state.encrypt_with_ad(b"ad", b"plain") == b"plain"
    assert state.decrypt_with_ad(b"ad", b"plain") == b"plain"
    assert state.nonce == 0
    with pytest.raises(LocalProtocolError):
        state.rekey()


def test_transport_size_limits() -> None:
    assert (MAX_MESSAGE_LEN, MAX_PLAINTEXT_LEN) == (65535, 65535 - 16)  # section 3
    initiator_send, _, _, responder_receive = _transport()
    with pytest.raises(LocalProtocolError):
        initiator_send.encrypt_with_ad(b"", bytes(MAX_PLAINTEXT_LEN + 1))
    assert initiator_send.nonce == 0
    ciphertext = initiator_send.encrypt_with_ad(b"", bytes(MAX_PLAINTEXT_LEN))
    assert len(ciphertext) == MAX_MESSAGE_LEN
    with pytest.raises(RemoteProtocolError):
        responder_receive.decrypt_with_ad(b"", ciphertext + b"\x00")
    assert responder_receive.decrypt_with_ad(b"", ciphertext) == bytes(MAX_PLAINTEXT_LEN)


# Handshake misuse and invalid input.


def test_ik_with_wrong_responder_static_key_fails_on_read() -> None:
    wrong = crypto.public_key(_private_key(99))
    initiator, responder = _ik_initiator(rs=wrong), _ik_responder()
    with pytest.raises(RemoteProtocolError) as info:
        responder.read_message(initiator.write_message(b"hello"))
    assert isinstance(info.value, DecryptionError)
    assert responder.remote_static is None


def test_low_order_ephemeral_is_a_handshake_error() -> None:
    responder = _ik_responder()
    with pytest.raises(HandshakeError):
        responder.read_message(bytes(32) + VALID_IK_MESSAGE[32:])


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Noise",
        "Noise_IK",
        "noise_IK_25519_ChaChaPoly_SHA256",
        "Noise_IK_448_ChaChaPoly_SHA256",
        "Noise_IK_25519_AESGCM_SHA256",
        "Noise_IK_25519_ChaChaPoly_SHA512",
        "Noise_IK_25519_ChaChaPoly_BLAKE2s",
        "Noise_ZZ_25519_ChaChaPoly_SHA256",
        "Noise_IK2_25519_ChaChaPoly_SHA256",
        "Noise_XXfallback_25519_ChaChaPoly_SHA256",
        "Noise_XXhfs_25519_ChaChaPoly_SHA256",
        "Noise_XXpsk4_25519_ChaChaPoly_SHA256",
        "Noise_XXpsk0+psk0_25519_ChaChaPoly_SHA256",
        "Noise_XXpsk01_25519_ChaChaPoly_SHA256",
        "Noise_Npsk2_25519_ChaChaPoly_SHA256",
        "Noise_IK_25519_ChaChaPoly_SHA256_extra",
        "Noise_IK_25519_ChaChaPoly_SHA256\n",
    ],
)
def test_unknown_protocol_name(name: str) -> None:
    with pytest.raises(LocalProtocolError):
        HandshakeState(name, True, s=INITIATOR_STATIC)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("Noise_XXpsk0+psk0_25519_ChaChaPoly_SHA256", "'psk0' is repeated"),
        ("Noise_XXpsk3+psk3_25519_ChaChaPoly_SHA256", "'psk3' is repeated"),
        ("Noise_XXpsk4_25519_ChaChaPoly_SHA256", "pattern XX has 3 message(s)"),
        ("Noise_XXfallback_25519_ChaChaPoly_SHA256", "unsupported Noise modifier 'fallback'"),
    ],
)
def test_bad_modifiers_are_named(name: str, error: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        parse_protocol_name(name)
    assert error in str(info.value)


def test_a_wrong_pattern_table_entry_is_refused_not_crashed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "es" without a responder static key anywhere: no such pattern, so no key for it.
    monkeypatch.setitem(PATTERNS, "NN", HandshakePattern((), (), (("e", "es"), ("e", "ee"))))
    initiator = HandshakeState("Noise_NN_25519_ChaChaPoly_SHA256", True)
    with pytest.raises(LocalProtocolError, match="needs a remote key for 'es'"):
        initiator.write_message()


def test_a_message_may_end_right_after_a_key() -> None:
    # NN's first message with an empty payload is just e: 32 bytes, nothing after.
    name = "Noise_NN_25519_ChaChaPoly_SHA256"
    message = HandshakeState(name, True).write_message()
    assert len(message) == 32
    assert HandshakeState(name, False).read_message(message) == b""
    with pytest.raises(RemoteProtocolError, match="too short"):
        HandshakeState(name, False).read_message(message[:31])


def test_writing_or_reading_out_of_turn() -> None:
    initiator, responder = _ik_initiator(), _ik_responder()
    with pytest.raises(LocalProtocolError):
        responder.write_message()
    with pytest.raises(LocalProtocolError):
        initiator.read_message(VALID_IK_MESSAGE)
    message = initiator.write_message()
    with pytest.raises(LocalProtocolError):
        initiator.write_message()
    with pytest.raises(LocalProtocolError):
        initiator.split()
    # Misuse is refused before anything changes: the handshake goes on.
    responder.read_message(message)
    initiator.read_message(responder.write_message())
    assert initiator.is_complete
    assert responder.is_complete
    for state in (initiator, responder):
        with pytest.raises(LocalProtocolError):
            state.write_message()
        with pytest.raises(LocalProtocolError):
            state.read_message(message)
    handshake_hash = initiator.handshake_hash
    initiator.split()
    with pytest.raises(LocalProtocolError):
        initiator.split()
    assert initiator.handshake_hash == handshake_hash


@pytest.mark.parametrize(
    "make",
    [
        # IK: the initiator needs s and rs, the responder s.
        lambda: HandshakeState(IK, True, rs=crypto.public_key(RESPONDER_STATIC)),
        lambda: HandshakeState(IK, True, s=INITIATOR_STATIC),
        lambda: HandshakeState(IK, False),
        # XX: the initiator sends s only in the third message, the responder in the second.
        lambda: HandshakeState("Noise_XX_25519_ChaChaPoly_SHA256", True),
        lambda: HandshakeState("Noise_XX_25519_ChaChaPoly_SHA256", False),
        # XX sends the responder's static key: giving it as rs is an error.
        lambda: HandshakeState(
            "Noise_XX_25519_ChaChaPoly_SHA256",
            True,
            s=INITIATOR_STATIC,
            rs=crypto.public_key(RESPONDER_STATIC),
        ),
        # Wrong lengths.
        lambda: HandshakeState(IK, False, s=RESPONDER_STATIC[:31]),
        lambda: HandshakeState(IK, True, s=INITIATOR_STATIC, rs=bytes(33)),
        lambda: HandshakeState(IK, False, s=RESPONDER_STATIC, e=bytes(16)),
        # psks: one per modifier, 32 bytes each.
        lambda: HandshakeState("Noise_NNpsk0_25519_ChaChaPoly_SHA256", True),
        lambda: HandshakeState("Noise_NNpsk0_25519_ChaChaPoly_SHA256", True, psks=[bytes(31)]),
        lambda: HandshakeState(IK, False, s=RESPONDER_STATIC, psks=[bytes(32)]),
    ],
)
def test_missing_or_invalid_keys(make: Any) -> None:
    with pytest.raises(LocalProtocolError):
        make()


def test_handshake_size_limits() -> None:
    # IK message 1: e (32) + encrypted s (48) + payload tag (16).
    overhead = 32 + 48 + 16
    initiator = _ik_initiator()
    with pytest.raises(LocalProtocolError):
        initiator.write_message(bytes(MAX_MESSAGE_LEN - overhead + 1))
    message = initiator.write_message(bytes(MAX_MESSAGE_LEN - overhead))
    assert len(message) == MAX_MESSAGE_LEN
    assert _ik_responder().read_message(message) == bytes(MAX_MESSAGE_LEN - overhead)
    with pytest.raises(RemoteProtocolError):
        _ik_responder().read_message(message + b"\x00")


@pytest.mark.parametrize("length", [0, 1, 31, 32, 79, 80, 95])
def test_truncated_handshake_message(length: int) -> None:
    responder = _ik_responder()
    with pytest.raises(RemoteProtocolError):
        responder.read_message(VALID_IK_MESSAGE[:length])
    with pytest.raises(LocalProtocolError):
        responder.read_message(VALID_IK_MESSAGE)


def test_reprs_hide_keys() -> None:
    initiator, responder = _ik_handshake()
    secrets = [INITIATOR_STATIC, RESPONDER_STATIC, INITIATOR_EPHEMERAL, RESPONDER_EPHEMERAL]
    texts = [repr(initiator), repr(responder), repr(SymmetricState(IK.encode()))]
    c1, c2 = initiator.split()
    texts += [repr(c1), repr(c2), repr(crypto.ChaChaPoly(bytes(32)))]
    for text in texts:
        for secret in secrets:
            assert secret.hex() not in text
            assert repr(secret) not in text
    assert "IK" in repr(responder)


# Property tests: whatever a peer sends, the responder only raises RemoteProtocolError.


@st.composite
def _mutated_ik_message(draw: st.DrawFn) -> bytes:
    message = bytearray(VALID_IK_MESSAGE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "set", "delete", "insert", "truncate", "extend"]))
        position = draw(st.integers(min_value=0, max_value=max(len(message) - 1, 0)))
        if kind == "flip" and message:
            message[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "set" and message:
            message[position] = draw(st.integers(min_value=0, max_value=255))
        elif kind == "delete" and message:
            del message[position]
        elif kind == "insert":
            message.insert(position, draw(st.integers(min_value=0, max_value=255)))
        elif kind == "truncate":
            del message[position:]
        elif kind == "extend":
            message += draw(st.binary(min_size=1, max_size=64))
    return bytes(message)


@given(st.binary(max_size=512))
def test_random_bytes_to_ik_responder(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        _ik_responder().read_message(data)


@settings(max_examples=300)
@given(_mutated_ik_message())
def test_mutated_message_to_ik_responder(data: bytes) -> None:
    responder = _ik_responder()
    if data == VALID_IK_MESSAGE:
        assert responder.read_message(data) == b"agent hello"
    else:
        with pytest.raises(RemoteProtocolError):
            responder.read_message(data)
