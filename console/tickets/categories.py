"""The help desk's categories: what a ticket's ``category`` may be.

A category is ``ID`` or ``ID/SUB``; ``""`` is a ticket not classified yet. The set
is a data file, not a table: the console ships ``categories.toml`` (hardware,
software, network connectivity, account access, general question, each with
subcategories) and an admin replaces it with ``DATA_DIR/categories.toml``, read
when the console (or a CLI command) starts::

    [network]
    title = "Network connectivity"
    subcategories = { dns = "Name resolution", vpn = "VPN" }

A file is refused whole with a message naming it and what is wrong, so a typo
stops the start instead of letting tickets be filed under names nobody meant.
Tickets keep their category as text: a category later removed from the file
stays on its old tickets, and only new values are checked.
"""

from __future__ import annotations

import re
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from deskside.protocol.errors import ConfigError

__all__ = ["CATEGORIES_FILE", "Categories", "Category"]

CATEGORIES_FILE: Final = "categories.toml"
_ID: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")
# Most categories, and subcategories of one: a list a technician reads.
_MAX: Final = 64

Text = Annotated[str, Meta(min_length=1, max_length=128)]


class Category(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One category and its subcategories (id -> title)."""

    title: Text
    subcategories: Annotated[dict[str, Text], Meta(max_length=_MAX)] = {}


class Categories:
    """The categories in force, by id."""

    def __init__(self, categories: dict[str, Category]) -> None:
        # id -> category, in the file's order.
        self.by_id = categories

    @classmethod
    def parse(cls, text: str, source: str) -> Categories:
        """The categories of a TOML text; ``ConfigError`` naming ``source`` if invalid."""
        try:
            data = tomllib.loads(text)
            parsed = msgspec.convert(
                data, Annotated[dict[str, Category], Meta(min_length=1, max_length=_MAX)]
            )
        except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        for cid, category in parsed.items():
            for name in (cid, *category.subcategories):
                if not _ID.match(name):
                    raise ConfigError(
                        f"{source}: {name!r} is not a category id "
                        "(lower-case letters, digits and '-', 30 at most)"
                    )
        return cls(parsed)

    @classmethod
    def load(cls, data_dir: Path | None = None) -> Categories:
        """The admin's ``DATA_DIR/categories.toml`` if there is one, else the shipped set."""
        if data_dir is not None:
            path = data_dir / CATEGORIES_FILE
            if path.is_file():
                return cls.parse(path.read_text(encoding="utf-8"), str(path))
        shipped = files("deskside.console.tickets").joinpath(CATEGORIES_FILE)
        return cls.parse(shipped.read_text(encoding="utf-8"), CATEGORIES_FILE)

    def names(self) -> list[str]:
        """Every valid value: each ``ID`` and each ``ID/SUB``."""
        return [
            name
            for cid, category in self.by_id.items()
            for name in (cid, *(f"{cid}/{sub}" for sub in category.subcategories))
        ]

    def is_valid(self, value: str) -> bool:
        """Whether ``value`` names a category or subcategory ("" does not)."""
        cid, _, sub = value.partition("/")
        category = self.by_id.get(cid)
        if category is None:
            return False
        return "/" not in value or sub in category.subcategories

    def check(self, value: str) -> str | None:
        """Why ``value`` may not be a ticket's category, or None if it may ("" may)."""
        if value == "" or self.is_valid(value):
            return None
        return f"no category {value!r}; known: {', '.join(self.names())}"

    def title(self, value: str) -> str:
        """``value`` in words ("Network connectivity / Name resolution")."""
        cid, _, sub = value.partition("/")
        category = self.by_id.get(cid)
        if category is None:
            return value
        if not sub:
            return category.title
        return f"{category.title} / {category.subcategories.get(sub, sub)}"
