"""The knowledge base on SQLite and on a real PostgreSQL: versions, publishing,
search, suggestions from a ticket's findings, links, drafts from tickets."""

from __future__ import annotations

import pytest

from deskside.console.errors import NotFound
from deskside.console.findings.schemas import Decision
from deskside.console.knowledge.schemas import ArticleChanges, ArticleStatus, NewArticle
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource
from deskside.console.tickets.schemas import NewTicket
from deskside.console.timeline.kinds import ArticleLinked
from tests.console.findings.test_service import recorded, ticket_with

DISK = NewArticle(
    title="Disk full: empty the caches",
    problem="The system disk is full; programs cannot save.",
    symptoms="* *Disk full* errors\n* Updates fail",
    cause="Browser and package caches grow without bound.",
    resolution="Run `apt-get clean` and empty the browser's cache.",
    category="hardware/storage",
    tags=["disk", "caches"],
    findings=["disk-nearly-full", "disk-full"],
)
PRINTER = NewArticle(
    title="Printer prints blank pages",
    problem="Pages come out blank.",
    resolution="Replace the toner cartridge.",
    category="hardware/peripherals",
    tags=["printer"],
)
VPN = NewArticle(
    title="VPN drops every hour",
    problem="The VPN disconnects; files on the share are lost from view.",
    resolution="Renew the certificate.",
    category="network/vpn",
)


async def test_articles_are_versioned_and_published(store: Store) -> None:
    kb = store.knowledge
    article = await kb.create(DISK, actor="user:alice")
    assert (article.status, article.version, article.solved) == (ArticleStatus.DRAFT, 1, 0)
    assert "<code>apt-get clean</code>" in article.html
    assert "<h2>Symptoms</h2>" in article.html
    unchanged = await kb.update(article.id, ArticleChanges(title=DISK.title), actor="user:bob")
    assert unchanged.version == 1
    edited = await kb.update(
        article.id,
        ArticleChanges(title="Disk full", resolution="Run `apt-get clean`.", tags=["disk"]),
        actor="user:bob",
    )
    assert (edited.version, edited.updated_by, edited.created_by) == (2, "user:bob", "user:alice")
    published = await kb.publish(article.id, actor="user:carol")
    assert (published.status, published.version) == (ArticleStatus.PUBLISHED, 3)
    versions = await kb.versions(article.id)
    assert [(v.version, v.changed_by, v.change, v.title, v.status) for v in versions] == [
        (1, "user:alice", "created", DISK.title, ArticleStatus.DRAFT),
        (2, "user:bob", "edited: title, resolution, tags", "Disk full", ArticleStatus.DRAFT),
        (3, "user:carol", "status published", "Disk full", ArticleStatus.PUBLISHED),
    ]
    with pytest.raises(NotFound):
        await kb.get(article.id + 1)
    with pytest.raises(NotFound, match="no category"):
        await kb.create(NewArticle(title="x", category="printers"), actor="user:alice")


async def test_search_finds_words_in_every_field_best_first(store: Store) -> None:
    kb = store.knowledge
    disk = await kb.create(DISK, actor="user:a")
    printer = await kb.create(PRINTER, actor="user:a")
    vpn = await kb.create(VPN, actor="user:a")
    await kb.publish(printer.id, actor="user:a")

    async def ids(query: str, *statuses: ArticleStatus) -> list[int]:
        found = await kb.list_articles(query=query, statuses=statuses)
        return [summary.id for summary, _, _ in found]

    assert await ids("DISK") == [disk.id]
    assert await ids("cartridge") == [printer.id]  # the resolution
    assert await ids("caches") == [disk.id]  # a tag
    assert await ids("files") == [vpn.id]
    assert await ids("blank printer") == [printer.id]
    assert await ids("blank vpn") == []  # every word must be there
    assert await ids("print") == [printer.id]  # word beginnings
    assert await ids("pages") == [printer.id]
    assert await ids("pages", ArticleStatus.DRAFT) == []
    assert await ids("100%") == []  # LIKE's wild cards are words here
    assert await ids("") == [vpn.id, printer.id, disk.id]
    assert await ids("a !") == []  # nothing to look for
    # The title counts more than the body.
    title = await kb.create(NewArticle(title="Share lost", problem="x"), actor="user:a")
    body = await kb.create(NewArticle(title="Other", problem="the share is lost"), actor="user:a")
    assert await ids("share") == [title.id, body.id, vpn.id]  # then newest first


async def test_a_tickets_findings_suggest_articles_and_a_link_counts(store: Store) -> None:
    kb = store.knowledge
    disk = await kb.create(DISK, actor="user:a")
    printer = await kb.create(PRINTER, actor="user:a")
    ticket_id = await ticket_with(store, recorded("disk"))
    assert await kb.suggestions(ticket_id) == []  # drafts are not suggested
    await kb.publish(disk.id, actor="user:a")
    await kb.publish(printer.id, actor="user:a")
    [suggestion] = await kb.suggestions(ticket_id)
    assert suggestion.article.id == disk.id
    assert suggestion.reasons[0] == "finding disk-nearly-full"
    # "Cannot save files", "Word says the disk is full"
    assert suggestion.reasons[1] == "words: cannot, save, disk, full"
    # Dismissed, the finding no longer suggests; the words still do.
    await store.findings.decide(ticket_id, "disk-nearly-full:/", Decision.DISMISSED, actor="u")
    [again] = await kb.suggestions(ticket_id)
    assert again.score < suggestion.score
    assert not any(r.startswith("finding") for r in again.reasons)

    entry = await kb.link(ticket_id, disk.id, resolved=True, actor="user:alice")
    assert entry.data == ArticleLinked(article=disk.id, title=DISK.title, resolved=True)
    await kb.link(ticket_id, disk.id, resolved=True, actor="user:alice")  # once is counted
    assert (await kb.get(disk.id)).solved == 1
    other, _ = await store.tickets.create_ticket(
        NewTicket(title="t", description="d"), actor="cli", source=TicketSource.CLI
    )
    await kb.link(other.id, disk.id, resolved=False, actor="user:alice")
    assert (await kb.get(disk.id)).solved == 1
    await kb.link(other.id, disk.id, resolved=True, actor="user:alice")
    assert (await kb.get(disk.id)).solved == 2
    timeline = (await store.tickets.get_ticket(other.id)).timeline
    assert [e.data for e in timeline[-2:]] == [
        ArticleLinked(article=disk.id, title=DISK.title, resolved=False),
        ArticleLinked(article=disk.id, title=DISK.title, resolved=True),
    ]
    with pytest.raises(NotFound):
        await kb.link(other.id, 999, resolved=True, actor="user:alice")
    with pytest.raises(NotFound):
        await kb.link(999, disk.id, resolved=True, actor="user:alice")


async def test_a_category_suggests_too(store: Store) -> None:
    kb = store.knowledge
    vpn = await kb.create(VPN, actor="user:a")
    await kb.publish(vpn.id, actor="user:a")
    same, _ = await store.tickets.create_ticket(
        NewTicket(title="Cannot connect", description="x", category="network/vpn"),
        actor="cli",
        source=TicketSource.CLI,
    )
    parent, _ = await store.tickets.create_ticket(
        NewTicket(title="Cannot connect", description="x", category="network"),
        actor="cli",
        source=TicketSource.CLI,
    )
    unrelated, _ = await store.tickets.create_ticket(
        NewTicket(title="Cannot connect", description="x", category="software"),
        actor="cli",
        source=TicketSource.CLI,
    )
    [best] = await kb.suggestions(same.id)
    [weaker] = await kb.suggestions(parent.id)
    assert best.reasons == ["category network/vpn"]
    assert weaker.reasons == ["category network"]
    assert best.score > weaker.score
    assert await kb.suggestions(unrelated.id) == []


async def test_a_draft_from_a_resolved_ticket(store: Store) -> None:
    ticket_id = await ticket_with(store, recorded("disk"))
    await store.findings.decide(ticket_id, "disk-nearly-full:/", Decision.ACCEPTED, actor="u")
    await store.findings.decide(ticket_id, "long-uptime", Decision.DISMISSED, actor="u")
    await store.tickets.add_note(ticket_id, "Emptied ~/.cache: 6 GiB back.", actor="user:alice")
    draft = await store.knowledge.draft_from_ticket(ticket_id, actor="user:alice")
    assert draft.status is ArticleStatus.DRAFT
    assert draft.source_ticket == ticket_id
    assert (draft.title, draft.problem) == ("Cannot save files", "Word says the disk is full")
    assert draft.symptoms == "* Disk / is 97% full (7.0 GiB free)"
    assert draft.findings == ["disk-nearly-full"]
    assert draft.category == "hardware/storage"
    assert draft.resolution == "Emptied ~/.cache: 6 GiB back."
    with pytest.raises(NotFound):
        await store.knowledge.draft_from_ticket(ticket_id + 100, actor="user:alice")
