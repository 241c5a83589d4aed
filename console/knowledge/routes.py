"""The knowledge-base API: ``/api/v1/kb/articles``, suggestions and links on tickets.

Reading needs ``tickets:read``; writing articles ``knowledge:write``; linking an
article to a ticket is a change of the ticket, ``tickets:write``.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.params import Parameter

from deskside.console.api import errors
from deskside.console.auth.guards import requires
from deskside.console.auth.identity import ApiIdentity, Scope
from deskside.console.timeline.kinds import TimelineEntry

from .repository import KnowledgeRepository
from .schemas import (
    ArticleChanges,
    ArticleLinkRequest,
    ArticleStatus,
    ArticleSummary,
    ArticleVersionView,
    ArticleView,
    NewArticle,
    Suggestion,
)

__all__ = ["KnowledgeController"]

ArticleId = Annotated[int, Parameter(ge=1, le=2**31 - 1)]
TicketId = Annotated[int, Parameter(ge=1, le=2**31 - 1)]


class KnowledgeController(Controller):
    """Articles: write, version, publish, search; suggested on and linked to tickets."""

    path = "/api/v1"
    tags = ["knowledge"]  # noqa: RUF012 - Litestar's API

    @get("/kb/articles", guards=[requires(Scope.TICKETS_READ)], responses=errors(400))
    async def list_articles(
        self,
        identity: ApiIdentity,
        knowledge: KnowledgeRepository,
        q: Annotated[str, Parameter(max_length=256, description="Words to search for")] = "",
        status: list[ArticleStatus] | None = None,
        category: Annotated[str | None, Parameter(max_length=64)] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=100_000)] = 0,
    ) -> list[ArticleSummary]:
        """Articles, newest first; with ``q``, those holding every word, best first."""
        found = await knowledge.list_articles(
            statuses=status or (),
            category=category,
            query=q,
            limit=limit,
            offset=offset,
        )
        return [summary for summary, _, _ in found]

    @post("/kb/articles", guards=[requires(Scope.KNOWLEDGE_WRITE)], responses=errors(400, 404))
    async def create_article(
        self, identity: ApiIdentity, knowledge: KnowledgeRepository, data: NewArticle
    ) -> ArticleView:
        """Write an article, as a draft (201)."""
        return await knowledge.create(data, actor=identity.actor)

    @get(
        "/kb/articles/{article_id:int}",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def get_article(
        self, identity: ApiIdentity, knowledge: KnowledgeRepository, article_id: ArticleId
    ) -> ArticleView:
        """An article, its Markdown and its safe HTML."""
        return await knowledge.get(article_id)

    @patch(
        "/kb/articles/{article_id:int}",
        guards=[requires(Scope.KNOWLEDGE_WRITE)],
        responses=errors(400, 404),
    )
    async def update_article(
        self,
        identity: ApiIdentity,
        knowledge: KnowledgeRepository,
        article_id: ArticleId,
        data: ArticleChanges,
    ) -> ArticleView:
        """Change an article (a new version), or publish it (``status``)."""
        return await knowledge.update(article_id, data, actor=identity.actor)

    @get(
        "/kb/articles/{article_id:int}/versions",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def article_versions(
        self, identity: ApiIdentity, knowledge: KnowledgeRepository, article_id: ArticleId
    ) -> list[ArticleVersionView]:
        """Every version of an article: who changed what, when."""
        return await knowledge.versions(article_id)

    @get(
        "/tickets/{ticket_id:int}/kb/suggestions",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def suggestions(
        self,
        identity: ApiIdentity,
        knowledge: KnowledgeRepository,
        ticket_id: TicketId,
        limit: Annotated[int, Parameter(ge=1, le=50)] = 5,
    ) -> list[Suggestion]:
        """Published articles that match the ticket's findings, category and words."""
        return await knowledge.suggestions(ticket_id, limit)

    @post(
        "/tickets/{ticket_id:int}/kb/links",
        guards=[requires(Scope.TICKETS_WRITE)],
        responses=errors(400, 404),
    )
    async def link_article(
        self,
        identity: ApiIdentity,
        knowledge: KnowledgeRepository,
        ticket_id: TicketId,
        data: ArticleLinkRequest,
    ) -> TimelineEntry:
        """Link an article to the ticket; ``resolved``: it solved it (201)."""
        return await knowledge.link(
            ticket_id, data.article, resolved=data.resolved, actor=identity.actor
        )

    @post(
        "/tickets/{ticket_id:int}/kb/draft",
        guards=[requires(Scope.KNOWLEDGE_WRITE)],
        responses=errors(400, 404),
    )
    async def draft_from_ticket(
        self, identity: ApiIdentity, knowledge: KnowledgeRepository, ticket_id: TicketId
    ) -> ArticleView:
        """A new draft article prefilled from the ticket (201)."""
        return await knowledge.draft_from_ticket(ticket_id, actor=identity.actor)
