"""MessagePack encoding of wire messages, with limits.

``decode()`` is the one door through which a peer's bytes become a ``Message``. It
enforces the size limit before parsing, the per-field limits declared on the
message types while parsing, and turns every failure into ``RemoteProtocolError``:
no other exception escapes it, whatever the bytes.

A message whose tag this side does not know (sent by a newer peer) decodes to
``UnknownMessage``, which the caller reports and skips.
"""

from __future__ import annotations

from typing import Final

import msgspec

from .errors import LocalProtocolError, RemoteProtocolError
from .messages import MESSAGE_TYPES, Message

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "Codec", "UnknownMessage", "decode", "encode"]

# Largest encoded message accepted by default: a diagnostics snapshot or a screen
# keyframe fits with room to spare.
DEFAULT_MAX_MESSAGE_SIZE: Final = 16 << 20

_KNOWN_TAGS: Final = frozenset(t.__struct_config__.tag for t in MESSAGE_TYPES)


class UnknownMessage(msgspec.Struct, frozen=True):
    """A well-formed message of a type this side does not know."""

    type: str


class _Envelope(msgspec.Struct):
    """Just the tag of a message; every other field is ignored."""

    type: str


class Codec:
    """Encoder and decoder of ``Message`` with a maximum encoded size."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < 1:
            raise LocalProtocolError("max_message_size must be positive")
        # Largest encoded message this codec encodes or decodes.
        self.max_message_size = max_message_size
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(Message)
        self._envelope_decoder = msgspec.msgpack.Decoder(_Envelope)

    def encode(self, message: Message) -> bytes:
        """Encode ``message``; ``LocalProtocolError`` if it is over the size limit."""
        try:
            data = self._encoder.encode(message)
        except (TypeError, ValueError, OverflowError) as exc:
            raise LocalProtocolError(f"cannot encode {type(message).__name__}: {exc}") from exc
        if len(data) > self.max_message_size:
            raise LocalProtocolError(
                f"{type(message).__name__} is {len(data)} bytes encoded, "
                f"over the limit of {self.max_message_size}"
            )
        return data

    def decode(self, data: bytes | bytearray | memoryview) -> Message | UnknownMessage:
        """Decode a peer's bytes; anything invalid raises ``RemoteProtocolError``."""
        if len(data) > self.max_message_size:
            raise RemoteProtocolError(
                f"message of {len(data)} bytes is over the limit of {self.max_message_size}"
            )
        try:
            message: Message = self._decoder.decode(data)
        except msgspec.ValidationError as exc:
            unknown = self._unknown_tag(data)
            if unknown is not None:
                return UnknownMessage(unknown)
            raise RemoteProtocolError(f"invalid message: {exc}") from exc
        except (msgspec.DecodeError, RecursionError, ValueError, OverflowError) as exc:
            raise RemoteProtocolError(f"undecodable message: {exc}") from exc
        return message

    def _unknown_tag(self, data: bytes | bytearray | memoryview) -> str | None:
        """The tag of ``data`` if it is a map with a string tag this side does not know."""
        try:
            tag = self._envelope_decoder.decode(data).type
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError):
            return None
        if tag in _KNOWN_TAGS or not 0 < len(tag) <= 64:
            return None
        return tag


_default = Codec()


def encode(message: Message) -> bytes:
    """Encode ``message`` with the default limits."""
    return _default.encode(message)


def decode(data: bytes) -> Message | UnknownMessage:
    """Decode ``data`` with the default limits."""
    return _default.decode(data)
