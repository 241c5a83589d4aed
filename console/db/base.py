"""What every capability's tables share: the declarative base and a UTC timestamp type.

Every change to a capability's tables comes with an Alembic migration in
``deskside.console.db.migrations.versions``; a test checks that the models and
the migrated schema agree.
"""

from __future__ import annotations

import datetime

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

__all__ = ["Base", "BigId", "UTCDateTime"]


class UTCDateTime(TypeDecorator[datetime.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no time zone; PostgreSQL does. This makes both give the same.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(datetime.UTC)

    def process_result_value(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)


# A 64-bit key on PostgreSQL; SQLite's INTEGER PRIMARY KEY (its rowid) otherwise.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    """Base of the console's tables, with constraint names Alembic can rely on."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
