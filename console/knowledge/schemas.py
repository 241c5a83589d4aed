"""What the knowledge-base API takes and gives (also its OpenAPI schema)."""

from __future__ import annotations

import datetime
import enum
from typing import Annotated

import msgspec
from msgspec import Meta

from deskside.console.api import Count, SmallId

__all__ = [
    "ArticleChanges",
    "ArticleLinkRequest",
    "ArticleStatus",
    "ArticleSummary",
    "ArticleVersionView",
    "ArticleView",
    "NewArticle",
    "Suggestion",
]

Title = Annotated[str, Meta(min_length=1, max_length=256)]
Markdown = Annotated[str, Meta(max_length=65536)]
Word = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Words = Annotated[list[Word], Meta(max_length=32)]
CategoryName = Annotated[str, Meta(max_length=64)]


class ArticleStatus(enum.StrEnum):
    """Whether an article is offered to technicians: drafts are not suggested."""

    DRAFT = "draft"
    PUBLISHED = "published"


class NewArticle(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An article to write; it starts as a draft. Texts are Markdown."""

    title: Title
    problem: Markdown = ""
    symptoms: Markdown = ""
    cause: Markdown = ""
    resolution: Markdown = ""
    category: CategoryName = ""
    tags: Words = []
    # The ids of the rules whose findings the article solves ("disk-nearly-full").
    findings: Words = []


class ArticleChanges(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Fields of an article to change; absent ones stay. Each change is a new version."""

    title: Title | None = None
    problem: Markdown | None = None
    symptoms: Markdown | None = None
    cause: Markdown | None = None
    resolution: Markdown | None = None
    category: CategoryName | None = None
    tags: Words | None = None
    findings: Words | None = None
    status: ArticleStatus | None = None


class ArticleSummary(msgspec.Struct, frozen=True, kw_only=True):
    """An article in a list or a search's results."""

    id: SmallId
    title: str
    category: str
    tags: list[str]
    status: ArticleStatus
    version: SmallId
    # Tickets it solved ("resolved with").
    solved: Count
    updated_at: datetime.datetime


class ArticleView(msgspec.Struct, frozen=True, kw_only=True):
    """An article with its Markdown and that Markdown rendered (safe HTML)."""

    id: SmallId
    title: str
    problem: str
    symptoms: str
    cause: str
    resolution: str
    category: str
    tags: list[str]
    findings: list[str]
    status: ArticleStatus
    version: SmallId
    solved: Count
    source_ticket: SmallId | None
    created_by: str
    created_at: datetime.datetime
    updated_by: str
    updated_at: datetime.datetime
    # The whole article as HTML: its sections rendered with raw HTML off, links checked.
    html: str


class ArticleVersionView(msgspec.Struct, frozen=True, kw_only=True):
    """One version of an article: who changed what, when, and the fields it left."""

    version: SmallId
    changed_by: str
    changed_at: datetime.datetime
    change: str
    title: str
    status: ArticleStatus


class Suggestion(msgspec.Struct, frozen=True, kw_only=True):
    """A published article that may solve a ticket, and why it is suggested."""

    article: ArticleSummary
    score: Annotated[float, Meta(ge=0)]
    # "finding disk-nearly-full", "category hardware/storage", "words: disk, full".
    reasons: list[str]


class ArticleLinkRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Link an article to a ticket; ``resolved``: the ticket was resolved with it."""

    article: SmallId
    resolved: bool = True
