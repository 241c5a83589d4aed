"""What the chat API takes and gives.

Text is plain text, exactly as written: the API neither renders nor escapes it, so
whatever shows it (the web console, a ticket system) must escape it for its medium.
"""

from __future__ import annotations

import datetime
import enum
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from litestar.openapi.spec import OpenAPIType, Reference, Schema
from msgspec import Meta

from deskside.console.api import Id, SmallId
from deskside.protocol import messages as m

__all__ = ["ChatDirection", "ChatEvent", "ChatLineView", "ChatStatus", "NewChatLine"]


class ChatDirection(enum.StrEnum):
    """Who wrote a line: the technician (to the user) or the user (from them)."""

    TO_USER = "to_user"
    FROM_USER = "from_user"


class ChatStatus(enum.StrEnum):
    """Where a line is: a technician's is pending until the device shows it (delivered)
    or refuses it; a user's is received."""

    PENDING = "pending"
    DELIVERED = "delivered"
    REFUSED = "refused"
    RECEIVED = "received"


class NewChatLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A technician's line for the user of the ticket's device."""

    text: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=m.CHAT_TEXT_MAX,
            pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$",
            description="Plain text (line feeds and tabs allowed; no other control "
            "characters), shown to the user exactly as written.",
        ),
    ]


class ChatLineView(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a ticket's chat. ``text`` is plain text: escape it to show it."""

    id: Id
    ticket_id: SmallId
    device_id: str
    direction: ChatDirection
    # Who: "user:alice" (a technician), "device-user:bob" (the device's user).
    author: str
    text: str
    sent_at: datetime.datetime
    status: ChatStatus
    # A technician's line: its number on the device.
    seq: Annotated[int, Meta(ge=1, le=2**31 - 1)] | None = None
    delivered_at: datetime.datetime | None = None
    # Why the device refused it.
    error: str = ""


class ChatEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One server-sent event of a chat's ``/stream``: ``line``, its data a
    ``ChatLineView`` in JSON. Only the OpenAPI document uses it: the stream is written
    by hand."""

    event: Literal["line"]
    data: str

    openapi_extra: ClassVar[dict[str, Any]] = {
        "properties": {
            "event": Schema(const="line"),
            "data": Schema(
                type=OpenAPIType.STRING,
                content_media_type="application/json",
                content_schema=Reference("#/components/schemas/ChatLineView"),
            ),
        }
    }
