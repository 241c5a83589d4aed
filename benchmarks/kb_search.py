"""Knowledge-base search on SQLite and PostgreSQL, against a plain count, in one run.

    .venv/bin/python benchmarks/kb_search.py [--articles 5000] [--queries 50]

Writes ``--articles`` articles of made-up help-desk text (each about 1 KB, from a
vocabulary of a few hundred words) into a fresh database of each kind, then times
``list_articles(query=...)`` for one- and two-word queries and a ticket's
suggestions, beside ``SELECT count(*)`` over the same table. PostgreSQL is started
in a temporary directory as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from deskside.console.db import migrate
from deskside.console.knowledge.models import Article
from deskside.console.knowledge.schemas import ArticleStatus, NewArticle
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource
from deskside.console.tickets.schemas import NewTicket

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.postgres import create_database, postgres_server

WORDS = [
    "printer",
    "disk",
    "network",
    "vpn",
    "outlook",
    "calendar",
    "password",
    "account",
    "locked",
    "wifi",
    "dns",
    "gateway",
    "driver",
    "update",
    "reboot",
    "battery",
    "screen",
    "keyboard",
    "mouse",
    "monitor",
    "share",
    "folder",
    "permission",
    "excel",
    "word",
    "teams",
    "browser",
    "proxy",
    "certificate",
    "expired",
    "slow",
    "crash",
    "freeze",
    "error",
    "backup",
    "restore",
    "sync",
    "cache",
    "memory",
    "cpu",
    "service",
    "spooler",
    "toner",
    "paper",
    "scanner",
    "audio",
    "camera",
    "microphone",
    "headset",
    "bluetooth",
    "usb",
    "dock",
    "laptop",
    "desktop",
    "server",
    "mail",
    "quota",
    "license",
]
CATEGORIES = ("hardware/storage", "network/dns", "software/application", "account/password")


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) + rng.choice(("", "s", "ed", "ing")) for _ in range(words))


async def fill(store: Store, count: int, rng: random.Random) -> None:
    for i in range(count):
        article = await store.knowledge.create(
            NewArticle(
                title=text(rng, 6),
                problem=text(rng, 40),
                symptoms=text(rng, 30),
                cause=text(rng, 20),
                resolution=text(rng, 60),
                category=rng.choice(CATEGORIES),
                tags=[rng.choice(WORDS) for _ in range(3)],
                findings=["disk-nearly-full"] if i % 50 == 0 else [],
            ),
            actor="bench",
        )
        if i % 2 == 0:
            await store.knowledge.publish(article.id, actor="bench")


async def timed(work: object, repeat: int) -> float:
    """Median seconds of ``work()`` (an async callable) over ``repeat`` runs."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await work()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def measure(url: str, articles: int, queries: int) -> dict[str, float]:
    migrate(url)
    store = Store.connect(url)
    rng = random.Random(15)
    try:
        start = time.perf_counter()
        await fill(store, articles, rng)
        filled = time.perf_counter() - start
        ticket, _ = await store.tickets.create_ticket(
            NewTicket(title="printer toner error", description="the spooler crashed"),
            actor="bench",
            source=TicketSource.CLI,
        )

        async def count() -> None:
            async with store.db.reading() as session:
                await session.scalar(select(func.count()).select_from(Article))

        one = [rng.choice(WORDS) for _ in range(queries)]
        two = [f"{rng.choice(WORDS)} {rng.choice(WORDS)}" for _ in range(queries)]
        published = [ArticleStatus.PUBLISHED]
        return {
            "write s/article": filled / articles,
            "count(*)": await timed(count, queries),
            "search 1 word": await timed(
                lambda: store.knowledge.list_articles(query=one.pop(), statuses=published), queries
            ),
            "search 2 words": await timed(
                lambda: store.knowledge.list_articles(query=two.pop(), statuses=published), queries
            ),
            "suggestions": await timed(lambda: store.knowledge.suggestions(ticket.id), 10),
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite:///{Path(tmp) / 'kb.db'}"
        results["sqlite"] = asyncio.run(measure(sqlite, args.articles, args.queries))
    base = Path(tempfile.mkdtemp(prefix="deskside-pg-"))
    with postgres_server(base) as server:
        url = create_database(server)
        results["postgresql"] = asyncio.run(measure(url, args.articles, args.queries))
    print(f"{args.articles} articles (half published), median of {args.queries} queries")
    print(f"{'':18}{'sqlite':>12}{'postgresql':>12}")
    for key in results["sqlite"]:
        row = "".join(f"{results[db][key] * 1000:10.2f}ms" for db in ("sqlite", "postgresql"))
        print(f"{key:18}{row}")


if __name__ == "__main__":
    main()
