"""Hypothesis strategies for wire messages, derived from the types' own limits.

The strategies read each type through ``msgspec.inspect``, so they respect every
``Meta`` constraint and follow new messages and fields without being edited.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec.inspect as mi
from hypothesis import strategies as st

from deskside.protocol.messages import MESSAGE_TYPES

# Caps that keep generated values small; the limits themselves are tested apart.
_MAX_TEXT = 40
_MAX_BYTES = 300
_MAX_LIST = 3


def _bounds(t: mi.IntType | mi.FloatType, lo: float, hi: float) -> tuple[float, float]:
    low = t.ge if t.ge is not None else (t.gt if t.gt is not None else lo)
    high = t.le if t.le is not None else (t.lt if t.lt is not None else hi)
    return low, high


def strategy_for(t: mi.Type) -> st.SearchStrategy[Any]:
    """A strategy of values valid for the msgspec type ``t``."""
    if isinstance(t, mi.IntType):
        low, high = _bounds(t, -(2**63), 2**63 - 1)
        return st.integers(
            min_value=int(low) + (1 if t.gt is not None else 0),
            max_value=int(high) - (1 if t.lt is not None else 0),
        )
    if isinstance(t, mi.FloatType):
        low, high = _bounds(t, -1e12, 1e12)
        return st.floats(
            min_value=low,
            max_value=high,
            exclude_min=t.gt is not None,
            exclude_max=t.lt is not None,
            allow_nan=False,
            allow_infinity=False,
        )
    if isinstance(t, mi.StrType):
        low = t.min_length or 0
        high = min(t.max_length if t.max_length is not None else _MAX_TEXT, _MAX_TEXT)
        if t.pattern is not None:
            return st.from_regex(t.pattern, fullmatch=True).filter(
                lambda s: low <= len(s) <= (t.max_length or 1 << 30)
            )
        return st.text(min_size=low, max_size=max(low, high))
    if isinstance(t, mi.BytesType):
        high = min(t.max_length if t.max_length is not None else _MAX_BYTES, _MAX_BYTES)
        return st.binary(min_size=t.min_length or 0, max_size=high)
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.EnumType):
        return st.sampled_from(list(t.cls))
    if isinstance(t, mi.ListType):
        low = t.min_length or 0
        high = min(t.max_length if t.max_length is not None else _MAX_LIST, _MAX_LIST)
        return st.lists(strategy_for(t.item_type), min_size=low, max_size=max(low, high))
    if isinstance(t, mi.UnionType):
        return st.one_of([strategy_for(member) for member in t.types])
    if isinstance(t, mi.StructType):
        return _struct(t.cls)
    raise NotImplementedError(f"no strategy for {t!r}: teach tests/protocol/strategies.py")


@functools.cache
def _struct(cls: type) -> st.SearchStrategy[Any]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    fields = {field.name: strategy_for(field.type) for field in info.fields}
    return st.builds(cls, **fields)


def messages() -> st.SearchStrategy[Any]:
    """Any wire message, of any type."""
    return st.one_of([_struct(cls) for cls in MESSAGE_TYPES])
