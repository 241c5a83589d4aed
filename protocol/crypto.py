"""The cryptographic primitives of the secure channel, and nothing else.

This is the only module of Deskside that imports ``cryptography``. It provides the
three functions of the Noise cipher suite ``25519_ChaChaPoly_SHA256`` (Noise
revision 34, section 4): the DH functions over X25519, the cipher functions over
ChaCha20-Poly1305 (IETF, 96-bit nonce) and the hash functions over SHA-256, with
HMAC and HKDF as section 4.3 defines them.

Keys are raw ``bytes``: 32-byte X25519 private and public keys, 32-byte cipher
keys. Errors from ``cryptography`` are converted at this boundary: an invalid
peer key or an all-zero shared secret raises
:class:`~deskside.protocol.errors.HandshakeError`, a failed authentication tag
raises :class:`~deskside.protocol.errors.DecryptionError`.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import struct
from typing import Final, Literal, TypeAlias, overload

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from deskside.protocol.errors import DecryptionError, HandshakeError, LocalProtocolError

# What the AEAD reads from and writes into without copying.
Buffer: TypeAlias = bytes | bytearray | memoryview

__all__ = [
    "CIPHER_NAME",
    "DH_LEN",
    "DH_NAME",
    "HASH_LEN",
    "HASH_NAME",
    "KEY_LEN",
    "MAX_NONCE",
    "TAG_LEN",
    "Buffer",
    "ChaChaPoly",
    "dh",
    "generate_private_key",
    "hash",
    "hkdf",
    "hmac_hash",
    "make_self_signed_certificate",
    "public_key",
]

#: Name of the DH functions in a Noise protocol name.
DH_NAME: Final = "25519"
#: Name of the cipher functions in a Noise protocol name.
CIPHER_NAME: Final = "ChaChaPoly"
#: Name of the hash functions in a Noise protocol name.
HASH_NAME: Final = "SHA256"

#: Length of an X25519 public key and of a shared secret (Noise's DHLEN).
DH_LEN: Final = 32
#: Length of a cipher key.
KEY_LEN: Final = 32
#: Length of the authentication tag appended to every ciphertext.
TAG_LEN: Final = 16
#: Length of a SHA-256 digest (Noise's HASHLEN).
HASH_LEN: Final = 32
#: The largest nonce; Noise reserves it for :meth:`ChaChaPoly.rekey`.
MAX_NONCE: Final = 2**64 - 1

# Noise's ChaChaPoly nonce: 32 bits of zeros, then the 64-bit counter little-endian.
_NONCE: Final = struct.Struct("<4xQ")
_ZERO_KEY: Final = bytes(KEY_LEN)


def _check_private_key(private: bytes) -> None:
    if len(private) != DH_LEN:
        # Private keys are always local: a wrong one is a bug on this side.
        raise LocalProtocolError(f"an X25519 private key is {DH_LEN} bytes, not {len(private)}")


def generate_private_key() -> bytes:
    """Return a new random X25519 private key, as 32 raw bytes."""
    return X25519PrivateKey.generate().private_bytes_raw()


def public_key(private: bytes) -> bytes:
    """Return the 32-byte X25519 public key of the 32-byte ``private`` key."""
    _check_private_key(private)
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def dh(private: bytes, public: bytes) -> bytes:
    """Return the X25519 shared secret of a local ``private`` key and a peer's ``public`` key.

    Raises :class:`HandshakeError` if ``public`` is not a valid public key or the
    shared secret is all zeros (a low-order point: the peer is misbehaving).
    """
    _check_private_key(private)
    try:
        peer = X25519PublicKey.from_public_bytes(public)
        return X25519PrivateKey.from_private_bytes(private).exchange(peer)
    except ValueError as exc:
        raise HandshakeError("the peer's X25519 public key is invalid") from exc


class ChaChaPoly:
    """ChaCha20-Poly1305 under one key, as Noise's ENCRYPT, DECRYPT and REKEY.

    The underlying cipher object is built once per key, so encrypting many
    messages under one key costs no set-up per message. The caller owns the
    nonce: it must never use one twice with the same key.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        """Prepare the cipher for the 32-byte ``key``."""
        if len(key) != KEY_LEN:
            raise LocalProtocolError(f"a ChaChaPoly key is {KEY_LEN} bytes, not {len(key)}")
        # The cipher object; it holds the key, which is never exposed again.
        self._aead = ChaCha20Poly1305(key)

    def __repr__(self) -> str:
        return "ChaChaPoly(<key hidden>)"

    def encrypt(self, nonce: int, ad: bytes, plaintext: bytes) -> bytes:
        """Return ``plaintext`` encrypted under ``nonce``, authenticating ``ad``; adds 16 bytes."""
        return self._aead.encrypt(_NONCE.pack(nonce), plaintext, ad)

    def encrypt_into(self, nonce: int, ad: bytes, plaintext: Buffer, out: Buffer) -> int:
        """Like ``encrypt``, writing the ciphertext into ``out``; returns its length."""
        return self._aead.encrypt_into(_NONCE.pack(nonce), plaintext, ad, out)

    def decrypt_into(self, nonce: int, ad: bytes, ciphertext: Buffer, out: Buffer) -> int:
        """Like ``decrypt``, writing the plaintext into ``out``; returns its length."""
        try:
            return self._aead.decrypt_into(_NONCE.pack(nonce), ciphertext, ad, out)
        except InvalidTag as exc:
            raise DecryptionError("a message failed authentication") from exc

    def decrypt(self, nonce: int, ad: bytes, ciphertext: bytes) -> bytes:
        """Return the plaintext of ``ciphertext``; raise :class:`DecryptionError` if forged."""
        try:
            return self._aead.decrypt(_NONCE.pack(nonce), ciphertext, ad)
        except InvalidTag as exc:
            raise DecryptionError("a message failed authentication") from exc

    def rekey(self) -> bytes:
        """Return the next key: Noise's default REKEY (encrypt 32 zeros at nonce 2**64-1)."""
        return self.encrypt(MAX_NONCE, b"", _ZERO_KEY)[:KEY_LEN]


# Named after Noise's HASH(); it shadows the builtin only inside this module.
def hash(data: bytes) -> bytes:
    """Return the SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


def hmac_hash(key: bytes, data: bytes) -> bytes:
    """Return HMAC-SHA256 of ``data`` under ``key``."""
    return hmac.digest(key, data, "sha256")


@overload
def hkdf(
    chaining_key: bytes, input_key_material: bytes, num_outputs: Literal[2]
) -> tuple[bytes, bytes]: ...
@overload
def hkdf(
    chaining_key: bytes, input_key_material: bytes, num_outputs: Literal[3]
) -> tuple[bytes, bytes, bytes]: ...
def hkdf(
    chaining_key: bytes, input_key_material: bytes, num_outputs: Literal[2, 3]
) -> tuple[bytes, bytes] | tuple[bytes, bytes, bytes]:
    """Return two or three 32-byte outputs of Noise's HKDF (section 4.3).

    ``chaining_key`` is the HMAC key of the extract step, ``input_key_material``
    its message (zero to 32 bytes in Noise).
    """
    temp_key = hmac_hash(chaining_key, input_key_material)
    output1 = hmac_hash(temp_key, b"\x01")
    output2 = hmac_hash(temp_key, output1 + b"\x02")
    if num_outputs == 2:
        return output1, output2
    return output1, output2, hmac_hash(temp_key, output2 + b"\x03")


def make_self_signed_certificate(
    names: list[str], *, days: int = 3650
) -> tuple[bytes, bytes, bytes]:
    """A self-signed TLS certificate for ``names`` (host names or IP addresses).

    Returns ``(certificate PEM, private key PEM, certificate DER)``; the key is an
    unencrypted PKCS#8 P-256 key, for the console to keep in a file only it reads.
    """
    if not names:
        raise LocalProtocolError("a certificate needs at least one name")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, names[0][:64])])
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key_pem,
        certificate.public_bytes(serialization.Encoding.DER),
    )


def public_key_pin(cert_der: bytes) -> str:
    """SHA-256 of a certificate's SubjectPublicKeyInfo, base64: curl's ``--pinnedpubkey``."""
    import base64

    try:
        certificate = x509.load_der_x509_certificate(cert_der)
    except ValueError as exc:
        raise LocalProtocolError(f"not a DER certificate: {exc}") from exc
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")
