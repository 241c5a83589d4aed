"""What every capability's REST API shares: bounded integers, the error body and its
responses, the Bearer scheme, text without NUL, and closed request bodies in the
OpenAPI document.

Every integer the API takes or gives has bounds, in its type and so in the document:
a number a client sends beyond them is a 400, never a value that overflows the
database's keys (a 500). Ids are ``Id`` (a ``BigId`` key, 1 to ``MAX_ID``) or
``SmallId`` (an ``Integer`` key), sizes and counts ``Count``, exit codes ``ExitCode``
(the protocol's bounds). Route parameters, which Litestar reads from ``Parameter``
rather than from ``msgspec.Meta``, use ``IdParameter``.

Every route documents the errors it may answer with ``responses=errors(...)``: 401
and 403 always (the router's guard and the route's scope), and the codes given (400,
404, 409, 504), each with ``ErrorView``, the body ``ConsoleError`` and Litestar's own
refusals share. A route that answers other than JSON documents its media type with
``content(...)``.

``StructSchemas`` writes ``additionalProperties: false`` for the structs that refuse
unknown fields (``forbid_unknown_fields=True``), and the ``openapi_extra`` a struct
declares for a rule across its fields. ``refuse_nul``, a guard of the API router,
refuses a NUL character anywhere in a request.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, Schema, SecurityScheme
from litestar.params import Parameter
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from deskside.console.errors import InvalidRequest

__all__ = [
    "BEARER",
    "COMPONENTS",
    "MAX_ID",
    "SECURITY",
    "Count",
    "ErrorView",
    "ExitCode",
    "Id",
    "IdParameter",
    "SmallId",
    "StructSchemas",
    "content",
    "errors",
    "refuse_nul",
    "strict_body",
]

# The largest id and count: the largest integer every JSON reader keeps exactly (a
# double's 53 bits: JavaScript's Number.MAX_SAFE_INTEGER), and so every validator of
# the document compares exactly; well within a BigId key (63 bits).
MAX_ID: Final = 2**53 - 1

Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
"""The id of a row with a ``BigId`` key: a snapshot, an audit or a timeline entry."""

SmallId = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
"""The id of a row with an ``Integer`` key (32 bits on PostgreSQL): a ticket."""

Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
"""A size or a count: bytes, frames, reopenings."""

ExitCode = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**32)]
"""A process's exit code, as agents report it (negative: ended by a signal)."""

IdParameter = Annotated[int, Parameter(ge=1, le=MAX_ID)]
"""An id in a route's path or query."""


class ErrorView(msgspec.Struct, frozen=True, kw_only=True):
    """Why a request was refused."""

    status_code: Annotated[int, msgspec.Meta(ge=400, le=599)]
    detail: str
    # What was wrong with which parameter, for a request that did not validate.
    extra: list[dict[str, Any]] | dict[str, Any] | None = None


_MEANINGS: Final = {
    400: "The request is malformed or a value is not allowed",
    401: "No API token, or not a valid one",
    403: "The API token lacks the scope, or its technician the right",
    404: "No such object",
    409: "The request clashes with the object's state",
    429: "Too many requests of this kind: wait, then try again",
    504: "The device did not answer in time",
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """The error responses of a route: 401, 403 and ``codes``."""
    return {
        code: ResponseSpec(
            data_container=ErrorView, description=_MEANINGS[code], generate_examples=False
        )
        for code in sorted({401, 403, *codes})
    }


def content(code: int, data: type, media_type: str) -> dict[int, ResponseSpec]:
    """A response of a route that answers other than JSON (a stream, a file): its
    media type, in place of the JSON Litestar would document. (The route itself keeps
    JSON, so its refusals stay JSON.)"""
    return {
        code: ResponseSpec(
            data_container=data,
            media_type=media_type,
            description="Request fulfilled",
            generate_examples=False,
        )
    }


# The methods whose requests have a body.
_WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
# A NUL character escaped in JSON text: ``\u0000`` after an even run of backslashes
# (``\\u0000`` is a backslash and "u0000", which is text like any other).
_ESCAPED_NUL: Final = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


async def refuse_nul(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A route guard: no NUL character in the path, the query or a JSON body.

    PostgreSQL keeps no NUL in text (the statement fails: it was a 500) and SQLite
    does; refused on both alike, before anything is read or written.
    """
    query = connection.scope.get("query_string", b"")
    if "\x00" in connection.scope["path"] or b"%00" in query or b"\x00" in query:
        raise InvalidRequest("the path and the query may not hold a NUL character")
    if (
        isinstance(connection, Request)
        and connection.method in _WITH_BODY
        and _ESCAPED_NUL.search(await connection.body())
    ):
        raise InvalidRequest("text may not hold a NUL character (\\u0000)")


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """A ``before_request`` hook: a JSON body is read as strictly as the document says.

    Litestar converts a body leniently (``0`` for ``false``, ``"1"`` for ``1``), which
    the document does not allow; a body that is not exactly of the route's struct, or
    not JSON at all (bytes that are not UTF-8 reached Litestar's decoder as a 500), is
    refused here (400) before the route runs. A hook, not a guard: it runs after the
    guards, so a caller without the right is refused (403) before its body is judged.
    """
    if request.method not in _WITH_BODY:
        return
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None or not data.is_subclass_of(msgspec.Struct):
        return
    body = await request.body()
    if not body:
        return
    try:
        msgspec.json.decode(body, type=data.annotation, strict=True)
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the body is not JSON: {exc}") from exc
    else:
        return
    # JSON Schema's integers may be written 1.0: so may ours. Nothing else is eased.
    try:
        msgspec.json.decode(
            msgspec.json.encode(_integral(msgspec.json.decode(body))),
            type=data.annotation,
            strict=True,
        )
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"the body does not fit its schema: {exc}") from exc
    except msgspec.DecodeError as exc:
        # Typed decoding can stop at a wrong type before it sees the JSON is broken.
        raise InvalidRequest(f"the body is not JSON: {exc}") from exc


def _integral(value: Any) -> Any:
    """``value`` with every float that is a whole number made an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    return value


BEARER: Final = "bearer"
"""The name of the API's security scheme."""

COMPONENTS: Final = Components(
    security_schemes={
        BEARER: SecurityScheme(
            type="http",
            scheme="bearer",
            description="An API token (dsk_...): deskside-console apitoken create",
        )
    }
)
"""The document's components beyond the schemas: the Bearer scheme."""

SECURITY: Final[list[dict[str, list[str]]]] = [{BEARER: []}]
"""What the API router requires: an API token as a Bearer token."""


class StructSchemas(OpenAPISchemaPlugin):
    """The schema of every struct, as Litestar makes it, and then:

    * ``additionalProperties: false`` if it refuses unknown fields;
    * the ``openapi_extra`` it declares (Litestar ``Schema`` fields), for a rule
      across its fields;
    * the bounds of zero Litestar drops (it skips a falsy ``ge=0`` of an optional
      field);
    * the bounds of a list's integers (Litestar drops them: ``list[SmallId]``).
    """

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        """Every struct."""
        return not field_definition.is_union and field_definition.is_subclass_of(msgspec.Struct)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        """The struct's schema, completed."""
        others = [
            plugin
            for plugin in schema_creator.plugins
            if plugin is not self and plugin.is_plugin_supported_field(field_definition)
        ]
        schema: Schema = others[0].to_openapi_schema(field_definition, schema_creator)
        cls = field_definition.annotation
        if cls.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        extra: Mapping[str, Any] = getattr(cls, "openapi_extra", {})
        for key, value in extra.items():
            if key not in _SCHEMA_FIELDS:
                raise TypeError(f"{cls.__name__}.openapi_extra: {key!r} is not a Schema field")
            setattr(schema, key, value)
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        for field in info.fields:
            prop = (schema.properties or {}).get(field.encode_name)
            if isinstance(prop, Schema):
                _restore_zero_bounds(prop, field.type)
                _restore_item_bounds(prop, field.type)
                _restore_int_item_bounds(prop, field.type)
        return schema


_SCHEMA_FIELDS: Final = frozenset(field.name for field in dataclasses.fields(Schema))
_BOUNDS: Final = (
    ("ge", "minimum"),
    ("gt", "exclusive_minimum"),
    ("le", "maximum"),
    ("lt", "exclusive_maximum"),
)


def _restore_item_bounds(prop: Schema, type_info: msgspec.inspect.Type) -> None:
    """A list of texts: the pattern and least length of its items, which Litestar drops.

    Not their greatest length: documented, it makes a schema-driven client send
    bodies of every item at its longest (``argv``: 1,024 of 32 KiB), which the body
    limit refuses with a 413.
    """
    types = type_info.types if isinstance(type_info, msgspec.inspect.UnionType) else (type_info,)
    arrays = [prop, *(s for s in prop.one_of or () if isinstance(s, Schema))]
    for member in types:
        if isinstance(member, msgspec.inspect.Metadata):
            member = member.type
        if not (
            isinstance(member, msgspec.inspect.ListType)
            and isinstance(member.item_type, msgspec.inspect.StrType)
        ):
            continue
        item = member.item_type
        for array in arrays:
            if isinstance(array.items, Schema):
                array.items.pattern = item.pattern or array.items.pattern
                if item.min_length is not None:
                    array.items.min_length = item.min_length


def _restore_zero_bounds(prop: Schema, type_info: msgspec.inspect.Type) -> None:
    types = type_info.types if isinstance(type_info, msgspec.inspect.UnionType) else (type_info,)
    for member in types:
        if isinstance(member, msgspec.inspect.Metadata):
            member = member.type
        if isinstance(member, msgspec.inspect.IntType | msgspec.inspect.FloatType):
            for bound, key in _BOUNDS:
                if getattr(member, bound) == 0 and getattr(prop, key) is None:
                    setattr(prop, key, 0)


def _restore_int_item_bounds(prop: Schema, type_info: msgspec.inspect.Type) -> None:
    """A list of integers: its items' bounds, which Litestar drops."""
    if isinstance(type_info, msgspec.inspect.Metadata):
        type_info = type_info.type
    if not isinstance(type_info, msgspec.inspect.ListType) or not isinstance(prop.items, Schema):
        return
    item = type_info.item_type
    if isinstance(item, msgspec.inspect.Metadata):
        item = item.type
    if isinstance(item, msgspec.inspect.IntType):
        for bound, key in _BOUNDS:
            if getattr(item, bound) is not None and getattr(prop.items, key) is None:
                setattr(prop.items, key, getattr(item, bound))
