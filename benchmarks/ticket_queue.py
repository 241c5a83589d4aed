"""The queue's query (``TicketRepository.queue``) with 10,000 tickets, in one run.

(Not ``queue.py``: run as a script, that name would hide the standard library's.)

    .venv/bin/python benchmarks/ticket_queue.py [--tickets 10000] [--rounds 30] [--postgresql]

A migrated database (SQLite in a temporary directory; with ``--postgresql`` also a
throw-away PostgreSQL server, as the tests start one) filled with tickets of mixed
statuses, priorities, groups, assignees and due times. Each query asks for one page
of 50 and the total count, as the web console's queue does; its median and p95 time
are printed beside the baseline measured in the same run: the first page of every
ticket, newest first, with no filter. A deep page (offset 9,950) shows whether
offset pagination stays flat with the indexes of migration 0009.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from deskside.console.auth.models import TechnicianGroup, User
from deskside.console.db import migrate, utcnow
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketStatus
from deskside.console.tickets.models import Ticket
from deskside.console.tickets.schemas import QueueSort, SortOrder, TicketQuery

GROUPS = ("desk", "specialists", "field")
USERS = tuple(f"tech{n}" for n in range(20))
OPEN: list[TicketStatus] = [
    s for s in TicketStatus if s not in (TicketStatus.RESOLVED, TicketStatus.CLOSED)
]

# The queries: name -> (query, the technician asking).
QUERIES: dict[str, tuple[TicketQuery, str | None]] = {
    "no filter, newest first (baseline)": (TicketQuery(), None),
    "open tickets (the default queue)": (TicketQuery(statuses=OPEN), None),
    "one group, open": (TicketQuery(statuses=OPEN, group="desk"), None),
    "mine": (TicketQuery(mine=True), "tech3"),
    "unassigned, open": (TicketQuery(statuses=OPEN, unassigned=True), None),
    "breaching within 1 h": (TicketQuery(breaching=True), None),
    "priority 1": (TicketQuery(priority=1), None),
    "text search": (TicketQuery(text="printer"), None),
    "sort by priority": (TicketQuery(sort=QueueSort.PRIORITY), None),
    "sort by updated": (TicketQuery(sort=QueueSort.UPDATED), None),
    "sort by SLA due, ascending": (TicketQuery(sort=QueueSort.SLA_DUE, order=SortOrder.ASC), None),
    "deep page (offset 9,950)": (TicketQuery(offset=9_950), None),
    "deep page, sort by SLA due": (TicketQuery(offset=9_950, sort=QueueSort.SLA_DUE), None),
}

WORDS = ("printer", "vpn", "mail", "screen", "laptop", "wifi", "password", "disk")


async def fill(store: Store, count: int) -> None:
    rng = random.Random(13)
    now = utcnow()
    async with store.db.transaction() as session:
        for group in GROUPS:
            session.add(TechnicianGroup(name=group, created_at=now))
        for user in USERS:
            session.add(User(username=user, password_hash="x", role="technician", created_at=now))
        await session.flush()
        rows = []
        for n in range(count):
            created = now - datetime.timedelta(minutes=count - n)
            priority = rng.randint(1, 5)
            status = rng.choice(list(TicketStatus))
            rows.append(
                {
                    "title": f"{rng.choice(WORDS)} problem {n}",
                    "description": " ".join(rng.choices(WORDS, k=12)),
                    "requester": f"user{rng.randint(1, 500)}@example.org",
                    "device_id": None,
                    "category": "",
                    "impact": rng.randint(1, 3),
                    "urgency": rng.randint(1, 3),
                    "priority": priority,
                    "status": status.value,
                    "assignee": rng.choice((None, *USERS)),
                    "group_name": rng.choice((None, *GROUPS)),
                    "source": "api",
                    "created_at": created,
                    "updated_at": created + datetime.timedelta(minutes=rng.randint(0, 600)),
                    "response_due": created + datetime.timedelta(hours=priority),
                    "resolution_due": created + datetime.timedelta(hours=4 * priority),
                    "reopen_count": 0,
                    "version": 1,
                }
            )
        await session.execute(insert(Ticket), rows)


async def measure(store: Store, rounds: int) -> dict[str, tuple[float, float, int]]:
    results = {}
    for name, (query, username) in QUERIES.items():
        await store.tickets.queue(query, username=username)  # warm
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            page = await store.tickets.queue(query, username=username)
            times.append(time.perf_counter() - started)
        times.sort()
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        results[name] = (statistics.median(times), p95, page.total)
    return results


async def run(url: str, count: int, rounds: int) -> dict[str, tuple[float, float, int]]:
    migrate(url)
    store = Store.connect(url)
    try:
        await fill(store, count)
        return await measure(store, rounds)
    finally:
        await store.close()


def report(title: str, results: dict[str, tuple[float, float, int]]) -> None:
    baseline = next(iter(results.values()))[0]
    print(f"\n{title}")
    head = "query (a page of 50 and the total)"
    print(f"{head:<38} {'p50 ms':>8} {'p95 ms':>8} {'ratio':>6} {'total':>7}")
    for name, (median, p95, total) in results.items():
        print(
            f"{name:<38} {median * 1e3:8.2f} {p95 * 1e3:8.2f} {median / baseline:6.2f} {total:7d}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--postgresql", action="store_true", help="PostgreSQL too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'queue.db'}"
        report(
            f"SQLite, {args.tickets:,} tickets", asyncio.run(run(url, args.tickets, args.rounds))
        )
        if args.postgresql:
            from tests.postgres import create_database, postgres_server

            # Not under the SQLite directory: the postgres user could not enter it.
            base = Path(tempfile.mkdtemp(prefix="deskside-pg-"))
            try:
                with postgres_server(base) as server:
                    url = create_database(server)
                    results = asyncio.run(run(url, args.tickets, args.rounds))
            finally:
                shutil.rmtree(base, ignore_errors=True)
            report(f"PostgreSQL, {args.tickets:,} tickets", results)


if __name__ == "__main__":
    main()
