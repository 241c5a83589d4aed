"""``deskside-console kb add | edit | show | search | publish | list | versions | draft``
and ``ticket kb N``: the knowledge base from the command line.

Long texts come from files (``--problem-file``, ...) or ``-`` for standard input, so
an article is written in an editor and stays Markdown.
"""

from __future__ import annotations

from typing import Any

import click
import msgspec

from deskside.console.clitools import Context, pass_context, table, when
from deskside.console.store import Store

from .schemas import ArticleChanges, ArticleStatus, ArticleView, NewArticle

__all__ = ["kb", "ticket_kb"]

Number = click.IntRange(1, 2**31 - 1)
_TEXTS = ("problem", "symptoms", "cause", "resolution")


def _actor(ctx: Context, username: str | None) -> str:
    if username is None:
        return "cli"
    if not ctx.run(lambda store: store.accounts.user_exists(username)):
        raise click.UsageError(f"no technician named {username!r}")
    return f"user:{username}"


def _text_options(fn: Any) -> Any:
    for name in reversed(_TEXTS):
        fn = click.option(
            f"--{name}-file",
            f"{name}_file",
            type=click.File("r", encoding="utf-8"),
            default=None,
            help=f"The {name} in Markdown, from a file ('-': standard input).",
        )(fn)
        fn = click.option(f"--{name}", name, default=None, help=f"The {name} (Markdown).")(fn)
    fn = click.option("--title", default=None)(fn)
    fn = click.option("--category", default=None, help="ID or ID/SUB (see `categories`).")(fn)
    fn = click.option("--tag", "tags", multiple=True, help="A tag (repeat for several).")(fn)
    fn = click.option(
        "--finding", "findings", multiple=True, help="A rule id the article solves (repeat)."
    )(fn)
    return click.option("--as", "username", default=None, help="The technician writing.")(fn)


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    """The fields the options give (``None``: not given)."""
    fields: dict[str, Any] = {}
    for name in _TEXTS:
        given, file = options.get(name), options.get(f"{name}_file")
        if given is not None and file is not None:
            raise click.UsageError(f"--{name} or --{name}-file, not both")
        if file is not None:
            given = file.read(65537)
        if given is not None:
            fields[name] = given
    for name in ("title", "category"):
        if options.get(name) is not None:
            fields[name] = options[name]
    for name in ("tags", "findings"):
        if options.get(name):
            fields[name] = list(options[name])
    return fields


def _convert(fields: dict[str, Any], cls: type[Any]) -> Any:
    try:
        return msgspec.convert(fields, cls)
    except msgspec.ValidationError as exc:
        raise click.UsageError(str(exc)) from exc


def _show(article: ArticleView, html: bool = False) -> None:
    click.echo(f"Article {article.id}: {article.title}")
    click.echo(
        f"  {article.status.value}, version {article.version}, "
        f"solved {article.solved} ticket(s), category {article.category or '-'}"
    )
    click.echo(
        f"  tags {', '.join(article.tags) or '-'}    findings {', '.join(article.findings) or '-'}"
    )
    click.echo(
        f"  by {article.created_by} {when(article.created_at)}, "
        f"last {article.updated_by} {when(article.updated_at)}"
    )
    if html:
        click.echo(article.html)
        return
    for name in _TEXTS:
        text = getattr(article, name)
        if text.strip():
            click.echo(f"\n{name.capitalize()}:\n  " + text.replace("\n", "\n  "))


@click.group()
def kb() -> None:
    """The knowledge base: articles in Markdown, versioned, drafts and published."""


@kb.command("add")
@_text_options
@pass_context
def kb_add(ctx: Context, /, username: str | None, **options: Any) -> None:
    """Write an article (a draft until `kb publish`)."""
    fields = _fields(options)
    if "title" not in fields:
        raise click.UsageError("an article needs --title")
    new = _convert(fields, NewArticle)
    who = _actor(ctx, username)
    article = ctx.run(lambda store: store.knowledge.create(new, actor=who))
    click.echo(f"Article {article.id} written (draft, version {article.version})")


@kb.command("edit")
@click.argument("number", type=Number)
@_text_options
@pass_context
def kb_edit(ctx: Context, /, number: int, username: str | None, **options: Any) -> None:
    """Change an article: each change is a new version."""
    changes = _convert(_fields(options), ArticleChanges)
    who = _actor(ctx, username)
    article = ctx.run(lambda store: store.knowledge.update(number, changes, actor=who))
    click.echo(f"Article {article.id} is at version {article.version}")


@kb.command("publish")
@click.argument("number", type=Number)
@click.option("--as", "username", default=None, help="The technician publishing.")
@pass_context
def kb_publish(ctx: Context, number: int, username: str | None) -> None:
    """Publish an article: it is then suggested on tickets."""
    who = _actor(ctx, username)
    article = ctx.run(lambda store: store.knowledge.publish(number, actor=who))
    click.echo(f"Article {article.id} published (version {article.version})")


@kb.command("show")
@click.argument("number", type=Number)
@click.option("--html", is_flag=True, help="The rendered HTML instead of the Markdown.")
@click.option("--versions", is_flag=True, help="Every version: who changed what, when.")
@pass_context
def kb_show(ctx: Context, number: int, html: bool, versions: bool) -> None:
    """An article."""
    article = ctx.run(lambda store: store.knowledge.get(number))
    _show(article, html)
    if versions:
        history = ctx.run(lambda store: store.knowledge.versions(number))
        click.echo("\nVersions:")
        for v in history:
            click.echo(f"  {v.version:3}  {when(v.changed_at)}  {v.changed_by}  {v.change}")


def _list(rows: list[Any], scored: bool) -> None:
    headers = ["ID", "STATUS", "VER", "SOLVED", "CATEGORY", "TITLE"] + (["SCORE"] if scored else [])
    click.echo(
        table(
            headers,
            [
                [
                    str(s.id),
                    s.status.value,
                    str(s.version),
                    str(s.solved),
                    s.category or "-",
                    s.title if len(s.title) <= 50 else s.title[:49] + "…",
                    *([f"{score:.1f}"] if scored else []),
                ]
                for s, score, _ in rows
            ],
        )
    )


@kb.command("search")
@click.argument("words", nargs=-1, required=True)
@click.option("--drafts", is_flag=True, help="Drafts too, not only published articles.")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@pass_context
def kb_search(ctx: Context, words: tuple[str, ...], drafts: bool, limit: int) -> None:
    """Articles holding every word, best first."""
    statuses = [] if drafts else [ArticleStatus.PUBLISHED]
    query = " ".join(words)[:256]
    found = ctx.run(
        lambda store: store.knowledge.list_articles(statuses=statuses, query=query, limit=limit)
    )
    _list(found, scored=True)


@kb.command("list")
@click.option("--status", type=click.Choice([s.value for s in ArticleStatus]), default=None)
@click.option("--category", default=None)
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@pass_context
def kb_list(ctx: Context, status: str | None, category: str | None, limit: int) -> None:
    """Articles, newest first."""
    statuses = [ArticleStatus(status)] if status else []
    found = ctx.run(
        lambda store: store.knowledge.list_articles(
            statuses=statuses, category=category, limit=limit
        )
    )
    _list(found, scored=False)


@kb.command("draft")
@click.option("--ticket", "ticket_id", type=Number, required=True)
@click.option("--as", "username", default=None, help="The technician writing.")
@pass_context
def kb_draft(ctx: Context, ticket_id: int, username: str | None) -> None:
    """A new draft from a ticket: its title, problem, findings and what was done."""
    who = _actor(ctx, username)
    article = ctx.run(lambda store: store.knowledge.draft_from_ticket(ticket_id, actor=who))
    click.echo(f"Article {article.id} drafted from ticket #{ticket_id}; edit it with kb edit")
    _show(article)


@click.command("kb")
@click.argument("number", type=Number)
@click.option(
    "--resolved-with",
    "resolved_with",
    type=Number,
    default=None,
    help="The article that solved the ticket (counted).",
)
@click.option("--link", "link", type=Number, default=None, help="An article that helped.")
@click.option("--as", "username", default=None, help="The technician.")
@pass_context
def ticket_kb(
    ctx: Context, number: int, resolved_with: int | None, link: int | None, username: str | None
) -> None:
    """Articles suggested for a ticket; or link one (--resolved-with A, --link A)."""
    if resolved_with is not None and link is not None:
        raise click.UsageError("--resolved-with or --link, not both")
    article = resolved_with if resolved_with is not None else link
    if article is not None:
        who = _actor(ctx, username)

        async def work(store: Store) -> Any:
            return await store.knowledge.link(
                number, article, resolved=resolved_with is not None, actor=who
            )

        entry = ctx.run(work)
        how = "resolved with" if resolved_with is not None else "linked to"
        click.echo(f"Ticket #{number} {how} article {article}: {entry.data.title}")
        return
    suggestions = ctx.run(lambda store: store.knowledge.suggestions(number, 10))
    if not suggestions:
        click.echo("No published article matches this ticket.")
        return
    click.echo(
        table(
            ["ID", "SCORE", "SOLVED", "TITLE", "WHY"],
            [
                [
                    str(s.article.id),
                    f"{s.score:.1f}",
                    str(s.article.solved),
                    s.article.title[:50],
                    "; ".join(s.reasons),
                ]
                for s in suggestions
            ],
        )
    )
