"""The knowledge base's tables: articles, every version of each, and the tickets
they were linked to."""

from __future__ import annotations

import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from deskside.console.db.base import Base, UTCDateTime

__all__ = ["Article", "ArticleLink", "ArticleVersion"]


class Article(Base):
    """A knowledge-base article as it is now; its history is in ``ArticleVersion``."""

    __tablename__ = "kb_articles"
    __table_args__ = (Index("ix_kb_articles_status_category", "status", "category"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(256))
    problem: Mapped[str] = mapped_column(Text)
    symptoms: Mapped[str] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(Text)
    resolution: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(64))
    # Lists of short words: its tags, and the ids of the rules whose findings it solves.
    tags: Mapped[list[str]] = mapped_column(JSON)
    findings: Mapped[list[str]] = mapped_column(JSON)
    # "draft" or "published" (ArticleStatus).
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    # The ticket it was drafted from, if any.
    source_ticket: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(160))
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    # Every field's words, lower-cased and folded, for the portable search (search.py).
    search_text: Mapped[str] = mapped_column(Text)


class ArticleVersion(Base):
    """An article as one change left it: who, when, and every field."""

    __tablename__ = "kb_article_versions"
    __table_args__ = (UniqueConstraint("article_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    changed_by: Mapped[str] = mapped_column(String(160))
    changed_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
    # What the change did, in words: "created", "edited: title, resolution", "published".
    change: Mapped[str] = mapped_column(String(256))
    # The article's fields after the change (the Article columns above, as JSON).
    fields: Mapped[dict[str, object]] = mapped_column(JSON)


class ArticleLink(Base):
    """An article linked to a ticket; ``resolved``: the article solved it."""

    __tablename__ = "kb_links"
    __table_args__ = (UniqueConstraint("article_id", "ticket_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True
    )
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    resolved: Mapped[bool] = mapped_column(Boolean)
    linked_by: Mapped[str] = mapped_column(String(160))
    linked_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime())
