"""Webhooks from commit to a receiver's acknowledgement, against a bare httpx POST loop.

    .venv/bin/python benchmarks/webhooks.py [--tickets 200] [--endpoints 1 10 100]

A console's store (SQLite in a temporary directory) and its dispatcher run in this
process; the receiver (``http.server``, threaded) in another, which notes when each
message arrived. For each number of endpoints, tickets are opened one after another
(each commit writes one outbox row per endpoint) and the run ends when every message
was acknowledged: messages a second, the latency from the message's commit (its
``timestamp``) to its arrival (p50, p99), and this process's CPU seconds per message
beyond opening the same tickets without endpoints. The baseline POSTs as many bodies
of the same size with httpx, 16 at a time, to the same receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import multiprocessing as mp
import statistics
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from deskside.console.db import migrate
from deskside.console.store import Store
from deskside.console.tickets.lifecycle import TicketSource
from deskside.console.tickets.schemas import NewTicket
from deskside.console.webhooks.addresses import AddressGuard
from deskside.console.webhooks.catalog import EventType
from deskside.console.webhooks.dispatcher import DispatcherConfig, WebhookDispatcher
from deskside.console.webhooks.schemas import NewEndpoint


def _receiver(port_queue: mp.Queue[int], arrivals: mp.Queue[tuple[float, float]]) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            now = time.time()
            sent = now
            if self.headers.get("webhook-id"):
                stamp = json.loads(body)["timestamp"]
                sent = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            arrivals.put((sent, now))

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 256  # 16 connections at once, and more
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def _drain(arrivals: mp.Queue[tuple[float, float]], count: int) -> list[float]:
    return [(lambda s: s[1] - s[0])(arrivals.get(timeout=120)) for _ in range(count)]


async def _open(store: Store, tickets: int) -> None:
    for n in range(tickets):
        await store.tickets.create_ticket(
            NewTicket(title=f"bench {n}", description="x"), actor="bench", source=TicketSource.API
        )


async def _webhooks(
    url: str, endpoints: int, tickets: int, arrivals: mp.Queue[tuple[float, float]]
) -> tuple[float, list[float], float]:
    with tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate(database)
        store = Store.connect(database)
        cpu = time.process_time()
        await _open(store, tickets)  # the same work without endpoints: the CPU baseline
        bare_cpu = time.process_time() - cpu
        for _ in range(endpoints):
            await store.webhooks.add_endpoint(
                NewEndpoint(url=url, events=[EventType.TICKET_CREATED]), actor="bench"
            )
        guard = AddressGuard(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),))
        dispatcher = WebhookDispatcher(store.webhooks, guard, DispatcherConfig(), bus=store.bus)
        await dispatcher.start()
        started, cpu = time.perf_counter(), time.process_time()
        await _open(store, tickets)
        latencies = await asyncio.to_thread(_drain, arrivals, endpoints * tickets)
        elapsed, used = time.perf_counter() - started, time.process_time() - cpu
        await dispatcher.stop()
        await store.close()
        return elapsed, latencies, max(used - bare_cpu, 0.0)


async def _bare(url: str, count: int, arrivals: mp.Queue[tuple[float, float]]) -> float:
    body = b"x" * 900  # about a ticket.created message
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient() as client:

        async def post() -> None:
            async with gate:
                (await client.post(url, content=body)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(post() for _ in range(count)))
        elapsed = time.perf_counter() - started
    await asyncio.to_thread(_drain, arrivals, count)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--endpoints", type=int, nargs="+", default=[1, 10, 100])
    args = parser.parse_args()
    ports: mp.Queue[int] = mp.Queue()
    arrivals: mp.Queue[tuple[float, float]] = mp.Queue()
    receiver = mp.Process(target=_receiver, args=(ports, arrivals), daemon=True)
    receiver.start()
    url = f"http://127.0.0.1:{ports.get(timeout=10)}/hook"
    print(
        f"{'endpoints':>9} {'messages':>8} {'msg/s':>8} {'httpx/s':>8} {'ratio':>6} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'CPU ms/msg':>10}"
    )
    for endpoints in args.endpoints:
        tickets = max(args.tickets // endpoints, 10)
        count = endpoints * tickets
        elapsed, latencies, cpu = asyncio.run(_webhooks(url, endpoints, tickets, arrivals))
        bare = asyncio.run(_bare(url, count, arrivals))
        cuts = statistics.quantiles(latencies, n=100)
        print(
            f"{endpoints:>9} {count:>8} {count / elapsed:>8.0f} {count / bare:>8.0f} "
            f"{bare / elapsed:>6.2f} {cuts[49] * 1000:>8.1f} {cuts[98] * 1000:>8.1f} "
            f"{cpu / count * 1000:>10.2f}"
        )
    receiver.terminate()


if __name__ == "__main__":
    main()
