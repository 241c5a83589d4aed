"""Fetch the agent's wheel from the console, pinned to the enrollment string's certificate.

The install scripts embed this file and run it with the machine's own Python
before any of Deskside is installed, so it uses the standard library only and
decodes the enrollment string's MessagePack by hand (the map of strings, bytes,
unsigned integers and nil that ``deskside.protocol.enrollment.Enrollment.encode``
writes)::

    python3 - ENROLLMENT-STRING WHEEL-NAME OUT-DIR

It connects to the console named in the string, compares the SHA-256 of the
certificate the server shows with the pinned fingerprint *before* sending
anything, and only then asks for ``/install/WHEEL-NAME``. Exit status 1 with a
message when anything does not match.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import ssl
import sys
import urllib.parse

PREFIX = "deskside:1:"
MAX_WHEEL = 64 << 20


def unpack(data: bytes) -> dict[str, object]:
    """The MessagePack map of an enrollment string (str keys; str, bin, uint, nil values)."""
    pos = 0

    def take(count: int) -> bytes:
        nonlocal pos
        chunk = data[pos : pos + count]
        if len(chunk) != count:
            raise ValueError("the enrollment string is cut short")
        pos += count
        return chunk

    def number(size: int) -> int:
        return int.from_bytes(take(size), "big")

    def value() -> object:
        first = take(1)[0]
        if 0xA0 <= first <= 0xBF:
            return take(first & 0x1F).decode()
        if first in (0xD9, 0xDA):
            return take(number(1 if first == 0xD9 else 2)).decode()
        if first in (0xC4, 0xC5):
            return take(number(1 if first == 0xC4 else 2))
        if first == 0xC0:
            return None
        if first <= 0x7F:
            return first
        if 0xCC <= first <= 0xCF:
            return number(1 << (first - 0xCC))
        raise ValueError(f"unexpected MessagePack type {first:#x} in the enrollment string")

    first = take(1)[0]
    if 0x80 <= first <= 0x8F:
        count = first & 0x0F
    elif first == 0xDE:
        count = number(2)
    else:
        raise ValueError("the enrollment string does not hold a map")
    fields: dict[str, object] = {}
    for _ in range(count):
        key = value()
        fields[str(key)] = value()
    return fields


def parse(text: str) -> tuple[str, int, str]:
    """(host, port, pinned fingerprint) of an enrollment string."""
    text = text.strip()
    if not text.startswith(PREFIX):
        raise ValueError(f"an enrollment string starts with {PREFIX}")
    body = text[len(PREFIX) :]
    fields = unpack(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    url = urllib.parse.urlsplit(str(fields.get("url", "")))
    fingerprint = fields.get("tls_fingerprint")
    if url.scheme != "wss" or not url.hostname:
        raise ValueError("the console is not reached over wss://; nothing to pin")
    if not isinstance(fingerprint, str) or len(fingerprint) != 64:
        raise ValueError("the enrollment string pins no TLS certificate")
    return url.hostname, url.port or 443, fingerprint.lower()


def fetch(host: str, port: int, fingerprint: str, path: str) -> bytes:
    """GET ``path`` from the console whose certificate has ``fingerprint``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The pinned fingerprint replaces the CA check (the certificate is self-signed).
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=60)
    try:
        connection.connect()
        der = connection.sock.getpeercert(binary_form=True) or b""
        if hashlib.sha256(der).hexdigest() != fingerprint:
            raise ValueError(
                f"the server at {host}:{port} does not show the console's pinned certificate"
            )
        connection.request("GET", path)
        response = connection.getresponse()
        if response.status != 200:
            raise ValueError(f"the console answered {response.status} for {path}")
        data = response.read(MAX_WHEEL + 1)
        if len(data) > MAX_WHEEL:
            raise ValueError(f"{path} is too big")
        return data
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    """Fetch the wheel named ``argv[1]`` into the directory ``argv[2]``."""
    if len(argv) != 3 or "/" in argv[1] or not argv[1].endswith(".whl"):
        print("usage: fetch ENROLLMENT-STRING WHEEL-NAME OUT-DIR", file=sys.stderr)
        return 2
    try:
        host, port, fingerprint = parse(argv[0])
        data = fetch(host, port, fingerprint, "/install/" + argv[1])
    except (ValueError, OSError) as exc:
        print(f"deskside: {exc}; nothing installed", file=sys.stderr)
        return 1
    with open(os.path.join(argv[2], argv[1]), "wb") as file:
        file.write(data)
    print(f"deskside: fetched {argv[1]} from {host}:{port} (certificate pinned)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
