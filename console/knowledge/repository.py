"""The knowledge base: articles and their versions, search, suggestions, links.

An article is written as a draft and published when it is ready; each change is a
new version (who, when, what changed, and every field as it left them), so the
history is kept whole. A ticket's technician is offered the published articles that
match it (``suggestions``): those written for its findings' rules, of its category,
and with the words of its title and description. Linking an article that solved a
ticket ("resolved with") is a timeline entry on the ticket and a row that counts
the article's uses. A resolved ticket is turned into a draft (``draft_from_ticket``)
with its title, description, findings and what was done about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol, runtime_checkable

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from deskside.console import timeline as entries
from deskside.console.db import Database, get_row, utcnow
from deskside.console.errors import NotFound
from deskside.console.events import DomainEvent
from deskside.console.findings.schemas import Decision, TicketFindings
from deskside.console.tickets.categories import Categories
from deskside.console.tickets.models import Ticket
from deskside.console.tickets.schemas import TicketDetail
from deskside.console.timeline import kinds
from deskside.console.timeline.kinds import TimelineEntry

from . import search
from .models import Article, ArticleLink, ArticleVersion
from .render import render_article
from .schemas import (
    ArticleChanges,
    ArticleStatus,
    ArticleSummary,
    ArticleVersionView,
    ArticleView,
    NewArticle,
    Suggestion,
)

__all__ = ["KnowledgeRepository", "TicketFindingsSource", "TicketSource"]

# The text fields of an article, with their headings in the rendered page.
SECTIONS: Final = (
    ("problem", "Problem"),
    ("symptoms", "Symptoms"),
    ("cause", "Cause"),
    ("resolution", "Resolution"),
)
_FIELDS: Final = (
    "title",
    "problem",
    "symptoms",
    "cause",
    "resolution",
    "category",
    "tags",
    "findings",
    "status",
)
# Candidates a search ranks: the newest this many that hold every word.
_CANDIDATES: Final = 500


@runtime_checkable
class TicketSource(Protocol):
    """A ticket with its timeline (the tickets' repository)."""

    async def get_ticket(self, ticket_id: int) -> TicketDetail:
        """A ticket and its whole timeline."""
        ...


@runtime_checkable
class TicketFindingsSource(Protocol):
    """What the rules find in a ticket's snapshot (the findings' service)."""

    async def for_ticket(self, ticket_id: int) -> TicketFindings:
        """The findings of the ticket's newest snapshot."""
        ...


def _search_text(article: Article) -> str:
    return " " + search.fold(
        " ".join(
            [
                article.title,
                *(getattr(article, name) for name, _ in SECTIONS),
                article.category.replace("/", " "),
                *article.tags,
                *(f.replace("-", " ") for f in article.findings),
            ]
        )
    )


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class KnowledgeRepository:
    """Articles, their versions and their links to tickets."""

    def __init__(
        self,
        db: Database,
        categories: Categories,
        tickets: TicketSource,
        findings: TicketFindingsSource,
    ) -> None:
        self._db = db
        self._categories = categories
        self._tickets = tickets
        self._findings = findings

    def _check(self, category: str | None) -> None:
        problem = None if category is None else self._categories.check(category)
        if problem is not None:  # an unknown name, as an unknown assignee: not found
            raise NotFound(problem)

    async def create(
        self, new: NewArticle, *, actor: str, source_ticket: int | None = None
    ) -> ArticleView:
        """Write an article as a draft (its version 1)."""
        self._check(new.category)
        now = utcnow()
        async with self._db.transaction() as session:
            if source_ticket is not None:
                await get_row(session, Ticket, source_ticket, "ticket")
            article = Article(
                title=new.title,
                problem=new.problem,
                symptoms=new.symptoms,
                cause=new.cause,
                resolution=new.resolution,
                category=new.category,
                tags=sorted(set(new.tags)),
                findings=sorted(set(new.findings)),
                status=str(ArticleStatus.DRAFT),
                version=1,
                source_ticket=source_ticket,
                created_by=actor,
                created_at=now,
                updated_by=actor,
                updated_at=now,
                search_text="",
            )
            article.search_text = _search_text(article)
            session.add(article)
            await session.flush()
            session.add(_version(article, "created"))
            return await _view(session, article)

    async def update(self, article_id: int, changes: ArticleChanges, *, actor: str) -> ArticleView:
        """Change an article's fields (a new version), or nothing if nothing differs."""
        self._check(changes.category)
        now = utcnow()
        async with self._db.transaction() as session:
            article = await get_row(session, Article, article_id, "article", lock=True)
            changed = []
            for name in _FIELDS:
                value = getattr(changes, name)
                if value is None:
                    continue
                if name in ("tags", "findings"):
                    value = sorted(set(value))
                elif name == "status":
                    value = str(value)
                if value != getattr(article, name):
                    setattr(article, name, value)
                    changed.append(name)
            if changed:
                article.version += 1
                article.updated_by = actor
                article.updated_at = now
                article.search_text = _search_text(article)
                what = (
                    f"status {article.status}"
                    if changed == ["status"]
                    else "edited: " + ", ".join(changed)
                )
                session.add(_version(article, what[:256]))
            return await _view(session, article)

    async def publish(self, article_id: int, *, actor: str) -> ArticleView:
        """Offer the article to technicians (suggestions, default searches)."""
        return await self.update(
            article_id, ArticleChanges(status=ArticleStatus.PUBLISHED), actor=actor
        )

    async def get(self, article_id: int) -> ArticleView:
        """An article, rendered."""
        async with self._db.reading() as session:
            return await _view(session, await get_row(session, Article, article_id, "article"))

    async def versions(self, article_id: int) -> list[ArticleVersionView]:
        """Every version of an article, oldest first."""
        async with self._db.reading() as session:
            await get_row(session, Article, article_id, "article")
            rows = (
                await session.execute(
                    select(ArticleVersion)
                    .where(ArticleVersion.article_id == article_id)
                    .order_by(ArticleVersion.version)
                )
            ).scalars()
            return [
                ArticleVersionView(
                    version=row.version,
                    changed_by=row.changed_by,
                    changed_at=row.changed_at,
                    change=row.change,
                    title=str(row.fields.get("title", "")),
                    status=ArticleStatus(str(row.fields.get("status", "draft"))),
                )
                for row in rows
            ]

    async def list_articles(
        self,
        *,
        statuses: Sequence[ArticleStatus] = (),
        category: str | None = None,
        query: str = "",
        limit: int = 50,
        offset: int = 0,
    ) -> list[tuple[ArticleSummary, float, list[str]]]:
        """Articles, newest first; with ``query``, those holding every word of it, best
        first, with their score and the words that matched."""
        words = search.terms(query)
        if query.strip() and not words:
            return []  # nothing to look for ("a", "the"): nothing found
        select_ = select(Article)
        if statuses:
            select_ = select_.where(Article.status.in_([str(s) for s in statuses]))
        if category:
            select_ = select_.where(
                (Article.category == category)
                | Article.category.startswith(f"{category}/", autoescape=True)
            )
        for word in words:
            select_ = select_.where(
                Article.search_text.like(f"% {_escape_like(word)}%", escape="\\")
            )
        async with self._db.reading() as session:
            if not words:
                rows = list(
                    (
                        await session.execute(
                            select_.order_by(Article.id.desc()).limit(limit).offset(offset)
                        )
                    ).scalars()
                )
                solved = await _solved(session, [r.id for r in rows])
                return [(_summary(r, solved.get(r.id, 0)), 0.0, []) for r in rows]
            rows = list(
                (
                    await session.execute(select_.order_by(Article.id.desc()).limit(_CANDIDATES))
                ).scalars()
            )
            solved = await _solved(session, [r.id for r in rows])
        ranked = []
        for row in rows:
            points, matched = _rank(row, words, solved.get(row.id, 0))
            ranked.append((_summary(row, solved.get(row.id, 0)), points, matched))
        ranked.sort(key=lambda r: (-r[1], -r[0].id))
        return ranked[offset : offset + limit]

    async def suggestions(self, ticket_id: int, limit: int = 5) -> list[Suggestion]:
        """Published articles that may solve the ticket, best first.

        An article scores 5 for each rule of the ticket's findings (not dismissed) it
        was written for, 3 for the ticket's category (1 for its parent category),
        and its search score for the words of the ticket's title and description.
        """
        detail = await self._tickets.get_ticket(ticket_id)
        found = await self._findings.for_ticket(ticket_id)
        rules = {v.finding.rule for v in found.findings if v.decision is not Decision.DISMISSED}
        category = detail.ticket.category
        words = search.terms(f"{detail.ticket.title} {detail.ticket.description}", 32)
        # Only articles that can score: a rule's words, the category, a word.
        wanted: list[ColumnElement[bool]] = [
            Article.search_text.like(
                f"% {_escape_like(search.fold(rule.replace('-', ' ')))}%", escape="\\"
            )
            for rule in sorted(rules)
        ]
        wanted += [Article.search_text.like(f"% {_escape_like(w)}%", escape="\\") for w in words]
        if category:
            top = category.split("/")[0]
            wanted += [
                Article.category == top,
                Article.category.startswith(f"{top}/", autoescape=True),
            ]
        if not wanted:
            return []
        async with self._db.reading() as session:
            rows = list(
                (
                    await session.execute(
                        select(Article)
                        .where(Article.status == str(ArticleStatus.PUBLISHED), or_(*wanted))
                        .order_by(Article.id.desc())
                        .limit(_CANDIDATES * 4)
                    )
                ).scalars()
            )
            solved = await _solved(session, [r.id for r in rows])
        suggested = []
        for row in rows:
            reasons = [f"finding {rule}" for rule in sorted(rules & set(row.findings))]
            points = 5.0 * len(reasons)
            if category and row.category == category:
                points += 3
                reasons.append(f"category {category}")
            elif category and row.category.split("/")[0] == category.split("/")[0]:
                points += 1
                reasons.append(f"category {row.category.split('/')[0]}")
            text_points, matched = _rank(row, words, 0)
            if len(matched) >= 2 or (matched and points):
                points += text_points
                reasons.append("words: " + ", ".join(matched))
            if points:
                points += _rank(row, [], solved.get(row.id, 0))[0]
                suggested.append(
                    Suggestion(
                        article=_summary(row, solved.get(row.id, 0)),
                        score=round(points, 2),
                        reasons=reasons,
                    )
                )
        suggested.sort(key=lambda s: (-s.score, -s.article.id))
        return suggested[:limit]

    async def link(
        self, ticket_id: int, article_id: int, *, resolved: bool, actor: str
    ) -> TimelineEntry:
        """Link an article to a ticket (again: ``resolved`` may only become true)."""
        now = utcnow()
        events: list[DomainEvent] = []
        async with self._db.transaction(events=events) as session:
            ticket = await get_row(session, Ticket, ticket_id, "ticket", lock=True)
            article = await get_row(session, Article, article_id, "article")
            existing = (
                await session.execute(
                    select(ArticleLink).where(
                        ArticleLink.article_id == article_id, ArticleLink.ticket_id == ticket_id
                    )
                )
            ).scalar_one_or_none()
            if existing is None:
                session.add(
                    ArticleLink(
                        article_id=article_id,
                        ticket_id=ticket_id,
                        resolved=resolved,
                        linked_by=actor,
                        linked_at=now,
                    )
                )
            elif resolved and not existing.resolved:
                existing.resolved = True
            ticket.updated_at = now
            return await entries.add(
                session,
                ticket_id,
                kinds.ArticleLinked(article=article_id, title=article.title, resolved=resolved),
                actor=actor,
                at=now,
                events=events,
            )

    async def draft_from_ticket(self, ticket_id: int, *, actor: str) -> ArticleView:
        """A draft prefilled from a ticket: its title and description, its findings (not
        dismissed), the notes written on it and the commands that worked."""
        detail = await self._tickets.get_ticket(ticket_id)
        found = await self._findings.for_ticket(ticket_id)
        kept = [v.finding for v in found.findings if v.decision is not Decision.DISMISSED]
        notes = [e.data.text for e in detail.timeline if isinstance(e.data, kinds.Note)]
        worked = [
            " ".join(e.data.argv)
            for e in detail.timeline
            if isinstance(e.data, kinds.CommandResult)
            and e.data.exit_code == 0
            and isinstance(e.data.argv, tuple)
        ]
        resolution = "\n\n".join(notes)
        if worked:
            resolution += "\n\nCommands that worked:\n\n" + "\n".join(
                f"    {argv}" for argv in worked
            )
        ticket = detail.ticket
        new = NewArticle(
            title=ticket.title,
            problem=ticket.description[:65536],
            symptoms="\n".join(f"* {f.title}" for f in kept)[:65536],
            resolution=resolution.strip()[:65536],
            category=ticket.category if self._categories.check(ticket.category) is None else "",
            findings=sorted({f.rule for f in kept}),
        )
        return await self.create(new, actor=actor, source_ticket=ticket_id)


def _rank(row: Article, words: Sequence[str], solved: int) -> tuple[float, list[str]]:
    labels = search.fold(" ".join([row.category, *row.tags, *row.findings]))
    return search.score(
        words,
        title=search.fold(row.title),
        labels=labels,
        body=row.search_text,
        solved=solved,
    )


async def _solved(session: AsyncSession, ids: Sequence[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = await session.execute(
        select(ArticleLink.article_id, func.count())
        .where(ArticleLink.article_id.in_(ids), ArticleLink.resolved.is_(True))
        .group_by(ArticleLink.article_id)
    )
    return {int(row[0]): int(row[1]) for row in rows}


def _version(article: Article, change: str) -> ArticleVersion:
    fields: dict[str, Any] = {name: getattr(article, name) for name in _FIELDS}
    return ArticleVersion(
        article_id=article.id,
        version=article.version,
        changed_by=article.updated_by,
        changed_at=article.updated_at,
        change=change,
        fields=fields,
    )


def _summary(row: Article, solved: int) -> ArticleSummary:
    return ArticleSummary(
        id=row.id,
        title=row.title,
        category=row.category,
        tags=list(row.tags),
        status=ArticleStatus(row.status),
        version=row.version,
        solved=solved,
        updated_at=row.updated_at,
    )


async def _view(session: AsyncSession, row: Article) -> ArticleView:
    solved = (await _solved(session, [row.id])).get(row.id, 0)
    return ArticleView(
        id=row.id,
        title=row.title,
        problem=row.problem,
        symptoms=row.symptoms,
        cause=row.cause,
        resolution=row.resolution,
        category=row.category,
        tags=list(row.tags),
        findings=list(row.findings),
        status=ArticleStatus(row.status),
        version=row.version,
        solved=solved,
        source_ticket=row.source_ticket,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        html=render_article([(heading, getattr(row, name)) for name, heading in SECTIONS]),
    )
