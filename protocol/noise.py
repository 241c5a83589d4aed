"""The Noise Protocol Framework, revision 34, for the cipher suite 25519_ChaChaPoly_SHA256.

Theory of operation
===================

The specification (section 5) defines three nested objects, and so does this
module:

* :class:`CipherState` holds a cipher key ``k`` (possibly empty) and a 64-bit
  nonce ``n``. Each encryption or successful decryption uses ``n`` and then
  increments it, so both sides must process messages in the same order; a
  replayed, dropped or reordered message fails authentication. A failed
  decryption leaves ``n`` unchanged. Nonce ``2**64-1`` is reserved for
  :meth:`CipherState.rekey`, so a state that reaches it is exhausted.
* :class:`SymmetricState` holds a chaining key ``ck`` and a handshake hash
  ``h``, plus a :class:`CipherState`. Every DH result is mixed into ``ck``
  (``mix_key``); everything sent or received is mixed into ``h``
  (``mix_hash``) and used as associated data, so both sides end with the same
  transcript hash or fail. ``split`` derives the two transport ciphers.
* :class:`HandshakeState` runs a handshake pattern: a list of messages, each a
  list of tokens (``e``, ``s``, ``ee``, ``es``, ``se``, ``ss``, ``psk``), sent
  alternately by the initiator (messages 0, 2, ...) and the responder
  (messages 1, 3, ...). :meth:`~HandshakeState.write_message` and
  :meth:`~HandshakeState.read_message` consume the next message of the
  pattern; whose turn it is follows from the message index alone::

      message index  0     1     2     ...   len(messages)
      writer         init  resp  init  ...   (complete: call split())

  Once every message is processed, :meth:`~HandshakeState.split` returns
  ``(c1, c2)``: ``c1`` encrypts initiator -> responder, ``c2`` responder ->
  initiator. One-way patterns (N, K, X) use only ``c1``.

The patterns are data: :data:`PATTERNS` maps each name of sections 7.4 and 7.5
(fundamental, one-way and deferred patterns) to its pre-messages and messages.
A protocol name ``Noise_<PATTERN><modifiers>_25519_ChaChaPoly_SHA256`` selects
one; the only modifiers are ``pskN`` (section 9): ``psk0`` puts a ``psk`` token
at the start of the first message, ``pskN`` at the end of message N, and in a
PSK handshake every ``e`` token (in pre-messages too) is followed by
``MixKey(e.public_key)``.

Errors follow h11: misuse of this API (wrong turn, missing key, oversized
payload, use after completion or failure) raises
:class:`~deskside.protocol.errors.LocalProtocolError`; bad bytes from the peer
raise :class:`~deskside.protocol.errors.RemoteProtocolError` or its subclasses
:class:`~deskside.protocol.errors.DecryptionError` (authentication failed) and
:class:`~deskside.protocol.errors.HandshakeError` (invalid DH result). A
handshake that failed half-way cannot continue: its transcript is already
changed, so every later call raises ``LocalProtocolError``. Every Noise message
is at most 65535 bytes, in both directions.

Nothing here logs, and no ``repr`` shows key material.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from deskside.protocol import crypto
from deskside.protocol.errors import DecryptionError, LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "MAX_MESSAGE_LEN",
    "MAX_PLAINTEXT_LEN",
    "PATTERNS",
    "CipherState",
    "HandshakePattern",
    "HandshakeState",
    "NoiseProtocol",
    "SymmetricState",
    "Token",
    "parse_protocol_name",
]

#: The largest Noise message, handshake or transport (section 3).
MAX_MESSAGE_LEN: Final = 65535
#: The largest plaintext a keyed :class:`CipherState` encrypts into one message.
MAX_PLAINTEXT_LEN: Final = MAX_MESSAGE_LEN - crypto.TAG_LEN

_MAX_NONCE: Final = crypto.MAX_NONCE
_DH_LEN: Final = crypto.DH_LEN
_TAG_LEN: Final = crypto.TAG_LEN
_PSK_LEN: Final = 32

Token = Literal["e", "s", "ee", "es", "se", "ss", "psk"]
"""A token of a message pattern (section 7.1)."""


@dataclass(frozen=True, slots=True)
class HandshakePattern:
    """A handshake pattern (section 7): pre-messages, then messages alternating from initiator."""

    #: Keys of the initiator that the responder knows before the handshake.
    initiator_premessage: tuple[Token, ...]
    #: Keys of the responder that the initiator knows before the handshake.
    responder_premessage: tuple[Token, ...]
    #: The messages; even indexes are sent by the initiator, odd ones by the responder.
    messages: tuple[tuple[Token, ...], ...]


_P = HandshakePattern

#: Every handshake pattern of sections 7.4 and 7.5, without modifiers.
PATTERNS: Final[Mapping[str, HandshakePattern]] = {
    # One-way patterns (7.4): a single message, initiator -> responder.
    "N": _P((), ("s",), (("e", "es"),)),
    "K": _P(("s",), ("s",), (("e", "es", "ss"),)),
    "X": _P((), ("s",), (("e", "es", "s", "ss"),)),
    # Fundamental interactive patterns (7.4).
    "NN": _P((), (), (("e",), ("e", "ee"))),
    "NK": _P((), ("s",), (("e", "es"), ("e", "ee"))),
    "NX": _P((), (), (("e",), ("e", "ee", "s", "es"))),
    "XN": _P((), (), (("e",), ("e", "ee"), ("s", "se"))),
    "XK": _P((), ("s",), (("e", "es"), ("e", "ee"), ("s", "se"))),
    "XX": _P((), (), (("e",), ("e", "ee", "s", "es"), ("s", "se"))),
    "KN": _P(("s",), (), (("e",), ("e", "ee", "se"))),
    "KK": _P(("s",), ("s",), (("e", "es", "ss"), ("e", "ee", "se"))),
    "KX": _P(("s",), (), (("e",), ("e", "ee", "se", "s", "es"))),
    "IN": _P((), (), (("e", "s"), ("e", "ee", "se"))),
    "IK": _P((), ("s",), (("e", "es", "s", "ss"), ("e", "ee", "se"))),
    "IX": _P((), (), (("e", "s"), ("e", "ee", "se", "s", "es"))),
    # Deferred patterns (7.5): a "1" defers that party's authentication by one message.
    "NK1": _P((), ("s",), (("e",), ("e", "ee", "es"))),
    "NX1": _P((), (), (("e",), ("e", "ee", "s"), ("es",))),
    "X1N": _P((), (), (("e",), ("e", "ee"), ("s",), ("se",))),
    "X1K": _P((), ("s",), (("e", "es"), ("e", "ee"), ("s",), ("se",))),
    "XK1": _P((), ("s",), (("e",), ("e", "ee", "es"), ("s", "se"))),
    "X1K1": _P((), ("s",), (("e",), ("e", "ee", "es"), ("s",), ("se",))),
    "X1X": _P((), (), (("e",), ("e", "ee", "s", "es"), ("s",), ("se",))),
    "XX1": _P((), (), (("e",), ("e", "ee", "s"), ("es", "s", "se"))),
    "X1X1": _P((), (), (("e",), ("e", "ee", "s"), ("es", "s"), ("se",))),
    "K1N": _P(("s",), (), (("e",), ("e", "ee"), ("se",))),
    "K1K": _P(("s",), ("s",), (("e", "es"), ("e", "ee"), ("se",))),
    "KK1": _P(("s",), ("s",), (("e",), ("e", "ee", "se", "es"))),
    "K1K1": _P(("s",), ("s",), (("e",), ("e", "ee", "es"), ("se",))),
    "K1X": _P(("s",), (), (("e",), ("e", "ee", "s", "es"), ("se",))),
    "KX1": _P(("s",), (), (("e",), ("e", "ee", "se", "s"), ("es",))),
    "K1X1": _P(("s",), (), (("e",), ("e", "ee", "s"), ("se", "es"))),
    "I1N": _P((), (), (("e", "s"), ("e", "ee"), ("se",))),
    "I1K": _P((), ("s",), (("e", "es", "s"), ("e", "ee"), ("se",))),
    "IK1": _P((), ("s",), (("e", "s"), ("e", "ee", "se", "es"))),
    "I1K1": _P((), ("s",), (("e", "s"), ("e", "ee", "es"), ("se",))),
    "I1X": _P((), (), (("e", "s"), ("e", "ee", "s", "es"), ("se",))),
    "IX1": _P((), (), (("e", "s"), ("e", "ee", "se", "s"), ("es",))),
    "I1X1": _P((), (), (("e", "s"), ("e", "ee", "s"), ("se", "es"))),
}

# Noise_<pattern><modifiers>_<dh>_<cipher>_<hash>; patterns are upper case and
# digits, modifiers start lower case and are joined with "+".
_NAME_RE: Final = re.compile(r"Noise_([A-Z0-9]+)([a-z][a-z0-9+]*)?_([^_]+)_([^_]+)_([^_]+)")
_PSK_RE: Final = re.compile(r"psk(0|[1-9][0-9]*)")


@dataclass(frozen=True, slots=True)
class NoiseProtocol:
    """A parsed protocol name: the pattern with its modifiers applied."""

    #: The full protocol name, e.g. ``Noise_IK_25519_ChaChaPoly_SHA256``.
    name: str
    #: The base pattern's name, e.g. ``IK``.
    pattern_name: str
    #: The pattern with the ``psk`` tokens of the modifiers inserted.
    pattern: HandshakePattern
    #: How many pre-shared keys the handshake uses (one per ``psk`` token).
    psk_count: int

    @property
    def one_way(self) -> bool:
        """True for the one-way patterns (N, K, X): transport goes initiator -> responder only."""
        return len(self.pattern.messages) == 1


def parse_protocol_name(name: str) -> NoiseProtocol:
    """Parse ``Noise_<PATTERN><modifiers>_25519_ChaChaPoly_SHA256``.

    Raises :class:`LocalProtocolError` for a malformed name, an unknown pattern,
    a modifier other than ``pskN`` (or a repeated or out-of-range one), or
    cryptographic functions other than 25519, ChaChaPoly and SHA256.
    """
    match = _NAME_RE.fullmatch(name)
    if match is None:
        raise LocalProtocolError(
            f"not a Noise protocol name: {name!r}; expected Noise_<PATTERN>_<DH>_<CIPHER>_<HASH>"
        )
    pattern_name, modifiers, dh_name, cipher_name, hash_name = match.groups()
    for kind, got, supported in (
        ("DH", dh_name, crypto.DH_NAME),
        ("cipher", cipher_name, crypto.CIPHER_NAME),
        ("hash", hash_name, crypto.HASH_NAME),
    ):
        if got != supported:
            raise LocalProtocolError(
                f"unsupported Noise {kind} functions {got!r} in {name!r}: only {supported!r}"
            )
    base = PATTERNS.get(pattern_name)
    if base is None:
        raise LocalProtocolError(f"unknown Noise handshake pattern {pattern_name!r} in {name!r}")
    messages = [list(tokens) for tokens in base.messages]
    positions: list[int] = []
    for modifier in modifiers.split("+") if modifiers else ():
        psk_match = _PSK_RE.fullmatch(modifier)
        if psk_match is None:
            raise LocalProtocolError(f"unsupported Noise modifier {modifier!r} in {name!r}")
        position = int(psk_match.group(1))
        if position > len(messages):
            raise LocalProtocolError(
                f"{modifier!r} in {name!r}: pattern {pattern_name} has {len(messages)} message(s)"
            )
        if position in positions:
            raise LocalProtocolError(f"{modifier!r} is repeated in {name!r}")
        positions.append(position)
    for position in positions:
        if position == 0:
            messages[0].insert(0, "psk")
        else:
            messages[position - 1].append("psk")
    pattern = HandshakePattern(
        base.initiator_premessage,
        base.responder_premessage,
        tuple(tuple(tokens) for tokens in messages),
    )
    return NoiseProtocol(name, pattern_name, pattern, len(positions))


class CipherState:
    """A cipher key and a nonce (section 5.1): what encrypts the transport after the handshake.

    With no key, ``encrypt_with_ad`` and ``decrypt_with_ad`` return their input
    unchanged, as the specification says (this happens only early in a handshake).
    """

    __slots__ = ("_cipher", "_n")

    def __init__(self, key: bytes | None = None) -> None:
        """Create a state with ``key`` (32 bytes) or with no key, and nonce 0."""
        # The cipher object for k, built once per key; None while k is empty.
        self._cipher: crypto.ChaChaPoly | None = None
        # The next nonce to use (n).
        self._n = 0
        self.initialize_key(key)

    def __repr__(self) -> str:
        return f"CipherState(has_key={self.has_key()}, nonce={self._n})"

    def initialize_key(self, key: bytes | None) -> None:
        """Set the key (``None`` empties it) and reset the nonce to 0."""
        self._cipher = None if key is None else crypto.ChaChaPoly(key)
        self._n = 0

    def has_key(self) -> bool:
        """Return True if the state has a key."""
        return self._cipher is not None

    @property
    def nonce(self) -> int:
        """The nonce the next encryption or decryption will use."""
        return self._n

    def set_nonce(self, n: int) -> None:
        """Set the nonce to ``n`` (0 to 2**64-1); reusing a nonce under one key breaks security."""
        if not 0 <= n <= _MAX_NONCE:
            raise LocalProtocolError(f"a Noise nonce is from 0 to 2**64-1, not {n}")
        self._n = n

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` with associated data ``ad`` and advance the nonce.

        Raises :class:`LocalProtocolError` if the nonces are exhausted or the
        ciphertext would exceed 65535 bytes.
        """
        cipher = self._cipher
        if cipher is None:
            if len(plaintext) > MAX_MESSAGE_LEN:
                raise LocalProtocolError(
                    f"a Noise message is at most {MAX_MESSAGE_LEN} bytes, not {len(plaintext)}"
                )
            return plaintext
        n = self._n
        if n >= _MAX_NONCE:
            raise LocalProtocolError("the nonces of this key are exhausted; start a new handshake")
        if len(plaintext) > MAX_PLAINTEXT_LEN:
            raise LocalProtocolError(
                f"a Noise plaintext is at most {MAX_PLAINTEXT_LEN} bytes, not {len(plaintext)}"
            )
        ciphertext = cipher.encrypt(n, ad, plaintext)
        self._n = n + 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt and authenticate ``ciphertext`` with associated data ``ad``.

        The nonce advances only on success. Raises :class:`DecryptionError` if
        authentication fails or the nonces are exhausted, and
        :class:`RemoteProtocolError` for a message over 65535 bytes.
        """
        if len(ciphertext) > MAX_MESSAGE_LEN:
            raise RemoteProtocolError(
                f"a Noise message is at most {MAX_MESSAGE_LEN} bytes, not {len(ciphertext)}"
            )
        cipher = self._cipher
        if cipher is None:
            return ciphertext
        n = self._n
        if n >= _MAX_NONCE:
            raise DecryptionError("the nonces of this key are exhausted")
        plaintext = cipher.decrypt(n, ad, ciphertext)
        self._n = n + 1
        return plaintext

    def encrypt_into(self, ad: bytes, plaintext: crypto.Buffer, out: crypto.Buffer) -> int:
        """Like ``encrypt_with_ad``, writing into ``out`` (16 bytes longer than
        ``plaintext``); returns the ciphertext length. The transport's fast path."""
        cipher = self._cipher
        if cipher is None:
            raise LocalProtocolError("encrypt_into needs a CipherState with a key")
        n = self._n
        if n >= _MAX_NONCE:
            raise LocalProtocolError("the nonces of this key are exhausted; start a new handshake")
        if len(plaintext) > MAX_PLAINTEXT_LEN:
            raise LocalProtocolError(
                f"a Noise plaintext is at most {MAX_PLAINTEXT_LEN} bytes, not {len(plaintext)}"
            )
        written = cipher.encrypt_into(n, ad, plaintext, out)
        self._n = n + 1
        return written

    def decrypt_into(self, ad: bytes, ciphertext: crypto.Buffer, out: crypto.Buffer) -> int:
        """Like ``decrypt_with_ad``, writing into ``out`` (16 bytes shorter than
        ``ciphertext``); returns the plaintext length. The nonce advances on success."""
        if len(ciphertext) > MAX_MESSAGE_LEN:
            raise RemoteProtocolError(
                f"a Noise message is at most {MAX_MESSAGE_LEN} bytes, not {len(ciphertext)}"
            )
        cipher = self._cipher
        if cipher is None:
            raise LocalProtocolError("decrypt_into needs a CipherState with a key")
        n = self._n
        if n >= _MAX_NONCE:
            raise DecryptionError("the nonces of this key are exhausted")
        written = cipher.decrypt_into(n, ad, ciphertext, out)
        self._n = n + 1
        return written

    def rekey(self) -> None:
        """Replace the key by Noise's REKEY of it (section 4.2); the nonce is unchanged.

        Both sides must rekey at the same point of the message stream.
        """
        if self._cipher is None:
            raise LocalProtocolError("cannot rekey a CipherState that has no key")
        self._cipher = crypto.ChaChaPoly(self._cipher.rekey())


class SymmetricState:
    """The chaining key, the handshake hash and a CipherState (section 5.2)."""

    __slots__ = ("_cipher_state", "_ck", "_h")

    def __init__(self, protocol_name: bytes) -> None:
        """Create the state for ``protocol_name``, as ``initialize_symmetric`` does."""
        # The chaining key (ck): every DH output goes through it.
        self._ck = b""
        # The handshake hash (h): the transcript so far.
        self._h = b""
        # Encrypts static keys and payloads once a key is mixed in.
        self._cipher_state = CipherState()
        self.initialize_symmetric(protocol_name)

    def __repr__(self) -> str:
        return f"SymmetricState(has_key={self._cipher_state.has_key()})"

    def initialize_symmetric(self, protocol_name: bytes) -> None:
        """Start from ``protocol_name``: padded to 32 bytes if shorter, else hashed."""
        if len(protocol_name) <= crypto.HASH_LEN:
            self._h = protocol_name.ljust(crypto.HASH_LEN, b"\x00")
        else:
            self._h = crypto.hash(protocol_name)
        self._ck = self._h
        self._cipher_state.initialize_key(None)

    def has_key(self) -> bool:
        """Return True once a key has been mixed in, so that payloads are encrypted."""
        return self._cipher_state.has_key()

    def mix_key(self, input_key_material: bytes) -> None:
        """Mix ``input_key_material`` (a DH output, or e.pub with PSKs) into ck and the key."""
        self._ck, temp_k = crypto.hkdf(self._ck, input_key_material, 2)
        self._cipher_state.initialize_key(temp_k)

    def mix_hash(self, data: bytes) -> None:
        """Mix ``data`` into the handshake hash."""
        self._h = crypto.hash(self._h + data)

    def mix_key_and_hash(self, input_key_material: bytes) -> None:
        """Mix ``input_key_material`` (a PSK) into ck, h and the key."""
        self._ck, temp_h, temp_k = crypto.hkdf(self._ck, input_key_material, 3)
        self.mix_hash(temp_h)
        self._cipher_state.initialize_key(temp_k)

    def get_handshake_hash(self) -> bytes:
        """Return h; after the handshake it identifies the session (channel binding)."""
        return self._h

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` with h as associated data (if keyed), then mix it into h."""
        ciphertext = self._cipher_state.encrypt_with_ad(self._h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """Decrypt ``ciphertext`` with h as associated data (if keyed), then mix it into h."""
        plaintext = self._cipher_state.decrypt_with_ad(self._h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Return the transport CipherStates: (initiator -> responder, responder -> initiator)."""
        temp_k1, temp_k2 = crypto.hkdf(self._ck, b"", 2)
        return CipherState(temp_k1), CipherState(temp_k2)


def _check_key(key: bytes | None, what: str, length: int = _DH_LEN) -> None:
    if key is not None and len(key) != length:
        raise LocalProtocolError(f"{what} must be {length} bytes, not {len(key)}")


def _require(key: bytes | None, what: str) -> bytes:
    # The checks in HandshakeState.__init__ make this unreachable for the patterns
    # of PATTERNS; it guards against a wrong table entry.
    if key is None:
        raise LocalProtocolError(f"the handshake pattern needs {what}, which is not set")
    return key


class HandshakeState:
    """One side of a Noise handshake (section 5.3).

    ``s`` and ``e`` are this side's X25519 private keys (32 bytes); ``rs`` and
    ``re`` the peer's public keys, needed exactly when the pattern's
    pre-messages list them. ``e`` is normally left out and generated when the
    pattern sends it; giving it fixes it, for test vectors. ``psks`` are the
    pre-shared keys (32 bytes each), one per ``pskN`` modifier, in the order the
    handshake uses them. Raises :class:`LocalProtocolError` if the protocol
    name is not supported or the keys do not fit the pattern.
    """

    __slots__ = (
        "_e",
        "_e_public",
        "_failed",
        "_final_hash",
        "_initiator",
        "_message_index",
        "_protocol",
        "_psk_index",
        "_psks",
        "_re",
        "_rs",
        "_s",
        "_s_public",
        "_symmetric",
    )

    def __init__(
        self,
        protocol_name: str,
        initiator: bool,
        prologue: bytes = b"",
        s: bytes | None = None,
        e: bytes | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        psks: Sequence[bytes] = (),
    ) -> None:
        """Initialize the handshake: protocol name, prologue and pre-message keys into h."""
        protocol = parse_protocol_name(protocol_name)
        pattern = protocol.pattern
        _check_key(s, "the static private key s")
        _check_key(e, "the ephemeral private key e")
        _check_key(rs, "the remote static public key rs")
        _check_key(re, "the remote ephemeral public key re")
        if len(psks) != protocol.psk_count:
            raise LocalProtocolError(
                f"{protocol_name} uses {protocol.psk_count} pre-shared key(s), not {len(psks)}"
            )
        for psk in psks:
            _check_key(psk, "a pre-shared key", _PSK_LEN)

        if initiator:
            own_pre, peer_pre = pattern.initiator_premessage, pattern.responder_premessage
            own_messages = pattern.messages[0::2]
            static_dh: tuple[Token, ...] = ("se", "ss")
        else:
            own_pre, peer_pre = pattern.responder_premessage, pattern.initiator_premessage
            own_messages = pattern.messages[1::2]
            static_dh = ("es", "ss")
        own_tokens = set(own_pre).union(*own_messages)
        if s is None and (own_tokens & {"s", *static_dh}):
            raise LocalProtocolError(f"{protocol_name} needs this side's static key s")
        if e is None and "e" in own_pre:
            raise LocalProtocolError(f"{protocol_name} needs this side's ephemeral key e")
        for token, key, what in (("s", rs, "rs"), ("e", re, "re")):
            if token in peer_pre and key is None:
                raise LocalProtocolError(f"{protocol_name} needs the peer's public key {what}")
            if token not in peer_pre and key is not None:
                raise LocalProtocolError(
                    f"{protocol_name} does not take {what}: its pre-messages do not list it"
                )

        # The parsed protocol name and pattern.
        self._protocol = protocol
        # True for the initiator: it writes the messages of even index.
        self._initiator = initiator
        # ck, h and the handshake cipher; None once split() handed out the keys.
        self._symmetric: SymmetricState | None = SymmetricState(protocol_name.encode("ascii"))
        # This side's static key pair (private key, public key), if any.
        self._s = s
        self._s_public = None if s is None else crypto.public_key(s)
        # This side's ephemeral key pair; generated by the "e" token unless given.
        self._e = e
        self._e_public = None if e is None else crypto.public_key(e)
        # The peer's static and ephemeral public keys, once known.
        self._rs = rs
        self._re = re
        # The pre-shared keys, and how many "psk" tokens have used them.
        self._psks = tuple(psks)
        self._psk_index = 0
        # Index of the next message of the pattern to write or read.
        self._message_index = 0
        # Set when a read or write failed half-way: the transcript is unusable.
        self._failed = False
        # The handshake hash, kept after split() drops the symmetric state.
        self._final_hash = b""

        symmetric = self._symmetric
        symmetric.mix_hash(prologue)
        for owner_is_initiator, tokens in (
            (True, pattern.initiator_premessage),
            (False, pattern.responder_premessage),
        ):
            local = owner_is_initiator == initiator
            for token in tokens:
                match token:
                    case "s":
                        public = _require(self._s_public if local else self._rs, "s")
                        symmetric.mix_hash(public)
                    case "e":
                        public = _require(self._e_public if local else self._re, "e")
                        symmetric.mix_hash(public)
                        if protocol.psk_count:
                            symmetric.mix_key(public)
                    case _:  # pragma: no cover - pre-messages hold only keys
                        raise LocalProtocolError(f"invalid pre-message token {token!r}")

    def __repr__(self) -> str:
        total = len(self._protocol.pattern.messages)
        role = "initiator" if self._initiator else "responder"
        state = "failed" if self._failed else f"message {self._message_index}/{total}"
        return f"HandshakeState({self._protocol.name!r}, {role}, {state})"

    @property
    def protocol_name(self) -> str:
        """The Noise protocol name this handshake runs."""
        return self._protocol.name

    @property
    def is_initiator(self) -> bool:
        """True on the initiator's side."""
        return self._initiator

    @property
    def is_complete(self) -> bool:
        """True once every handshake message has been written or read."""
        return self._message_index == len(self._protocol.pattern.messages)

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key, once known (given, or received in the handshake)."""
        return self._rs

    @property
    def handshake_hash(self) -> bytes:
        """The handshake hash h: the transcript so far, final once ``is_complete``."""
        if self._symmetric is None:
            return self._final_hash
        return self._symmetric.get_handshake_hash()

    def _check_turn(self, writing: bool) -> SymmetricState:
        if self._failed:
            raise LocalProtocolError("this handshake failed earlier; start a new one")
        if self._symmetric is None or self.is_complete:
            raise LocalProtocolError("the handshake is complete; use split() for transport")
        my_turn = (self._message_index % 2 == 0) == self._initiator
        if writing and not my_turn:
            raise LocalProtocolError(
                f"handshake message {self._message_index} is the peer's to send; read it first"
            )
        if not writing and my_turn:
            raise LocalProtocolError(
                f"handshake message {self._message_index} is this side's to send; write it first"
            )
        return self._symmetric

    def _dh(self, local: bytes | None, remote: bytes | None, token: str) -> bytes:
        return crypto.dh(
            _require(local, f"a local key for {token!r}"),
            _require(remote, f"a remote key for {token!r}"),
        )

    def _mix_token(self, symmetric: SymmetricState, token: Token) -> None:
        # The tokens that read and write handle alike: the DHs and "psk".
        match token:
            case "ee":
                symmetric.mix_key(self._dh(self._e, self._re, token))
            case "es" if self._initiator:
                symmetric.mix_key(self._dh(self._e, self._rs, token))
            case "es":
                symmetric.mix_key(self._dh(self._s, self._re, token))
            case "se" if self._initiator:
                symmetric.mix_key(self._dh(self._s, self._re, token))
            case "se":
                symmetric.mix_key(self._dh(self._e, self._rs, token))
            case "ss":
                symmetric.mix_key(self._dh(self._s, self._rs, token))
            case "psk":
                symmetric.mix_key_and_hash(self._psks[self._psk_index])
                self._psk_index += 1
            case _:  # pragma: no cover - "e" and "s" are handled by the callers
                raise LocalProtocolError(f"invalid token {token!r}")

    def _message_len(self, tokens: tuple[Token, ...], payload_len: int, keyed: bool) -> int:
        # The length write_message will produce, computed before any state changes.
        length = 0
        for token in tokens:
            match token:
                case "e":
                    length += _DH_LEN
                    keyed = keyed or self._protocol.psk_count > 0
                case "s":
                    length += _DH_LEN + (_TAG_LEN if keyed else 0)
                case _:
                    keyed = True
        return length + payload_len + (_TAG_LEN if keyed else 0)

    def write_message(self, payload: bytes = b"") -> bytes:
        """Return the next handshake message, carrying ``payload``.

        The payload is encrypted if a key has been established by then (not in
        the first message of NN, for example: check the pattern before sending
        secrets). Raises :class:`LocalProtocolError` if it is not this side's
        turn, the handshake is over, or the message would exceed 65535 bytes.
        """
        symmetric = self._check_turn(writing=True)
        tokens = self._protocol.pattern.messages[self._message_index]
        length = self._message_len(tokens, len(payload), symmetric.has_key())
        if length > MAX_MESSAGE_LEN:
            raise LocalProtocolError(
                f"handshake message would be {length} bytes; the maximum is {MAX_MESSAGE_LEN}"
            )
        parts: list[bytes] = []
        try:
            for token in tokens:
                match token:
                    case "e":
                        if self._e is None:
                            self._e = crypto.generate_private_key()
                            self._e_public = crypto.public_key(self._e)
                        e_public = _require(self._e_public, "e")
                        parts.append(e_public)
                        symmetric.mix_hash(e_public)
                        if self._protocol.psk_count:
                            symmetric.mix_key(e_public)
                    case "s":
                        parts.append(symmetric.encrypt_and_hash(_require(self._s_public, "s")))
                    case _:
                        self._mix_token(symmetric, token)
            parts.append(symmetric.encrypt_and_hash(payload))
        except BaseException:
            self._failed = True
            raise
        self._message_index += 1
        return b"".join(parts)

    def read_message(self, message: bytes) -> bytes:
        """Process the peer's next handshake message and return its payload.

        Raises :class:`RemoteProtocolError` (or its subclasses
        :class:`DecryptionError`, :class:`HandshakeError`) if the message is too
        short, too long, fails authentication or holds an invalid key; after
        that the handshake cannot continue. Raises :class:`LocalProtocolError`
        if it is this side's turn to write or the handshake is over.
        """
        symmetric = self._check_turn(writing=False)
        if len(message) > MAX_MESSAGE_LEN:
            raise RemoteProtocolError(
                f"handshake message of {len(message)} bytes; the maximum is {MAX_MESSAGE_LEN}"
            )
        tokens = self._protocol.pattern.messages[self._message_index]
        offset = 0
        try:
            for token in tokens:
                match token:
                    case "e":
                        remote_e = self._take(message, offset, _DH_LEN)
                        offset += _DH_LEN
                        self._re = remote_e
                        symmetric.mix_hash(remote_e)
                        if self._protocol.psk_count:
                            symmetric.mix_key(remote_e)
                    case "s":
                        length = _DH_LEN + (_TAG_LEN if symmetric.has_key() else 0)
                        encrypted = self._take(message, offset, length)
                        offset += length
                        self._rs = symmetric.decrypt_and_hash(encrypted)
                    case _:
                        self._mix_token(symmetric, token)
            payload = symmetric.decrypt_and_hash(message[offset:])
        except BaseException:
            self._failed = True
            raise
        self._message_index += 1
        return payload

    def _take(self, message: bytes, offset: int, length: int) -> bytes:
        if len(message) < offset + length:
            raise RemoteProtocolError(
                f"handshake message {self._message_index} is too short ({len(message)} bytes)"
            )
        return message[offset : offset + length]

    def split(self) -> tuple[CipherState, CipherState]:
        """Return the transport ciphers ``(c1, c2)`` once the handshake is complete.

        ``c1`` encrypts initiator -> responder and ``c2`` responder -> initiator,
        on both sides. It can be called once; the handshake's secrets are dropped.
        """
        if self._failed:
            raise LocalProtocolError("this handshake failed; there are no keys to split")
        if not self.is_complete:
            raise LocalProtocolError("the handshake is not complete yet")
        if self._symmetric is None:
            raise LocalProtocolError("split() was already called for this handshake")
        symmetric = self._symmetric
        self._final_hash = symmetric.get_handshake_hash()
        self._symmetric = None
        self._e = None
        return symmetric.split()
