"""Timeline kinds: stored rows read and written in their shape, and never a crash."""

from __future__ import annotations

import datetime
import re
import typing
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar, get
from msgspec import UNSET

from deskside.console.timeline.kinds import (
    Assignment,
    EventData,
    EventKind,
    Note,
    Status,
    TimelineData,
    TimelineEntry,
    Unknown,
    decode,
    encode,
    from_row,
    kind_of,
)

from .rows import STORED

AT = datetime.datetime(2025, 3, 4, 10, 11, 12, tzinfo=datetime.UTC)
EVENT_TYPES: tuple[type[EventData], ...] = typing.get_args(EventData)


def tag(cls: type[TimelineData]) -> str:
    """The kind a struct type is tagged with."""
    return str(cls.__struct_config__.tag)


def fields_of(cls: type[TimelineData]) -> tuple[mi.Field, ...]:
    """The fields of a struct type."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return info.fields


# -- Values of a type, for round trips -----------------------------------------------------


def values(t: mi.Type) -> st.SearchStrategy[Any]:
    """Values of the msgspec type ``t`` that JSON carries as they are."""
    if isinstance(t, mi.IntType):  # within its bounds, and msgspec's range
        low = t.ge if t.ge is not None else -(2**63)
        high = t.le if t.le is not None else 2**63 - 1
        return st.integers(low, high)
    if isinstance(t, mi.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(t, mi.StrType):
        return st.text(max_size=20)
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.EnumType):
        return st.sampled_from(list(t.cls))
    if isinstance(t, mi.VarTupleType):
        return st.lists(values(t.item_type), max_size=3).map(tuple)
    if isinstance(t, mi.DictType):
        return st.dictionaries(values(t.key_type), values(t.value_type), max_size=3)
    if isinstance(t, mi.UnionType):
        return st.one_of([values(member) for member in t.types])
    if isinstance(t, mi.StructType):
        return structs(t.cls)
    raise NotImplementedError(f"no strategy for {t!r}")


def structs(cls: type) -> st.SearchStrategy[Any]:
    """Instances of ``cls``; a key writers may leave out is left out at times."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    fields = {
        f.name: values(f.type) if f.required else st.just(UNSET) | values(f.type)
        for f in info.fields
    }
    return st.builds(cls, **fields)


# -- Rows as stored today ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data", "typed"), [s[1:] for s in STORED], ids=[s[0] for s in STORED]
)
def test_a_stored_row_is_read_as_its_kind(
    kind: str, data: dict[str, Any], typed: EventData
) -> None:
    assert decode(kind, data) == typed
    assert kind_of(typed) == kind


@pytest.mark.parametrize(
    ("kind", "data", "typed"), [s[1:] for s in STORED], ids=[s[0] for s in STORED]
)
def test_an_entry_is_written_in_the_stored_shape(
    kind: str, data: dict[str, Any], typed: EventData
) -> None:
    written_kind, written = encode(typed)
    assert (written_kind, written) == (kind, data)
    assert list(written) == list(data)  # and in the writers' order of keys
    assert type(written_kind) is EventKind


def test_every_kind_has_a_stored_shape_and_one_type() -> None:
    written = {kind for _, kind, _, _ in STORED}
    assert written == set(EventKind) - {EventKind.UNKNOWN}
    assert sorted(tag(cls) for cls in EVENT_TYPES) == sorted(written)


def test_kinds_fit_their_column() -> None:
    assert max(len(kind) for kind in EventKind) <= 32  # ticket_events.kind: String(32)


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_round_trip(cls: type[EventData], data: st.DataObject) -> None:
    entry = data.draw(structs(cls))
    kind, stored = encode(entry)
    assert decode(kind, stored) == entry
    assert msgspec.json.decode(msgspec.json.encode(stored)) == stored  # JSON types only


# -- What cannot be typed ------------------------------------------------------------------


def test_a_value_beyond_its_bounds_is_read_as_unknown() -> None:
    data = {"title": "t", "source": "api", "priority": 2**63, "impact": 1, "urgency": 1}
    assert decode("created", data) == Unknown(stored_kind="created", data=data)


def test_an_unknown_kind_is_read_as_unknown() -> None:
    data = {"widget": 3, "nested": {"a": [1, None]}}
    entry = decode("escalated_to_mars", data)
    assert entry == Unknown(stored_kind="escalated_to_mars", data=data)
    assert entry.data is not data
    assert kind_of(entry) is EventKind.UNKNOWN


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("note", {}),  # a key missing
        ("note", {"text": 7}),  # a value of another type
        ("status", {"from": "new"}),
        ("assignment", {"from": None, "to": ["alice"]}),
        ("command", {"command": "c", "argv": "ls", "device": "d", "shell": False, "timeout": 1.0}),
        ("created", {"title": "t", "source": "api", "priority": True, "impact": 1, "urgency": 1}),
        (
            "screen_ended",
            {"screen_session": "s", "device": "d", "reason": "teleported", "error": ""},
        ),  # a reason the protocol does not have
        ("change", {"title": {"from": "a"}}),
        ("unknown", {"stored_kind": "note", "data": {}}),  # "unknown" is never stored
    ],
)
def test_a_row_of_a_bad_shape_is_read_as_unknown(kind: str, data: dict[str, Any]) -> None:
    assert decode(kind, data) == Unknown(stored_kind=kind, data=data)


def test_keys_a_kind_does_not_have_are_ignored() -> None:
    assert decode("note", {"text": "hi", "mood": "good", "kind": "status"}) == Note(text="hi")


def test_unknown_is_not_written() -> None:
    with pytest.raises(TypeError):
        encode(Unknown(stored_kind="x", data={}))  # type: ignore[arg-type]


def json_values(*, finite: bool) -> st.SearchStrategy[Any]:
    """Values a JSON column may hold (Python's ``json`` writes NaN and infinities)."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=not finite, allow_infinity=not finite)
        | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=10,
    )


def rows(*, finite: bool) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """A kind and data, mostly of the keys the kinds have, so that decoding gets past
    the first missing one."""
    keys = sorted({f.encode_name for cls in EVENT_TYPES for f in fields_of(cls)})
    return st.tuples(
        st.sampled_from([str(k) for k in EventKind]) | st.text(max_size=30),
        st.dictionaries(st.sampled_from(keys) | st.text(max_size=10), json_values(finite=finite)),
    )


@given(rows(finite=False))
def test_decoding_never_fails(row: tuple[str, dict[str, Any]]) -> None:
    kind, data = row
    entry = decode(kind, data)
    if isinstance(entry, Unknown):
        assert entry == Unknown(stored_kind=kind, data=data)
    else:
        assert kind_of(entry) == kind


@given(rows(finite=True))
def test_what_is_read_is_written_back(row: tuple[str, dict[str, Any]]) -> None:
    entry = decode(*row)
    if not isinstance(entry, Unknown):
        kind, stored = encode(entry)
        assert set(stored) <= set(row[1])  # nothing made up
        assert decode(kind, stored) == entry


# -- The API's entry -----------------------------------------------------------------------


def test_an_entry_of_a_row() -> None:
    entry = from_row(id=7, at=AT, actor="user:alice", kind="note", data={"text": "hi"})
    assert entry == TimelineEntry(
        id=7, at=AT, actor="user:alice", kind=EventKind.NOTE, data=Note(text="hi")
    )
    odd = from_row(id=8, at=AT, actor="system", kind="teleported", data={}, snapshot_id=3)
    assert odd.kind is EventKind.UNKNOWN
    assert odd.data == Unknown(stored_kind="teleported", data={})
    assert odd.snapshot_id == 3


def test_an_entry_kind_is_its_data_kind() -> None:
    with pytest.raises(ValueError, match="kind status with data of kind note"):
        TimelineEntry(id=1, at=AT, actor="a", kind=EventKind.STATUS, data=Note(text="hi"))
    text = (
        b'{"id":1,"at":"2025-03-04T10:11:12Z","actor":"a","kind":"status",'
        b'"data":{"kind":"note","text":"hi"}}'
    )
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(text, type=TimelineEntry)


def test_the_entry_in_json() -> None:
    entry = TimelineEntry(
        id=1,
        at=AT,
        actor="user:alice",
        kind=EventKind.ASSIGNMENT,
        data=Assignment(from_=None, to="alice"),
    )
    assert msgspec.json.decode(msgspec.json.encode(entry)) == {
        "id": 1,
        "at": "2025-03-04T10:11:12Z",
        "actor": "user:alice",
        "kind": "assignment",
        "data": {"kind": "assignment", "from": None, "to": "alice"},
        "snapshot_id": None,
    }
    assert msgspec.json.decode(msgspec.json.encode(entry), type=TimelineEntry) == entry


@get("/entry", sync_to_thread=False)
def _entry() -> TimelineEntry:
    return TimelineEntry(
        id=1, at=AT, actor="a", kind=EventKind.STATUS, data=Status(from_="new", to="assigned")
    )


def test_the_openapi_document_types_every_kind() -> None:
    schemas = Litestar([_entry]).openapi_schema.to_schema()["components"]["schemas"]
    entry = schemas["TimelineEntry"]
    assert entry["properties"]["kind"] == {"$ref": "#/components/schemas/EventKind"}
    assert set(schemas["EventKind"]["enum"]) == {str(k) for k in EventKind}
    members = [ref["$ref"].rsplit("/", 1)[1] for ref in entry["properties"]["data"]["oneOf"]]
    assert members == [cls.__name__ for cls in typing.get_args(TimelineData)]
    for cls in typing.get_args(TimelineData):
        schema = schemas[cls.__name__]
        assert schema["properties"]["kind"] == {
            "type": "string",
            "const": str(tag(cls)),
        }
        required = {f.encode_name for f in fields_of(cls) if f.required}
        assert set(schema["required"]) == required | {"kind"}
    assert set(schemas["Status"]["properties"]) == {"kind", "from", "to"}
    assert "bytes" in schemas["ScreenEnded"]["properties"]
    assert "frames" not in schemas["ScreenEnded"]["required"]


def test_the_api_document_types_the_timeline(tmp_path: Path) -> None:
    """The REST API gives tickets' timelines typed, and Litestar (which names a
    component after its class, and renames two classes of one name after their
    modules) keeps every component's own name."""
    from deskside.console.app import build_app
    from deskside.console.gateway import Gateway
    from deskside.console.store import Store
    from deskside.protocol import crypto

    # Building the document touches neither the database nor an agent.
    store = Store.connect(f"sqlite:///{tmp_path}/unused.db")
    app = build_app(store, Gateway(store, crypto.generate_private_key()), tmp_path)
    schemas = app.openapi_schema.to_schema()["components"]["schemas"]
    assert "TimelineEntry" in schemas
    detail = schemas["TicketDetail"]["properties"]["timeline"]
    assert detail["items"]["$ref"].endswith("/TimelineEntry")
    for cls in typing.get_args(EventData):
        assert cls.__name__ in schemas
    assert not [name for name in schemas if re.fullmatch(r"[a-z0-9_]+_[A-Z]\w*", name)]
